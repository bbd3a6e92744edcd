"""Rebuilding the run store from the run folders.

A run's results.json is the truth; ``runs.db`` is the index that lists runs and keeps what a
run that never finished recorded. A damaged index is moved aside, never deleted (it may still
hold rows worth reading by hand), and a new one is made from every results.json found: in the
runs folder, and in the folders the old file still names (a CLI run with its own ``--out``).
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import DistillError, StoreDamagedError
from .store import RunStore, default_path

SIDE_FILES = ("-wal", "-shm")  # SQLite's: a -wal left beside a new runs.db would be replayed into it


@dataclass
class Rebuilt:
    path: Path  # the new store
    moved_to: Optional[Path]  # where the old file went (None: there was none)
    damaged: bool  # whether the old file was damaged
    runs: list[str] = field(default_factory=list)  # the runs indexed again

    def summary(self) -> str:
        if self.moved_to is None:
            before = f"there was no run store at {self.path}"
        else:
            before = f"moved the {'damaged ' if self.damaged else ''}run store to {self.moved_to}"
        return f"{before}; rebuilt {self.path} with {len(self.runs)} run(s) from their results.json files"


def is_damaged(path: Path) -> bool:
    try:
        RunStore(path, check_interrupted=False).check()
    except StoreDamagedError:
        return True
    return False


def folders_named_in(path: Path) -> list[Path]:
    """Run folders a (possibly damaged) store file still names, read row by row until the damage."""
    found: list[Path] = []
    with contextlib.suppress(sqlite3.Error):
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            for (folder,) in conn.execute("SELECT artifacts_dir FROM runs"):
                if folder:
                    found.append(Path(folder))
        finally:
            conn.close()
    return found


def move_aside(path: Path, label: str) -> Optional[Path]:
    """``runs.db`` -> ``runs.db.<label>-<time>``, with its -wal and -shm; None when there is no file."""
    if not path.exists():
        for side in SIDE_FILES:  # stray ones would be replayed into the new file
            Path(f"{path}{side}").unlink(missing_ok=True)
        return None
    target = path.with_name(f"{path.name}.{label}-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while target.exists():
        n += 1
        target = target.with_name(f"{path.name}.{label}-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
    try:
        for side in SIDE_FILES:
            if Path(f"{path}{side}").exists():
                os.replace(f"{path}{side}", f"{target}{side}")
        os.replace(path, target)
    except OSError as exc:
        raise DistillError(f"cannot move the run store {path} aside: {exc.strerror or exc}") from None
    return target


def rebuild_store(path: str | Path | None = None) -> Rebuilt:
    """Move the store file aside and index every run folder with a results.json again.

    Runs that never wrote a results.json (failed, or interrupted with nothing finished) are not
    in the new store; the old file, kept aside, still has them."""
    path = Path(path).expanduser() if path else default_path()
    damaged = path.exists() and is_damaged(path)
    elsewhere = folders_named_in(path) if path.exists() else []
    moved = move_aside(path, "damaged" if damaged else "old")
    store = RunStore(path)
    found = store.scan()
    for folder in elsewhere:
        run_id = store.import_dir(folder)
        if run_id:
            found.append(run_id)
    return Rebuilt(path, moved, damaged, found)
