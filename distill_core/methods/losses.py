"""The one loss convention of this project, and the pieces logit methods share.

    loss = alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(y, s)

KL uses reduction="batchmean" (the true KL per sample; "mean" would also divide by the class
count). alpha = 0 is plain training, alpha = 1 pure distillation. The T^2 keeps the soft term's
share of the gradient about constant as T changes (Hinton et al. 2015, section 2): its gradients
scale as 1/T^2. torchdistill and Keras put alpha on the CE term instead, so their alpha=0.1 is
our alpha=0.9 (README, "The loss").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import CE_LABEL, Loss, Term, plain_ce

KD_LABEL = "α·T²·KL (soft targets)"
WEIGHTED_CE_LABEL = "(1−α)·CE (true labels)"


def standardize(logits: torch.Tensor) -> torch.Tensor:
    """Logit standardisation (Sun et al., CVPR 2024): each row z-scored, with the unbiased std and
    their 1e-7, so only the logits' shape within a row is taught, not their scale."""
    z = logits.float()
    return (z - z.mean(dim=1, keepdim=True)) / (z.std(dim=1, keepdim=True) + 1e-7)


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
            temperature: float, alpha: float, standardized: bool = False) -> Loss:
    """Hinton KD, as terms ``ce`` (weight 1 - alpha) and ``kd`` (weight alpha), both unweighted
    values. ``targets`` are class indices, or class probabilities for mixed batches. With
    ``standardized`` the KL compares z-scored logits (the CE keeps the raw ones)."""
    if teacher_logits is None:
        return plain_ce(student_logits, targets)
    ce = F.cross_entropy(student_logits.float(), targets)
    s, t = (standardize(student_logits), standardize(teacher_logits)) if standardized else \
        (student_logits, teacher_logits)
    kd = soft_kl(s, t, temperature)
    label = KD_LABEL.replace("KL", "KL of z-scored logits") if standardized else KD_LABEL
    if alpha == 0:  # plain training, exactly; the soft term is still reported
        return Loss(ce, (Term("ce", CE_LABEL, 1.0, ce), Term("kd", label, 0.0, kd.detach())))
    return Loss(alpha * kd + (1 - alpha) * ce,
                (Term("ce", WEIGHTED_CE_LABEL, 1 - alpha, ce), Term("kd", label, alpha, kd)))
