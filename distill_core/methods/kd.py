"""Hinton KD: the student matches the teacher's temperature-softened class probabilities.

    loss = alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(y, s)
"""
from __future__ import annotations

from .base import METHODS, DistillMethod
from .losses import kd_loss


@METHODS.register("kd", paper="Hinton, Vinyals, Dean 2015, Distilling the Knowledge in a Neural Network",
                  summary="match the teacher's temperature-softened class probabilities")
class LogitKD(DistillMethod):
    def loss(self, x, targets, teacher_out):
        with self.forward_precision():
            logits = self.student(x)
        # Outside the autocast: kd_loss computes CE and the softened KL from fp32 logits.
        # Targets from teacher_targets come out of inference mode; clone() makes them usable in autograd.
        teacher_logits = None if teacher_out is None else teacher_out.clone()
        return kd_loss(logits, teacher_logits, targets, self.temperature, self.alpha), logits
