"""The one loss convention of this project.

    loss = alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(y, s)

KL uses reduction="batchmean" (the true KL per sample; "mean" would also divide by the class
count). alpha = 0 is plain training, alpha = 1 pure distillation. The T^2 keeps the soft term's
share of the gradient about constant as T changes (Hinton et al. 2015, section 2): its gradients
scale as 1/T^2. torchdistill and Keras put alpha on the CE term instead, so their alpha=0.1 is
our alpha=0.9 (README, "The loss").
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class LossParts(NamedTuple):
    total: torch.Tensor  # what is backpropagated
    ce: torch.Tensor  # CE(y, s), unweighted
    kd: torch.Tensor  # T^2 * KL, unweighted (0 without a teacher)


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)), averaged over the batch, computed in fp32.

    ``F.kl_div`` wants the student's log-probabilities first and the teacher second; passing
    both as log-probabilities (log_target=True) avoids log(0) for confident teachers.
    """
    t = temperature
    log_p_student = F.log_softmax(student_logits.float() / t, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * (t * t)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, targets: torch.Tensor,
            temperature: float, alpha: float) -> LossParts:
    """Hinton KD. ``targets`` are class indices, or class probabilities for mixed batches."""
    ce = F.cross_entropy(student_logits.float(), targets)
    if teacher_logits is None:
        return LossParts(ce, ce, ce.new_zeros(()))
    kd = soft_kl(student_logits, teacher_logits, temperature)
    if alpha == 0:  # plain training, exactly; the soft term is still reported
        return LossParts(ce, ce, kd.detach())
    return LossParts(alpha * kd + (1 - alpha) * ce, ce, kd)
