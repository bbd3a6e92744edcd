"""Where Distill Studio keeps its files: one home folder, shared by the CLI and the app.

``DISTILL_STUDIO_HOME`` moves it (the tests point it at a temporary folder); the default is
``~/.distill_studio``. Inside: ``data/`` (downloaded datasets), ``teachers/`` (the teacher
cache), ``runs/`` (run outputs) and ``runs.db`` (the run store).
"""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("DISTILL_STUDIO_HOME", Path.home() / ".distill_studio")).expanduser()


def data_dir() -> Path:
    return home() / "data"


def teacher_cache_dir() -> Path:
    return home() / "teachers"


def runs_dir() -> Path:
    return home() / "runs"
