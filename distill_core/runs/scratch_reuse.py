"""Reusing a scratch student: a sweep's trials that differ only in what the scratch student never
sees (T, alpha, the method, the distillation data) train it once.

``scratch_key`` is what the scratch student depends on; ``reusable_scratch`` checks that another
run's scratch student is the very one this run would train (the same key, and trained in the same
precision: ``precision`` asks, the hardware decides, so the key alone cannot say) and returns its
entry and checkpoints.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..config import RunConfig
from ..errors import ConfigError
from ..models.derive import DERIVED
from ..precision import FP32, training_precision

# Config fields the scratch student does not depend on: it trains without a teacher, on plain
# images (the distill-data transform is the distilled student's), and the rest only measures or
# places files. Every other field (a new one too, by default) is in ``scratch_key``.
SCRATCH_FREE = frozenset({"teacher", "teacher_epochs", "teacher_source", "teacher_checkpoint", "cache_dir",
                          "method", "temperature", "alpha", "extra", "distill_data", "latency_batch",
                          "latency_repeats", "download", "out"})


def scratch_key(config: RunConfig) -> str:
    """What the scratch student depends on: two configs with the same key (the seed is in it)
    train the very same scratch student, so a sweep trains it once and reuses it."""
    free = SCRATCH_FREE - {"teacher", "teacher_epochs", "teacher_source", "teacher_checkpoint", "cache_dir"} \
        if config.student == DERIVED else SCRATCH_FREE  # a derived student is cut from the teacher
    return json.dumps({k: v for k, v in config.to_dict().items() if k not in free}, sort_keys=True,
                      default=str)


def reusable_scratch(config: RunConfig, origin: str | Path) -> dict:
    """The scratch student of the run in folder ``origin``, for this config's run: its entry with
    ``"source": "reused"`` and ``"from_run"`` (the run that trained it), and its checkpoints.
    Refused when that run trained it with another recipe, data or seed."""
    folder = Path(origin).expanduser()
    try:
        theirs = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError):
        raise ConfigError(f"no finished run in {folder} to reuse the scratch student of") from None
    entry, artifacts = theirs.get("student_scratch"), theirs.get("artifacts") or {}
    files = {which: Path(artifacts.get(f"student_scratch_{which}") or folder / f"student_scratch_{which}.pt")
             for which in ("best", "last")}
    if not isinstance(entry, dict) or not all(f.is_file() for f in files.values()):
        raise ConfigError(f"run {theirs.get('run_id')} in {folder} has no scratch student to reuse")
    mine, other = json.loads(scratch_key(config)), json.loads(scratch_key(RunConfig.from_dict(theirs["config"])))
    differ = sorted(k for k in set(mine) | set(other) if mine.get(k) != other.get(k))
    if differ:
        raise ConfigError(f"the scratch student of run {theirs.get('run_id')} was trained with another "
                          f"{', '.join(differ)}: it is not the student this run would train")
    trained_in = (theirs.get("precision") or {}).get("train") or FP32  # a run from before bf16: fp32
    if trained_in != (would := training_precision(config)):
        raise ConfigError(f"the scratch student of run {theirs.get('run_id')} trained in {trained_in}, and this run "
                          f"would train in {would}: it is not the student this run would train")
    from_run = entry.get("from_run") if entry.get("source") == "reused" else theirs.get("run_id")
    kept = {k: v for k, v in entry.items() if not k.startswith("latency_ms")}  # timed again, in this run's turn
    return {"entry": {**kept, "source": "reused", "from_run": from_run}, "files": files}
