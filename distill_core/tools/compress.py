"""Compressed variants of a run's models, measured beside the fp32 originals.

For each model asked for (by default the teacher and the distilled student), rows of:

* ``fp32`` / torch: the model as trained, re-measured now so every row shares the conditions.
* ``fp16`` / torch: weights and activations in half precision. On a CPU many half kernels are
  slow or emulated, so its latency there is measured and reported as it is, not hoped for.
* ``pruned-50%`` / torch: L1 magnitude pruning of all conv and linear weights at once
  (``torch.nn.utils.prune.global_unstructured``), then ``prune.remove`` so the zeros are baked
  in. Its file is as large as the dense one and PyTorch runs it at dense speed (no sparse
  kernels): ``size_bytes`` is that dense file; ``size_sparse_bytes`` is an estimate of a sparse
  encoding (the non-zero fp32 values plus a 1-bit mask per pruned weight).
* ``fp32`` / onnxruntime: the exported ONNX model, the baseline of the int8 row.
* ``int8`` / onnxruntime: post-training static quantisation of that ONNX file with
  ``onnxruntime.quantization.quantize_static`` (QDQ, int8 weights per channel with the 7-bit
  ``reduce_range`` that keeps AVX2 CPUs exact, int8 activations), calibrated with MinMax on
  training images (no augmentation).

Every row has ``size_bytes`` (a file size unless said otherwise), ``accuracy`` on the full
validation split, ``delta_points`` against the fp32 torch row of the same model, and
``latency_ms`` measured like ``measure.measure_latency`` (median and p90 after warm-up); the torch
variants of a model are timed in turn, ONNX Runtime on its own.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from ..config import MIN_LATENCY_REPEATS
from ..device import release, resolve_device
from ..errors import DistillError, first_line
from ..files import write_atomic
from ..runs.store import RunStore
from ..training.measure import LATENCY_BUDGET_S, evaluate, large_batch_key, measure_latencies, time_in_turn
from ..vocab import DISTILLED, SCRATCH, TEACHER
from .export import RunFiles, build_model, load_data, open_run
from .onnx_graph import INPUT_NAME, OUTPUT_NAME, model_to_onnx, ort_session

log = logging.getLogger(__name__)

VARIANTS = ("fp32", "fp16", "pruned", "int8")
DEFAULT_ROLES = (TEACHER, DISTILLED)
CALIBRATION_IMAGES = 256
COMPRESSION_FILE = "compression.json"


# ---- sizes -----------------------------------------------------------------------------------------
def saved_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())`` in the model's own dtypes."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    return buf.getbuffer().nbytes


def _prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Conv1d))]


def prune_model(model: nn.Module, sparsity: float) -> tuple[nn.Module, dict]:
    """A copy of ``model`` with the smallest ``sparsity`` share of its conv/linear weights (by
    absolute value, across all layers at once) set to zero; returns (model, stats)."""
    check_sparsity(sparsity)
    # contiguous: torch's global pruning views all weights as one vector, which channels_last refuses
    pruned = copy.deepcopy(model).float().eval().to(memory_format=torch.contiguous_format)
    targets = _prunable(pruned)
    if not targets:
        raise DistillError("the model has no conv or linear weights to prune")
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=float(sparsity))
    for module, name in targets:
        prune.remove(module, name)  # bake the mask into the weight: a plain model again
    weights = [m.weight for m, _ in targets]
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    params = sum(p.numel() for p in pruned.parameters())
    all_zeros = sum(int((p == 0).sum()) for p in pruned.parameters())
    # sparse estimate: pruned weights as non-zero fp32 values + a 1-bit mask; everything else dense
    dense_bytes = saved_bytes(pruned)
    pruned_dense = total * 4
    pruned_sparse = (total - zeros) * 4 + (total + 7) // 8
    stats = {"sparsity": zeros / total, "sparsity_all_params": all_zeros / max(1, params),
             "pruned_weights": total, "zero_weights": zeros,
             "size_sparse_bytes": dense_bytes - pruned_dense + pruned_sparse}
    return pruned, stats


# ---- onnxruntime -----------------------------------------------------------------------------------
class ImageCalibration:
    """Feeds ``quantize_static`` batches of normalised training images (no augmentation)."""

    def __init__(self, data, count: int = CALIBRATION_IMAGES, batch_size: int = 32, seed: int = 0):
        from onnxruntime.quantization import CalibrationDataReader  # here: 1.1 s to import, for int8 alone

        class _Reader(CalibrationDataReader):
            def __init__(self, batches):
                self._it = iter(batches)

            def get_next(self):
                return next(self._it, None)

        n = int(data.train_x.shape[0])
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(n, generator=g)[:max(1, min(count, n))]
        x = data.normalize(data.train_x.cpu()[idx]).numpy().astype(np.float32)
        self.count = len(idx)
        self.reader = _Reader([{INPUT_NAME: x[i:i + batch_size]} for i in range(0, len(x), batch_size)])


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, data, calibration_images: int = CALIBRATION_IMAGES,
                  seed: int = 0) -> dict:
    """Static int8 quantisation (QDQ, per-channel weights) of an ONNX file, calibrated on
    training images. Returns what was done, for the row's notes."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static  # 1.1 s, int8 alone

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    source, preprocessed = fp32_path, False
    with tempfile.TemporaryDirectory() as tmp:
        try:  # shape inference + graph optimisation first, as ONNX Runtime recommends
            from onnxruntime.quantization.shape_inference import quant_pre_process

            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(fp32_path), str(pre))
            source, preprocessed = pre, True
        except Exception as exc:  # noqa: BLE001 - quantising the plain export still works
            log.warning("quant_pre_process failed (%s); quantising the export as it is", exc)
        calibration = ImageCalibration(data, calibration_images, seed=seed)
        # reduce_range: weights use 7 of their 8 bits. Without it, x86 CPUs lacking VNNI (AVX2 only)
        # saturate int16 sums in the u8 x s8 kernels ORT fuses QDQ into: on this project's 2-core AVX2
        # machine the mnist5k demo student lost 18 points per-channel without it, 0.1 with it.
        quantize_static(str(source), str(int8_path), calibration.reader, quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    return {"calibration_images": calibration.count, "preprocessed": preprocessed, "format": "QDQ",
            "weights": "int8 per channel (7-bit range)", "activations": "int8 per tensor", "calibration": "MinMax"}


def ort_accuracy(session, data, batch_size: int = 256) -> float:
    n = int(data.val_x.shape[0])
    right = 0
    for i in range(0, n, batch_size):
        x = data.normalize(data.val_x[i:i + batch_size].cpu()).numpy().astype(np.float32)
        logits = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        right += int((logits.argmax(1) == data.val_y[i:i + batch_size].cpu().numpy()).sum())
    return right / n


def ort_latency(session, input_shape: tuple[int, int, int], batch_sizes: Sequence[int] = (1, 64),
                repeats: int = 30, warmup: int = 5, budget_s: float = LATENCY_BUDGET_S, threads: Optional[int] = None) -> dict:
    """``measure.measure_latency`` for an onnxruntime session: the same warm-up, budget and stats."""
    rng = np.random.default_rng(0)
    out: dict = {}
    for b in batch_sizes:
        x = {INPUT_NAME: rng.standard_normal((int(b), *input_shape)).astype(np.float32)}
        run = lambda x=x: session.run([OUTPUT_NAME], x)  # noqa: E731 - one forward, to completion
        out[f"batch_{int(b)}"] = time_in_turn({"session": run}, repeats, warmup, budget_s)["session"]
    out["device"] = "cpu"
    out["threads"] = int(threads or torch.get_num_threads())
    return out


# ---- the rows ----------------------------------------------------------------------------------------
def _device_for(run: RunFiles, device: Optional[str]) -> torch.device:
    if device:
        return torch.device(device)
    want = run.results.get("device") or "cpu"
    try:
        return resolve_device(str(want).split(":")[0])
    except DistillError:
        return torch.device("cpu")  # trained on a GPU this machine lacks


def compression_rows(run: Any, roles: Sequence[str] = DEFAULT_ROLES, sparsity: float = 0.5,
                     variants: Sequence[str] = VARIANTS, calibration_images: int = CALIBRATION_IMAGES,
                     repeats: Optional[int] = None, latency_batch: Optional[int] = None, device: Optional[str] = None,
                     num_threads: Optional[int] = None, save: bool = True, store=None,
                     on_progress: Optional[Callable[[str], None]] = None) -> list[dict]:
    """Measure the compressed variants of ``roles`` of a run (see the module docstring).

    ``run``: a run id, folder, results dict or ``RunFiles``. Latency uses the run's latency
    settings unless ``repeats`` / ``latency_batch`` say otherwise; torch rows run on the run's
    device (CPU when it is not here), onnxruntime rows on the CPU, all with the CPU thread count
    the run's own latencies were measured with (``num_threads`` overrides). With ``save`` the
    rows are written to ``compression.json`` in the run folder (and recorded in the store).
    """
    check_settings(sparsity, calibration_images, repeats)
    run = open_run(run, store)
    if not run.dir.is_dir():  # deleted meanwhile (a page still showing it): do not write it back
        raise DistillError(f"run {run.run_id} has no folder any more (it was deleted?); nothing to compress")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise DistillError(f"unknown variants {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    say = on_progress or (lambda message: None)
    data = load_data(run)
    dev = _device_for(run, device)
    repeats = int(repeats or run.config.latency_repeats)
    batches = (1, int(latency_batch or run.config.latency_batch))
    shape = (data.in_channels, data.image_size, data.image_size)
    threads = int(num_threads or _run_threads(run) or torch.get_num_threads())
    work = run.dir / "exports" / "compressed"
    rows: list[dict] = []
    try:
        with _threads(threads):
            for role in roles:
                _measure_role(run, role, data, dev, shape, batches, repeats, threads, variants, sparsity,
                              calibration_images, work, rows, say)
    finally:
        data = None  # the page's thread keeps no GPU memory once it has measured
        release(dev)
    if save:
        save_rows(run, rows, {"sparsity": sparsity, "calibration_images": calibration_images, "roles": list(roles),
                              "threads": threads}, store)
    return rows


def check_sparsity(sparsity: float) -> None:
    if not 0 <= sparsity < 1:
        raise DistillError(f"sparsity must be in [0, 1), got {sparsity}")


def check_settings(sparsity: float, calibration_images: int, repeats: Optional[int] = None) -> None:
    """Refuse settings out of range before any work (the CLI checks them before a run trains)."""
    check_sparsity(sparsity)
    if calibration_images < 1:
        raise DistillError(f"calibration images must be at least 1, got {calibration_images}")
    if repeats is not None and repeats < MIN_LATENCY_REPEATS:
        raise DistillError(f"latency repeats must be at least {MIN_LATENCY_REPEATS} (a median of fewer timings "
                           f"is noise), got {repeats}")


def _run_threads(run: RunFiles) -> Optional[int]:
    for role in (DISTILLED, TEACHER, SCRATCH):
        threads = ((run.results.get(role) or {}).get("latency_ms") or {}).get("threads")
        if threads:
            return int(threads)
    return run.config.num_threads


@contextlib.contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _as_the_run_ran(model: nn.Module, run: RunFiles, dev: torch.device) -> nn.Module:
    """On the run's device, in its memory layout (channels_last by default)."""
    model = model.to(dev)
    return model.to(memory_format=torch.channels_last) if run.config.channels_last else model


def _measure_role(run: RunFiles, role: str, data, dev: torch.device, shape, batches, repeats: int, threads: int,
                  variants, sparsity: float, calibration_images: int, work: Path, rows: list[dict], say) -> None:
    """Append the rows of one model (fp32 torch first: the others are compared with it)."""
    model = build_model(run, role)
    arch = run.arch(role)
    mine: list[dict] = []

    def row(variant: str, engine: str, **values: Any) -> dict:
        r = {"model": role, "arch": arch, "variant": variant, "engine": engine,
             "device": str(dev) if engine == "torch" else "cpu", "size_kind": "file", "notes": "", **values}
        mine.append(r)
        return r

    # The torch variants are timed together, in turn (measure.measure_latencies), so that the
    # machine's other work weighs on them alike: fp32 and the pruned model run the same dense
    # kernels, and a difference between them would be noise. ONNX Runtime is timed on its own
    # below: a live session's thread pool spins and would slow the torch variants.
    timed: dict[str, nn.Module] = {}
    say(f"{role}: fp32")
    model = _as_the_run_ran(model, run, dev)  # the fp32 row is the run's model, timed as the run timed it
    fp32 = row("fp32", "torch", size_bytes=saved_bytes(model), accuracy=evaluate(model, data.to(dev), dev)["accuracy"],
               latency_ms=None, notes="as trained; size of the torch.save state_dict")
    timed["fp32"] = model
    if "fp16" in variants:
        say(f"{role}: fp16")
        half = copy.deepcopy(model).half().to(dev)
        note = "weights and activations in float16"
        if dev.type == "cpu":
            note += "; CPU half-precision kernels are often slower than fp32"
        try:
            row("fp16", "torch", size_bytes=saved_bytes(half), accuracy=evaluate(half, data.to(dev), dev)["accuracy"],
                latency_ms=None, notes=note)
            timed["fp16"] = half
        except (RuntimeError, NotImplementedError) as exc:
            first = first_line(exc, 160)
            row("fp16", "torch", size_bytes=saved_bytes(half), accuracy=None, latency_ms=None,
                notes=f"float16 does not run on {dev.type} here: {first}")
        del half
    if "pruned" in variants:
        say(f"{role}: pruned to {sparsity:.0%}")
        pruned, stats = prune_model(model, sparsity)
        pruned = _as_the_run_ran(pruned, run, dev)
        name = f"pruned-{round(100 * sparsity)}%"
        row(name, "torch", size_bytes=saved_bytes(pruned), size_kind="dense file",
            size_sparse_bytes=stats["size_sparse_bytes"], sparsity=stats["sparsity"],
            sparsity_all_params=stats["sparsity_all_params"], accuracy=evaluate(pruned, data.to(dev), dev)["accuracy"],
            latency_ms=None,
            notes=f"global L1 magnitude pruning of conv/linear weights, {stats['sparsity']:.0%} zeros; "
                  "size: the dense file (size_sparse_bytes: estimated non-zero fp32 values + 1-bit mask); "
                  "dense kernels, so no speed-up")
        timed[name] = pruned
        del pruned
    say(f"{role}: timing {', '.join(timed)} in turn")
    latencies = measure_latencies(timed, shape, dev, batches, repeats)
    for r in mine:
        if r["engine"] == "torch" and r["variant"] in latencies:
            r["latency_ms"] = latencies[r["variant"]]
    del timed, latencies
    model = model.cpu()
    if "int8" in variants:
        say(f"{role}: ONNX export and int8 static quantisation")
        try:
            _onnx_rows(model, role, data, shape, batches, repeats, threads, calibration_images, work, run, row)
        except Exception as exc:  # noqa: BLE001 - the other rows still stand; say why this one is missing
            first = first_line(exc)
            log.warning("int8 rows of %s failed: %s", role, first, exc_info=not isinstance(exc, DistillError))
            row("int8", "onnxruntime", size_bytes=None, accuracy=None, latency_ms=None,
                notes=f"could not be produced: {first}")
    for r in mine:
        same_engine = next((x for x in mine if x["variant"] == "fp32" and x["engine"] == r["engine"]), fp32)
        _relative(r, fp32, same_engine)
    rows.extend(mine)


def _onnx_rows(model: nn.Module, role: str, data, shape, batches, repeats: int, threads: int,
               calibration_images: int, work: Path, run: RunFiles, row) -> None:
    """The fp32 ONNX row and the int8 row made from it."""
    work.mkdir(parents=True, exist_ok=True)
    onnx_fp32 = model_to_onnx(model, work / f"{role}_fp32.onnx", shape)
    session = ort_session(onnx_fp32, threads)
    row("fp32", "onnxruntime", size_bytes=onnx_fp32.stat().st_size, accuracy=ort_accuracy(session, data),
        latency_ms=ort_latency(session, shape, batches, repeats, threads=threads), path=str(onnx_fp32),
        notes="the ONNX export run by onnxruntime on the CPU: the int8 row's baseline")
    del session  # its threads must not compete with the next measurement
    onnx_int8 = work / f"{role}_int8.onnx"
    how = quantize_int8(onnx_fp32, onnx_int8, data, calibration_images, seed=run.config.seed)
    session = ort_session(onnx_int8, threads)
    row("int8", "onnxruntime", size_bytes=onnx_int8.stat().st_size, accuracy=ort_accuracy(session, data),
        latency_ms=ort_latency(session, shape, batches, repeats, threads=threads), path=str(onnx_int8),
        quantization=how, notes=f"static int8 ({how['format']}, per-channel weights), calibrated on "
                                f"{how['calibration_images']} training images")
    del session


def _relative(row: dict, fp32_torch: dict, fp32_same_engine: dict) -> None:
    acc, ref = row.get("accuracy"), fp32_torch.get("accuracy")
    row["delta_points"] = None if acc is None or ref is None else 100.0 * (acc - ref)
    base = fp32_same_engine.get("size_bytes")
    row["size_vs_fp32"] = row["size_bytes"] / base if base and row.get("size_bytes") else None


def save_rows(run: RunFiles, rows: list[dict], settings: dict, store=None) -> Path:
    path = run.dir / COMPRESSION_FILE
    write_atomic(path, json.dumps({"run_id": run.run_id, "created_at": time.time(), **settings, "rows": rows}, indent=2))
    try:
        store = store if store is not None else RunStore()
        if store.get_run(run.run_id) is not None:
            store.add_artifact(run.run_id, "compression", path)
    except Exception:  # noqa: BLE001 - the file is written; the index is a convenience
        pass
    return path


def load_rows(run: Any, store=None) -> Optional[dict]:
    """The saved compression.json of a run ({"rows": [...], settings}), or None."""
    try:
        run = open_run(run, store)
        data = json.loads((run.dir / COMPRESSION_FILE).read_text())
    except (OSError, json.JSONDecodeError, DistillError):
        return None
    return data if isinstance(data, dict) else None


def format_rows(rows: list[dict]) -> str:
    """A plain-text table of compression rows (the CLI prints it)."""
    big = large_batch_key(*(r.get("latency_ms") for r in rows))
    head = ("model", "variant", "engine", "size KB", "vs fp32", "val acc", "Δ points", "ms b=1",
            f"ms b={big[6:]}" if big else "ms b=N")
    table = [head]
    for r in rows:
        lat = r.get("latency_ms") or {}
        size = f"{r['size_bytes'] / 1e3:.1f}" if r.get("size_bytes") else "-"
        if r.get("size_sparse_bytes"):
            size += f" ({r['size_sparse_bytes'] / 1e3:.1f} sparse)"
        table.append((
            r["model"], r["variant"], r["engine"], size,
            f"{r['size_vs_fp32']:.2f}x" if r.get("size_vs_fp32") else "-",
            f"{100 * r['accuracy']:.2f}%" if r.get("accuracy") is not None else "-",
            f"{r['delta_points']:+.2f}" if r.get("delta_points") is not None else "-",
            f"{lat['batch_1']['median']:.3f}" if "batch_1" in lat else "-",
            f"{lat[big]['median']:.2f}" if big and big in lat else "-"))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in table]
    lines.insert(1, "-" * len(lines[0]))
    notes = ["vs fp32: size against the fp32 row of the same engine (torch state_dict, or the fp32 ONNX file). "
             "Δ points: accuracy minus the fp32 torch row (validation split, top-1).",
             "pruned: size is the dense file; '(sparse)' estimates non-zero values + a 1-bit mask. "
             "Latency: median after warm-up; onnxruntime rows on the CPU."]
    return "\n".join(lines + [""] + notes)
