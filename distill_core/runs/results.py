"""The one results reader: a run's results, wherever they are kept.

A run's truth is the results.json in its folder; the run store is the index that says where the
folder is, and it keeps what a run that never returned recorded (the models that finished, their
epochs). ``load_results`` reads both, in that order, for the CLI's export and compression and for
the app's pages. The app adds one source of its own on top: a job still in its server's memory.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from .. import paths
from ..errors import DistillError
from .store import RunStore

RESULTS = "results.json"


def read_json(path: str | Path) -> Optional[dict]:
    """A JSON object from a file; None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def find_results(store: Optional[RunStore] = None) -> dict[str, Path]:
    """Run id -> its results.json: the runs the store knows (a CLI run with its own ``--out`` too),
    then the runs folder. A damaged store still leaves the runs folder listed."""
    found: dict[str, Path] = {}
    try:
        for row in (store or RunStore(check_interrupted=False)).list_runs():
            if row["dir"] and (Path(row["dir"]) / RESULTS).is_file():
                found[row["run_id"]] = Path(row["dir"]) / RESULTS
    except DistillError:
        pass
    root = paths.runs_dir()
    if root.is_dir():
        for path in root.glob(f"*/{RESULTS}"):
            found.setdefault(path.parent.name, path)
    return found


def _open(store: Optional[RunStore]) -> Optional[RunStore]:
    """``store``, or this home's; None when it cannot be read (damaged, or on a disk that cannot be
    written): the run folders still hold every finished run."""
    try:
        return store or RunStore()
    except DistillError:
        return None


def _plain_name(run_id: str) -> bool:
    """A run id that names a folder inside the runs folder, not one elsewhere ("../..", "/etc")."""
    return bool(run_id) and run_id not in (".", "..") and not any(c in run_id for c in "/\\\0")


def run_folder(run_id: str, store: Optional[RunStore] = None) -> tuple[Optional[Path], bool]:
    """(the run's folder, whether the store knows the run): the store's record, else the runs folder."""
    store = _open(store)
    try:
        run = store.get_run(run_id) if store is not None else None
    except DistillError:
        run = None
    if run is not None:
        return (Path(run["artifacts_dir"]) if run.get("artifacts_dir") else paths.runs_dir() / run_id), True
    folder = paths.runs_dir() / run_id if _plain_name(run_id) else None
    return (folder if folder is not None and folder.is_dir() else None), False


def load_results(run_id: str, store: Optional[RunStore] = None) -> Optional[dict]:
    """A run's results by id: its folder's results.json, else what the store recorded of it (a
    run that never returned reads like results.json, with the models that finished). None if unknown.

    The store is opened as usual, so a run whose process is gone reads "interrupted". One that
    cannot be read leaves the runs folder's results."""
    store = _open(store)
    folder, known = run_folder(run_id, store)
    if folder is not None and (results := read_json(folder / RESULTS)) is not None:
        return results
    try:
        return store.results(run_id) if known and store is not None else None
    except DistillError:
        return None
