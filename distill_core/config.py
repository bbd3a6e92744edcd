"""One serialisable config describes a run completely.

The app builds a ``RunConfig`` from its widgets, the CLI from its flags or from a
``config.json``; both hand it to ``run_experiment``. Saving it beside the results is what makes
a run from the app repeatable from the CLI.
"""
from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .data.datasets import DATASETS
from .errors import ConfigError
from .files import write_atomic
from .methods import METHODS, option_problems
from .models import MODELS, has_features
from .models.derive import DERIVED, STUDENT_INITS, derive_problem, resolved_init

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "onecycle", "step")
# The distilled student's transfer-set transforms, each with one line of what it does (the CLI's
# help and the Distill page's say it from here).
DISTILL_DATA = {
    "none": "the training images as they are",
    "mask": "erase random boxes: the teacher explains what is left",
    "replace": "paste a box from another image (CutMix): soft labels for mixed images",
    "mixup": "blend two images: the teacher labels the blend",
}
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "auto")  # auto: bf16 where it is fast (precision.py), else fp32
TEACHER_SOURCES = ("auto", "train", "checkpoint")
MAX_TEMPERATURE = 100.0
MIN_TEMPERATURE = 0.01  # below it, logits / T overflow float32 (T = 1e-200 trained on NaN losses)
# Above the longest published KD schedules (Beyer et al.'s "patient" students: 9,600 epochs on
# Flowers-102); a typed 1e12 would otherwise start a run whose progress never moves.
MAX_EPOCHS = 10_000
MIN_LATENCY_REPEATS = 5  # a median of fewer timed runs is noise (measure.MIN_TIMED_RUNS is this)
MAX_SEED = 2**63 - 1  # the run store's SQLite INTEGER (torch.manual_seed takes up to 2**64 - 1)


@dataclass
class RunConfig:
    # what
    dataset: str = "mnist5k"
    teacher: str = "cnn_large"
    student: str = "cnn_tiny"  # a registered model, or "derived": cut from the teacher (models/derive.py)
    method: str = "kd"
    # a derived student: the share of each stage's blocks and of each layer's channels it keeps
    derive_depth: float = 0.5
    derive_width: float = 0.5
    student_init: str = "auto"  # teacher (its weight slices) or random; auto: teacher for a derived student
    weight_anchor: float = 0.0  # mu of mu * ||w_s - P(w_t)||^2, P(w_t) the teacher slice the student started from
    # the loss: alpha * T^2 * KL(teacher || student) + (1 - alpha) * CE
    temperature: float = 4.0
    alpha: float = 0.9
    # recipe; the scratch and the distilled student share every one of these
    epochs: int = 8
    teacher_epochs: int = 6
    batch_size: int = 128
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    augment: bool = True
    distill_data: str = "none"
    seed: int = 0
    # where
    device: str = "auto"
    channels_last: bool = True  # faster convolutions on CPU (benchmarks/throughput.py) and GPU
    # auto: bf16 where the hardware is fast at it, fp32 elsewhere (precision.py). The default because
    # the demo's accuracy over 3 seeds did not move beyond its spread (docs/benchmarks.md#precision).
    precision: str = "auto"
    compile: bool = False  # torch.compile the models: pays on a GPU over long runs, not in a CPU demo
    num_threads: Optional[int] = None
    # data
    data_dir: Optional[str] = None
    val_fraction: float = 0.2
    image_size: Optional[int] = None
    download: bool = True
    # teacher
    teacher_source: str = "auto"  # auto: reuse the cache or train; train: always train
    teacher_checkpoint: Optional[str] = None
    cache_dir: Optional[str] = None
    # measurement
    latency_batch: int = 64
    latency_repeats: int = 30
    # output
    out: Optional[str] = None
    extra: dict[str, Any] = field(default_factory=dict)  # method-specific options

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        # JSON written by hand (or by a tool) may say 8.0 for 8: a whole number is what it means.
        data = {k: int(v) if field_type(k)[0] is int and isinstance(v, float) and v.is_integer() else v
                for k, v in data.items()}
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except OSError as exc:  # a folder, no permission
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
        if isinstance(data, dict) and "config" in data and isinstance(data["config"], dict):
            data = data["config"]  # a results.json works too
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a JSON object")
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        write_atomic(path, self.to_json() + "\n")

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Problem:
    """One reason a config cannot run: the field it concerns (None: the run as a whole) and a
    sentence a user can act on. ``subject`` is how the sentence names the field at its start
    ("learning rate"), so a page can say its widget's label there instead."""

    field: Optional[str]
    message: str
    subject: str = ""

    def __str__(self) -> str:
        return self.message

    def worded(self, label: Optional[str]) -> str:
        """The sentence with ``label`` in place of its subject (when it has one)."""
        if label and self.subject and self.message.startswith(self.subject):
            return label + self.message[len(self.subject):]
        return self.message


def problems(config: RunConfig) -> list[Problem]:
    """Every reason this config cannot run, each with the field it concerns.

    The app shows them beside their widgets and keeps Start disabled; the CLI prints them all on
    one line. Checks that need a file or the network (checkpoints, downloads) happen later, in the run.
    """
    out = wrong_types(config)
    if out:  # the checks below assume text is text
        return out

    def check(ok: bool, field: str, message: str, subject: Optional[str] = None) -> None:
        """``message`` starts with ``subject`` (by default the field's own name) when it names it."""
        if not ok:
            subject = field if subject is None else subject
            out.append(Problem(field, message, subject if message.startswith(subject) else ""))

    def number(name: str, kind=float) -> Any:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            check(False, name, f"{name} must be a number, got {value!r}")
            return None
        if not math.isfinite(value):
            check(False, name, f"{name} must be a finite number, got {value!r}")
            return None
        if kind is int and not isinstance(value, int):  # 8.0 would reach range() and torch as a float
            check(False, name, f"{name} must be a whole number, got {value!r}")
            return None
        return value

    for attr, registry in (("dataset", DATASETS), ("teacher", MODELS), ("student", MODELS),
                           ("method", METHODS)):
        name = getattr(config, attr)
        more = [DERIVED] if attr == "student" else []  # a student cut from the teacher
        check(name in registry or name in more, attr,
              f"unknown {attr} {name!r}; choose one of: {', '.join(registry.names() + more)}")
    out.extend(derive_problems(config, number))

    t = number("temperature")
    if t is not None:
        said = "temperature T"
        check(t > 0, "temperature", f"temperature T must be > 0 (it divides the logits), got {t}", said)
        check(t <= 0 or t >= MIN_TEMPERATURE, "temperature", f"temperature T must be at least {MIN_TEMPERATURE:g} "
              f"(the logits divided by a smaller T overflow), got {t:g}", said)
        check(t <= MAX_TEMPERATURE, "temperature", f"temperature T must be at most {MAX_TEMPERATURE:g} (the soft "
              f"targets are flat long before that, and T^2 grows without bound), got {t:g}", said)
    a = number("alpha")
    if a is not None:
        check(0 <= a <= 1, "alpha", f"alpha must be in [0, 1] (0 = plain training, 1 = pure distillation), got {a}")
    for name in ("epochs", "teacher_epochs", "batch_size", "latency_batch", "latency_repeats"):
        v = number(name, int)
        if v is not None:
            # latency_repeats has its own floor below: one message, not "at least 1" over "at least 5"
            check(v >= 1 or name == "latency_repeats", name, f"{name} must be at least 1, got {v}")
            check(name != "batch_size" or v != 1, name, "batch_size must be at least 2: BatchNorm cannot normalise "
                                                        "a batch of one image")
            check(name != "latency_batch" or v != 1, name, "latency_batch must be at least 2: batch 1 is always "
                                                           "timed, this is the larger batch beside it")
            check(name != "latency_repeats" or v >= MIN_LATENCY_REPEATS, name,
                  f"latency_repeats must be at least {MIN_LATENCY_REPEATS}: a median of fewer timings is noise")
            if name.endswith("epochs"):
                check(v <= MAX_EPOCHS, name, f"{name} must be at most {MAX_EPOCHS:,}, got {v:g}")
    lr = number("lr")
    if lr is not None:
        check(lr > 0, "lr", f"learning rate must be > 0, got {lr}", "learning rate")
    wd = number("weight_decay")
    if wd is not None:
        check(wd >= 0, "weight_decay", f"weight_decay must be >= 0, got {wd}")
    m = number("momentum")
    if m is not None:
        check(0 <= m < 1, "momentum", f"momentum must be in [0, 1), got {m}")
    vf = number("val_fraction")
    if vf is not None:
        check(0 < vf < 1, "val_fraction", f"val_fraction must be between 0 and 1, got {vf}")
    seed = number("seed", int)
    if seed is not None:
        check(0 <= seed <= MAX_SEED, "seed", f"seed must be between 0 and {MAX_SEED:,}, got {seed}")
    if config.image_size is not None:
        size = number("image_size", int)
        if size is not None:
            check(8 <= size <= 256, "image_size", f"image_size must be between 8 and 256, got {size}")
    if config.num_threads is not None:
        n = number("num_threads", int)
        if n is not None:
            check(n >= 1, "num_threads", f"num_threads must be at least 1, got {n}")
    for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("distill_data", DISTILL_DATA),
                          ("device", DEVICES), ("precision", PRECISIONS), ("teacher_source", TEACHER_SOURCES)):
        value = getattr(config, name)
        check(value in allowed, name, f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    if config.precision == "bf16" and config.device in DEVICES:  # cheap: a cached CPU flag, a GPU query
        from .precision import bf16_problem  # it imports torch; config is read without it

        bf16 = bf16_problem(config.device)
        check(bf16 is None, "precision", str(bf16))
    if config.teacher_source == "checkpoint":
        check(bool(config.teacher_checkpoint), "teacher_checkpoint",
              "teacher_source 'checkpoint' needs a teacher_checkpoint path")
    else:
        check(not config.teacher_checkpoint, "teacher_checkpoint", f"teacher_checkpoint {config.teacher_checkpoint!r} "
              f"is set, but teacher_source {config.teacher_source!r}"
              f"{' (cache or train)' if config.teacher_source == 'auto' else ''} would not use it: set teacher_source "
              "to 'checkpoint', or leave the checkpoint out")
    if config.method in METHODS:
        out.extend(method_problems(config))
    if config.dataset == "imagefolder":
        check(bool(config.data_dir), "data_dir",
              "the imagefolder dataset needs a data_dir: a folder of class sub-folders")
    else:  # recorded but unused, a repeated or listed config would misstate the run
        check(config.image_size is None, "image_size", f"image_size applies to image folders only: "
              f"{config.dataset} has images of its own size")
        check(vf is None or vf == RunConfig.val_fraction, "val_fraction", f"val_fraction applies to image folders "
              f"only: {config.dataset} has a fixed validation split")
    return out


def derive_unused(name: str, student: str) -> Problem:
    """A derived student's setting given for a student that is not cut from the teacher."""
    return Problem(name, f"{name} applies to a derived student only (student 'derived'); {student} is not cut "
                         "from the teacher", name)


def derive_problems(config: RunConfig, number) -> list[Problem]:
    """A derived student's settings (fractions in (0, 1], a teacher it can be cut from), the
    initialisation, and the weight anchor (only from the teacher's weights: there is no P(w_t) else)."""
    found: list[Problem] = []
    derived = config.student == DERIVED
    for name, what in (("derive_depth", "each stage's blocks"), ("derive_width", "each layer's channels")):
        value = number(name)
        if value is None:
            continue
        if derived and not 0 < value <= 1:
            found.append(Problem(name, f"{name} must be in (0, 1] (the share of {what} kept), got {value:g}", name))
        elif not derived and value != getattr(RunConfig, name):  # recorded but unused, it would misstate the run
            found.append(derive_unused(name, config.student))
    if derived and (why := derive_problem(config.teacher)) is not None:
        found.append(Problem("student", why))
    if config.student_init not in STUDENT_INITS:
        found.append(Problem("student_init", f"student_init must be one of {', '.join(STUDENT_INITS)}, got "
                                             f"{config.student_init!r}", "student_init"))
        return found
    init = resolved_init(config.student, config.student_init)
    if init == "teacher" and not derived:
        found.append(Problem("student_init", f"student_init 'teacher' needs a student derived from the teacher "
                                             f"(student 'derived'): the weights of {config.teacher} do not fit "
                                             f"{config.student}", "student_init"))
    mu = number("weight_anchor")
    if mu is not None and mu < 0:
        found.append(Problem("weight_anchor", f"weight_anchor must be >= 0, got {mu:g}", "weight_anchor"))
    elif mu and init != "teacher":
        found.append(Problem("weight_anchor", "weight_anchor pulls the student towards the teacher slice it "
                                              "started from, and this student starts from random weights: derive "
                                              "it from the teacher with student_init 'teacher', or set the anchor "
                                              "to 0", "weight_anchor"))
    return found


def student_label(config: RunConfig | dict) -> str:
    """The student as the run store, the Runs page and ``runs`` name it: its architecture, or for a derived
    one what was kept and how it started, so teacher- and random-initialised runs tell apart."""
    cfg = config.to_dict() if isinstance(config, RunConfig) else config
    student = cfg.get("student")
    if student != DERIVED:
        return student
    number = lambda v: f"{v:g}" if isinstance(v, (int, float)) else str(v)  # noqa: E731
    init = resolved_init(DERIVED, cfg.get("student_init", "auto"))
    return (f"derived (depth {number(cfg.get('derive_depth', RunConfig.derive_depth))}, width "
            f"{number(cfg.get('derive_width', RunConfig.derive_width))}, {init} init)")


def repeat_command(config_file: str) -> str:
    """The terminal command that repeats the run saved in ``config_file``; the app shows it beside
    every config download (a test runs it through the CLI's parser)."""
    return f"python -m distill_core run --config {config_file}"


def field_type(name: str) -> tuple[type, bool]:
    """(base type, may be None) of a RunConfig field: ``Optional[int]`` is (int, True)."""
    hint = typing.get_type_hints(RunConfig)[name]
    args = typing.get_args(hint)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else str), True
    return (typing.get_origin(hint) or hint), False


def wrong_types(config: RunConfig) -> list[Problem]:
    """Text, switches and the options dict of the wrong JSON type (numbers are checked one by one).

    A config.json is written by hand too: "augment": "no" would otherwise read as true."""
    found = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        base, optional = field_type(f.name)
        if base is str:
            ok, want = isinstance(value, str) or (optional and value is None), "text"
        elif base is bool:
            ok, want = isinstance(value, bool), "true or false"
        elif base is dict:
            ok, want = isinstance(value, dict), "a JSON object"
        else:
            continue
        if not ok:
            found.append(Problem(f.name, f"{f.name} must be {want}, got {value!r}", f.name))
    return found


def method_problems(config: RunConfig) -> list[Problem]:
    """The method's options (field "extra": unknown, of the wrong type, out of range, at odds with
    the epochs) and the models it needs (field "method": a feature method on a model without
    feature maps, the MLP)."""
    method = METHODS.get(config.method)
    found = [Problem("extra", text) for text in option_problems(method, config.extra)]
    if not found and isinstance(config.epochs, int) and not isinstance(config.epochs, bool):
        options = {o.name: o.default for o in method.OPTIONS} | config.extra
        found += [Problem("extra", text) for text in method.run_problems(options, config.epochs)]
    if method.FEATURES:
        for role in ("teacher", "student"):
            arch = config.teacher if config.student == DERIVED else getattr(config, role)  # cut from it
            if arch in MODELS and not has_features(arch):
                found.append(Problem("method", f"the {config.method!r} method matches feature maps, and the {role} "
                                               f"{arch!r} has none (it is not convolutional): choose kd or dkd, or a "
                                               f"convolutional {role}"))
    return found


def validate(config: RunConfig) -> RunConfig:
    """Raise ``ConfigError`` with every problem at once, or return the config."""
    found = problems(config)
    if found:
        raise ConfigError("; ".join(map(str, found)))
    return config
