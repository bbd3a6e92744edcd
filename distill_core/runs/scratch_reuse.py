"""Reusing a scratch student: a sweep's trials that differ only in what the scratch student never
sees (T, alpha, the method, the distillation data) train it once.

``scratch_fields`` is what the scratch student depends on, its config's fields and the images its
split gives (``teacher_cache.data_fields``); every run records them as results.json's
``scratch_key``, taken when it starts. ``reusable_scratch`` checks that another run's scratch
student is the very one this run would train (the same recorded key, and trained in the same
precision on the same kind of device: ``precision`` and ``device`` ask, the hardware decides, so
the config alone cannot say; only the process that runs it can, and a sweep's Ray driver is not
that process) and returns its entry and checkpoints. What depends on this run's teacher is
settled once the teacher is ready (``adopt``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import torch

from ..config import RunConfig
from ..device import resolve_device
from ..errors import ConfigError, DistillError
from ..models.derive import DERIVED
from ..precision import AUTO, FP32, training_precision
from .teacher_cache import data_fields

# Config fields the scratch student does not depend on: it trains without a teacher, on plain
# images (the distill-data transform is the distilled student's), and the rest only measures or
# places files; the device counts as the kind it resolves to ("auto" is cuda on one machine, cpu
# on another), which ``reusable_scratch`` compares. Every other field (a new one too, by default)
# is in ``scratch_key``.
SCRATCH_FREE = frozenset({"teacher", "teacher_epochs", "teacher_source", "teacher_checkpoint", "cache_dir",
                          "method", "temperature", "alpha", "extra", "distill_data", "latency_batch",
                          "latency_repeats", "download", "out", "device"})
# A reused entry's figures measured against the teacher of the run that trained it
FIDELITY = ("val_agreement", "val_kl_teacher", "train_agreement", "train_kl_teacher", "train_fidelity_images")


def scratch_fields(config: RunConfig) -> dict:
    """What the scratch student depends on, as JSON values: two runs with the same fields (the
    seed is in them) train the very same scratch student, so a sweep trains it once and reuses it."""
    free = SCRATCH_FREE - {"teacher", "teacher_epochs", "teacher_source", "teacher_checkpoint", "cache_dir"} \
        if config.student == DERIVED else SCRATCH_FREE  # a derived student is cut from the teacher
    fields = {k: v for k, v in config.to_dict().items() if k not in free} | data_fields(config)
    return json.loads(json.dumps(fields, default=str))


def scratch_key(config: RunConfig, fields: Optional[dict] = None) -> str:
    """``scratch_fields`` as one string, to group trials by; ``fields``: those of ``config`` where
    the caller has them already (an image folder's are a listing of every file)."""
    return json.dumps(fields if fields is not None else scratch_fields(config), sort_keys=True)


def reusable_scratch(config: RunConfig, origin: str | Path, fields: Optional[dict] = None,
                     device: Optional[torch.device] = None) -> dict:
    """The scratch student of the run in folder ``origin``, for this config's run: its entry with
    ``"source": "reused"`` and ``"from_run"`` (the run that trained it), its checkpoints, and the
    hash of the teacher it was measured against (``"teacher_sha256"``, None if unrecorded).
    Refused when that run trained it with another recipe, data, seed, precision or kind of device.
    ``fields``: ``scratch_fields(config)`` where the caller has them (an image folder's are a listing).
    ``device``: the device this run trains on, given by the process that runs it; without it (a
    sweep's driver, which may have no GPU while its workers do), the kind of device and the
    precision are compared only where the config names them, not where "auto" leaves them to the
    hardware; the run compares them again when it starts."""
    folder = Path(origin).expanduser()
    try:
        theirs = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError):
        raise ConfigError(f"no finished run in {folder} to reuse the scratch student of") from None
    if not isinstance(theirs, dict):
        raise ConfigError(f"no finished run in {folder} to reuse the scratch student of")
    run = theirs.get("run_id")
    entry, artifacts = theirs.get("student_scratch"), theirs.get("artifacts") or {}
    files = {which: Path(artifacts.get(f"student_scratch_{which}") or folder / f"student_scratch_{which}.pt")
             for which in ("best", "last")}
    if not isinstance(entry, dict) or not all(f.is_file() for f in files.values()):
        raise ConfigError(f"run {run} in {folder} has no scratch student to reuse")
    not_this = "it is not the student this run would train"
    # The key as the run recorded it when it started: recomputed now, an image folder's listing
    # would be today's, not the one it trained on.
    other, mine = theirs.get("scratch_key"), fields if fields is not None else scratch_fields(config)
    if not isinstance(other, dict):
        raise ConfigError(f"run {run} does not record which data and recipe its scratch student trained with: "
                          f"{not_this}")
    differ = sorted(k for k in set(mine) | set(other) if mine.get(k) != other.get(k))
    if differ:
        words = {"folder": "image folder contents", "split": "split of the dataset"}
        raise ConfigError(f"the scratch student of run {run} was trained with another "
                          f"{', '.join(words.get(k, k) for k in differ)}: {not_this}")
    trained_in = (theirs.get("precision") or {}).get("train") or FP32  # a run from before bf16: fp32
    would = training_precision(config) if device is not None or config.precision != AUTO else None
    if would is not None and trained_in != would:
        raise ConfigError(f"the scratch student of run {run} trained in {trained_in}, and this run "
                          f"would train in {would}: {not_this}")
    # Its data order and augmentation come from torch.Generators on the run's device, and a CUDA
    # generator's stream is not a CPU one's for the same seed.
    ran_on = str(theirs.get("device") or "unknown").split(":")[0]
    here = device.type if device is not None else None if config.device == "auto" else config.device.split(":")[0]
    if here is not None and ran_on != here:
        raise ConfigError(f"the scratch student of run {run} trained on {ran_on}, and this run would train on "
                          f"{here} (another data order for the same seed): {not_this}")
    from_run = entry.get("from_run") if entry.get("source") == "reused" else run
    kept = {k: v for k, v in entry.items() if not k.startswith("latency_ms")}  # timed again, in this run's turn
    teacher = theirs.get("teacher") if isinstance(theirs.get("teacher"), dict) else {}
    return {"entry": {**kept, "source": "reused", "from_run": from_run}, "files": files,
            "teacher_sha256": teacher.get("weights_sha256")}


def reusable_here(config: RunConfig, origin: Optional[str | Path]) -> Optional[str | Path]:
    """``origin`` when its scratch student is the one ``config``'s run trains on this machine (the
    device it resolves to here), else None: a sweep's trial chosen on a driver that cannot tell
    (``reusable_scratch`` without ``device``) trains its own there rather than failing."""
    if origin is None:
        return None
    try:
        reusable_scratch(config, origin, device=resolve_device(config.device))
    except DistillError:
        return None
    return origin


def adopt(reuse: Optional[dict], teacher_sha256: str, init: str) -> tuple[Optional[dict], Optional[str]]:
    """``reuse`` when it stands with this run's teacher (hash ``teacher_sha256``), and None; else
    None and why: a student cut from the teacher (``init`` "teacher") started from other weights
    when the teacher that trained it was another, so this run trains its own, and says so (the
    reuse was asked for, a sweep's or a user's)."""
    if reuse is not None and init == "teacher" and reuse["teacher_sha256"] != teacher_sha256:
        theirs = (reuse["teacher_sha256"] or "unrecorded")[:12]
        return None, (f"not reused from run {reuse['entry'].get('from_run')}: it was cut from another teacher's "
                      f"weights (sha256 {theirs}, this run's {teacher_sha256[:12]}), so this run trains its own")
    return reuse, None


def reused_entry(reuse: dict, teacher_sha256: str, remeasure: Callable[[], dict]) -> dict:
    """The reused scratch student's entry for this run. Its fidelity was measured against the
    teacher of the run that trained it: when that teacher is not this one (by hash), the last
    epoch's figures are measured again against this one (``remeasure``, from the last checkpoint),
    and the history's per-epoch ones are emptied (no checkpoint of those epochs is kept);
    ``fidelity_note`` says so. Why the run that trained it did not reuse one (``not_reused``) is
    that run's story, not this one's."""
    entry = {k: v for k, v in reuse["entry"].items() if k != "not_reused"}
    if reuse["teacher_sha256"] == teacher_sha256:
        return entry
    history = [{**row, "val_agreement": None, "val_kl_teacher": None} for row in entry.get("history") or []]
    return {**{k: v for k, v in entry.items() if k not in FIDELITY}, **remeasure(), "history": history,
            "fidelity_note": f"reused from run {entry.get('from_run')}, which had another teacher: its agreement "
                             "with this run's teacher is measured at the last epoch only"}
