"""Recording a run as it happens: the engine's events written into the run store.

``RunRecorder`` is an engine observer that writes events as they arrive; ``run_recorded`` runs
an experiment with one attached and records the final results, or the failure. The CLI and the
app's job manager both start runs through ``run_recorded``.
"""
from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Optional

from ..errors import ConfigError, first_line
from ..events import EPOCH, ERROR, RESULT, STATUS, Event, Observer, fan_out
from ..vocab import CANCELLED, DONE, FAILED, INTERRUPTED, RUNNING
from .experiment import new_run_id, out_dir_exists, out_dir_for, preflight, run_experiment
from .store import RunStore

log = logging.getLogger(__name__)


class RunRecorder:
    """An engine observer that writes a run's events into the store as they arrive.

    STATUS -> status (and the run folder), EPOCH -> an epoch row, RESULT -> the model entry
    (plus its history: a cached teacher has no epoch events), ERROR -> "failed" with the message.
    A final STATUS also records results.json when the engine has written it. Write errors are
    logged, never raised: the store must not cost anybody their run.
    """

    def __init__(self, store: RunStore, run_id: str):
        self.store, self.run_id = store, run_id

    def __call__(self, event: Event) -> None:
        try:
            self._record(event)
        except Exception:  # noqa: BLE001
            log.exception("run store: could not record %s event of run %s", event.kind, self.run_id)

    def _record(self, event: Event) -> None:
        data = event.data or {}
        if event.kind == EPOCH and event.phase:
            self.store.add_epoch(self.run_id, event.phase, data)
        elif event.kind == RESULT:
            role, entry = data.get("model") or event.phase, data.get("entry")
            if role and isinstance(entry, dict):
                self.store.set_model(self.run_id, role, entry)
        elif event.kind == ERROR:
            self.store.set_status(self.run_id, FAILED, message="failed",
                                  error=str(data.get("message") or data.get("type") or "the run failed"))
        elif event.kind == STATUS:
            status = data.get("status")
            if status == RUNNING:
                self.store.set_status(self.run_id, RUNNING, message=data.get("message"),
                                      device=data.get("device"), artifacts_dir=data.get("out"))
            elif status in (DONE, CANCELLED, FAILED):
                results_path = Path(data["out"]) / "results.json" if data.get("out") else None
                results = None
                if results_path is not None and results_path.is_file():
                    with contextlib.suppress(OSError, json.JSONDecodeError):
                        results = json.loads(results_path.read_text())
                if isinstance(results, dict) and results.get("run_id") in (None, self.run_id):
                    self.store.set_results(self.run_id, results)
                else:
                    self.store.set_status(self.run_id, status, message=data.get("message"))


def run_recorded(config, on_event: Optional[Observer] = None, stop=None, run_id: Optional[str] = None,
                 store: Optional[RunStore] = None, source: str = "cli", runner=None, sweep_id: Optional[str] = None,
                 **engine) -> dict:
    """``run_experiment`` with the run recorded in the store from start to end.

    The run is created as "running" before anything else happens, every event is written as it
    comes, and the returned results are stored. An exception marks it "failed" (Ctrl-C:
    "interrupted") and is raised again. The app's job runner and the CLI both go through here.
    ``sweep_id`` tags the run as a trial of that sweep; ``engine`` goes to the runner as it is
    (``scratch_from``).
    """
    runner = runner or run_experiment
    store = store or RunStore()
    run_id = run_id or new_run_id()
    store.check()  # a damaged store refuses the run now, before it has a folder
    try:
        owners = store.runs_in(config.out) if getattr(config, "out", None) else []
        if owners and (Path(config.out).expanduser() / "config.json").exists():  # name the run in the way
            rid, status = owners[-1]
            if status in (FAILED, CANCELLED, INTERRUPTED) and not (store.get_run(rid) or {}).get("models"):
                # It left nothing to keep (a diverged lr, a refused checkpoint, an early Ctrl-C): the
                # usual "fix the setting and run again into the same folder" replaces it.
                store.delete_run(rid, files=True)
                owners = []
        if owners and (Path(config.out).expanduser() / "config.json").exists():
            raise ConfigError(f"{config.out} already holds run {rid} ({status}); choose another --out, or delete "
                              f"that run first (python -m distill_core runs --delete {rid})")
        preflight(config)
        existed = out_dir_exists(config, run_id)
        out_dir = out_dir_for(config, run_id)  # before the store has a row: a refused folder leaves no failed run
    except BaseException as exc:
        # An app job is listed as failed, whether or not the manager's "queued" row got there
        # first (it is written outside the manager's lock, and never over an existing row). A
        # refused CLI run leaves no row.
        if source == "app" or store.get_run(run_id) is not None:
            _safe(store.create_run, run_id, config, status=FAILED, source=source, sweep_id=sweep_id)
            _safe(store.set_status, run_id, FAILED, message="failed", error=first_line(exc, 500))
        raise
    try:
        store.create_run(run_id, config, status=RUNNING, artifacts_dir=out_dir, source=source, sweep_id=sweep_id)
    except BaseException:
        if not existed:  # the store refused the run: its folder goes with it
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise
    recorder = RunRecorder(store, run_id)
    try:
        results = runner(config, on_event=fan_out(recorder, on_event), stop=stop, run_id=run_id, **engine)
    except KeyboardInterrupt:
        _safe(store.set_status, run_id, INTERRUPTED, message="interrupted (Ctrl-C)")
        raise
    except BaseException as exc:
        text = first_line(exc, 500)
        _safe(store.set_status, run_id, FAILED, message="failed", error=text)
        raise
    if isinstance(results, dict):
        _safe(store.set_results, run_id, results)
    return results


def _safe(fn, *args, **kwargs) -> None:
    try:
        fn(*args, **kwargs)
    except Exception:  # noqa: BLE001
        log.exception("run store: %s failed", getattr(fn, "__name__", fn))
