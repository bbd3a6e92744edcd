"""The distillation-method contract, its options and its registry.

A method turns (student, teacher, batch) into a loss. The trainer only ever calls these methods of
``DistillMethod``, so a new method (hints, attention transfer, a logit variant) is one class in one
module of this package and no change to the trainer:

* ``begin_epoch(epoch, epochs)`` at each epoch's start: a warmup or a two-stage schedule reads it.
* ``teacher_targets(x)`` computes what the student is taught from. For logit methods it is a
  tensor with one row per image, so the trainer may compute it for many batches at once and
  slice it (one big inference pass per chunk is faster than a teacher call per step). A method
  whose targets are not row-sliceable (feature maps) sets ``sliceable = False`` and is called
  once per batch.
* ``loss(x, y, teacher_out)`` runs the student and returns ``(Loss, student_logits)``. Owning the
  student's forward lets a feature method hook intermediate layers. ``Loss`` is the total that is
  backpropagated and its named ``Term``s, each with its label, its weight and its unweighted
  value; the terms' contributions (weight x value) add up to the total. The trainer, the history,
  the Live chart and Compare show the terms as the method reports them and never weigh anything
  themselves.
* ``stage``: the name of a training stage of the method's own, shown on the Live page (FitNets'
  hints-only epochs), or None.

Without a teacher (the scratch student, and the teacher's own training) every method is the same
plain cross-entropy, ``DistillMethod.loss`` below: a method never changes what "from scratch" means.

A method declares its ``OPTIONS`` (``Option``: name, type, default, range, one line of help): the
CLI's ``--option``, ``RunConfig``'s checks, the app's widgets and its URL all read that one list.
It declares its ``formula`` in LaTeX, which the Distill page shows with the user's values.

Precision (``distill_core/precision.py``): ``loss`` runs the method under
``self.forward_precision()`` and ``teacher_targets`` under ``self.label_precision()`` (bf16
autocast, or nothing); the trainer sets both per phase. A loss casts its logits and maps with
``.float()`` before computing anything from them, and uses element-wise and reduction ops that
autocast leaves in fp32, so the losses are fp32; a connector's own layers (FitNets' regressor)
run in the autocast like the student's.

Methods are ``nn.Module``s: trainable parts (a hint regressor, say) are parameters that the
trainer optimises together with the student and leaves out of the student's checkpoint.
"""
from __future__ import annotations

import contextlib
import difflib
import math
from dataclasses import dataclass
from typing import Any, Iterator, NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..precision import FP32, autocast
from ..registry import Registry

METHODS: Registry = Registry("distillation method")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Option:
    """One option of a method, as ``config.extra[name]``. ``kind`` is bool, int, float or str;
    numbers may have an inclusive range, text a list of choices."""

    name: str
    kind: type
    default: Any
    help: str
    low: Optional[float] = None
    high: Optional[float] = None
    choices: tuple[str, ...] = ()

    def problem(self, value: Any) -> Optional[str]:
        """Why ``value`` cannot be this option's, as the end of a sentence; None when it can."""
        if self.kind is bool:
            return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
        if self.kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"must be a number, got {value!r}"
            if not math.isfinite(value):
                return f"must be a finite number, got {value!r}"
            if self.kind is int and not float(value).is_integer():
                return f"must be a whole number, got {value!r}"
            if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                return f"must be in {self.range_text()}, got {value:g}"
            return None
        if not isinstance(value, str):
            return f"must be text, got {value!r}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}, got {value!r}"
        return None

    def parse(self, text: str) -> Any:
        """A value from text (a CLI flag, a link); raises ValueError saying why not."""
        text = str(text).strip()
        if self.kind is bool:
            if text.lower() in TRUE:
                return True
            if text.lower() in FALSE:
                return False
            raise ValueError("not true or false")
        if self.kind in (int, float):
            try:
                number = float(text)
            except ValueError:
                raise ValueError("not a number") from None
            if self.kind is int and number.is_integer():
                return int(number)
            return number
        return text

    def range_text(self) -> str:
        low = "-inf" if self.low is None else format_value(self.low)
        high = "inf" if self.high is None else format_value(self.high)
        return f"[{low}, {high}]"

    def describe(self) -> str:
        """'float in [0, 100], default 8': for ``python -m distill_core methods`` and the docs."""
        kind = {bool: "true/false", int: "int", float: "float"}.get(self.kind, "text")
        where = f" in {self.range_text()}" if self.kind in (int, float) and (self.low, self.high) != (None, None) \
            else f", one of {'|'.join(self.choices)}" if self.choices else ""
        return f"{kind}{where}, default {format_value(self.default)}"


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() and abs(value) >= 1e5 else f"{value:g}"  # 1,000,000, not 1e+06
    return str(value)


@dataclass(frozen=True)
class Term:
    """One named part of a loss. ``value`` is unweighted (the history's ``train_<name>``);
    ``contribution`` is what it adds to the total."""

    name: str
    label: str  # how charts name its contribution, e.g. "α·T²·KL (soft targets)"
    weight: float
    value: torch.Tensor

    @property
    def contribution(self) -> torch.Tensor:
        return self.weight * self.value


class Loss(NamedTuple):
    total: torch.Tensor  # what is backpropagated: the sum of the terms' contributions
    terms: tuple[Term, ...]

    def term(self, name: str) -> Term:
        return next(t for t in self.terms if t.name == name)


CE_LABEL = "CE (true labels)"


def plain_ce(logits: torch.Tensor, y: torch.Tensor) -> Loss:
    """Training without a teacher: CE alone, exactly ``F.cross_entropy`` (class indices, or
    class probabilities for mixed batches)."""
    ce = F.cross_entropy(logits.float(), y)
    return Loss(ce, (Term("ce", CE_LABEL, 1.0, ce),))


class DistillMethod(nn.Module):
    sliceable = True  # teacher targets are one row per image
    OPTIONS: tuple[Option, ...] = ()
    USES: tuple[str, ...] = ("temperature", "alpha")  # the run's loss settings it reads
    USES_NOTE = ""  # when an option changes what it reads, in words
    FEATURES = False  # reads intermediate feature maps: both models need feature taps
    LEGEND = ""  # what the symbols of ``formula`` stand for, in words (shown under it)

    def __init__(self, student: nn.Module, teacher: Optional[nn.Module], temperature: float = 4.0,
                 alpha: float = 0.9, input_shape: Optional[tuple[int, int, int]] = None, **options: Any):
        super().__init__()
        self.student = student
        # The teacher is kept outside the module tree: never optimised, never saved with the student.
        self.__dict__["teacher"] = teacher
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.input_shape = input_shape
        self.options = resolve_options(type(self), options)
        self.epoch, self.epochs = 1, 1
        self.precisions = (torch.device("cpu"), FP32, FP32)  # device, student's forward, teacher's
        self.anchor = None  # a WeightAnchor (methods/anchor.py): mu * ||w_s - P(w_t)||^2 added to the loss

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        """Called by the trainer as each epoch starts (1-based)."""
        self.epoch, self.epochs = epoch, epochs

    @property
    def stage(self) -> Optional[str]:
        return None

    def set_precision(self, device: torch.device, student: str, teacher: str) -> None:
        self.precisions = (torch.device(device), student, teacher)

    def forward_precision(self):
        return autocast(self.precisions[0], self.precisions[1])

    def label_precision(self):
        return autocast(self.precisions[0], self.precisions[2])

    @contextlib.contextmanager
    def compiled(self, enabled: bool = True) -> Iterator[None]:
        """The student and the teacher ``torch.compile``d while the trainer runs them (config.compile);
        the plain modules again after, so checkpoints and measurements never see the wrapper (its
        state_dict keys start with '_orig_mod.'). The parameters are the same tensors either way."""
        if not enabled:
            yield
            return
        student, teacher = self.student, self.teacher
        self.student = torch.compile(student)
        if teacher is not None:
            self.__dict__["teacher"] = torch.compile(teacher)
        try:
            yield
        finally:
            self.student = student
            self.__dict__["teacher"] = teacher

    @torch.inference_mode()
    def teacher_targets(self, x: torch.Tensor) -> Any:
        if self.teacher is None:
            return None
        with self.label_precision():
            logits = self.teacher(x)
        return logits.float()  # soft targets are computed from fp32 logits

    def loss(self, x: torch.Tensor, y: torch.Tensor, teacher_out: Any) -> tuple[Loss, torch.Tensor]:
        # The forwards run in the phase's precision; every loss casts its logits and maps to fp32.
        with self.forward_precision():
            if self.teacher is None:
                logits = self.student(x)
                found = plain_ce(logits, y)
            else:
                found, logits = self.distill(x, y, teacher_out)
        if self.anchor is not None:  # the weight anchor (methods/anchor.py), a term of its own, in fp32
            found = self.anchor.added_to(found, self.student)
        return found, logits

    def distill(self, x: torch.Tensor, y: torch.Tensor, teacher_out: Any) -> tuple[Loss, torch.Tensor]:
        raise NotImplementedError

    def extra_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters besides the student's (none for logit methods)."""
        student_ids = {id(p) for p in self.student.parameters()}
        return [p for p in self.parameters() if id(p) not in student_ids]

    @classmethod
    def formula(cls, temperature: float, alpha: float, options: dict) -> tuple[str, str]:
        """(the loss in symbols, the same with these values), LaTeX; ``options`` are resolved."""
        raise NotImplementedError

    @classmethod
    def uses(cls, options: dict) -> tuple[str, ...]:
        """Which of the run's loss settings (temperature, alpha) these options make it read."""
        return cls.USES

    @classmethod
    def run_problems(cls, options: dict, epochs: int) -> list[str]:
        """What these (resolved) options cannot do with the run's student epochs, as sentences."""
        return []


def option_problems(method: type, options: dict) -> list[str]:
    """Every reason ``options`` (a config's ``extra``) do not fit ``method``, as sentences."""
    declared = {o.name: o for o in getattr(method, "OPTIONS", ())}
    name = METHODS.name_of(method)
    out = []
    for key, value in options.items():
        option = declared.get(key)
        if option is None:
            close = difflib.get_close_matches(str(key), declared, n=1)
            known = f"its options: {', '.join(declared)}" if declared else "it takes none"
            out.append(f"the {name!r} method has no option {key!r}"
                       + (f" (did you mean {close[0]!r}?)" if close else "") + f"; {known}")
        elif (why := option.problem(value)) is not None:
            out.append(f"option {key} of {name!r} {why}")
    return out


def resolve_options(method: type, options: dict) -> dict:
    """Every declared option's value: the given ones (checked) over the defaults."""
    found = option_problems(method, options)
    if found:
        raise ConfigError("; ".join(found))
    out = {o.name: o.default for o in method.OPTIONS}
    for o in method.OPTIONS:
        if o.name in options:
            out[o.name] = o.kind(options[o.name]) if o.kind in (int, float) else options[o.name]
    return out


def create_method(name: str, student: nn.Module, teacher: Optional[nn.Module], **kwargs: Any) -> DistillMethod:
    return METHODS.get(name)(student, teacher, **kwargs)


def list_methods() -> list[dict]:
    """Each method's name, paper, summary and options, in the registry's order."""
    out = []
    for name in METHODS.names():
        cls = METHODS.get(name)
        out.append({"name": name, **METHODS.meta(name), "options": list(cls.OPTIONS), "uses": cls.USES,
                    "uses_note": cls.USES_NOTE, "features": cls.FEATURES})
    return out


def method_options(name: str) -> tuple[Option, ...]:
    """The options ``name`` declares (none for an unknown method)."""
    return METHODS.get(name).OPTIONS if name in METHODS else ()


def method_formula(name: str, temperature: float, alpha: float, options: dict) -> tuple[str, str]:
    """(symbols, values) LaTeX of a method's loss, its options' defaults filled in."""
    cls = METHODS.get(name)
    given = {k: v for k, v in options.items() if any(o.name == k for o in cls.OPTIONS)}
    resolved = {o.name: o.default for o in cls.OPTIONS} | given
    return cls.formula(temperature, alpha, resolved)


def method_legend(name: str) -> str:
    """What the symbols of ``name``'s formula stand for, and what the scratch student trains on."""
    return f"{METHODS.get(name).LEGEND} The scratch student is trained with CE alone: the same recipe, no teacher."


def method_uses(name: str, options: dict) -> tuple[str, ...]:
    """Which of the run's loss settings (temperature, alpha) ``name`` reads with these options."""
    cls = METHODS.get(name)
    known = {o.name for o in cls.OPTIONS}
    return cls.uses({o.name: o.default for o in cls.OPTIONS} | {k: v for k, v in options.items() if k in known})


def options_text(name: str, options: dict, everything: bool = False) -> str:
    """'b = 8, warmup = 2': the options that differ from their defaults (all of them with
    ``everything``), as Compare's header and the Runs table say them."""
    if name not in METHODS:
        return ", ".join(f"{k} = {format_value(v)}" for k, v in options.items())
    shown = []
    for o in METHODS.get(name).OPTIONS:
        value = options.get(o.name, o.default)
        if everything or value != o.default:
            shown.append(f"{o.name} = {format_value(value)}")
    return ", ".join(shown)
