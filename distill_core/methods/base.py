"""The distillation-method registry.

A method turns (student, teacher, batch) into a loss. The trainer only ever calls the two
methods of ``DistillMethod`` below, so a feature-based method (FitNets hints, attention
transfer) is one new class here and no change to the trainer:

* ``teacher_targets(x)`` computes what the student is taught from. For logit methods it is a
  tensor with one row per image, so the trainer may compute it for many batches at once and
  slice it (one big inference pass per chunk is faster than a teacher call per step). A method
  whose targets are not row-sliceable (say, a dict of feature maps) sets ``sliceable = False``
  and is called once per batch.
* ``loss(x, targets, teacher_out)`` runs the student and returns ``(LossParts, student_logits)``.
  Owning the student's forward lets a feature method hook intermediate layers.

Precision (``distill_core/precision.py``): the student's forward runs under
``self.forward_precision()`` and the teacher's under ``self.label_precision()`` (bf16 autocast, or
nothing); the losses are computed outside them, in fp32. The trainer sets both per phase.

Methods are ``nn.Module``s: trainable parts (a hint regressor, say) are parameters that the
trainer optimises together with the student and leaves out of the student's checkpoint.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional

import torch
import torch.nn as nn

from .losses import LossParts
from ..precision import FP32, autocast
from ..registry import Registry

METHODS: Registry = Registry("distillation method")


class DistillMethod(nn.Module):
    sliceable = True  # teacher targets are one row per image
    OPTIONS: tuple[str, ...] = ()  # the keys of config.extra this method reads (self.options); others are refused

    def __init__(self, student: nn.Module, teacher: Optional[nn.Module], temperature: float = 4.0,
                 alpha: float = 0.9, **options: Any):
        super().__init__()
        self.student = student
        # The teacher is kept outside the module tree: never optimised, never saved with the student.
        self.__dict__["teacher"] = teacher
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.options = options
        self.precisions = (torch.device("cpu"), FP32, FP32)  # device, student's forward, teacher's

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

    def loss(self, x: torch.Tensor, targets: torch.Tensor, teacher_out: Any) -> tuple[LossParts, torch.Tensor]:
        raise NotImplementedError

    def extra_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters besides the student's (none for logit KD)."""
        student_ids = {id(p) for p in self.student.parameters()}
        return [p for p in self.parameters() if id(p) not in student_ids]


def create_method(name: str, student: nn.Module, teacher: Optional[nn.Module], **kwargs: Any) -> DistillMethod:
    return METHODS.get(name)(student, teacher, **kwargs)


def list_methods() -> list[dict]:
    return [{"name": name, **METHODS.meta(name)} for name in METHODS.names()]
