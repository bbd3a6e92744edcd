"""Where Distill Studio keeps its files: one home folder, shared by the CLI and the app.

``DISTILL_STUDIO_HOME`` moves it (the tests point it at a temporary folder); the default is
``~/.distill_studio``. Inside: ``data/`` (downloaded datasets), ``teachers/`` (the teacher
cache), ``runs/`` (run outputs), ``runs.db`` (the run store) and ``uploads/``.
"""
from __future__ import annotations

import errno
import os
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


def uploads_dir() -> Path:
    """Files people upload in the app: teacher checkpoints, and zipped image folders once unpacked."""
    return home() / "uploads"


def data_roots() -> list[Path]:
    """Where the app may read image folders when it is served beyond this machine: the home's
    ``data/`` and ``uploads/``, and the folders named in ``DISTILL_STUDIO_DATA_ROOTS`` (separated
    by ``os.pathsep``: ":" on Linux and macOS, ";" on Windows)."""
    named = os.environ.get("DISTILL_STUDIO_DATA_ROOTS", "")
    return [data_dir(), uploads_dir(), *(Path(p).expanduser() for p in named.split(os.pathsep) if p.strip())]


def run_store() -> Path:
    """The run store's file, ``runs.db`` in the home."""
    return home() / "runs.db"


def home_unwritable() -> Optional[str]:
    """The system's reason the home folder cannot be written ("Read-only file system"), or None.

    Asked of the system itself (it knows a read-only disk, and what root may do), without writing
    a file: pages ask on every rerun, and a file made and removed would touch the folder each time."""
    root = home()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return exc.strerror or str(exc)
    if os.access(root, os.W_OK | os.X_OK):
        return None
    if hasattr(os, "statvfs") and os.statvfs(root).f_flag & os.ST_RDONLY:
        return os.strerror(errno.EROFS)
    return os.strerror(errno.EACCES)
