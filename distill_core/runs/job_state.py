"""One job's state as the manager keeps it (``Job``), and the read-only copy pages get (``JobSnapshot``).

A ``Job`` is updated by the engine's events through ``observe`` (on the training thread) and read
by ``snapshot`` (on a page's thread); both take the job's lock for a few assignments only.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

from ..config import RunConfig
from ..events import EPOCH, ERROR, PHASE, RESULT, STATUS, STEP, TRIAL, Event
from ..vocab import ACTIVE, DONE, FINISHED, QUEUED, RUNNING

STOPPING = "stopping…"  # a running job's message once Stop was pressed

MAX_STEP_POINTS = 4000  # per phase; beyond this every other point is dropped (charts stay light)


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent, read-only copy of one job, cheap enough to take every second."""

    id: str
    config: RunConfig
    device: str  # the device it runs on
    status: str
    queue_position: Optional[int]  # 1 = next to run; None unless queued
    message: str
    error: Optional[str]
    phase: Optional[str]  # "teacher", "student_scratch", "student_kd", "measure"
    phase_index: int
    phase_total: int
    phase_source: Optional[str]  # teacher: "train", "cache" or "checkpoint"
    epoch: int  # epochs finished in the current phase
    epochs: int  # epochs of the current phase
    progress: float  # 0..1 of the whole run
    eta_s: Optional[float]
    images_per_s: Optional[float]
    created_at: float
    started_at: Optional[float]
    finished_at: Optional[float]
    history: dict[str, list[dict]]  # phase -> epoch rows (contract "history")
    steps: dict[str, list[dict]]  # phase -> [{"x": fractional epoch, "loss", "terms": {name: contribution},
    #                                         "stage" (a method's own, when it has one)}] from STEP events
    term_labels: dict[str, dict[str, str]]  # phase -> {term name: label}, in the order the method reports them
    entries: dict[str, dict]  # finished models, as RESULT events bring them
    results: Optional[dict]  # run_experiment's return value, once it has returned
    out_dir: Optional[str]
    requests: int = 1  # how many submits it answered: a Stop then stops it for all of them
    kind: str = "run"  # "run", or "sweep": a sweep's trials one after the other (runs/sweep_run.py)
    sweep: Optional[dict] = None  # a sweep's definition (SweepSpec.to_dict); its id is the job's
    # a sweep's current trial: {"index", "total", "finished", "cell", "seed", "state"}; the fields
    # above (phase, history, progress, ...) are that trial's run
    trial: Optional[dict] = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def stopping(self) -> bool:
        """Stop was pressed; the job ends after its current batch."""
        return self.status == RUNNING and self.message == STOPPING

    @property
    def elapsed_s(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.time()) - self.started_at

    @property
    def run_id(self) -> str:
        return self.id


class Job:
    """Mutable job state; every read and write goes through ``lock``."""

    def __init__(self, job_id: str, config: RunConfig, device: str, key: str, sweep: Optional[dict] = None):
        self.id, self.config, self.device, self.key = job_id, config, device, key
        self.kind, self.sweep, self.trial = ("sweep" if sweep is not None else "run"), sweep, None
        self.requests = 1
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ended = threading.Event()
        self.status = QUEUED
        self.message = "waiting for the device"
        self.error: Optional[str] = None
        self.created_at = time.time()
        self.started_at: Optional[float] = None
        self.finished_at: Optional[float] = None
        self.results: Optional[dict] = None
        self._new_run()

    def _new_run(self) -> None:
        """The state of the run this job is at: all of it for a run; for a sweep, its current trial."""
        self.phase: Optional[str] = None
        self.phase_index, self.phase_total, self.phase_source = 0, 3, None
        self.epoch, self.epochs = 0, 0
        self.progress = 0.0
        self.images_per_s: Optional[float] = None
        self.history: dict[str, list[dict]] = {}
        self.steps: dict[str, list[dict]] = {}
        self.term_labels: dict[str, dict[str, str]] = {}
        self.entries: dict[str, dict] = {}
        self.out_dir: Optional[str] = None
        # ETA: the progress rate since the first progress report (data loading is not training)
        self._first_progress: Optional[tuple[float, float]] = None
        self._eta_at: Optional[tuple[float, float]] = None  # (time of estimate, seconds left then)

    # ---- the engine's observer: runs in the worker thread, between training steps ---------
    def observe(self, event: Event) -> None:
        data = event.data or {}
        with self.lock:
            if event.kind == TRIAL:
                if data.get("state") == "start":
                    self._new_run()
                self.trial = dict(data)
            elif event.kind == STATUS:
                if data.get("message") and self.status == RUNNING and not self.stop.is_set():
                    self.message = str(data["message"])
                self.out_dir = data.get("out", self.out_dir)
            elif event.kind == PHASE:
                self.phase = data.get("phase", event.phase)
                self.phase_index = int(data.get("index", self.phase_index))
                self.phase_total = int(data.get("total", self.phase_total))
                self.phase_source = data.get("source")
                self.epoch, self.epochs = 0, int(data.get("epochs") or 0)
                self.images_per_s = None  # the last phase's speed is not this one's
                if not self.stop.is_set():
                    self.message = _phase_message(self.phase, self.phase_source)
            elif event.kind == STEP:
                steps = max(1, int(data.get("steps") or 1))
                point = {"x": int(data.get("epoch", 1)) - 1 + int(data.get("step", 0)) / steps,
                         "loss": data.get("loss"), "time": event.time}
                if data.get("terms"):  # each term's contribution, as the method weighed it
                    point["terms"] = {t["name"]: t.get("contribution") for t in data["terms"]}
                    labels = self.term_labels.setdefault(event.phase or "?", {})
                    labels.update({t["name"]: t.get("label", t["name"]) for t in data["terms"]})
                if data.get("stage"):
                    point["stage"] = data["stage"]
                series = self.steps.setdefault(event.phase or "?", [])
                series.append(point)
                if len(series) > MAX_STEP_POINTS:
                    del series[1:-1:2]
                self.images_per_s = data.get("images_per_s", self.images_per_s)
                self._progress(data.get("progress"), event.time)
            elif event.kind == EPOCH:
                row = {k: v for k, v in data.items() if k not in ("progress", "epochs")}
                self.history.setdefault(event.phase or "?", []).append(row)
                self.epoch = int(data.get("epoch", self.epoch))
                self.epochs = int(data.get("epochs", self.epochs) or self.epochs)
                self.images_per_s = data.get("images_per_s", self.images_per_s)
                self._progress(data.get("progress"), event.time)
            elif event.kind == RESULT:
                role, entry = data.get("model"), data.get("entry")
                if role and isinstance(entry, dict):
                    self.entries[role] = entry
                    if entry.get("history") and not self.history.get(role):
                        self.history[role] = list(entry["history"])  # a cached teacher's curves
            elif event.kind == ERROR and self.kind == "run":  # a sweep's trial says its error as it ends
                self.error = str(data.get("message") or "the run failed")

    def _progress(self, value: Any, when: float) -> None:
        if value is None:
            return
        p = min(1.0, max(0.0, float(value)))
        self.progress = max(self.progress, p)
        if self._first_progress is None:
            self._first_progress = (when, p)
            return
        t0, p0 = self._first_progress
        if self.progress - p0 > 0.005 and when > t0:
            rate = (self.progress - p0) / (when - t0)
            self._eta_at = (when, (1.0 - self.progress) / rate)

    def snapshot(self, queue_position: Optional[int]) -> JobSnapshot:
        with self.lock:
            eta = None
            if self._eta_at is not None and self.status == RUNNING:
                at, left = self._eta_at
                eta = max(0.0, left - (time.time() - at))
            return JobSnapshot(
                id=self.id, config=self.config, device=self.device, status=self.status,
                queue_position=queue_position, message=self.message, error=self.error,
                phase=self.phase, phase_index=self.phase_index, phase_total=self.phase_total,
                phase_source=self.phase_source, epoch=self.epoch, epochs=self.epochs,
                progress=1.0 if self.status == DONE else self.progress, eta_s=eta,
                images_per_s=self.images_per_s, created_at=self.created_at, started_at=self.started_at,
                finished_at=self.finished_at,
                history={k: list(v) for k, v in self.history.items()},
                steps={k: list(v) for k, v in self.steps.items()},
                term_labels={k: dict(v) for k, v in self.term_labels.items()},
                entries=dict(self.entries), results=self.results, out_dir=self.out_dir,
                requests=self.requests, kind=self.kind, sweep=self.sweep,
                trial=dict(self.trial) if self.trial else None)


def _phase_message(phase: Optional[str], source: Optional[str]) -> str:
    if phase == "teacher":
        return {"cache": "loading the cached teacher", "checkpoint": "loading the uploaded teacher"}.get(
            source or "", "training the teacher")
    if phase == "student_scratch" and source == "reused":
        return "reusing the scratch student of an earlier run with this recipe"
    return {"student_scratch": "training the student from scratch",
            "student_kd": "distilling the student from the teacher",
            "measure": "measuring size, FLOPs and latency"}.get(phase or "", f"phase {phase}")
