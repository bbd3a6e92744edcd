"""A run: teacher, scratch student, distilled student, then a fair comparison.

This is the one entry point the CLI and the app share. It is plain, blocking code: the app
runs it in a background thread and reads its events; the CLI runs it in the foreground.
"""
from __future__ import annotations

import contextlib
import copy
import json
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Optional

import torch

from .. import paths
from ..checkpoints import check_fits, load_into, save_state_dict, state_sha256
from ..config import RunConfig, validate
from ..data.datasets import DataRequest, ImageData, image_files, load_dataset
from ..device import release, resolve_device
from ..errors import Cancelled, CheckpointError, ConfigError, DeviceError, DistillError
from ..events import ERROR, PHASE, RESULT, STATUS, Event, Observer, fan_out
from ..files import write_atomic
from ..methods import METHODS, WeightAnchor, create_method
from ..models import create_model
from ..models.derive import DERIVED, derived_model, origin, resolved_init
from ..precision import FP32, Precision, resolve_precision
from ..training.fidelity import fidelity
from ..training.measure import class_report, disagreements, evaluate, headline, measure_latencies, static_profile
from ..training.trainer import PhaseResult, check_stop, train_phase  # check_stop: between phases and models too
from ..vocab import DISTILLED, SCRATCH, TEACHER
from . import teacher_cache
from .scratch_reuse import adopt, reusable_scratch, reused_entry, scratch_fields

# Rough relative cost of one epoch of each phase, so progress and ETA move evenly.
PHASE_WEIGHT = {TEACHER: 2.0, SCRATCH: 1.0, DISTILLED: 1.5}

def preload() -> None:
    """Import now what a run's first optimizer step would import, so a run's clock counts its work.

    torch.optim's first call imports ``torch._dynamo`` (and sympy with it): 1.8 s on one core,
    in a demo run of about 30 s. The app calls this once per server, when its first page is drawn
    (studio/manager.py), so the first run starts training at once; the CLI calls it before the
    run, so both report the same kind of time.
    """
    import torch._dynamo  # noqa: F401


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def out_dir_exists(config: RunConfig, run_id: str) -> bool:
    """Whether the run's folder is there already (a user's ``--out``), so that a refused run removes
    only a folder it made itself."""
    return (Path(config.out).expanduser().absolute() if config.out else paths.runs_dir() / run_id).exists()


def out_dir_for(config: RunConfig, run_id: str) -> Path:
    """The run's folder: ``config.out``, or ``runs/<run id>`` in the studio's home.

    A folder that already holds a run (its config.json) is refused: writing a second run there
    would replace the first one's files under its store entry, and deleting either run would
    then delete both."""
    # Absolute: the run store records it, and a later command from another folder must find it.
    out_dir = Path(config.out).expanduser().absolute() if config.out else paths.runs_dir() / run_id
    if (out_dir / "config.json").exists():
        raise ConfigError(f"{out_dir} already holds a run; choose another --out, or leave --out out for a new "
                          "folder in the runs folder")
    return writable_folder(out_dir, "output folder")


def method_record(config: RunConfig) -> dict:
    """results.json's "method": its name and every option's value, the defaults filled in (the
    config keeps only what was set), and which of T and alpha it read."""
    cls = METHODS.get(config.method)
    options = {o.name: o.default for o in cls.OPTIONS} | dict(config.extra)
    return {"name": config.method, "options": options, "uses": list(cls.uses(options))}


def preflight(config: RunConfig) -> None:
    """What can be refused before a run has a row in the run store or a folder: the device it
    asks for, bf16 where that device has none, and an image folder that is missing, empty or of
    one class. (The run checks them again; a refused CLI run then leaves nothing behind.)"""
    resolve_precision(config.precision, resolve_device(config.device))
    if config.dataset == "imagefolder" and config.data_dir:
        image_files(Path(config.data_dir).expanduser())


def writable_folder(folder: Path, what: str) -> Path:
    """Create ``folder`` now, so that a place the run cannot write stops it before it trains."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the {what} {folder}: {exc.strerror or exc}") from None
    return folder


# Models draw their initial weights from torch's global generator. The app runs one job at a time,
# but run_experiment may be called from several threads of one process: builds take turns, so
# two seeded builds never interleave their draws.
_BUILD_LOCK = threading.Lock()


def build_model(name: str, data: ImageData, config: RunConfig, device: torch.device, seed: int,
                source: Optional[torch.nn.Module] = None):
    """``name`` built fresh, seeded; a derived student (models/derive.py) is cut from ``source``, the
    trained teacher, when it starts from the teacher's weights, else from a fresh one of its architecture."""
    with _BUILD_LOCK:
        torch.manual_seed(seed)
        model = create_model(name, data.in_channels, data.num_classes, data.image_size) if name != DERIVED else \
            derived_model(config.teacher, data.in_channels, data.num_classes, data.image_size, config.derive_depth,
                          config.derive_width, source, resolved_init(name, config.student_init))
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def reloaded(config: RunConfig, data: ImageData, device: torch.device, path: str) -> torch.nn.Module:
    """A student of this run from its checkpoint (the architecture alone comes from the config)."""
    model = build_model(config.student, data, config, device, config.seed)
    model.load_state_dict(torch.load(path, weights_only=True))
    return model


def entry_from_phase(arch: str, role: str, source: str, result: PhaseResult, data: ImageData) -> tuple[dict, torch.Tensor]:
    """A trained model's entry, its report (per class, confusion) made from its last validation
    pass; and that pass's per-image probabilities."""
    last = result.history[-1] if result.history else {}
    entry = {"model": arch, "role": role, "source": source, "split": "val",
             "accuracy": last.get("val_accuracy"), "best_accuracy": result.best_accuracy,
             "best_epoch": result.best_epoch, "history": result.history}
    report = class_report(result.val_probs, data.val_y, data.num_classes)
    probs = report.pop("probs")
    entry.update({k: v for k, v in report.items() if k != "accuracy"})  # the same number, from the same pass
    return entry, probs


def fidelity_entry(history: list[dict], student, teacher_train_probs, data: ImageData, device: torch.device,
                   config: RunConfig) -> dict:
    """The student's fidelity to its teacher: on the validation split at the last epoch (from its
    history), and once on the training split, the images it was taught on (Stanton et al. 2021)."""
    last = history[-1] if history else {}
    train = evaluate(student, data, device, channels_last=config.channels_last, split="train")
    faithful = fidelity(train["probs"], teacher_train_probs)
    return {"val_agreement": last.get("val_agreement"), "val_kl_teacher": last.get("val_kl_teacher"),
            "train_agreement": faithful["agreement"], "train_kl_teacher": faithful["kl_teacher"],
            "train_fidelity_images": int(teacher_train_probs.shape[0])}


def measured_fidelity(student, teacher_probs, teacher_train_probs, data: ImageData, device: torch.device,
                      config: RunConfig) -> dict:
    """``fidelity_entry`` of a trained student measured now, its validation figures too: a reused
    scratch student's, against this run's teacher."""
    val = fidelity(evaluate(student, data, device, channels_last=config.channels_last)["probs"], teacher_probs)
    return fidelity_entry([{"val_agreement": val["agreement"], "val_kl_teacher": val["kl_teacher"]}], student,
                          teacher_train_probs, data, device, config)


def evaluate_test_set(model, data: ImageData, device: torch.device, config: RunConfig) -> dict:
    """Top-1 on the dataset's test set, where it has one: once, at the last epoch (``model`` as it
    ended), never used to choose anything."""
    if data.test_x is None:
        return {}
    report = evaluate(model, data, device, channels_last=config.channels_last, split="test")
    return {"test_accuracy": report["accuracy"], "test_images": int(data.test_x.shape[0])}


def cached_teacher_entry(config: RunConfig, meta: dict) -> dict:
    """A cached teacher's entry: its training record comes from the cache, not from this run."""
    return {"model": config.teacher, "role": "teacher", "source": "cache", "split": "val",
            "history": meta.get("history", []), "best_epoch": meta.get("best_epoch"),
            "best_accuracy": meta.get("best_accuracy")}


class Progress:
    """Maps (phase, fraction of phase) to a fraction of the whole run."""

    def __init__(self, plan: dict[str, int]):
        self.weights = {p: PHASE_WEIGHT[p] * e for p, e in plan.items()}
        self.total = sum(self.weights.values()) or 1.0

    def of(self, phase: str):
        before = 0.0
        for p, w in self.weights.items():
            if p == phase:
                break
            before += w
        weight = self.weights.get(phase, 0.0)
        return lambda fraction: (before + weight * fraction) / self.total


def time_models(models: dict[str, torch.nn.Module], shape: tuple, device: torch.device, config: RunConfig,
                stop: Optional[threading.Event] = None) -> dict[str, dict]:
    """Latency on the run's device; on a GPU run, CPU latency too (for deployment). Size and
    FLOPs are already in each entry (``static_profile``, as each model finished).

    The models' latencies are timed in turn (``measure_latencies``), so what else the machine
    does meanwhile (the app's browser, on a laptop) weighs on all of them alike."""
    found = {name: {"latency_ms": latency} for name, latency in measure_latencies(
        models, shape, device, batch_sizes=(1, config.latency_batch), repeats=config.latency_repeats,
        between_rounds=lambda: check_stop(stop)).items()}
    if device.type != "cpu":
        on_cpu = {name: copy.deepcopy(model).float().cpu() for name, model in models.items()}
        for name, latency in measure_latencies(on_cpu, shape, "cpu", batch_sizes=(1, config.latency_batch),
                                               repeats=config.latency_repeats,
                                               between_rounds=lambda: check_stop(stop)).items():
            found[name]["latency_ms_cpu"] = latency
    return found


def run_experiment(config: RunConfig, on_event: Optional[Observer] = None,
                   stop: Optional[threading.Event] = None, run_id: Optional[str] = None,
                   scratch_from: Optional[str | Path] = None) -> dict[str, Any]:
    """Run a full comparison and write it under ``config.out`` (default: the runs folder).

    ``scratch_from``: the folder of a finished run whose scratch student this run reuses instead
    of training it (``reusable_scratch``; a sweep's trials that differ only in T, alpha or the
    method). It is the student this run would train: same recipe, seed, initial weights and data
    order as the distilled one.

    Returns the results dict (also written as results.json). Its "status" is "done", or
    "cancelled" when ``stop`` was set, keeping the models that finished. A user error raises
    ``DistillError``: at once when the config, the output folder or the teacher's data are
    refused (nothing has started), after an ERROR event when it is found while the run goes on
    (a device, a dataset, a checkpoint, a diverging loss). The app and CLI show its message.
    """
    validate(config)
    check_teacher_data(config)
    scratch = scratch_fields(config)  # taken now: an image folder's listing is of the images the run loads
    # This process trains it: the kind of device and the precision are this machine's
    reuse = reusable_scratch(config, scratch_from, scratch, resolve_device(config.device)) if scratch_from else None
    emit = fan_out(on_event)
    run_id = run_id or new_run_id()
    out_dir = out_dir_for(config, run_id)
    if config.teacher_source != "checkpoint":  # a teacher it trains goes to the cache
        writable_folder(teacher_cache.cache_root(config), "teacher cache folder")
    started = time.time()
    results: dict[str, Any] = {"run_id": run_id, "status": "running", "config": config.to_dict(),
                               "method": method_record(config), "started_at": started, "scratch_key": scratch,
                               "artifacts": {"dir": str(out_dir)}}
    device, data = torch.device("cpu"), None
    threads = torch.get_num_threads()  # restored at the end: the app's worker thread runs the next job too
    try:
        if config.num_threads:
            torch.set_num_threads(config.num_threads)  # per thread: must happen in the training thread
        device = resolve_device(config.device)
        results["device"] = str(device)
        precision = resolve_precision(config.precision, device)  # once: every phase trains in it
        results["precision"] = precision.to_dict()
        emit(Event(STATUS, None, {"status": "running", "message": f"loading {config.dataset}", "run_id": run_id,
                                  "out": str(out_dir), "device": str(device)}))
        data = load_dataset(config.dataset, DataRequest(config.data_dir, config.val_fraction, config.image_size,
                                                         config.download, config.seed)).to(device)
        check_stop(stop)
        results["dataset"] = {**data.describe(), "class_names": data.classes}
        out_dir.mkdir(parents=True, exist_ok=True)
        config.save(out_dir / "config.json")
        results["phase_seconds"] = {"setup": time.time() - started}
        with cudnn_benchmark(device):
            _run_phases(config, data, device, emit, stop, results, out_dir, precision, reuse)
        results["status"] = "done"
    except Cancelled:
        results["status"] = "cancelled"
    except torch.cuda.OutOfMemoryError:
        err = DeviceError(f"the GPU ran out of memory (batch size {config.batch_size}); "
                          "try a smaller batch size or smaller models")
        emit(Event(ERROR, None, {"message": str(err), "type": type(err).__name__}))
        raise err from None
    except DistillError as exc:
        emit(Event(ERROR, None, {"message": str(exc), "type": type(exc).__name__}))
        raise
    finally:
        data = None  # the dataset on the device goes before its memory is handed back
        release(device)
        torch.set_num_threads(threads)
    results["finished_at"] = time.time()
    results["seconds"] = results["finished_at"] - started
    if out_dir.is_dir():
        write_atomic(out_dir / "results.json", json.dumps(results, indent=2))  # pages poll for it
    emit(Event(STATUS, None, {"status": results["status"], "run_id": run_id, "out": str(out_dir),
                              "message": "finished" if results["status"] == "done" else "cancelled; finished models kept"}))
    return results


@contextlib.contextmanager
def cudnn_benchmark(device: torch.device):
    """On a GPU, let cuDNN time its convolution algorithms for each new shape: a run has only a
    few shapes (the batch, the epoch's last batch, the labelling and validation batches), each
    met thousands of times. Restored after, for whatever else the process runs."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def fitting(cached: Optional[tuple[dict, dict]], teacher: torch.nn.Module, config: RunConfig,
            data: ImageData) -> Optional[tuple[dict, dict]]:
    """A cached teacher that does not fit this run's model and classes is a miss (trained again),
    not a crash in ``load_state_dict``."""
    if cached is None:
        return None
    try:
        check_fits(cached[0], teacher, config.teacher, data.num_classes)
    except CheckpointError:
        return None
    return cached


def check_teacher_data(config: RunConfig) -> None:
    """Refuse a cached teacher trained on another split of this run's data (before any work):
    some of this run's validation images could be in its training set."""
    problem = teacher_cache.checkpoint_problem(config)
    if problem:
        raise ConfigError(problem)


def _run_phases(config: RunConfig, data: ImageData, device: torch.device, emit: Observer,
                stop: Optional[threading.Event], results: dict, out_dir: Path, precision: Precision,
                reuse: Optional[dict]) -> None:
    teacher = build_model(config.teacher, data, config, device, config.seed)
    cached = None
    if config.teacher_source == "checkpoint":
        source = "checkpoint"
    elif config.teacher_source == "auto" and (cached := fitting(teacher_cache.lookup(config), teacher, config,
                                                                data)) is not None:
        source = "cache"
    else:
        source = "train"
    plan = {"teacher": config.teacher_epochs if source == "train" else 0,
            "student_scratch": 0 if reuse else config.epochs, "student_kd": config.epochs}
    progress = Progress(plan)
    shape = (data.in_channels, data.image_size, data.image_size)

    # 1. teacher
    check_stop(stop)
    clock = time.perf_counter()  # each phase's wall time, evaluation included: results["phase_seconds"]
    emit(Event(PHASE, "teacher", {"phase": "teacher", "index": 0, "total": 3, "epochs": plan["teacher"],
                                  "source": source}))
    if source == "checkpoint":
        load_into(teacher, config.teacher_checkpoint, config.teacher, data.num_classes)
        entry = {"model": config.teacher, "role": "teacher", "source": "checkpoint", "split": "val",
                 "history": [], "checkpoint": str(config.teacher_checkpoint)}
        meta = teacher_cache.meta_for(config.teacher_checkpoint)
        trained_in = None  # a checkpoint from elsewhere does not say what it trained in
        if meta is not None and meta.get("teacher") == config.teacher and meta.get("dataset") == config.dataset:
            entry.update(cached_teacher_entry(config, meta))  # the app's "reuse": keep its training record
            trained_in = meta.get("precision", FP32)  # cached before bf16 existed: fp32
        results["artifacts"]["teacher"] = str(config.teacher_checkpoint)
    elif source == "cache":
        state, meta = cached
        teacher.load_state_dict(state)
        entry = cached_teacher_entry(config, meta)
        trained_in = meta.get("precision", FP32)  # the key has bf16 in it when it trained in bf16
        results["artifacts"]["teacher"] = str(teacher_cache.cached_path(config))
    else:
        method = create_method("kd", teacher, None)
        phase = train_phase(method, data, config, epochs=config.teacher_epochs, phase="teacher", emit=emit,
                            stop=stop, progress=progress.of("teacher"), precision=precision)
        teacher.load_state_dict(phase.last_state)  # the teacher teaches as it ended, like the students
        entry, teacher_probs = entry_from_phase(config.teacher, "teacher", "train", phase, data)
        entry["loss"] = phase.history[-1]["val_loss"]
        trained_in = precision.train
        # The run keeps its own teacher, and a cached one is never replaced by a retrained one
        # (--teacher-source train, or other threads: not the same weights): runs that used it,
        # and their repeats, keep the teacher they were compared with.
        results["artifacts"]["teacher"] = str(save_state_dict(phase.last_state, out_dir / "teacher.pt"))
        if fitting(teacher_cache.lookup(config), teacher, config, data) is None:
            teacher_cache.store(config, phase.last_state, {
                "history": phase.history, "accuracy": entry["accuracy"], "best_accuracy": phase.best_accuracy,
                "best_epoch": phase.best_epoch, "dataset": config.dataset, "teacher": config.teacher,
                "precision": precision.train})
    teacher.eval().requires_grad_(False)
    if source != "train":  # a loaded teacher has not been validated yet
        report = evaluate(teacher, data, device, channels_last=config.channels_last)
        teacher_probs = report.pop("probs")
        entry.update(report)
    entry["precision"] = {**precision.entry("teacher"), "train": trained_in}
    entry["weights_sha256"] = teacher_sha = state_sha256(teacher)
    # What the students' fidelity is measured against: the teacher's answers on the same images.
    reference = teacher_probs.clamp_min(1e-30).log().to(device)
    teacher_train_probs = evaluate(teacher, data, device, channels_last=config.channels_last, split="train")["probs"]
    entry.update(evaluate_test_set(teacher, data, device, config))
    entry.update(static_profile(teacher, shape, device))  # kept if the run stops before the timing
    if entry.get("best_accuracy") is None:  # a checkpoint has no training history
        entry["best_accuracy"], entry["best_epoch"] = entry["accuracy"], None
    results["teacher"] = entry
    results["phase_seconds"]["teacher"] = time.perf_counter() - clock
    emit(Event(RESULT, "teacher", {"model": "teacher", "entry": entry}))

    # 2. and 3. the same student, from scratch and distilled; nothing differs but the teacher
    students = {}
    # Built once and copied: the two students start from the very same weights whatever else draws
    # from the global generator meanwhile. Each then trains from the same generator state, so a
    # student with dropout draws the same masks in both, as long as nothing else in the process
    # draws from it while they train (the app's job manager runs one job at a time for that).
    init = resolved_init(config.student, config.student_init)
    reuse, not_reused = adopt(reuse, teacher_sha, init)
    if not_reused:  # cut from another teacher: trained here, and the event and the entry say why
        progress = Progress({**plan, SCRATCH: config.epochs})
    initial = build_model(config.student, data, config, device, config.seed,
                          source=teacher if init == "teacher" else None)
    results["student_origin"] = origin(config.student, config.teacher, init, config.weight_anchor, initial)
    # P(w_t): the teacher slice a teacher-initialised student starts from, for the weight anchor
    anchor = {n: p.detach().clone() for n, p in initial.named_parameters()} if config.weight_anchor else None
    student_profile = None
    rng = torch.random.get_rng_state(), (torch.cuda.get_rng_state_all() if device.type == "cuda" else None)
    for index, (role, teacher_for_role) in enumerate(((SCRATCH, None), (DISTILLED, teacher)), start=1):
        check_stop(stop)
        clock = time.perf_counter()
        if role == SCRATCH and reuse:
            emit(Event(PHASE, role, {"phase": role, "index": index, "total": 3, "epochs": 0, "source": "reused",
                                     "from_run": reuse["entry"]["from_run"]}))
            for which, path in reuse["files"].items():
                copied = out_dir / f"{role}_{which}.pt"  # the run keeps its own: deleting the other keeps it whole
                shutil.copyfile(path, copied)
                results["artifacts"][f"{role}_{which}"] = str(copied)
            results[role] = reused_entry(reuse, teacher_sha, lambda: measured_fidelity(
                reloaded(config, data, device, results["artifacts"][f"{role}_last"]), teacher_probs,
                teacher_train_probs, data, device, config))
            results["phase_seconds"][role] = time.perf_counter() - clock
            emit(Event(RESULT, role, {"model": role, "entry": results[role]}))
            continue
        said = {"message": not_reused} if role == SCRATCH and not_reused else {}
        emit(Event(PHASE, role, {"phase": role, "index": index, "total": 3, "epochs": config.epochs,
                                 "source": "train", **said}))
        student = copy.deepcopy(initial)
        torch.random.set_rng_state(rng[0])
        if rng[1] is not None:
            torch.cuda.set_rng_state_all(rng[1])
        # Without a teacher every method is plain CE (methods/base.py): the scratch student is the same
        # whichever method the run distils with.
        method = create_method(config.method, student, teacher_for_role, temperature=config.temperature,
                               alpha=config.alpha, input_shape=shape, **config.extra).to(device)
        if anchor is not None:  # both students: part of the recipe they share (methods/anchor.py)
            method.anchor = WeightAnchor(config.weight_anchor, anchor)
        phase = train_phase(method, data, config, epochs=config.epochs, phase=role, emit=emit, stop=stop,
                            distill_data=config.distill_data if teacher_for_role is not None else "none",
                            reference=reference, progress=progress.of(role), precision=precision)
        for which, state in (("best", phase.best_state), ("last", phase.last_state)):
            path = save_state_dict(state, out_dir / f"{role}_{which}.pt")
            results["artifacts"][f"{role}_{which}"] = str(path)
        entry, students[role] = entry_from_phase(config.student, role, "train", phase, data)
        entry["precision"] = precision.entry(role)
        entry.update({"not_reused": said["message"]} if said else {})
        entry.update(fidelity_entry(phase.history, student, teacher_train_probs, data, device, config))
        entry.update(evaluate_test_set(student, data, device, config))
        # The same architecture twice: its parameters, size and FLOPs are measured once.
        student_profile = student_profile or static_profile(student, shape, device)
        entry.update(student_profile)
        results[role] = entry
        results["phase_seconds"][role] = time.perf_counter() - clock
        emit(Event(RESULT, role, {"model": role, "entry": entry}))
        del method

    # 4. measure, with training over so nothing fights for the cores
    check_stop(stop)
    clock = time.perf_counter()
    emit(Event(PHASE, "measure", {"phase": "measure", "index": 3, "total": 3, "epochs": 0, "source": "measure"}))
    models = {"teacher": teacher}
    for role in (SCRATCH, DISTILLED):
        models[role] = reloaded(config, data, device, results["artifacts"][f"{role}_last"])
    profiles = time_models(models, shape, device, config, stop)
    for role, profile in profiles.items():
        results[role].update(profile)
    results["comparison"] = headline(results)
    results["disagreements"] = [
        {"index": d["index"], "label": d["label"], "teacher": d["a"], "student_kd": d["b"]}
        for d in disagreements(data.val_y.cpu(), teacher_probs, students["student_kd"])]
    results["phase_seconds"]["measure"] = time.perf_counter() - clock
