"""Background runs for the app: a FIFO queue and one worker thread.

Streamlit reruns a page script on every click, in a thread per browser session. A training run
has to outlive those reruns, survive a page refresh and be visible from every tab, so runs live
here, in one ``JobManager`` per server process, and pages only ever read copies of their state
(``JobSnapshot``). Nothing here imports Streamlit, so the manager is tested on its own.

Threads: the manager is the only owner of threads. One worker runs one job at a time, whatever
its device. Two jobs on one device would only slow each other down (and could run a GPU out of
memory); a CPU job beside a GPU job would share torch's global random generators, so a student's
dropout masks would differ between its scratch and its distilled run (the comparison would no
longer be fair), and its CPU timings would measure the other job too. Locks guard dict and list
updates only and are never held while a model trains: the engine reports through an observer
that takes the lock for a few assignments, and pages copy what they need under the same lock.

Publishing: pages that redraw by polling the server pay for every poll in the browser and in
the server, CPU taken from training on a small laptop. So the manager can instead hand fresh
snapshots to a ``publish`` callback, from one publisher thread: a running job once every
``publish_every`` seconds, any other job when its status or queue place changes. The app
writes them where its Live page fetches them (studio/live_feed.py).
"""
from __future__ import annotations

import collections
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..config import RunConfig
from ..device import release, resolve_device
from ..errors import DistillError, first_line
from ..vocab import ACTIVE, CANCELLED, DONE, FAILED, FINISHED, QUEUED, ROLES, RUNNING
from .experiment import new_run_id
from .job_state import STOPPING, Job, JobSnapshot
from .recording import run_recorded
from .store import RunStore
from .sweep import SweepSpec
from .sweep_ray import run_sweep_ray
from .sweep_run import run_sweep

log = logging.getLogger(__name__)

Runner = Callable[..., dict]  # run_experiment's signature: (config, on_event=, stop=, run_id=) -> results


def _run_experiment(config: RunConfig, **kwargs: Any) -> dict:
    """The real engine, recorded in the run store like a CLI run."""
    return run_recorded(config, source="app", **kwargs)


def _run_sweep(spec: SweepSpec, backend: str = "local", **kwargs: Any) -> dict:
    """A whole sweep as one job: its trials one after the other here, or on Ray."""
    if backend == "ray":
        return run_sweep_ray(spec, source="app", **kwargs)
    return run_sweep(spec, source="app", **kwargs)


def record_in_store(job_id: str, config: RunConfig, status: str) -> None:
    """Write a queued job, or one cancelled while queued, to the run store (best effort).

    Called outside the manager's lock, so in any order with the job's own start: "queued" is
    written only where the run has no row yet, "cancelled" whether or not "queued" got there first."""
    try:
        store = RunStore()
        store.create_run(job_id, config, status=status, source="app", if_new=status == QUEUED)
        if status != QUEUED:
            store.set_status(job_id, status, message="cancelled before it started")
    except Exception:  # noqa: BLE001 - a store problem must not refuse or lose the job itself
        log.exception("could not record job %s as %s in the run store", job_id, status)


def new_job_id() -> str:
    return new_run_id()


def queue_key(config: RunConfig) -> str:
    """The device a job will hold ("auto" resolved), as its snapshot shows it."""
    if config.device != "auto":
        return str(config.device)
    try:
        return resolve_device("auto").type
    except Exception:  # noqa: BLE001 - a broken device probe must not refuse the job
        return "cpu"


def release_memory(device: str) -> None:
    """Give a finished job's memory back, whatever way it ended (done, failed, cancelled)."""
    try:
        release(device)
    except Exception:  # noqa: BLE001 - cleanup is best effort
        log.exception("could not release %s memory", device)


@dataclass
class _Worker:
    thread: threading.Thread
    queue: collections.deque = field(default_factory=collections.deque)


class JobManager:
    """Accepts run configs, runs them one at a time in submission order, and reports on them.

    ``submit`` never starts a duplicate: a config identical to one queued or running returns
    that job's id, so a double click or a second tab pressing Start joins the existing run.
    """

    def __init__(self, runner: Optional[Runner] = None, keep_finished: int = 100,
                 record: Optional[Callable[[str, RunConfig, str], None]] = None,
                 publish: Optional[Callable[[JobSnapshot], None]] = None, publish_every: float = 1.0,
                 sweep_runner: Optional[Callable[..., dict]] = None):
        self._runner = runner or _run_experiment
        self._sweep_runner = sweep_runner or _run_sweep
        # The runner records a job in the run store once it starts; ``record`` covers the time
        # before that (queued) and a job cancelled while queued, so the Runs page sees them too.
        self._record = record if record is not None else (record_in_store if runner is None else None)
        self._keep_finished = keep_finished
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._jobs: dict[str, Job] = {}  # insertion order = submission order
        self._worker: Optional[_Worker] = None  # the one queue and its thread, started with the first job
        self._closed = False
        self._ids = itertools.count()
        self._publish, self._publish_every = publish, publish_every
        self._publisher: Optional[threading.Thread] = None

    # ---- what pages call --------------------------------------------------------------------
    def submit(self, config: RunConfig) -> str:
        config = RunConfig.from_dict(config.to_dict())  # our own copy: the caller may keep editing theirs
        return self._queue(config, config.to_json())

    def submit_sweep(self, spec: SweepSpec, backend: str = "local", address: Optional[str] = None) -> str:
        """Queue a whole sweep as one job, in the same queue as single runs: its trials run one
        after the other when its turn comes, and Stop ends the trial running and the sweep. The
        same definition queued or running is joined, as ``submit`` joins a run."""
        spec = SweepSpec.from_dict(spec.to_dict())
        key = "sweep:" + json.dumps({**spec.to_dict(), "sweep_id": None, "backend": backend, "address": address},
                                    sort_keys=True)
        return self._queue(spec.base, key, sweep={**spec.to_dict(), "backend": backend, "address": address})

    def _queue(self, config: RunConfig, key: str, sweep: Optional[dict] = None) -> str:
        device = queue_key(config)
        with self._lock:
            if self._closed:
                raise RuntimeError("the job manager is shut down")
            for job in self._jobs.values():
                # a job being stopped is not joined: it ends "cancelled", and this run would be lost
                if job.key == key and job.status in ACTIVE and not job.stop.is_set():
                    with job.lock:
                        job.requests += 1
                    return job.id
            job_id = sweep["sweep_id"] if sweep else new_job_id()
            while job_id in self._jobs:  # two submits within one second could share a run id
                job_id = f"{new_job_id()}-{next(self._ids)}"
            if sweep:
                sweep["sweep_id"] = job_id
            self._jobs[job_id] = Job(job_id, config, device, key, sweep=sweep)
            worker = self._worker
            if worker is None:
                thread = threading.Thread(target=self._work, name="distill-worker", daemon=True)
                worker = self._worker = _Worker(thread)
                thread.start()
            if self._publish is not None and self._publisher is None:
                self._publisher = threading.Thread(target=self._publish_loop, name="distill-publisher", daemon=True)
                self._publisher.start()
            worker.queue.append(job_id)
            self._prune()
            self._wake.notify_all()
        # The store is written outside the lock: sqlite may wait for another writer, and pages
        # (and the workers) must not wait with it. It never overwrites a row the job already has.
        if self._record is not None and sweep is None:  # a sweep's trials are recorded as they start
            self._record(job_id, config, QUEUED)
        return job_id

    def cancel(self, job_id: str) -> bool:
        """Stop a job: a queued one is dropped at once, a running one ends within one batch
        and keeps the models that finished. Returns False for unknown or finished jobs."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return False
            with job.lock:
                if job.status == QUEUED:
                    worker = self._worker
                    if worker and job_id in worker.queue:
                        worker.queue.remove(job_id)
                    job.status, job.message, job.finished_at = CANCELLED, "cancelled before it started", time.time()
                    job.stop.set()
                    job.ended.set()
                    self._wake.notify_all()  # wakes the publisher: this job's final state
                elif job.status == RUNNING:
                    job.stop.set()
                    job.message = STOPPING
                    return True
                else:
                    return False
        if self._record is not None and job.kind == "run":  # only a job cancelled while queued gets here
            self._record(job_id, job.config, CANCELLED)
        return True

    def snapshot(self, job_id: Optional[str]) -> Optional[JobSnapshot]:
        with self._lock:
            job = self._jobs.get(job_id) if job_id else None
            position = self._position(job) if job else None
        return job.snapshot(position) if job else None

    def jobs(self) -> list[JobSnapshot]:
        """Every job this process knows, newest first."""
        with self._lock:
            found = [(job, self._position(job)) for job in reversed(self._jobs.values())]
        return [job.snapshot(position) for job, position in found]

    def current(self) -> Optional[JobSnapshot]:
        """The job a page opened without a job id should show: running, else next queued,
        else the most recent."""
        with self._lock:
            jobs = list(self._jobs.values())
            running = [j for j in jobs if j.status == RUNNING]
            queued = [j for j in jobs if j.status == QUEUED]
            pick = running[-1] if running else queued[0] if queued else jobs[-1] if jobs else None
            position = self._position(pick) if pick else None
        return pick.snapshot(position) if pick else None

    def wait(self, job_id: str, timeout: Optional[float] = None) -> Optional[JobSnapshot]:
        """Block until the job has finished (for tests and scripts; pages never block)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            return None
        job.ended.wait(timeout)
        return self.snapshot(job_id)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel everything and stop the workers (tests; a server just exits)."""
        with self._lock:
            self._closed = True
            ids = list(self._jobs)
        for job_id in ids:
            self.cancel(job_id)
        with self._lock:
            self._wake.notify_all()
            threads = [t for t in (self._worker and self._worker.thread, self._publisher) if t]
        deadline = time.time() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.time()))

    # ---- internals ----------------------------------------------------------------------------
    def _position(self, job: Job) -> Optional[int]:
        if job.status != QUEUED:
            return None
        worker = self._worker
        try:
            return worker.queue.index(job.id) + 1 if worker else None
        except ValueError:
            return None

    def forget(self, job_id: str) -> bool:
        """Drop a finished job whose run was deleted, so no page offers it any more. Returns
        False for unknown or unfinished jobs (a running one must be stopped first)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status not in FINISHED:
                return False
            del self._jobs[job_id]
            return True

    def _prune(self) -> None:
        finished = [j for j in self._jobs.values() if j.status in FINISHED]
        for job in finished[: max(0, len(finished) - self._keep_finished)]:
            del self._jobs[job.id]

    def _work(self) -> None:
        while True:
            with self._lock:
                worker = self._worker
                while not worker.queue and not self._closed:
                    self._wake.wait()
                if self._closed and not worker.queue:
                    return
                job = self._jobs[worker.queue.popleft()]
                with job.lock:
                    job.status, job.started_at, job.message = RUNNING, time.time(), "starting"
            self._run(job)

    def _run(self, job: Job) -> None:
        status, results, error = FAILED, None, None
        try:
            if job.kind == "sweep":
                sweep = dict(job.sweep)
                backend, address = sweep.pop("backend", "local"), sweep.pop("address", None)
                results = self._sweep_runner(SweepSpec.from_dict(sweep), backend=backend, on_event=job.observe,
                                             stop=job.stop, **({"address": address} if address else {}))
                if results.get("status") == FAILED:
                    error = f"{len(results.get('rows') or [])} of {SweepSpec.from_dict(sweep).size()} trials finished"
            else:
                results = self._runner(job.config, on_event=job.observe, stop=job.stop, run_id=job.id)
            status = results.get("status", DONE) if isinstance(results, dict) else DONE
            if status not in FINISHED:
                status = DONE
        except DistillError as exc:
            error = str(exc) or type(exc).__name__
        except BaseException as exc:  # noqa: BLE001 - a bug in one run must not take the worker down
            # BaseException too: a SystemExit or KeyboardInterrupt raised inside a run would end this
            # worker thread, leaving its job "running" and every later job on the device queued forever.
            log.exception("job %s failed", job.id)
            text = f": {first_line(exc)}" if str(exc).strip() else ""
            error = f"internal error: {type(exc).__name__}{text} (the server log has the details)"
        finally:
            release_memory(job.device)
        with job.lock:
            job.status, job.results, job.finished_at = status, results, time.time()
            if status == FAILED:
                job.error = error or job.error or "the run failed"
                job.message = "failed"
            elif status == CANCELLED:
                job.message = "cancelled; finished trials kept" if job.kind == "sweep" else \
                    "cancelled; finished models kept"
            else:
                job.message = "finished"
            if isinstance(results, dict):
                for role in ROLES:
                    if isinstance(results.get(role), dict):
                        job.entries[role] = results[role]
                job.out_dir = (results.get("artifacts") or {}).get("dir", job.out_dir)
        job.ended.set()
        with self._lock:
            self._wake.notify_all()  # the publisher: this job's final state, and the queue moved

    def _publish_loop(self) -> None:
        """Hand out snapshots that changed; sleep while nothing is queued or running."""
        sent: dict[str, tuple] = {}  # job id -> (status, queue place) last published
        failed: set[str] = set()  # jobs whose publishing failed, logged once each
        while True:
            with self._lock:
                if self._closed:
                    return
                found = [(job, self._position(job)) for job in self._jobs.values()]
            for job, position in found:
                seen = (job.status, position)
                if job.status == RUNNING or sent.get(job.id) != seen:
                    try:
                        self._publish(job.snapshot(position))
                        sent[job.id] = seen  # only once it is out: a failed final state is tried again
                    except Exception:  # noqa: BLE001 - a page's problem must never stop a run
                        if job.id not in failed:
                            failed.add(job.id)
                            log.exception("could not publish job %s", job.id)
            with self._lock:
                for gone in set(sent) - set(self._jobs):
                    del sent[gone]
                idle = all(job.status in FINISHED and sent.get(job.id) == (job.status, None)
                           for job in self._jobs.values())
                if not self._closed:
                    self._wake.wait(None if idle else self._publish_every)
