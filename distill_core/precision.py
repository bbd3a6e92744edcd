"""Training precision: fp32, or bfloat16 autocast where the hardware computes it fast.

``RunConfig.precision`` asks for one of ``fp32``, ``bf16`` or ``auto``; ``resolve_precision``
turns that into what a run does, once, at its start, and the run records it (results.json's
"precision", and each model entry's):

* ``train``: the precision of the forward passes of the model being trained. bf16 is
  ``torch.autocast(device, torch.bfloat16)`` around the forward passes only: the parameters, their
  gradients and the optimizer state stay fp32, and the losses (CE, the softened KL) are computed
  in fp32 (every loss casts the logits and feature maps with ``.float()`` first).
* ``teacher_labels``: the frozen teacher's labelling pass (inference only). It runs in bf16
  wherever bf16 is fast, whatever the student trains in: on the development machine (2 cores
  with AMX) cnn_large labelled 2.8x more images a second in bf16 (18,900 against 6,600 at
  batch 256, channels_last), and the default run's distilled student over seeds 0-2 came out
  within its seed-to-seed spread of the one taught with fp32 labels (docs/benchmarks.md#precision,
  benchmarks/precision.py). Its soft targets are computed from the logits in fp32.
* ``evaluated`` and ``timed``: accuracy and latency are always measured in fp32, the precision the
  checkpoints are saved and exported in.

Where bf16 is fast: a CUDA GPU with native bf16 (compute capability 8.0 and later), or a CPU with
AMX (``amx_bf16``: Sapphire Rapids and later Xeons). A CPU with only AVX512-BF16 runs bf16 too,
so ``bf16`` is accepted there, but ``auto`` keeps fp32 (nothing here measured it). ``bf16`` is
refused on a CPU with neither (autocast would emulate it, slower than fp32), on a GPU without
native bf16, and on Apple MPS.
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import asdict, dataclass
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

import torch

FP32, BF16, AUTO = "fp32", "bf16", "auto"


@functools.lru_cache(maxsize=None)
def cpu_bf16_features() -> dict:
    """Which bf16 instructions this CPU has, and where that was read.

    ``torch.cpu.get_capabilities()`` (cpuinfo, as torch itself sees the CPU) where torch has it;
    else the flags of /proc/cpuinfo (Linux); else nothing is known, which counts as none."""
    caps = None
    with contextlib.suppress(Exception):  # a private-looking corner of torch: never let it stop a run
        caps = torch.cpu.get_capabilities()
    if isinstance(caps, Mapping) and "amx_bf16" in caps:
        return {"amx_bf16": bool(caps.get("amx_bf16")), "avx512_bf16": bool(caps.get("avx512_bf16")),
                "source": "torch.cpu.get_capabilities()"}
    flags: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    return {"amx_bf16": "amx_bf16" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "source": "/proc/cpuinfo" if flags else "unknown (no capability query, no /proc/cpuinfo)"}


def cuda_native_bf16() -> bool:
    """A CUDA GPU with bf16 in hardware (compute capability 8.0+); an older one only emulates it."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def bf16_support(device: torch.device) -> tuple[bool, bool, str]:
    """(bf16 runs here, bf16 is fast here, what was detected), for ``device``."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if cuda_native_bf16():
            return True, True, f"{name} has native bf16"
        return False, False, f"{name} has no native bf16 (compute capability below 8.0)"
    if device.type == "cpu":
        f = cpu_bf16_features()
        found = [name for name in ("amx_bf16", "avx512_bf16") if f[name]]
        said = f"this CPU has {' and '.join(found) if found else 'neither amx_bf16 nor avx512_bf16'} ({f['source']})"
        return bool(found), f["amx_bf16"], said
    return False, False, f"bf16 autocast is not supported on {device.type}"


def bf16_problem(device_name: str) -> Optional[str]:
    """Why ``precision`` bf16 cannot run on the device a config names (auto: the one it would
    pick), or None. An absent device is left to the device check, which says so already."""
    from .device import resolve_device
    from .errors import DeviceError

    try:
        device = resolve_device(device_name)
    except DeviceError:
        return None
    runs, _, detected = bf16_support(device)
    if runs:
        return None
    return f"precision bf16 is not supported here: {detected}; use fp32, or auto (bf16 where it is fast)"


@dataclass(frozen=True)
class Precision:
    asked: str
    train: str  # the trained model's forward passes
    teacher_labels: str  # the frozen teacher's labelling pass
    reason: str
    evaluated: str = FP32
    timed: str = FP32

    def to_dict(self) -> dict:
        return asdict(self)

    def entry(self, role: str) -> dict:
        """What a model entry records: the precision it trained in, and the one it was measured in."""
        out = {"train": self.train, "evaluated": self.evaluated, "timed": self.timed}
        if role == "student_kd":
            out["teacher_labels"] = self.teacher_labels
        return out


def resolve_precision(asked: str, device: torch.device) -> Precision:
    """What a run asking for ``asked`` does on ``device``; raises ``ConfigError`` for bf16 where
    it cannot run (``problems`` says so before a run; this is the check at its start)."""
    from .errors import ConfigError

    device = torch.device(device)
    runs, fast, detected = bf16_support(device)
    labels = BF16 if fast else FP32
    if asked == BF16:
        if not runs:
            raise ConfigError(f"precision bf16 is not supported here: {detected}; use fp32, or auto "
                              "(bf16 where it is fast)")
        return Precision(asked, BF16, BF16, f"bf16 as asked; {detected}")
    if asked == AUTO:
        if fast:
            return Precision(asked, BF16, BF16, f"auto: bf16, as {detected}")
        return Precision(asked, FP32, FP32, f"auto: fp32, as {detected}")
    return Precision(asked, FP32, labels, "fp32 as asked" + (
        f"; the teacher labels in bf16, as {detected}" if fast else ""))


def training_precision(config) -> str:
    """The precision ``config``'s models would train in on this machine ("fp32" or "bf16"),
    without raising: for the teacher cache's key, which is computed before a run too."""
    if config.precision == FP32:
        return FP32
    from .device import resolve_device
    from .errors import DistillError

    try:
        return resolve_precision(config.precision, resolve_device(config.device)).train
    except DistillError:
        return BF16 if config.precision == BF16 else FP32


def describe_precision(precision: Mapping) -> str:
    """results.json's "precision" in one line: what trained in what, what was measured in, and why."""
    labels = precision.get("teacher_labels")
    return (f"precision: trained in {precision.get('train')}"
            + (f", the teacher's labels in {labels}" if labels and labels != precision.get("train") else "")
            + f"; accuracy and latency in {precision.get('timed', 'fp32')} ({precision.get('reason')})")


def autocast(device: torch.device, precision: str):
    """The context for forward passes in ``precision``: bf16 autocast, or nothing at all for fp32
    (not a disabled autocast: that still costs a dispatch per op)."""
    if precision == BF16:
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
