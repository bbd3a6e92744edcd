"""Where Distill Studio keeps its files: one home folder, shared by the CLI and the app.

``DISTILL_STUDIO_HOME`` moves it (the tests point it at a temporary folder); the default is
``~/.distill_studio``. Inside: ``data/`` (downloaded datasets), ``teachers/`` (the teacher
cache), ``runs/`` (run outputs), ``runs.db`` (the run store) and ``uploads/``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional


def home() -> Path:
    return Path(os.environ.get("DISTILL_STUDIO_HOME", Path.home() / ".distill_studio")).expanduser()


def data_dir() -> Path:
    return home() / "data"


def teacher_cache_dir() -> Path:
    return home() / "teachers"


def runs_dir() -> Path:
    return home() / "runs"


def run_store() -> Path:
    """The run store's file, ``runs.db`` in the home."""
    return home() / "runs.db"


def home_unwritable() -> Optional[str]:
    """The system's reason the home folder cannot be written ("Read-only file system"), or None.

    Tried for real, by creating the folder and a file in it: permissions alone do not tell (root
    ignores them; a read-only mount does not show in them)."""
    root = home()
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=root)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
