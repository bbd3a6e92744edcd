"""Finished runs for the Compare page: from this server's jobs and from results.json on disk.

Reading the files too means runs survive a server restart and CLI runs show up as well: those in
the runs folder, and those the run store knows elsewhere (a CLI run with its own --out).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import streamlit as st

from distill_core import DONE, RUNNING, DistillError, RunStore, find_results, read_json
from distill_core import load_results as read_results

from .manager import get_manager


@st.cache_data(show_spinner=False, max_entries=64)
def _read(path: str, mtime: float) -> Optional[dict]:  # mtime: a rewritten file is read again
    return read_json(path)


def _read_fresh(path: Path) -> Optional[dict]:
    """The file's results, or None when it went between ``find_results`` and now (a run deleted
    on the Runs page, or by the CLI from another process)."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    return _read(str(path), mtime)


def list_runs() -> list[dict]:
    """Summaries of runs with results, newest first: run_id, status, label."""
    runs: dict[str, dict] = {}
    for run_id, path in find_results().items():
        data = _read_fresh(path)
        if data:
            runs[run_id] = data
    for snap in get_manager().jobs():
        if (results := _kept(snap)) is not None:
            runs[snap.id] = results
    out = []
    for run_id, data in runs.items():
        cfg = data.get("config") or {}
        out.append({"run_id": run_id, "status": data.get("status"), "started_at": data.get("started_at") or 0,
                    "label": f"{run_id} · {cfg.get('dataset')} · {cfg.get('teacher')} → {cfg.get('student')}"
                             f" · {data.get('status')}"})
    return sorted(out, key=lambda r: (r["started_at"], r["run_id"]), reverse=True)


@st.cache_resource
def _deleted() -> set[str]:
    return set()


def note_deleted(run_id: str) -> None:
    """Remember, for this server's life, that a run was deleted here: a Live tab or link left on it
    then says so, where the run store (its rows gone) could not tell it from a run never known."""
    _deleted().add(run_id)


def was_deleted(run_id: str) -> bool:
    return run_id in _deleted()


def newest_finished(runs: list[dict]) -> Optional[str]:
    """The newest of ``runs`` (``list_runs``' order) that finished, or None."""
    return next((r["run_id"] for r in runs if r["status"] == DONE), None)


def _kept(snap) -> Optional[dict]:
    """A job's results while its run is still there: a run deleted since (on the Runs page, or
    with the CLI from another process) is gone from this server's pages too. A sweep's job is no
    run (its trials are, each with its own results)."""
    if snap.kind != "run" or not snap.results or (snap.out_dir and not (Path(snap.out_dir) / "results.json").is_file()):
        return None
    return snap.results


def load_results(run_id: str) -> Optional[dict]:
    snap = get_manager().snapshot(run_id)
    if snap is not None and (results := _kept(snap)) is not None:
        return results
    path = find_results().get(run_id)
    return (_read_fresh(path) if path else None) or stored_results(run_id)


def stored_results(run_id: str) -> Optional[dict]:
    """What the run store kept of a run that never wrote results.json (its server stopped while
    it ran: "interrupted"): the models that finished, in the results' shape. None if unknown."""
    try:
        return read_results(run_id)  # opened so: a run whose process is gone reads "interrupted"
    except DistillError:
        return None


def stored_sweep(sweep_id: str) -> Optional[dict]:
    """The run store's record of a sweep (its status and definition), or None."""
    try:
        return RunStore(read_only=True).get_sweep(sweep_id)
    except DistillError:  # no store, or a damaged one: said at the top of the page
        return None


def busy_note() -> Optional[str]:
    """Why measuring now would mislead, while a run trains on this server; None when none does.

    Compression and the ONNX check run in the page's thread, beside the job queue: their timings
    would measure the training as much as the model, they take its cores, and on a GPU the two
    could run out of memory together."""
    running = [j for j in get_manager().jobs() if j.status == RUNNING]
    if not running:
        return None
    return (f"Run {running[0].id} is training on this server: timings taken now would measure it as much as "
            "the models, and slow it down. Measure once it has finished.")
