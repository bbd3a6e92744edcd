"""Measure models the way the studio reports them: size, FLOPs, latency, accuracy, comparisons.

Conventions, chosen so the numbers mean the same thing everywhere they are shown:

- Size is the real file size of the fp32 ``state_dict`` written by ``torch.save``, so BatchNorm
  running stats count (about 4.1 to 4.3 bytes per parameter, not 4).
- FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` at batch 1 and are FLOPs, two
  per multiply-add: MACs = FLOPs / 2. Many other tools (fvcore, ptflops, thop, torchinfo, the
  "GFLOPS" column of torchvision) report MACs. FlopCounterMode counts matmuls and convolutions
  only: bias adds, BatchNorm, activations and pooling add nothing.
- Latency is the median and 90th percentile of individually timed forwards after warm-up, with
  the thread count stated, because batch-1 latency and batched throughput do not follow FLOPs
  and a single sample is noise. Models that are compared are timed in turn, so that the
  machine's other work weighs on them alike.
"""
from __future__ import annotations

import contextlib
import io
import time
from typing import Callable, Iterator, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..config import MIN_LATENCY_REPEATS
from ..data.datasets import ImageData
from ..device import synchronize
from ..vocab import ROLES
from .fidelity import calibration

FLOPS_UNIT = "FLOPs"  # 2 per multiply-add; MACs = FLOPs / 2

MIN_TIMED_RUNS = MIN_LATENCY_REPEATS  # a run's config cannot ask for fewer; direct callers get this many
LATENCY_BUDGET_S = 2.0  # per batch size; big models on a 2-core CPU stop early past this


# ---- helpers --------------------------------------------------------------------------------
@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval for measuring, then each submodule's own mode back (a frozen BN stays frozen)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


@contextlib.contextmanager
def _threads(num_threads: Optional[int]) -> Iterator[None]:
    # set_num_threads is per calling thread, so set and restore it right here.
    if num_threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _device(device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _input_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _example(model: nn.Module, batch: int, input_shape: tuple, device: torch.device) -> torch.Tensor:
    """A random batch in the model's dtype and memory layout: a channels_last model fed NCHW
    images converts them in every timed call, which serving it would not do."""
    x = torch.randn((int(batch), *input_shape), device=device, dtype=_input_dtype(model))
    channels_last = any(p.dim() == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last)
                        for p in model.parameters())
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def _ratio(num, den) -> Optional[float]:
    """num / den, or None where either is missing or the denominator is not positive."""
    if num is None or den is None:
        return None
    try:
        num, den = float(num), float(den)
    except (TypeError, ValueError):
        return None
    if den <= 0:
        return None
    return num / den


def _median(entry: dict, key: str) -> Optional[float]:
    row = (entry.get("latency_ms") or {}).get(key)
    return row.get("median") if isinstance(row, dict) else None


def large_batch_key(*latencies: Optional[dict]) -> Optional[str]:
    """The larger latency batch's key ("batch_64", or the run's --latency-batch) in any of these
    ``latency_ms`` dicts; None when none has one."""
    return next((k for lat in latencies for k in (lat or {}) if k.startswith("batch_") and k != "batch_1"), None)


def _batch_keys(*entries: dict) -> list[str]:
    """Latency keys ("batch_<n>") present in every entry, smallest batch first."""
    common = None
    for entry in entries:
        keys = {k for k, v in (entry.get("latency_ms") or {}).items()
                if k.startswith("batch_") and k[6:].isdigit() and isinstance(v, dict)}
        common = keys if common is None else common & keys
    return sorted(common or (), key=lambda k: int(k[6:]))


# ---- size and cost --------------------------------------------------------------------------
def count_params(model: nn.Module) -> int:
    """All parameters, trainable or frozen: what the model carries, not what training touches."""
    return sum(p.numel() for p in model.parameters())


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of the saved fp32 checkpoint, buffers included: what a user would download or ship."""
    state = {k: (v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu())
             for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getbuffer().nbytes


def count_flops(model: nn.Module, input_shape: tuple[int, int, int], device="cpu") -> int:
    """Forward FLOPs of one image (FLOPs = 2 x MACs), so models of any batch size compare."""
    x = torch.zeros((1, *input_shape), device=torch.device(device), dtype=_input_dtype(model))
    with _eval_mode(model), torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            model(x)
    return int(counter.get_total_flops())


# ---- latency --------------------------------------------------------------------------------
def measure_latency(model: nn.Module, input_shape: tuple[int, int, int], device="cpu",
                    batch_sizes: Sequence[int] = (1, 64), repeats: int = 30, warmup: int = 5,
                    num_threads: Optional[int] = None, budget_s: float = LATENCY_BUDGET_S) -> dict:
    """Median and p90 forward time per batch size, in ms, with the device and threads it ran on.

    Warm-up runs first (allocator, kernel selection), then ``repeats`` individually timed runs.
    So that a big model stays quick to measure on a small CPU, each batch size stops timing once
    ``budget_s`` has passed, but never before ``MIN_TIMED_RUNS`` runs; warm-up likewise stops
    after half the budget, but never before one run. The counts actually made are recorded.
    """
    return measure_latencies({"model": model}, input_shape, device, batch_sizes, repeats, warmup, num_threads,
                             budget_s)["model"]


def measure_latencies(models: Mapping[str, nn.Module], input_shape: tuple[int, int, int], device="cpu",
                      batch_sizes: Sequence[int] = (1, 64), repeats: int = 30, warmup: int = 5,
                      num_threads: Optional[int] = None, budget_s: float = LATENCY_BUDGET_S,
                      between_rounds: Optional[Callable[[], None]] = None) -> dict[str, dict]:
    """``measure_latency`` for several models at once, their timed runs taken in turn.

    Models that are compared are timed round robin (one run of each, then the next round), so a
    burst of other work on the machine (a browser redrawing, a backup) slows them alike instead
    of landing on whichever model was being timed (docs/benchmarks.md has the figures). Each timed
    run follows an untimed run of the same model, so it finds the caches as a model running alone
    does, not as the previous model left them. Each model keeps its own warm-up, budget and counts. ``between_rounds`` is called after each round; raising there
    abandons the measurement (the experiment uses it to honour Stop).
    """
    device = _device(device)
    out: dict[str, dict] = {name: {} for name in models}
    with contextlib.ExitStack() as stack:
        stack.enter_context(_threads(num_threads))
        for model in models.values():
            stack.enter_context(_eval_mode(model))
        stack.enter_context(torch.inference_mode())
        threads = torch.get_num_threads()
        for b in batch_sizes:
            runs = {name: _forward(model, _example(model, b, input_shape, device), device)
                    for name, model in models.items()}
            for name, row in time_in_turn(runs, repeats, warmup, budget_s, between_rounds).items():
                out[name][f"batch_{int(b)}"] = row
    for row in out.values():
        row["device"] = str(device)
        row["threads"] = threads
        row["in_turn"] = len(models)  # how many models were timed in turn with this one (itself included)
    return out


def _forward(model: nn.Module, x: torch.Tensor, device: torch.device) -> Callable[[], None]:
    def run() -> None:
        model(x)
        synchronize(device)
    return run


def time_in_turn(runs: Mapping[str, Callable[[], object]], repeats: int = 30, warmup: int = 5,
                 budget_s: float = LATENCY_BUDGET_S,
                 between_rounds: Optional[Callable[[], None]] = None) -> dict[str, dict]:
    """Median and p90 in ms of each of ``runs`` (a call that runs one forward to completion).

    The timer behind ``measure_latencies`` and compress's ONNX Runtime rows. Each run first gets
    its warm-up (stopping after half of ``budget_s``, never before one call); then the timed
    calls go round robin, one per run per round, each after an untimed call of the same run when
    there are several (see ``measure_latencies``). A run stops once it has ``repeats`` timings,
    or ``MIN_TIMED_RUNS`` and ``budget_s`` of timed calls.
    """
    repeats = max(int(repeats), MIN_TIMED_RUNS)
    warm = {name: _warm_up(run, max(int(warmup), 0), budget_s / 2) for name, run in runs.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    spent = dict.fromkeys(runs, 0.0)
    timing = list(runs)
    while timing:
        for name in list(timing):
            if len(runs) > 1:  # its weights back in the caches the run before it evicted
                runs[name]()
            t0 = time.perf_counter()
            runs[name]()
            dt = time.perf_counter() - t0
            times[name].append(dt * 1000.0)
            spent[name] += dt
            n = len(times[name])
            if n >= repeats or (n >= MIN_TIMED_RUNS and spent[name] > budget_s):
                timing.remove(name)
        if between_rounds is not None:
            between_rounds()
    out = {}
    for name, ms in times.items():
        q = torch.tensor(ms, dtype=torch.float64).quantile(torch.tensor([0.5, 0.9], dtype=torch.float64))
        out[name] = {"median": float(q[0]), "p90": float(q[1]), "repeats": len(ms), "warmup": warm[name]}
    return out


def _warm_up(run: Callable[[], object], runs: int, budget_s: float) -> int:
    """Up to ``runs`` untimed calls, stopping once ``budget_s`` has passed; how many ran."""
    start = time.perf_counter()
    done = 0
    while done < runs:
        run()
        done += 1
        if time.perf_counter() - start > budget_s:
            break
    return done


# ---- accuracy -------------------------------------------------------------------------------
# Fidelity on the training split is measured once, at the end, on at most this many images: enough
# for a figure to a tenth of a point, and about a second through the default teacher on 2 cores.
TRAIN_SPLIT_IMAGES = 5000


def evaluate(model: nn.Module, data: ImageData, device="cpu", batch_size: int = 512,
             channels_last: bool = False, split: str = "val") -> dict:
    """Accuracy, loss, calibration (ECE and its reliability bins) and per-class detail on the
    validation split (or the test set, where the dataset has one; or the first
    ``TRAIN_SPLIT_IMAGES`` training images, un-augmented), plus the softmax probabilities so that
    two models' answers can be compared image by image."""
    device = torch.device(device)
    images, targets = {"val": (data.val_x, data.val_y), "test": (data.test_x, data.test_y),
                       "train": (data.train_x[:TRAIN_SPLIT_IMAGES], data.train_y[:TRAIN_SPLIT_IMAGES])}[split]
    n = 0 if images is None else int(images.shape[0])
    if n == 0:
        raise ValueError(f"dataset {data.name!r} has no {split} images to evaluate on")
    num_classes = data.num_classes
    dtype = _input_dtype(model)
    loss_parts: list[torch.Tensor] = []  # per-batch sums, kept on the device until the end
    probs_parts: list[torch.Tensor] = []
    with _eval_mode(model), torch.inference_mode():
        for i in range(0, n, batch_size):
            xb = data.normalize(images[i:i + batch_size].to(device, non_blocking=True))
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yb = targets[i:i + batch_size].to(device, non_blocking=True)
            logits = model(xb.to(dtype)).float()
            loss_parts.append(F.cross_entropy(logits, yb, reduction="sum"))
            probs_parts.append(logits.softmax(dim=1).cpu())
    report = class_report(torch.cat(probs_parts), targets, num_classes)
    report["loss"] = float(torch.stack(loss_parts).cpu().double().sum()) / n
    return report


def class_report(probs: torch.Tensor, targets: torch.Tensor, num_classes: int) -> dict:
    """Accuracy, top-5 (10 classes or more), per-class accuracy and the confusion matrix of
    per-image probabilities ``probs`` against ``targets``; "probs" is kept in the report. The
    trainer's last validation pass gives its probabilities to this, so a trained model's report
    needs no second pass over the same images."""
    probs = probs.detach().cpu()
    labels = targets.detach().cpu().long()
    preds = probs.argmax(dim=1)
    confusion = torch.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
    confusion = confusion.view(num_classes, num_classes)
    per_class_total = confusion.sum(dim=1)
    # A class with no validation images gets 0.0; its all-zero confusion row shows why.
    per_class = confusion.diagonal().double() / per_class_total.clamp_min(1).double()
    result = {"accuracy": float((preds == labels).double().mean())}
    if num_classes >= 10:
        top5 = probs.topk(5, dim=1).indices
        result["top5"] = float((top5 == labels[:, None]).any(dim=1).double().mean())
    result.update(calibration(probs, labels))
    result["per_class_accuracy"] = [float(v) for v in per_class]
    result["confusion_matrix"] = confusion.tolist()
    result["probs"] = probs
    return result


def disagreements(labels, probs_a, probs_b, limit: int = 24,
                  names: tuple[str, str] = ("a", "b")) -> list[dict]:
    """Images where two models give different answers, the most confident clashes first:
    those are the ones worth looking at. Confidence is the mean of the two models' probabilities
    for their own answer; ties go to the lower index. ``names`` sets the two keys per row."""
    labels = torch.as_tensor(labels).detach().cpu().long().view(-1)
    probs_a = torch.as_tensor(probs_a).detach().cpu().float()
    probs_b = torch.as_tensor(probs_b).detach().cpu().float()
    conf_a, pred_a = probs_a.max(dim=1)
    conf_b, pred_b = probs_b.max(dim=1)
    idx = (pred_a != pred_b).nonzero().view(-1)
    if idx.numel() == 0 or limit <= 0:
        return []
    score = (conf_a[idx] + conf_b[idx]) / 2
    # stable sort on descending score keeps equal scores in index order
    order = torch.sort(-score, stable=True).indices[:limit]
    rows = []
    for i in idx[order].tolist():
        rows.append({"index": i, "label": int(labels[i]),
                     names[0]: {"pred": int(pred_a[i]), "prob": float(conf_a[i])},
                     names[1]: {"pred": int(pred_b[i]), "prob": float(conf_b[i])}})
    return rows


# ---- profiles and comparisons ---------------------------------------------------------------
def model_profile(model: nn.Module, input_shape: tuple[int, int, int], device="cpu",
                  latency_batch: int = 64, repeats: int = 30) -> dict:
    """Everything about a model's cost in one entry, measured the same way for every model."""
    return model_profiles({"model": model}, input_shape, device, latency_batch, repeats)["model"]


def model_profiles(models: Mapping[str, nn.Module], input_shape: tuple[int, int, int], device="cpu",
                   latency_batch: int = 64, repeats: int = 30,
                   between_rounds: Optional[Callable[[], None]] = None) -> dict[str, dict]:
    """``model_profile`` of models that are compared, their latencies timed in turn."""
    latencies = measure_latencies(models, input_shape, device, batch_sizes=(1, latency_batch), repeats=repeats,
                                  between_rounds=between_rounds)
    return {name: {**static_profile(model, input_shape, device), "latency_ms": latencies[name]}
            for name, model in models.items()}


def static_profile(model: nn.Module, input_shape: tuple[int, int, int], device="cpu") -> dict:
    """Params, fp32 size and FLOPs: the costs that need no clock, so they are known (and kept)
    as soon as a model exists, even in a run stopped before its models are timed."""
    return {"params": count_params(model), "size_bytes": state_dict_bytes(model),
            "flops": count_flops(model, input_shape, device), "flops_unit": FLOPS_UNIT}


def _times(x: float, more: str, less: str, same: str) -> str:
    if round(x, 1) == 1.0 and round(1 / x, 1) == 1.0:  # "1.0x slower" for 0.99 says nothing true
        return same
    return f"{x:.1f}x {more}" if x >= 1 else f"{1 / x:.1f}x {less}"


def compare(teacher: dict, student: dict) -> dict:
    """How much the student saves against the teacher, and what it costs in accuracy.

    Ratios are teacher / student (above 1 means the student is smaller or faster); a ratio whose
    inputs are missing or zero is left out rather than reported as infinite.
    """
    out: dict = {}
    for key, field in (("smaller_x", "size_bytes"), ("fewer_params_x", "params"),
                       ("fewer_flops_x", "flops")):
        r = _ratio(teacher.get(field), student.get(field))
        if r is not None:
            out[key] = r
    keys = _batch_keys(teacher, student)
    for key in [k for k in keys if k == "batch_1"] + [k for k in keys if k != "batch_1"][-1:]:
        r = _ratio(_median(teacher, key), _median(student, key))
        if r is not None:
            out[f"faster_x_{key}"] = r
    for key, field in (("delta_points", "accuracy"), ("delta_points_best", "best_accuracy")):
        if teacher.get(field) is not None and student.get(field) is not None:
            out[key] = 100.0 * (float(student[field]) - float(teacher[field]))

    parts = []
    if out.get("smaller_x"):
        parts.append(_times(out["smaller_x"], "smaller", "larger", "about as small"))
    if out.get("faster_x_batch_1"):
        parts.append(_times(out["faster_x_batch_1"], "faster", "slower", "about as fast") + " (batch 1)")
    if "delta_points" in out:
        parts.append(f"{out['delta_points']:+.1f} points (last epoch, val)")
    out["summary"] = ", ".join(parts)
    return out


# Within a point either way, a KD gain is this size of run's noise (seeds move it about that much):
# no verdict, in either direction. The Compare page and the CLI's summary say the same.
NOISE_POINTS = 1.0
GAIN_WORDS = {"helped": "distillation helped", "hurt": "distillation hurt", "unclear": "no clear gain"}
CHANCE_FACTOR = 1.5  # a teacher below 1.5x chance accuracy learnt next to nothing


def gain_verdict(points: Optional[float]) -> Optional[str]:
    """"helped", "hurt" or "unclear" (a key of ``GAIN_WORDS``) for a KD gain in points; None without one."""
    if points is None:
        return None
    return "helped" if points >= NOISE_POINTS else "hurt" if points <= -NOISE_POINTS else "unclear"


def chance_teacher_note(teacher: Optional[dict], classes: Optional[int]) -> Optional[str]:
    """Why the comparison measures nothing worth a headline when the teacher is at chance level
    (an untrained or mismatched checkpoint), or None."""
    t = (teacher or {}).get("accuracy")
    if t is None or not classes or t >= CHANCE_FACTOR / classes:
        return None
    return (f"The teacher is at chance level ({100 * t:.1f}% on {classes} classes): it has nothing to teach. "
            "Was its checkpoint trained, and on this data?")


def headline(results: dict) -> dict:
    """The few numbers a run is about: what KD bought over training the student alone, and what
    the student costs against the teacher. Entries of phases that did not finish are skipped."""
    teacher, scratch, kd = (results.get(k) for k in ROLES)
    out: dict = {}
    if teacher and kd:
        out["kd_vs_teacher"] = compare(teacher, kd)
    if teacher and scratch:
        out["scratch_vs_teacher"] = compare(teacher, scratch)
    if kd and scratch:
        for key, field in (("kd_gain_points", "accuracy"), ("kd_gain_points_best", "best_accuracy")):
            if kd.get(field) is not None and scratch.get(field) is not None:
                out[key] = 100.0 * (float(kd[field]) - float(scratch[field]))
        if kd.get("per_class_accuracy") and scratch.get("per_class_accuracy"):
            out["per_class_gain_points"] = [100.0 * (float(k) - float(s)) for k, s in
                                            zip(kd["per_class_accuracy"], scratch["per_class_accuracy"])]
    note = weak_teacher_note(teacher, scratch, (results.get("config") or {}).get("teacher_epochs"))
    if note:
        out["weak_teacher"] = note
    dataset = results.get("dataset") or {}
    if chance := chance_teacher_note(teacher, dataset.get("classes") or len(dataset.get("class_names") or [])):
        out["chance_teacher"] = chance
    return out


def weak_teacher_note(teacher: Optional[dict], scratch: Optional[dict], teacher_epochs: Optional[int]) -> Optional[str]:
    """Why a distilled student can only lose, when the teacher is below the student trained alone
    (validation split, last epoch), and the ways out; None when it is not."""
    t, s = (teacher or {}).get("accuracy"), (scratch or {}).get("accuracy")
    if t is None or s is None or t >= s:
        return None
    trained = (f" after {teacher_epochs} epochs" if teacher_epochs and (teacher or {}).get("source") == "train"
               else "")
    return (f"The teacher ({100 * t:.1f}%{trained}) is weaker than the student trained alone ({100 * s:.1f}%): "
            "distillation can only pull the student towards a worse model. Give the teacher more epochs, try "
            "another learning rate, or choose a smaller teacher.")
