"""A sweep's trials as Ray Tune trials, on a Ray cluster or a local Ray instance.

The same trials as the local backend (``sweep_run``), in the same stages, and recorded in the same
run store, ``sweep.csv`` and ``summary.csv``:

1. The leaders (``sweep_run.leaders``: the trials that train a teacher or a scratch student) run
   as Ray tasks, all at once, until every scratch group has a finished trial whose scratch student
   it can reuse.
2. Then one ``tune.Tuner`` over the whole grid (``param_space``: a ``grid_search`` per swept field
   and the seeds). A trial that finished already reports its recorded figures at once; the
   others train their distilled student and reuse their group's scratch student.

What the trials share goes through **a path every node reads**, not the object store: the sweep's
folder. Each trial's run folder is ``<folder>/runs/<run id>``, the teacher cache
``<folder>/teachers`` (unless the recipe names a ``cache_dir``), Tune's own records
``<folder>/tune``. On a cluster the folder must be shared storage (NFS), as Tune itself requires
of ``storage_path`` there. The driver, this process, records every trial in its run store as the
trial starts and ends. Each trial asks for one CPU, and one GPU where the cluster has them.

Ray is imported only here, and only when a Ray sweep starts: it is an optional dependency, and
importing it costs a second.
"""
from __future__ import annotations

import importlib.util
import os
import socket
import threading
from pathlib import Path
from typing import Any, Optional

from ..config import RunConfig
from ..errors import DistillError, first_line
from ..events import TRIAL, Event, Observer, fan_out
from ..vocab import CANCELLED, DONE, FAILED, RUNNING
from .experiment import new_run_id, run_experiment
from .results import read_json
from .scratch_reuse import reusable_here
from .store import RunStore
from .sweep import SweepSpec, trial_key, write_tables
from .sweep_run import finished_trials, leaders, scratch_groups, scratch_origin, start

CONNECT_TIMEOUT_S = 5.0  # an address that does not answer a TCP connect within this is refused
METRICS = ("kd_accuracy", "scratch_accuracy", "gain", "teacher_accuracy", "seconds", "run_id")


def available() -> bool:
    return importlib.util.find_spec("ray") is not None


def connect(address: Optional[str]) -> bool:
    """Join the Ray cluster at ``address`` (``auto``: the one ``ray start`` runs on this machine), or
    start a local instance. Returns whether this call started the connection (so it ends it)."""
    if not available():
        raise DistillError("--backend ray needs Ray: pip install -r requirements.txt (it has ray[tune])")
    if address and address != "auto":
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT_S):
                pass
        except (OSError, ValueError) as exc:  # ray.init would retry for minutes
            raise DistillError(f"cannot reach a Ray cluster at {address} ({getattr(exc, 'strerror', None) or exc}); "
                               "start one with `ray start --head`, or leave --ray-address out for a local Ray "
                               "instance") from None
    elif not address:
        # A local instance listens on the loopback only (what Ray does on macOS and Windows): it
        # serves this machine, and nothing else on the network should reach it. Read when Ray loads.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # Nor does it report to Ray's usage statistics server (on by default, sent from the head
        # node): a workshop room is often offline, and a sweep here is nobody else's business.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return False
    try:
        if address:  # the workers need this package: shipped with the job, as the rest is installed there
            ray.init(address=address, log_to_driver=False, configure_logging=False,
                     runtime_env={"py_modules": [str(Path(__file__).resolve().parents[1])]})
        else:
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise DistillError(f"cannot connect to Ray{' at ' + address if address else ''}: {first_line(exc)}") from None
    return True


def trial_job(config: dict, run_id: str, scratch_from: Optional[str]) -> dict:
    """One trial, on a worker: the run, written to its folder on the shared path; its figures back.
    ``scratch_from`` was chosen on the driver, which does not know this worker's device: checked
    again here (``reusable_here``), a scratch student of another kind of device is trained anew."""
    config = RunConfig.from_dict(config)
    results = run_experiment(config, run_id=run_id, scratch_from=reusable_here(config, scratch_from))
    return metrics(results)


def metrics(results: dict) -> dict:
    kd, scratch = (results.get(r) or {} for r in ("student_kd", "student_scratch"))
    gain = kd["accuracy"] - scratch["accuracy"] if kd.get("accuracy") is not None and scratch.get("accuracy") is not None \
        else None
    return {"status": results.get("status"), "run_id": results.get("run_id"), "kd_accuracy": kd.get("accuracy"),
            "scratch_accuracy": scratch.get("accuracy"), "gain": gain,
            "teacher_accuracy": (results.get("teacher") or {}).get("accuracy"), "seconds": results.get("seconds")}


def tune_trial(params: dict, table: dict) -> None:
    """The Tune trainable: the trial of these grid values, or what it has already (its figures, or
    its failure in the first stage). A user's error (a diverged loss) is reported, not raised."""
    from ray import tune

    job = table[trial_key({k: params[k] for k in table["fields"]}, params["seed"])]
    if job["report"]:
        tune.report(job["report"])
        return
    try:
        tune.report(trial_job(job["config"], job["run_id"], job["scratch_from"]))
    except DistillError as exc:
        tune.report({"status": FAILED, "error": first_line(exc, 500)})


class Recorder:
    """The driver's side: each trial into the run store as it starts and ends, the tables rewritten."""

    def __init__(self, spec: SweepSpec, folder: Path, store: RunStore, emit: Observer, source: str, jobs: dict):
        self.spec, self.folder, self.store, self.emit, self.source, self.jobs = spec, folder, store, emit, source, jobs
        self.running: set[str] = set()
        self.total = spec.size()

    def started(self, key: str) -> None:
        job = self.jobs[key]
        if job["report"]:
            return
        config = RunConfig.from_dict(job["config"])
        self.store.create_run(job["run_id"], config, status=RUNNING, artifacts_dir=config.out, source=self.source,
                              sweep_id=self.spec.sweep_id)
        self.running.add(job["run_id"])
        self.emit(Event(TRIAL, None, {"state": "start", **self._info(key)}))

    def ended(self, key: str, error: Optional[BaseException] = None) -> None:
        job = self.jobs[key]
        if job["report"] or job["run_id"] not in self.running:
            return
        self.running.discard(job["run_id"])
        results_path = Path(job["config"]["out"]) / "results.json"
        status = FAILED
        if error is None and results_path.is_file() and (read_json(results_path) or {}).get("run_id") == job["run_id"]:
            results = read_json(results_path) or {}
            self.store.set_results(job["run_id"], results)
            status = results.get("status", DONE)
        else:
            self.store.set_status(job["run_id"], FAILED, message="failed", error=first_line(error or "no results"))
        done = finished_trials(self.spec, self.store)
        write_tables(self.spec, self.folder, self.store)
        self.emit(Event(TRIAL, None, {"state": "end", "status": status, "error": first_line(error) if error else None,
                                      "row": done.get(key), **self._info(key), "finished": len(done)}))

    def cancel_running(self) -> None:
        for run_id in list(self.running):
            self.store.set_status(run_id, CANCELLED, message="stopped with the sweep")
        self.running.clear()

    def _info(self, key: str) -> dict:
        job = self.jobs[key]
        return {"index": job["index"], "total": self.total, "cell": job["cell"], "seed": job["seed"],
                "run_id": job["run_id"]}


def run_sweep_ray(spec: SweepSpec, folder: Optional[str | Path] = None, address: Optional[str] = None,
                  on_event: Optional[Observer] = None, stop: Optional[threading.Event] = None,
                  store: Optional[RunStore] = None, source: str = "cli") -> dict[str, Any]:
    """``sweep_run.run_sweep``'s contract, with the trials on Ray (this module's docstring)."""
    store = store or RunStore()
    started_here = connect(address)
    import ray
    from ray import tune

    try:
        folder = start(spec, folder, store, source, "ray")
        resources = {"CPU": 1, **({"GPU": 1} if ray.cluster_resources().get("GPU", 0) >= 1 else {})}
        done = finished_trials(spec, store)
        jobs: dict[str, dict] = {"fields": spec.fields}
        for trial in spec.trials():
            run_id = f"{new_run_id()}-{trial.index}"
            config = trial.config.replace(out=str(folder / "runs" / run_id),
                                          cache_dir=trial.config.cache_dir or str(folder / "teachers"))
            jobs[trial.key] = {"config": config.to_dict(), "run_id": run_id, "scratch_from": None,
                               "report": _reported(done.get(trial.key)), "index": trial.index, "cell": trial.cell,
                               "seed": trial.seed}
        recorder = Recorder(spec, folder, store, fan_out(on_event), source, jobs)
        task = ray.remote(trial_job).options(num_cpus=1, num_gpus=resources.get("GPU", 0))
        tried: set[str] = set()
        groups = scratch_groups(spec)  # once: an image folder's fields are a listing of its files
        # 1. what the others reuse
        while not _stopped(stop) and (first := leaders(spec, done, tried, store, groups=groups)):
            pending = {}
            for trial in first:
                tried.add(trial.key)
                job = jobs[trial.key]
                recorder.started(trial.key)
                pending[task.remote(job["config"], job["run_id"], None)] = trial.key
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                if _stopped(stop):
                    for ref in pending:
                        ray.cancel(ref, force=True)
                    recorder.cancel_running()
                    break
                for ref in ready:
                    key = pending.pop(ref)
                    try:
                        ray.get(ref)
                        recorder.ended(key)
                    except Exception as exc:  # noqa: BLE001 - a failed trial is recorded, the sweep goes on
                        recorder.ended(key, getattr(exc, "cause", None) or exc)
            done = finished_trials(spec, store)
        for trial in spec.trials():  # 2. every trial, as Tune trials over the grid
            job = jobs[trial.key]
            job["report"] = _reported(done.get(trial.key)) or ({"status": FAILED, "error": "failed in the first stage"}
                                                               if trial.key in tried else None)
            if not job["report"]:
                job["scratch_from"] = scratch_origin(spec, trial, done, store, groups)
        if not _stopped(stop) and any(not jobs[t.key]["report"] for t in spec.trials()):
            param_space = {**{k: tune.grid_search(v) for k, v in spec.grid.items()}, "seed": tune.grid_search(spec.seeds)}
            tuner = tune.Tuner(
                tune.with_resources(tune.with_parameters(tune_trial, table=jobs), resources), param_space=param_space,
                tune_config=tune.TuneConfig(reuse_actors=True),
                run_config=tune.RunConfig(name=spec.sweep_id, storage_path=str(folder / "tune"), verbose=0,
                                          callbacks=[_callback(recorder, spec)],
                                          stop=_Stopper(stop) if stop is not None else None))
            tuner.fit()
            if _stopped(stop):
                recorder.cancel_running()
    except BaseException as exc:
        store.save_sweep(spec.sweep_id, spec.to_dict(), FAILED, error=first_line(exc, 500))
        raise
    finally:
        if started_here:
            ray.shutdown()
    rows, summary = write_tables(spec, Path(folder), store)
    status = DONE if len(rows) == spec.size() else CANCELLED if _stopped(stop) else FAILED
    store.save_sweep(spec.sweep_id, spec.to_dict(), status,
                     error=f"{spec.size() - len(rows)} trial(s) did not finish" if status == FAILED else None)
    return {"sweep_id": spec.sweep_id, "status": status, "folder": str(folder), "rows": rows, "summary": summary}


def _reported(row: Optional[dict]) -> Optional[dict]:
    return {k: row[k] for k in METRICS} | {"status": DONE} if row else None


def _stopped(stop: Optional[threading.Event]) -> bool:
    return stop is not None and stop.is_set()


def _callback(recorder: Recorder, spec: SweepSpec):
    from ray import tune

    def key(trial) -> str:
        return trial_key({k: trial.config[k] for k in spec.fields}, trial.config["seed"])

    class Callback(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            recorder.started(key(trial))

        def on_trial_complete(self, iteration, trials, trial, **info):
            error = (trial.last_result or {}).get("error")
            recorder.ended(key(trial), DistillError(error) if error else None)

        def on_trial_error(self, iteration, trials, trial, **info):
            recorder.ended(key(trial), RuntimeError(f"the trial failed on Ray (its log is under {trial.local_path})"))

    return Callback()


def _Stopper(stop: threading.Event):
    from ray import tune

    class Stopper(tune.Stopper):
        def __call__(self, trial_id, result):
            return stop.is_set()

        def stop_all(self):
            return stop.is_set()

    return Stopper()
