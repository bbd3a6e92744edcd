"""Trained teachers, kept for reuse.

Training the teacher is the slowest part of a run, and an exploration of T and alpha reuses
the same teacher many times. A teacher is stored under a key of everything that shaped it:
architecture, dataset (its loading options and, where this project splits it, the split), recipe,
seed and precision (bf16 weights are other weights). Change any of those and the key changes, so a
stale teacher is never reused.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Optional

import torch

from .. import paths
from ..config import RunConfig
from ..data.datasets import DATASETS, FOLDER_IMAGE_SIZE, image_files
from ..errors import DistillError, first_line
from ..files import save_atomic, write_atomic
from ..precision import BF16, training_precision

log = logging.getLogger(__name__)


def teacher_key_fields(config: RunConfig) -> dict:
    packaged = config.dataset in DATASETS and DATASETS.meta(config.dataset).get("packaged")
    fields = {
        "teacher": config.teacher, "dataset": config.dataset,
        # Options a dataset ignores stay out of its key: a data_dir or image_size left in a config
        # of the packaged mnist5k retrained an identical teacher.
        "data_dir": str(Path(config.data_dir).expanduser().resolve()) if config.data_dir and not packaged else None,
        "val_fraction": config.val_fraction if config.dataset == "imagefolder" else None,
        # None and 32 are the same size: the key stays the one teachers were cached under
        "image_size": config.image_size if config.dataset == "imagefolder" and config.image_size != FOLDER_IMAGE_SIZE
        else None, "epochs": config.teacher_epochs, "batch_size": config.batch_size,
        "lr": config.lr, "optimizer": config.optimizer, "momentum": config.momentum,
        "weight_decay": config.weight_decay, "schedule": config.schedule, "augment": config.augment,
        "seed": config.seed,
    }
    if training_precision(config) == BF16:  # absent for fp32: the keys of teachers cached before bf16 stay
        fields["precision"] = BF16
    return {**fields, **data_fields(config)}


def data_fields(config: RunConfig) -> dict:
    """Which images a run's split gives, beyond its config's fields: the split's version where this
    project splits the dataset (a model trained on another split may have seen this one's validation
    images), and an image folder's listing (the same folder with images added is other data). Part
    of the teacher cache's key and of the scratch student's (runs/scratch_reuse.py)."""
    fields = {}
    split = _split(config.dataset)
    if split:
        fields["split"] = split
    if config.dataset == "imagefolder":
        fields["folder"] = folder_fingerprint(config.data_dir)
    return fields


def folder_fingerprint(data_dir: Optional[str]) -> Optional[str]:
    """A hash of an image folder's contents as listed (class, file, size, modification time).

    Part of an image-folder teacher's key: with only the path in it, a teacher trained before images
    were added would be reused with some of the new validation images in its training set, and a
    class added would make the cached weights not fit the model. None for no usable folder.
    """
    if not data_dir:
        return None
    root = Path(data_dir).expanduser()
    try:
        listing = [(cls, str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns)
                   for cls, files in image_files(root).items() for f in files]
    except (DistillError, OSError):
        return None
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]


# What decides which images a teacher trained on, beside the dataset: a cached teacher whose
# values differ was trained on another split, so this run's validation images may be in its
# training set. The seed only splits image folders (the other datasets' splits are fixed).
SPLIT_FIELDS = ("dataset", "split", "data_dir", "val_fraction", "image_size", "folder")


def split_mismatch(meta: dict, config: RunConfig) -> Optional[str]:
    """Why the cached teacher ``meta`` must not teach ``config``'s run, or None if it may."""
    theirs, ours = meta.get("fields") if isinstance(meta.get("fields"), dict) else {}, teacher_key_fields(config)
    names = SPLIT_FIELDS + (("seed",) if config.dataset == "imagefolder" else ())
    differ = [n for n in names if theirs.get(n) != ours.get(n)]
    if not differ:
        return None
    words = {"data_dir": "folder", "val_fraction": "validation share", "image_size": "image size"}

    def shown(name: str, value) -> str:
        return f"{value or FOLDER_IMAGE_SIZE} px" if name == "image_size" else str(value)

    detail = "; ".join(
        "the folder's images have changed since" if n == "folder" else
        "its split was made another way" if n == "split" else
        f"{words.get(n, n)} {shown(n, theirs.get(n))} there, {shown(n, ours.get(n))} here" for n in differ)
    why = ("some of this run's validation images may have trained it" if set(differ) - {"image_size"}
           else "it learnt from pictures of another size")
    return (f"this cached teacher was trained on other data than this run's ({detail}): {why}. Train a teacher "
            "for this data (it is kept for reuse) instead")


def checkpoint_problem(config: RunConfig) -> Optional[str]:
    """``split_mismatch`` of the run's teacher checkpoint when it is a cached teacher of this model
    and dataset; None for any other checkpoint (nothing is known of what it trained on)."""
    if config.teacher_source != "checkpoint":
        return None
    meta = meta_for(config.teacher_checkpoint)
    if meta and meta.get("teacher") == config.teacher and meta.get("dataset") == config.dataset:
        return split_mismatch(meta, config)
    return None


def _split(dataset: str) -> Optional[str]:
    return DATASETS.meta(dataset).get("split") if dataset in DATASETS else None


def teacher_key(config: RunConfig, fields: Optional[dict] = None) -> str:
    """``fields``: ``teacher_key_fields(config)`` where the caller has them (an image folder's are
    a listing of the whole folder)."""
    blob = json.dumps(fields or teacher_key_fields(config), sort_keys=True).encode()
    return f"{config.teacher}-{config.dataset}-{hashlib.sha256(blob).hexdigest()[:12]}"


def cache_root(config: Optional[RunConfig] = None) -> Path:
    if config is not None and config.cache_dir:
        return Path(config.cache_dir).expanduser()
    return paths.teacher_cache_dir()


def cached_path(config: RunConfig) -> Path:
    """Where the teacher this config would reuse is (or would be) stored: its ``model.pt``."""
    return cache_root(config) / teacher_key(config) / "model.pt"


def lookup(config: RunConfig) -> Optional[tuple[dict, dict]]:
    """(state_dict, metadata) of a cached teacher for this config, or None: also for a damaged
    entry (logged), which the run then trains again and stores over."""
    path = cached_path(config)
    meta = read_meta(path.parent / "meta.json")
    if meta is None or not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:  # a sound entry this machine could not hold now: not to be trained again and stored over
        raise
    except Exception as exc:  # noqa: BLE001 - torch.load on damaged bytes raises almost anything
        # (UnpicklingError for zeros, KeyError, ValueError or IndexError for text)
        log.warning("the cached teacher %s cannot be read (%s): it is trained again", path, first_line(exc, 200))
        return None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        log.warning("the cached teacher %s is not a state_dict: it is trained again", path)
        return None
    return state, meta


def read_meta(path: Path) -> Optional[dict]:
    """A cache entry's meta.json, or None when it is missing, unreadable or not a JSON object."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):  # ValueError: JSONDecodeError, and bytes that are not UTF-8
        return None
    return meta if isinstance(meta, dict) else None


def meta_for(checkpoint: str | Path) -> Optional[dict]:
    """The cache record of a teacher file, when that file is a cached teacher's ``model.pt``."""
    path = Path(checkpoint).expanduser()
    return read_meta(path.parent / "meta.json") if path.name == "model.pt" else None


def store(config: RunConfig, state: dict, meta: dict) -> Path:
    """Write atomically, weights first, so a crash never leaves half a teacher, and a teacher
    is listed (by its meta.json) only once its weights are there."""
    fields = teacher_key_fields(config)
    key = teacher_key(config, fields)
    folder = cache_root(config) / key
    save_atomic(state, folder / "model.pt")
    meta = {**meta, "key": key, "fields": fields}
    write_atomic(folder / "meta.json", json.dumps(meta, indent=2))
    return folder / "model.pt"


def list_cached(config_dir: Optional[str] = None, dataset: Optional[str] = None) -> list[dict]:
    """Every cached teacher with its accuracy, for the app's "reuse a teacher" picker.

    With ``dataset``, only those trained on that dataset with the split it has now. Those of
    another seed stay listed (with their seed): picking one is refused with the reason
    (``checkpoint_problem``), which says more than a teacher that silently is not there.
    """
    root = Path(config_dir).expanduser() if config_dir else paths.teacher_cache_dir()
    found = []
    for meta_path in sorted(root.glob("*/meta.json")):
        meta = read_meta(meta_path)
        if meta is None:
            continue
        fields = meta.get("fields") if isinstance(meta.get("fields"), dict) else {}
        if dataset is not None and (fields.get("dataset") != dataset or fields.get("split") != _split(dataset)):
            continue
        found.append({"key": meta.get("key", meta_path.parent.name), "path": str(meta_path.parent / "model.pt"),
                      **fields, "accuracy": meta.get("accuracy"), "best_accuracy": meta.get("best_accuracy")})
    return found
