"""What a run store's SQLite error means for the person who sees it.

Every store operation goes through ``store_error``, so a damaged ``runs.db`` reads the same
whichever query met the damage first: which file, what is wrong, and what to do.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import DistillError, StoreDamagedError

REBUILD = "python -m distill_core runs --rebuild"
DAMAGED = ("SQLITE_CORRUPT", "SQLITE_NOTADB")  # and their extended codes (SQLITE_CORRUPT_INDEX, ...)
BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")
CANNOT_WRITE = ("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_PERM")


def damaged_message(path: str | Path, reason: str) -> str:
    return (f"the run store {path} is damaged ({reason}). The run folders are kept: `{REBUILD}` (or Rebuild on "
            "the app's Runs page) moves the damaged file aside and rebuilds the store from their results.json "
            "files; or move the file away yourself, and a fresh, empty store is made")


def store_error(path: str | Path, exc: sqlite3.Error) -> Exception:
    """``exc`` as the error a user can act on; a programming error (a constraint, a bad query) is
    returned unchanged, since it is a bug and deserves its traceback."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc) or name
    if name.startswith(DAMAGED) or (not name and ("malformed" in text or "not a database" in text)):
        return StoreDamagedError(damaged_message(path, text), str(path), text)
    if name.startswith(BUSY) or "locked" in text:
        return DistillError(f"the run store {path} is busy ({text}): another process held it too long; "
                            "try again")
    if name.startswith(CANNOT_WRITE) or isinstance(exc, sqlite3.OperationalError):
        hint = "free some space on that disk" if name == "SQLITE_FULL" else "check that its folder can be written"
        return DistillError(f"the run store {path} cannot be used ({text}): {hint}, or set DISTILL_STUDIO_HOME "
                            "to another folder")
    return exc
