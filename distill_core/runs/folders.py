"""Deleting a run's folder without touching what is not the run's."""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from .. import paths
from ..vocab import ROLES

# Files a run writes into its folder; only these are removed from a folder outside the runs dir.
RUN_FILES = ("config.json", "results.json", "compression.json", "teacher.pt", "student_scratch_best.pt",
             "student_scratch_last.pt", "student_kd_best.pt", "student_kd_last.pt")
EXPORTS = "exports"  # from it, only the files the studio wrote for the run (remove_run_dir)


def remove_run_dir(run_dir: str | Path, run_id: str) -> None:
    """Delete a run's folder. Inside the runs folder the whole folder goes; elsewhere (a user's
    ``--out``) only the files a run writes are removed, then the folder if it is left empty."""
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        return
    root = paths.runs_dir().expanduser().resolve()
    resolved = run_dir.resolve()
    if resolved.parent == root and resolved.name == run_id:
        shutil.rmtree(resolved, ignore_errors=True)
        return
    for name in RUN_FILES:
        with contextlib.suppress(FileNotFoundError):
            (resolved / name).unlink()
    # exports/ may hold the user's own files too: only what the studio wrote for this run goes
    # (export names carry the run id; compress writes <role>_<variant>.onnx in exports/compressed).
    exports = resolved / EXPORTS
    for path in exports.glob(f"*{run_id}*"):
        with contextlib.suppress(OSError):
            path.unlink()
    for path in (exports / "compressed").glob("*.onnx*"):
        if path.name.startswith(ROLES):
            with contextlib.suppress(OSError):
                path.unlink()
    for folder in (exports / "compressed", exports, resolved):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if nothing else is in it
