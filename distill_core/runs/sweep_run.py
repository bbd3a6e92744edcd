"""Running a sweep: which trials go first, the local loop, and how long it will take.

Nothing is trained twice:

* the teacher, once per seed (and per teacher recipe), through the teacher cache;
* the scratch student, once per group of trials with the same ``scratch_key`` (seed, student,
  epochs, lr, ...; T, alpha and the method do not change it): the group's first trial trains it,
  the others reuse it (``run_experiment(scratch_from=...)``);
* the distilled student, once per trial.

So trials run in stages (``next_stage``): first one trial of each group that has no finished
trial with a scratch student it can reuse (``scratch_sources``; only one per teacher that is not
cached yet, so two never train the same teacher at once), then all the others. The local backend
runs each stage in order in this process; the Ray backend (``sweep_ray``) runs the same stages on
a cluster.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ..config import RunConfig, student_label
from ..data.datasets import DataRequest, load_dataset
from ..device import resolve_device
from ..errors import DistillError, TrainingDiverged, first_line
from ..events import TRIAL, Event, Observer, fan_out
from ..methods import create_method
from ..models.derive import student_model
from ..precision import resolve_precision
from ..training.trainer import build_optimizer
from ..vocab import CANCELLED, DONE, FAILED, RUNNING
from . import teacher_cache
from .scratch_reuse import reusable_scratch, scratch_fields, scratch_key
from .recording import run_recorded
from .store import RunStore
from .sweep import SweepSpec, Trial, sweeps_dir, trial_rows, write_tables


def finished_trials(spec: SweepSpec, store: RunStore) -> dict[str, dict]:
    """Trial key -> its sweep.csv row, for the trials that finished (what a resume skips)."""
    trials = {t.index: t for t in spec.trials()}
    return {trials[row["index"]].key: row for row in trial_rows(spec, store)}


def next_stage(spec: SweepSpec, done: dict[str, dict], skip: set[str] = frozenset(),
               store: Optional[RunStore] = None, device: Optional[torch.device] = None,
               groups: Optional[dict[str, tuple[dict, str]]] = None) -> list[Trial]:
    """The trials to run next: ``leaders``, or when there are none, every other trial not done.
    ``skip``: trials already tried in this session (a failed one is not tried again and again)."""
    return leaders(spec, done, skip, store, device, groups) or [t for t in spec.trials()
                                                                if t.key not in done and t.key not in skip]


def scratch_groups(spec: SweepSpec) -> dict[str, tuple[dict, str]]:
    """Trial key -> its ``scratch_fields`` and ``scratch_key``, worked out once (an image folder's
    fields are a listing of its files)."""
    groups = {}
    for trial in spec.trials():
        fields = scratch_fields(trial.config)
        groups[trial.key] = fields, scratch_key(trial.config, fields)
    return groups


def _reusable_folder(trial: Trial, fields: dict, row: dict, store: RunStore,
                     device: Optional[torch.device]) -> Optional[str]:
    """The folder of finished trial ``trial`` (its sweep.csv ``row``) when its scratch student is
    one its group can reuse, else None: a run from before results.json recorded the scratch key,
    one trained on another kind of device or in another precision, images changed since, files
    gone. ``device``: the one the trials train on where they run in this process (the local
    backend); None on a Ray driver, which does not resolve it (its workers may have a GPU it has
    not): then only a device the config names is compared, and each worker checks again."""
    run = store.get_run(row.get("run_id")) if row.get("run_id") else None
    folder = run.get("artifacts_dir") if run else None
    if not folder or not Path(folder, "results.json").is_file():
        return None
    try:
        reusable_scratch(trial.config, folder, fields, device)
    except DistillError:
        return None
    return folder


def scratch_sources(spec: SweepSpec, done: dict[str, dict], store: RunStore,
                    groups: Optional[dict[str, tuple[dict, str]]] = None,
                    only: Optional[str] = None, device: Optional[torch.device] = None) -> dict[str, str]:
    """Scratch key -> the folder of the first finished trial of that group whose scratch student
    the group's other trials reuse. A group is trained only when it is here: what the leaders,
    the estimate and each trial's ``scratch_origin`` go by. ``only``: that one group's."""
    groups = groups or scratch_groups(spec)
    found: dict[str, str] = {}
    for trial in spec.trials():
        fields, group = groups[trial.key]
        row = done.get(trial.key)
        if row is None or group in found or (only is not None and group != only):
            continue
        if folder := _reusable_folder(trial, fields, row, store, device):
            found[group] = folder
    return found


def leaders(spec: SweepSpec, done: dict[str, dict], skip: set[str] = frozenset(),
            store: Optional[RunStore] = None, device: Optional[torch.device] = None,
            groups: Optional[dict[str, tuple[dict, str]]] = None) -> list[Trial]:
    """The first trial of each scratch group with no reusable scratch student yet
    (``scratch_sources``), at most one per teacher not yet cached: they train what the others
    reuse, and may all run at once. ``groups``: ``scratch_groups(spec)`` where the caller has them."""
    groups = groups or scratch_groups(spec)
    trained = scratch_sources(spec, done, store or RunStore(), groups, device=device) if done else {}
    first, chosen, teachers = [], set(), set()
    for trial in spec.trials():
        if trial.key in done or trial.key in skip:
            continue
        group = groups[trial.key][1]
        if group in trained or group in chosen:
            continue
        teacher = teacher_cache.teacher_key(trial.config)
        if teacher in teachers and not teacher_cache.cached_path(trial.config).is_file():
            continue  # a later stage: it will be cached by then
        chosen.add(group)
        teachers.add(teacher)
        first.append(trial)
    return first


def scratch_origin(spec: SweepSpec, trial: Trial, done: dict[str, dict], store: RunStore,
                   groups: Optional[dict[str, tuple[dict, str]]] = None,
                   device: Optional[torch.device] = None) -> Optional[str]:
    """The folder of a finished trial whose scratch student this trial reuses, or None (it trains
    its own). A resumed sweep's finished trials may have trained on another machine's device or
    precision, or on images since changed: those are passed over, not a refused trial.
    ``groups``: ``scratch_groups(spec)`` where the caller has them."""
    groups = groups or scratch_groups(spec)
    group = groups[trial.key][1]
    return scratch_sources(spec, done, store, groups, only=group, device=device).get(group)


def trials_device(config: RunConfig) -> Optional[torch.device]:
    """The device this process trains the trials on, or None where it has not that device (the
    first trial then says so, as a run does)."""
    try:
        return resolve_device(config.device)
    except DistillError:
        return None


def start(spec: SweepSpec, folder: Optional[str | Path], store: RunStore, source: str, backend: str) -> Path:
    """The sweep's folder, with its definition saved there and in the run store."""
    folder = Path(folder).expanduser().absolute() if folder else sweeps_dir() / spec.sweep_id
    folder.mkdir(parents=True, exist_ok=True)
    spec.save(folder)
    store.save_sweep(spec.sweep_id, spec.to_dict(), RUNNING, folder=folder, backend=backend, source=source)
    return folder


def run_sweep(spec: SweepSpec, folder: Optional[str | Path] = None, on_event: Optional[Observer] = None,
              stop: Optional[threading.Event] = None, store: Optional[RunStore] = None, source: str = "cli",
              runner: Callable[..., dict] = run_recorded) -> dict[str, Any]:
    """Run the trials not finished yet, one after the other, here; write the tables after each.

    Returns {"sweep_id", "status" ("done", "cancelled" or "failed": some trials diverged),
    "folder", "rows", "summary"}. A trial that diverges is recorded failed and the sweep goes on;
    another error (data, device) ends the sweep with it, raised. ``stop`` ends the running trial
    within a batch (it is recorded cancelled) and the sweep with it; a resume runs it again.
    """
    store = store or RunStore()
    folder = start(spec, folder, store, source, "local")
    emit = fan_out(on_event)
    total, tried, status = spec.size(), set(), DONE
    try:
        done = finished_trials(spec, store)
        groups, device = scratch_groups(spec), trials_device(spec.base)
        while status == DONE and (stage := next_stage(spec, done, tried, store, device, groups)):
            for trial in stage:
                if stop is not None and stop.is_set():
                    status = CANCELLED
                    break
                tried.add(trial.key)
                origin = scratch_origin(spec, trial, done, store, groups, device)
                info = {"index": trial.index, "total": total, "cell": trial.cell, "seed": trial.seed,
                        "finished": len(done)}
                emit(Event(TRIAL, None, {**info, "state": "start"}))
                outcome, error = FAILED, None
                try:
                    results = runner(trial.config, on_event=on_event, stop=stop, store=store, source=source,
                                     sweep_id=spec.sweep_id, scratch_from=origin)
                    outcome = results.get("status", DONE)
                except TrainingDiverged as exc:
                    error = str(exc)
                done = finished_trials(spec, store)
                emit(Event(TRIAL, None, {**info, "state": "end", "status": outcome, "error": error,
                                         "finished": len(done), "row": done.get(trial.key)}))
                write_tables(spec, folder, store)
                if outcome == CANCELLED:
                    status = CANCELLED
                    break
        if status == DONE and len(done) < total:
            status = FAILED  # a trial diverged: its row is missing; a resume tries it again
    except BaseException as exc:
        store.save_sweep(spec.sweep_id, spec.to_dict(), FAILED if not isinstance(exc, KeyboardInterrupt)
                         else CANCELLED, error=first_line(exc, 500))
        write_tables(spec, folder, store)
        raise
    rows, summary = write_tables(spec, folder, store)
    store.save_sweep(spec.sweep_id, spec.to_dict(), status,
                     error=f"{total - len(rows)} trial(s) did not finish" if status == FAILED else None)
    return {"sweep_id": spec.sweep_id, "status": status, "folder": str(folder), "rows": rows, "summary": summary}


# ---- how long ----------------------------------------------------------------------------------
def work_left(spec: SweepSpec, store: RunStore) -> dict[str, Any]:
    """What is left to train: teachers (not cached), scratch students (groups with no finished
    trial whose scratch student is reusable, ``scratch_sources``) and distilled students (trials
    not finished), with each one's config."""
    done = finished_trials(spec, store)
    pending = [t for t in spec.trials() if t.key not in done]
    keys = scratch_groups(spec)
    trained = scratch_sources(spec, done, store, keys)
    teachers, groups = {}, {}
    for trial in pending:
        if not teacher_cache.cached_path(trial.config).is_file():
            teachers.setdefault(teacher_cache.teacher_key(trial.config), trial.config)
        if keys[trial.key][1] not in trained:
            groups.setdefault(keys[trial.key][1], trial.config)
    return {"teachers": list(teachers.values()), "scratch": list(groups.values()),
            "trials": [t.config for t in pending], "finished": len(done)}


def measured_speed(config: RunConfig, store: RunStore) -> Optional[dict]:
    """Seconds per epoch of each model, and the rest of a run (data, measuring), from the last
    finished run of this dataset, teacher and student in the store; None when there is none."""
    for run in store.list_runs(status=DONE, dataset=config.dataset, limit=200):
        if run["teacher"] != config.teacher or run["student"] != student_label(config):
            continue
        results = store.results(run["run_id"]) or {}
        per_epoch = {}
        for role in ("teacher", "student_scratch", "student_kd"):
            entry = results.get(role) or {}
            history = entry.get("history") or []
            if entry.get("source") == "train" and history:
                per_epoch[role] = sum(r.get("seconds") or 0 for r in history) / len(history)
        if "student_kd" not in per_epoch:
            continue
        trained = sum(per_epoch.get(r, 0) * len((results.get(r) or {}).get("history") or [])
                      for r in per_epoch)
        per_epoch["rest"] = max(0.0, float(results.get("seconds") or 0) - trained)
        per_epoch.setdefault("student_scratch", per_epoch["student_kd"] / 1.5)  # KD epochs add the teacher's forward
        return {**per_epoch, "run_id": run["run_id"], "when": run["created_at"]}
    return None


def estimate_seconds(spec: SweepSpec, store: RunStore, speed: Optional[dict] = None) -> Optional[dict]:
    """{"seconds", "from"} for what is left of the sweep, at ``speed`` (seconds per epoch of each
    model, ``measured_speed`` or ``probe_speed``); None when no speed is known for this pair."""
    speed = speed or measured_speed(spec.base, store)
    if speed is None:
        return None
    left = work_left(spec, store)
    teacher_s = speed.get("teacher")
    seconds = sum((teacher_s or 0) * c.teacher_epochs for c in left["teachers"])
    seconds += sum(speed["student_scratch"] * c.epochs for c in left["scratch"])
    seconds += sum(speed["student_kd"] * c.epochs + speed.get("rest", 0) for c in left["trials"])
    return {"seconds": seconds, "from": speed.get("run_id"), "teacher_unknown": bool(left["teachers"]) and not teacher_s,
            "trials": len(left["trials"]), "finished": left["finished"]}


def probe_speed(config: RunConfig, batches: int = 6) -> dict:
    """Seconds per epoch of the teacher, the scratch and the distilled student, timed over a few
    batches of each (seconds, not a run): for a pair with no finished run to go by."""
    device = resolve_device(config.device)
    data = load_dataset(config.dataset, DataRequest(config.data_dir, config.val_fraction, config.image_size,
                                                    config.download, config.seed)).to(device)
    n = data.train_x.shape[0]
    bs = min(config.batch_size, n)
    precision = resolve_precision(config.precision, device)  # the trials train in it: so is the probe timed

    def timed(role: str, teacher=None) -> tuple[float, torch.nn.Module]:
        model = student_model(config.teacher if role == "teacher" else config.student, config.teacher,
                              data.in_channels, data.num_classes, data.image_size, config.derive_depth,
                              config.derive_width).to(device)
        method = create_method("kd" if teacher is None else config.method, model, teacher,
                               temperature=config.temperature, alpha=config.alpha,
                               input_shape=(data.in_channels, data.image_size, data.image_size),
                               **(config.extra if teacher is not None else {}))
        method.set_precision(device, precision.train, precision.teacher_labels)
        optimizer = build_optimizer(list(model.parameters()) + method.extra_parameters(), config)
        started, steps = None, 0
        for step in range(batches + 1):  # the first batch warms up, untimed
            if step == 1:
                started = time.perf_counter()
            x = data.normalize(data.train_x[(step * bs) % max(1, n - bs):][:bs])
            y = data.train_y[(step * bs) % max(1, n - bs):][:bs]
            loss, _ = method.loss(x, y, method.teacher_targets(x) if teacher is not None else None)
            optimizer.zero_grad()
            loss.total.backward()
            optimizer.step()
            steps += step >= 1
        per_image = (time.perf_counter() - started) / (steps * bs)
        return per_image * n * 1.1, model  # about a tenth more: augmentation and the validation pass

    teacher_s, teacher = timed("teacher")
    scratch_s, _ = timed("student_scratch")
    kd_s, _ = timed("student_kd", teacher.eval())
    return {"teacher": teacher_s, "student_scratch": scratch_s, "student_kd": kd_s, "rest": 2.0, "run_id": None}
