"""The weight anchor: ``mu * ||w_s - P(w_t)||^2``, the seed's weight-space objective for a student
cut from its teacher (models/derive.py), where ``P(w_t)`` is the teacher slice it started from.

The seed writes the whole objective as ``||w_s - w_t||^2 + lambda ||w_s||^2``: its second term is
the weight decay every recipe here already has (``weight_decay``), so only the first is new. It is
one more named term of the loss (``anchor``), added to whatever the method computes, so the
history, the Live chart and Compare show it like any other. A run gives it to both students,
scratch and distilled: it is part of the recipe they share, and the KD gain still measures the
teacher's soft targets alone.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .base import Loss, Term

ANCHOR_LABEL = "μ·‖w_s − P(w_t)‖² (weight anchor)"


class WeightAnchor:
    """``mu`` and ``reference``: a tensor per student parameter name, on the student's device."""

    def __init__(self, mu: float, reference: dict[str, torch.Tensor]):
        self.mu = float(mu)
        self.reference = {k: v.detach() for k, v in reference.items()}

    def value(self, model: nn.Module) -> torch.Tensor:
        """The unweighted term, ``sum over parameters of ||w - P(w_t)||^2``, in fp32."""
        model = getattr(model, "_orig_mod", model)  # torch.compile's wrapper (--compile) prefixes the names
        params = dict(model.named_parameters())
        missing = sorted(set(self.reference) ^ set(params))
        if missing:
            raise ValueError(f"the weight anchor does not fit this model: {', '.join(missing[:3])}")
        return torch.stack([(params[k].float() - r.float()).pow(2).sum() for k, r in self.reference.items()]).sum()

    def added_to(self, loss: Loss, model: nn.Module) -> Loss:
        value = self.value(model)
        return Loss(loss.total + self.mu * value, (*loss.terms, Term("anchor", ANCHOR_LABEL, self.mu, value)))
