"""The Distill page's form: a draft RunConfig that survives page switches, presets, the URL.

Streamlit forgets a widget's value when a page stops drawing it, so the truth lives in
``st.session_state.draft`` (a RunConfig as a dict) and the widgets are re-seeded from it. The
draft is read from the URL once per browser session and written back on every run, so the
address bar always holds a link that restores the setup.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import streamlit as st

from distill_core import (DATASETS, DISTILL_DATA, FOLDER_IMAGE_SIZE, MODELS, OPTIMIZERS, PRECISIONS, SCHEDULES,
                          DistillError, Problem, RunConfig, available_devices, cached_teacher_meta, cached_teacher_path,
                          folder_val_count, image_files, list_cached_teachers, problems, split_problem, teacher_checkpoint_problem)

from . import fmt, urlstate
from .uploads import on_this_server

W = "cfg_"  # widget key prefix
FIELDS = ("dataset", "teacher", "student", "temperature", "alpha", "epochs", "teacher_epochs", "batch_size",
          "lr", "optimizer", "schedule", "distill_data", "device", "seed", "momentum", "weight_decay", "augment",
          "precision", "compile")
FLOATS = ("temperature", "alpha", "lr", "momentum", "weight_decay")
T_RANGE, ALPHA_RANGE = (0.0, 20.0), (0.0, 1.0)
TEACHER_MODES = {"train": "Train now", "cached": "Reuse a cached teacher", "upload": "Upload a state_dict"}


@dataclass(frozen=True)
class Preset:
    label: str
    config: RunConfig
    help: str


PRESETS = {
    "demo": Preset("1-minute CPU demo (offline)", RunConfig(),
                   "MNIST sample shipped with the app, a demo CNN teacher and a student over 100x smaller. "
                   "Runs anywhere, no download."),
    "cifar10_gpu": Preset("CIFAR-10 on GPU", RunConfig(
        dataset="cifar10", teacher="resnet56", student="resnet20", device="cuda", epochs=30, teacher_epochs=30,
        batch_size=256, lr=0.1, temperature=4.0, alpha=0.9),
        "ResNet-56 teaches ResNet-20 on CIFAR-10 (downloads 170 MB on first use). Needs a CUDA GPU."),
}


def options() -> dict[str, list[str]]:
    devices = ["auto", "cpu", "cuda"] + (["mps"] if "mps" in available_devices() else [])
    return {"dataset": DATASETS.names(), "teacher": MODELS.names(), "student": MODELS.names(),
            "optimizer": list(OPTIMIZERS), "schedule": list(SCHEDULES), "distill_data": list(DISTILL_DATA),
            "device": devices, "precision": list(PRECISIONS)}


def cached_teachers(dataset: str, data_dir: Optional[str] = None) -> list[dict]:
    """Cached teachers of ``dataset``; of an image folder, with ``data_dir``, only that folder's
    (a teacher of another folder was offered, and it taught other classes or failed to load)."""
    found = [t for t in list_cached_teachers(dataset=dataset) if Path(t["path"]).is_file()]
    if dataset == "imagefolder" and data_dir is not None:
        folder = str(Path(data_dir).expanduser().resolve()) if data_dir.strip() else None
        found = [t for t in found if t.get("data_dir") == folder]
    return found


def reused_teacher(config: RunConfig) -> Optional[dict]:
    """The cached teacher a "train now, reuse if cached" run will load instead of training, or
    None: said before Start, so that a run that trains only its students is no surprise."""
    if config.teacher_source != "auto":
        return None
    try:
        path = cached_teacher_path(config)
    except Exception:  # noqa: BLE001 - a config the page already calls invalid has no key
        return None
    meta = cached_teacher_meta(path) if path.is_file() else None
    return meta if meta and meta.get("teacher") == config.teacher else None


def teacher_mode_of(config: dict) -> str:
    if config.get("teacher_source") != "checkpoint":
        return "train"
    path = config.get("teacher_checkpoint")
    if any(t["path"] == path for t in cached_teachers(config.get("dataset"))):
        return "cached"
    return "upload"


def _widget_values(draft: dict) -> tuple[dict[str, Any], list[str]]:
    """What each widget shows for ``draft``; a value no widget can show is noted and replaced."""
    values: dict[str, Any] = {}
    notes: list[str] = []
    defaults = RunConfig().to_dict()
    for name in FIELDS:
        value = draft[name]
        if name in FLOATS and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        values[W + name] = value
    for name, allowed in options().items():
        if values[W + name] not in allowed:
            fallback = defaults[name] if defaults[name] in allowed else allowed[0]
            notes.append(f"{name} {values[W + name]!r} is not available here; showing {fallback!r} instead.")
            values[W + name] = fallback
    for name, (low, high) in (("temperature", T_RANGE), ("alpha", ALPHA_RANGE)):
        value = values[W + name]
        if not isinstance(value, float):
            value = float(defaults[name])
        if not low <= value <= high:
            clamped = min(high, max(low, value))
            notes.append(f"{name} = {value:g} is outside the slider's range [{low:g}, {high:g}]"
                         f"{' (T must be > 0)' if name == 'temperature' and value <= 0 else ''}"
                         f"{' (alpha is a share, between 0 and 1)' if name == 'alpha' else ''}; "
                         f"showing {clamped:g}. Check it before you start.")
            values[W + name] = clamped
    values[W + "data_dir"] = draft.get("data_dir") or ""
    values[W + "image_size"] = int(draft.get("image_size") or FOLDER_IMAGE_SIZE)
    values[W + "val_fraction"] = float(draft.get("val_fraction") or defaults["val_fraction"])
    mode = teacher_mode_of(draft)
    values[W + "teacher_mode"] = mode
    values[W + "reuse"] = draft.get("teacher_source") != "train"
    if mode == "cached":
        values[W + "cached"] = draft.get("teacher_checkpoint")
    return values, notes


def ensure_state() -> None:
    """Once per session, take the draft from the URL; on every run, re-seed forgotten widgets."""
    ss = st.session_state
    if "draft" not in ss:
        config, notes = urlstate.from_params(st.query_params.to_dict())
        if config.teacher_checkpoint and not on_this_server(config.teacher_checkpoint):
            notes.append("The link names a teacher checkpoint that was not uploaded to this server; "
                         "upload it here.")
            config = config.replace(teacher_checkpoint=None)
        ss.draft = config.to_dict()
        ss.uploaded_path = config.teacher_checkpoint if teacher_mode_of(ss.draft) == "upload" else None
        values, more = _widget_values(ss.draft)
        ss.form_notes = notes + more
    else:
        values, _ = _widget_values(ss.draft)
    for key, value in values.items():
        if key not in ss:
            ss[key] = value


def apply_preset(name: str) -> None:
    """Button callback: replace the whole form with a preset (callbacks run before the page)."""
    ss = st.session_state
    ss.draft = PRESETS[name].config.to_dict()
    ss.uploaded_path = None
    values, ss.form_notes = _widget_values(ss.draft)
    for key, value in values.items():
        ss[key] = value


def collect() -> RunConfig:
    """The config the widgets describe now, saved as the new draft."""
    ss = st.session_state
    values = dict(ss.draft)
    for name in FIELDS:
        values[name] = ss.get(W + name, values[name])
    values["data_dir"] = (ss.get(W + "data_dir") or "").strip() or None
    if values["dataset"] == "imagefolder":
        values["image_size"] = ss.get(W + "image_size", FOLDER_IMAGE_SIZE)
        values["val_fraction"] = ss.get(W + "val_fraction", RunConfig.val_fraction)
    else:  # options this dataset ignores are left out of its config (and its link)
        values["image_size"], values["val_fraction"] = None, RunConfig.val_fraction
    mode = ss.get(W + "teacher_mode", "train")
    if mode == "train":
        values["teacher_source"] = "auto" if ss.get(W + "reuse", True) else "train"
        values["teacher_checkpoint"] = None
    elif mode == "cached":
        values["teacher_source"] = "checkpoint"
        values["teacher_checkpoint"] = ss.get(W + "cached")
        entry = next((t for t in cached_teachers(values["dataset"]) if t["path"] == values["teacher_checkpoint"]),
                     None)
        if entry:
            values["teacher"] = entry.get("teacher", values["teacher"])
            if isinstance(entry.get("epochs"), int):  # what the reused teacher trained for, as recorded
                values["teacher_epochs"] = entry["epochs"]
    else:
        values["teacher_source"] = "checkpoint"
        values["teacher_checkpoint"] = ss.get("uploaded_path")
    if mode != "train" and not (isinstance(values["teacher_epochs"], int) and values["teacher_epochs"] >= 1):
        values["teacher_epochs"] = RunConfig.teacher_epochs  # its field is disabled: it must not block Start
    config = RunConfig(**values)
    ss.draft = config.to_dict()
    return config


def sync_url(config: RunConfig) -> None:
    want = urlstate.to_params(config)
    if st.query_params.to_dict() != want:
        st.query_params.from_dict(want)


def blocking_problems(config: RunConfig, upload_error: Optional[str] = None) -> list[Problem]:
    """Every reason Start stays disabled: the engine's checks plus what only this machine knows."""
    found = problems(config)
    have = available_devices()
    if config.device in ("cuda", "mps") and config.device not in have:
        name = "CUDA GPU" if config.device == "cuda" else "Apple MPS support"
        found.append(Problem("device", f"This machine has no {name} (it has: {', '.join(have)}). "
                                       "Choose device auto or cpu."))
    mode = teacher_mode_of(config.to_dict()) if config.teacher_source == "checkpoint" else "train"
    if config.teacher_source == "checkpoint":
        path = config.teacher_checkpoint
        if not path:  # the engine's words name config fields; these say what to do on this page
            found = [p for p in found if p.field != "teacher_checkpoint"]

        def teacher(message: str) -> None:
            found.append(Problem("teacher_checkpoint", message))

        if st.session_state.get(W + "teacher_mode") == "cached" and not path:
            what = "this image folder" if config.dataset == "imagefolder" else config.dataset
            teacher(f"There is no cached teacher for {what} yet. Train one (it is kept for reuse), or upload one.")
        elif not path:
            teacher("Upload the teacher's state_dict (a .pt file), or choose another teacher source.")
        elif not Path(path).is_file():
            teacher(f"The teacher checkpoint {Path(path).name} is no longer on this server; upload it again.")
        elif mode == "upload" and upload_error:
            teacher(upload_error)
        elif problem := teacher_checkpoint_problem(config):  # what the engine refuses (check_teacher_data)
            teacher(fmt.sentence(problem))
    if config.dataset == "imagefolder" and not config.data_dir:  # the engine's words name a config field
        found = [p for p in found if p.field != "data_dir"]
        found.append(Problem("data_dir", FOLDER_NEEDED))
    elif config.dataset == "imagefolder":
        listing = folder_listing_of(config.data_dir)
        if listing is None:
            found.append(Problem("data_dir", f"The image folder {config.data_dir} is a file, not a folder." if
                                 Path(config.data_dir).expanduser().is_file() else
                                 f"The image folder {config.data_dir} does not exist on this server."))
        elif problem := image_folder_problem(listing, config.data_dir, config.val_fraction):
            found.append(Problem("data_dir", problem))  # no images, one class: said before Start, not after the run fails
    return found


def _folder_stamp(folder: Path) -> tuple:
    """The folder's and its class folders' modification times: they change when a class or an
    image is added or removed, so a listing cached under them is redone exactly then."""
    try:
        return (folder.stat().st_mtime_ns,
                *sorted((d.name, d.stat().st_mtime_ns) for d in folder.iterdir() if d.is_dir()))
    except OSError:
        return ()


@st.cache_data(max_entries=32, show_spinner=False)
def folder_listing(folder: str, stamp: tuple) -> dict[str, int] | str:
    """Images per class of an image folder, or why it holds no usable classes. Cached by
    ``stamp``: listing every file of a large folder on each rerun of the Distill page (each widget
    touched) took a noticeable while. Counted by name, so a file that is not really an image is
    found by the run."""
    try:
        return {cls: len(files) for cls, files in image_files(Path(folder)).items()}
    except DistillError as exc:
        return fmt.sentence(str(exc))


def folder_listing_of(data_dir: Optional[str]) -> dict[str, int] | str | None:
    """``folder_listing`` of a path as typed; None when it names no folder on this server."""
    folder = Path(data_dir).expanduser() if data_dir else None
    if folder is None or not folder.is_dir():
        return None
    return folder_listing(str(folder), _folder_stamp(folder))


def folder_summary(data_dir: Optional[str]) -> Optional[str]:
    """What the run will read from an image folder: its classes with their image counts, and the
    sub-folders it leaves out for holding no images (they were dropped without a word)."""
    listing = folder_listing_of(data_dir)
    if not isinstance(listing, dict):
        return None
    folder = Path(data_dir).expanduser()
    empty = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")
                   and d.name not in listing)
    shown = ", ".join(f"{name} ({count})" for name, count in list(listing.items())[:12])
    more = f" and {len(listing) - 12} more" if len(listing) > 12 else ""
    text = f"{len(listing)} classes, {fmt.things(sum(listing.values()), 'image')}: {shown}{more}."  # 2 or more
    if empty:
        text += f" Left out, with no images: {', '.join(empty)}."
    return text


def image_folder_problem(listing: dict[str, int] | str, folder: str, val_fraction: float = 0.2) -> Optional[str]:
    """Why this image folder cannot train, or None (no images, one class, too few to split)."""
    if isinstance(listing, str):
        return listing
    problem = split_problem(Path(folder).expanduser(), list(listing.values()), val_fraction)
    return fmt.sentence(problem) if problem else None


def training_images(config: RunConfig) -> Optional[int]:
    """How many images the students train on (from the registry, or an image folder's listing)."""
    if config.dataset == "imagefolder":
        listing = folder_listing_of(config.data_dir)
        if not isinstance(listing, dict):
            return None
        total = sum(listing.values())
        return total - folder_val_count(total, len(listing), config.val_fraction)
    meta = DATASETS.meta(config.dataset) if config.dataset in DATASETS else {}
    return meta.get("train")


def batch_note(config: RunConfig) -> Optional[str]:
    """A warning, not a refusal: a batch larger than the training set trains, one step an epoch."""
    n = training_images(config)
    if n and isinstance(config.batch_size, int) and config.batch_size > n:
        return (f"Batch size {config.batch_size:,} is larger than the {n:,} training images: each epoch is a "
                "single step over all of them, so the students learn little per epoch. Batches of 32 to 256 "
                "suit most runs.")
    return None


def folder_classes(data_dir: Optional[str]) -> Optional[int]:
    """How many classes an image folder has, for the size estimate; None if it cannot tell."""
    listing = folder_listing_of(data_dir)
    return len(listing) if isinstance(listing, dict) else None


FOLDER_NEEDED = "Type the path of an image folder on this server: one sub-folder of images per class."

SECTIONS = {  # where the page shows a field's problems; "data" takes the rest (dataset, teacher)
    "folder": ("data_dir",),
    "loss": ("temperature", "alpha"),
    "device": ("device", "precision"),
    "recipe": ("epochs", "teacher_epochs", "batch_size", "lr", "weight_decay", "momentum", "seed", "optimizer",
               "schedule", "distill_data"),
}


# The engine names config fields ("teacher_epochs must be at least 1"); the page names its widgets.
FIELD_LABELS = {"teacher_epochs": "Teacher epochs", "epochs": "Student epochs", "batch_size": "Batch size",
                "lr": "Learning rate", "weight_decay": "Weight decay", "momentum": "Momentum (SGD)",
                "seed": "Seed", "temperature": "Temperature T", "latency_batch": "Latency batch",
                "latency_repeats": "Latency repeats", "precision": "Precision"}


def worded(problem: Problem) -> str:
    """A problem as the page says it: its widget's label for the field it names, a sentence."""
    return fmt.sentence(problem.worded(FIELD_LABELS.get(problem.field)))


def by_section(found: list[Problem]) -> dict[str, list[Problem]]:
    """Problems grouped by where the page shows them; "data" gets the rest (dataset, teacher)."""
    out: dict[str, list[Problem]] = {"data": [], "folder": [], "loss": [], "recipe": [], "device": []}
    for problem in found:
        section = next((s for s, fields in SECTIONS.items() if problem.field in fields), "data")
        out[section].append(problem)
    return out
