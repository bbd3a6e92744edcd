"""The Distill page's form: a draft RunConfig that survives page switches, presets, the URL.

Streamlit forgets a widget's value when a page stops drawing it, so the truth lives in
``st.session_state.draft`` (a RunConfig as a dict) and the widgets are re-seeded from it. The
draft is read from the URL once per browser session and written back on every run, so the
address bar always holds a link that restores the setup.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import streamlit as st

from distill_core import (DATASETS, DERIVED, DISTILL_DATA, DONE, FOLDER_IMAGE_SIZE, METHODS, MODELS, OPTIMIZERS,
                          PRECISIONS, SCHEDULES, STUDENT_INITS, DistillError, Option, Problem, RunConfig, RunStore,
                          available_devices, cached_teacher_meta, cached_teacher_path, folder_val_count,
                          list_cached_teachers, method_options, method_uses, problems, run_store_path, student_label,
                          teacher_checkpoint_problem)

from . import fmt, folders, urlstate
from .folders import folder_counts, folder_problem, readable
from .uploads import on_this_server, refusal

W = "cfg_"  # widget key prefix
FIELDS = ("dataset", "teacher", "student", "method", "temperature", "alpha", "epochs", "teacher_epochs", "batch_size",
          "lr", "optimizer", "schedule", "distill_data", "device", "seed", "momentum", "weight_decay", "augment",
          "precision", "compile", "derive_depth", "derive_width", "student_init", "weight_anchor")
FLOATS = ("temperature", "alpha", "lr", "momentum", "weight_decay", "derive_depth", "derive_width", "weight_anchor")
DERIVE_FIELDS = ("derive_depth", "derive_width", "student_init", "weight_anchor")  # a derived student's alone
T_RANGE, ALPHA_RANGE, FRACTION_RANGE = (0.0, 20.0), (0.0, 1.0), (0.05, 1.0)  # FRACTION: studio/derive_view.py
IMAGE_SIZE_RANGE, VAL_FRACTION_RANGE = (8, 256), (0.05, 0.5)  # the Distill page's fields
TEACHER_MODES = {"train": "Train now", "cached": "Reuse a cached teacher", "upload": "Upload a state_dict"}


@dataclass(frozen=True)
class Preset:
    label: str
    config: RunConfig
    help: str


# The offline demo's wall time on 2 CPU cores (docs/benchmarks.md), the one figure every page gives.
DEMO_SECONDS = 30

PRESETS = {
    "demo": Preset(f"{DEMO_SECONDS}-second CPU demo (offline)", RunConfig(),
                   "MNIST sample shipped with the app, a demo CNN teacher and a student over 100x smaller. "
                   "Runs anywhere, no download."),
    "cifar10_gpu": Preset("CIFAR-10 on GPU", RunConfig(
        dataset="cifar10", teacher="resnet56", student="resnet20", device="cuda", epochs=30, teacher_epochs=30,
        batch_size=256, lr=0.1, temperature=4.0, alpha=0.9),
        "ResNet-56 teaches ResNet-20 on CIFAR-10 (downloads 170 MB on first use). Needs a CUDA GPU."),
}


def options() -> dict[str, list[str]]:
    devices = ["auto", "cpu", "cuda"] + (["mps"] if "mps" in available_devices() else [])
    return {"dataset": DATASETS.names(), "teacher": MODELS.names(), "student": MODELS.names() + [DERIVED],
            "method": METHODS.names(), "student_init": list(STUDENT_INITS),
            "optimizer": list(OPTIMIZERS), "schedule": list(SCHEDULES), "distill_data": list(DISTILL_DATA),
            "device": devices, "precision": list(PRECISIONS)}


def cached_teachers(dataset: str, data_dir: Optional[str] = None) -> list[dict]:
    """Cached teachers of ``dataset``; of an image folder, with ``data_dir``, only that folder's
    (a teacher of another folder was offered, and it taught other classes or failed to load)."""
    found = [t for t in list_cached_teachers(dataset=dataset) if Path(t["path"]).is_file()]
    if dataset == "imagefolder" and data_dir is not None:
        readable_dir = readable(data_dir)
        folder = str(readable_dir.resolve()) if readable_dir else None
        found = [t for t in found if folder and t.get("data_dir") == folder]
    return found


def folder_unread(config: RunConfig) -> bool:
    """An image-folder config whose folder may not be read yet (a link's, unconfirmed; one outside
    the data roots): nothing that lists the folder runs for it."""
    return config.dataset == "imagefolder" and readable(config.data_dir) is None


def reused_teacher(config: RunConfig) -> Optional[dict]:
    """The cached teacher a "train now, reuse if cached" run will load instead of training, or
    None: said before Start, so that a run that trains only its students is no surprise."""
    if config.teacher_source != "auto" or folder_unread(config):
        return None
    try:
        path = cached_teacher_path(config)
    except Exception:  # noqa: BLE001 - a config the page already calls invalid has no key
        return None
    meta = cached_teacher_meta(path) if path.is_file() else None
    return meta if meta and meta.get("teacher") == config.teacher else None


def weak_teacher_hint(config: RunConfig) -> Optional[str]:
    """What earlier runs know of this teacher on this data: when this student, trained alone, beat a
    teacher trained with the same epochs, distilling from it again can only pull the student down.
    With no run store yet nothing is known, and none is created for asking."""
    if not run_store_path().is_file():
        return None
    try:
        store = RunStore(check_interrupted=False)
        rows = store.list_runs(status=DONE, dataset=config.dataset, limit=50)
        for row in rows:
            t, s = row["teacher_accuracy"], row["scratch_accuracy"]
            if row["teacher"] != config.teacher or row["student"] != student_label(config) or t is None or \
                    s is None or t >= s:
                continue
            earlier = (store.get_run(row["run_id"]) or {}).get("config") or {}
            if earlier.get("teacher_epochs") == config.teacher_epochs and earlier.get("data_dir") == config.data_dir:
                return weak_teacher_words(row["run_id"], t, s, config)
    except DistillError:  # no store, or a damaged one: said at the top of the page
        return None
    return None


def weak_teacher_words(run_id: str, t: float, s: float, config: RunConfig) -> str:
    return (f"In run {fmt.code(run_id)}, this teacher reached {fmt.percent(t)} after {config.teacher_epochs} "
            f"epochs, below the {config.student} trained alone ({fmt.percent(s)}): distillation could only "
            "pull the student down. Give the teacher more epochs, another learning rate, or a smaller teacher.")


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
            notes.append(f"{name} {fmt.code(repr(values[W + name]))} is not available here; showing "
                         f"{fmt.code(repr(fallback))} instead.")
            values[W + name] = fallback
    for name, (low, high) in (("temperature", T_RANGE), ("alpha", ALPHA_RANGE), ("derive_depth", FRACTION_RANGE),
                              ("derive_width", FRACTION_RANGE)):
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
    values.update(_option_values(draft, notes))
    values[W + "data_dir"] = draft.get("data_dir") or ""
    for name, (low, high), fallback in (("image_size", IMAGE_SIZE_RANGE, FOLDER_IMAGE_SIZE),
                                        ("val_fraction", VAL_FRACTION_RANGE, defaults["val_fraction"])):
        value = draft.get(name)
        shown = value if isinstance(value, (int, float)) and not isinstance(value, bool) else fallback
        if draft["dataset"] != "imagefolder" and value not in (None, defaults[name]):
            notes.append(f"{name} = {fmt.code(value)} applies to image folders only, and is left out for "
                         f"{draft['dataset']}.")
        elif not low <= shown <= high:
            shown = min(high, max(low, shown))
            notes.append(f"{name} = {value:g} is outside the field's range [{low:g}, {high:g}]; showing {shown:g}. "
                         "Check it before you start.")
        values[W + name] = int(shown) if name == "image_size" else float(shown)
    mode = teacher_mode_of(draft)
    values[W + "teacher_mode"] = mode
    values[W + "reuse"] = draft.get("teacher_source") != "train"
    if mode == "cached":
        values[W + "cached"] = draft.get("teacher_checkpoint")
    return values, notes


def option_key(method: str, option: Option) -> str:
    """A method option's widget: one per method, so switching methods keeps each one's settings."""
    return f"{W}opt_{method}_{option.name}"


def _fits_widget(option: Option, value: Any) -> bool:
    """Whether the option's widget can show ``value`` (its range is left to the engine's problems:
    an out-of-range value is shown, and refused beside the widget)."""
    if option.kind is bool:
        return isinstance(value, bool)
    if option.kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if option.kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return value in option.choices if option.choices else isinstance(value, str)


def _option_values(draft: dict, notes: list[str]) -> dict[str, Any]:
    """Every method's option widgets: the draft's values for its method, the defaults elsewhere."""
    values = {}
    given = draft.get("extra") if isinstance(draft.get("extra"), dict) else {}
    for method in METHODS.names():
        for option in method_options(method):
            value = given.get(option.name, option.default) if method == draft.get("method") else option.default
            if not _fits_widget(option, value):
                notes.append(f"{method} option {option.name} = {fmt.code(repr(value))} cannot be shown here; showing "
                             f"{fmt.code(repr(option.default))} instead.")  # the value may come from a link
                value = option.default
            values[option_key(method, option)] = float(value) if option.kind is float else value
    return values


def method_extra(method: str) -> dict[str, Any]:
    """``config.extra`` as the option widgets of ``method`` say: the options that differ from their
    defaults (so the demo's link stays bare and a config says what was changed)."""
    ss = st.session_state
    out = {}
    for option in method_options(method):
        value = ss.get(option_key(method, option), option.default)
        if value != option.default:
            out[option.name] = value
    return out


def config_from_link(params: Mapping[str, Any]) -> tuple[RunConfig, list[str]]:
    """(config, notes) from a link's parameters, with what a link may not make this server touch
    held back: its image folder waits for the person at the page to confirm it, and a teacher
    checkpoint the studio did not keep itself is dropped. Every page that takes a recipe from a
    link reads it here."""
    config, notes = urlstate.from_params(params)
    folders.note_link(config.data_dir)
    if config.teacher_checkpoint and not on_this_server(config.teacher_checkpoint):
        notes.append("The link names a teacher checkpoint that was not uploaded to this server; "
                     "upload it on the Distill page.")
        config = config.replace(teacher_checkpoint=None)
    return config, notes


def adopt(config: RunConfig, notes: list[str]) -> None:
    """Make ``config`` the session's draft and re-seed the widgets from it, with ``notes`` (a link's)
    and the form's own on values no widget can show. A link to this page, a preset, and the Sweep
    page's link or preset all come through here: both pages then show the same recipe."""
    ss = st.session_state
    ss.draft = config.to_dict()
    ss.uploaded_path = config.teacher_checkpoint if teacher_mode_of(ss.draft) == "upload" else None
    values, more = _widget_values(ss.draft)
    ss.form_notes = notes + more
    for key, value in values.items():
        ss[key] = value


def ensure_state() -> None:
    """Once per session, take the draft from the URL; on every run, re-seed forgotten widgets."""
    ss = st.session_state
    if "draft" not in ss:
        adopt(*config_from_link(st.query_params.to_dict()))
        return
    values, _ = _widget_values(ss.draft)
    for key, value in values.items():
        if key not in ss:
            ss[key] = value


def apply_preset(name: str) -> None:
    """Button callback: replace the whole form with a preset (callbacks run before the page)."""
    adopt(PRESETS[name].config, [])


def collect() -> RunConfig:
    """The config the widgets describe now, saved as the new draft."""
    ss = st.session_state
    values = dict(ss.draft)
    for name in FIELDS:
        values[name] = ss.get(W + name, values[name])
    values["extra"] = method_extra(values["method"])
    # A loss setting the method does not read is left at its default, whatever its disabled slider
    # holds: the config (and its link) describe the run, and two Starts of one setup stay one run.
    for name in ("temperature", "alpha"):
        if name not in method_uses(values["method"], values["extra"]) and values["method"] in METHODS:
            values[name] = getattr(RunConfig, name)
    if values["student"] != DERIVED:  # what this student ignores is left out of its config (and its link)
        values.update({name: getattr(RunConfig, name) for name in DERIVE_FIELDS})
    for name in ("derive_depth", "derive_width"):  # a slider's steps add up to 0.25000000000000006
        if isinstance(values[name], float):
            values[name] = round(values[name], 6)
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
        found.append(PageProblem("device", f"This machine has no {name} (it has: {', '.join(have)}). "
                                           "Choose device auto or cpu."))
    mode = teacher_mode_of(config.to_dict()) if config.teacher_source == "checkpoint" else "train"
    if config.teacher_source == "checkpoint":
        path = config.teacher_checkpoint
        if not path:  # the engine's words name config fields; these say what to do on this page
            found = [p for p in found if p.field != "teacher_checkpoint"]

        def teacher(message: str, page: bool = True) -> None:  # page: worded here, else the engine's text
            found.append((PageProblem if page else Problem)("teacher_checkpoint", message))

        if st.session_state.get(W + "teacher_mode") == "cached" and not path:
            what = "this image folder" if config.dataset == "imagefolder" else config.dataset
            teacher(f"There is no cached teacher for {what} yet. Train one (it is kept for reuse), or upload one.")
        elif not path:
            teacher(refusal("teacher") or "Upload the teacher's state_dict (a .pt file), or choose another teacher "
                                          "source.")
        elif not Path(path).is_file():
            teacher(f"The teacher checkpoint {fmt.code(Path(path).name)} is no longer on this server; upload it "
                    "again.")
        elif mode == "upload" and upload_error:
            teacher(upload_error, page=False)
        elif folder_unread(config):
            pass  # the folder's own problem says why; the check below would read it
        elif problem := teacher_checkpoint_problem(config):  # what the engine refuses (check_teacher_data)
            teacher(fmt.sentence(problem), page=False)
    if config.dataset == "imagefolder":  # the engine's words name a config field; these, the page's
        found = [p for p in found if p.field != "data_dir"]
        if problem := folder_problem(config.data_dir, config.val_fraction):
            found.append(PageProblem("data_dir", refusal("zip") if problem == folders.FOLDER_NEEDED and refusal("zip")
                                     else problem))
    return found


def server_problems(config: RunConfig) -> list[Problem]:
    """What only this server knows against ``config`` (its image folder, its teacher checkpoint,
    its devices), for a page that says the engine's own checks already (the Sweep page, through
    ``spec_problems``): ``blocking_problems`` without those. A field the engine faults keeps the
    engine's message alone, so each problem is said once."""
    engine = problems(config)
    faulted = {p.field for p in engine}
    return [p for p in blocking_problems(config) if p not in engine and p.field not in faulted]


def training_images(config: RunConfig) -> Optional[int]:
    """How many images the students train on (from the registry, or an image folder's listing)."""
    if config.dataset == "imagefolder":
        counts = folder_counts(config.data_dir)
        if not counts:
            return None
        total = sum(counts.values())
        return total - folder_val_count(total, len(counts), config.val_fraction)
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


SECTIONS = {  # where the page shows a field's problems; "data" takes the rest (dataset, teacher)
    "folder": ("data_dir",),
    "teacher": ("teacher_checkpoint",),  # right under the uploader or the cached teacher's list
    "method": ("method", "extra"),
    "student": ("student",) + DERIVE_FIELDS,
    "loss": ("temperature", "alpha"),
    "device": ("device", "precision"),
    "recipe": ("epochs", "teacher_epochs", "batch_size", "lr", "weight_decay", "momentum", "seed", "optimizer",
               "schedule", "distill_data"),
}


# The engine names config fields ("teacher_epochs must be at least 1"); the page names its widgets.
FIELD_LABELS = {"teacher_epochs": "Teacher epochs", "epochs": "Student epochs", "batch_size": "Batch size",
                "lr": "Learning rate", "weight_decay": "Weight decay", "momentum": "Momentum (SGD)",
                "seed": "Seed", "temperature": "Temperature T", "latency_batch": "Latency batch",
                "latency_repeats": "Latency repeats", "precision": "Precision", "derive_depth": "Blocks kept per stage",
                "derive_width": "Channels kept", "student_init": "Initialisation", "weight_anchor": "Weight anchor μ"}


@dataclass(frozen=True)
class PageProblem(Problem):
    """A problem this page words itself, in markdown already (with what came from outside in code
    spans); the engine's are plain text."""


def worded(problem: Problem) -> str:
    """A problem as the page says it: its widget's label for the field it names, a sentence, with
    the paths and values the engine quotes (typed, or from a link) shown as text."""
    if isinstance(problem, PageProblem):
        return problem.message
    return fmt.plain(fmt.sentence(problem.worded(FIELD_LABELS.get(problem.field))))


def by_section(found: list[Problem]) -> dict[str, list[Problem]]:
    """Problems grouped by where the page shows them; "data" gets the rest (dataset, teacher)."""
    out: dict[str, list[Problem]] = {"data": [], "folder": [], "teacher": [], "student": [], "method": [], "loss": [], "recipe": [],
                                     "device": []}
    for problem in found:
        section = next((s for s, fields in SECTIONS.items() if problem.field in fields), "data")
        out[section].append(problem)
    return out
