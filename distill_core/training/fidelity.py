"""How faithfully a student copies its teacher, and how well each model's confidence is calibrated.

Stanton et al. (NeurIPS 2021, "Does Knowledge Distillation Really Work?") measure fidelity with two
numbers, both on the same images for teacher and student:

* top-1 agreement: the share of images on which the student's argmax is the teacher's;
* predictive KL: the mean over images of KL(p_teacher || p_student) at T = 1.

Their finding, which the app shows: distillation raises the student's accuracy while the student
stays far from its teacher, even on the images it was taught on.

Expected calibration error: predictions sorted into ``ECE_BINS`` equal-width confidence bins,
    ECE = sum over bins of |bin| / n * |accuracy(bin) - mean confidence(bin)|
The bins themselves are kept: they are the reliability diagram.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

ECE_BINS = 15  # equal-width confidence bins, as in Guo et al. 2017 and most calibration papers


def agreement_sums(student_logits: torch.Tensor, teacher_log_probs: torch.Tensor) -> torch.Tensor:
    """[agreeing images, summed KL(p_t || p_s) at T = 1] of one batch, on its device: summed over
    batches and divided by the image count, they give ``val_agreement`` and ``val_kl_teacher``."""
    dtype = torch.promote_types(student_logits.dtype, torch.float32)  # at least fp32, even under bf16
    log_p_s = F.log_softmax(student_logits.to(dtype), dim=1)
    log_p_t = teacher_log_probs.to(dtype)
    agree = (log_p_s.argmax(1) == log_p_t.argmax(1)).sum().float()
    kl = F.kl_div(log_p_s, log_p_t, reduction="sum", log_target=True)
    return torch.stack([agree, kl])


def fidelity(student_probs: torch.Tensor, teacher_probs: torch.Tensor) -> dict:
    """Top-1 agreement and mean KL(p_t || p_s) (at T = 1) of two models' probabilities on the same images."""
    eps = torch.finfo(torch.float64).tiny  # a probability of exactly 0 would make log(0)
    p_s, p_t = student_probs.double(), teacher_probs.double()
    sums = agreement_sums(p_s.clamp_min(eps).log(), p_t.clamp_min(eps).log())
    n = max(1, p_s.shape[0])
    return {"agreement": float(sums[0]) / n, "kl_teacher": float(sums[1]) / n}


def calibration(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> dict:
    """ECE over ``bins`` equal-width confidence bins, and the bins (the reliability diagram):
    for each, its range, image count, accuracy and mean confidence (None where it is empty)."""
    probs = probs.detach().double().cpu()
    labels = torch.as_tensor(labels).detach().cpu().long().view(-1)
    confidence, preds = probs.max(dim=1)
    correct = (preds == labels).double()
    # Bin i holds confidences in (i/bins, (i+1)/bins]; a confidence of exactly 0 cannot occur.
    index = (confidence * bins).ceil().long().clamp(1, bins) - 1
    count = torch.bincount(index, minlength=bins).double()
    acc_sum = torch.bincount(index, weights=correct, minlength=bins)
    conf_sum = torch.bincount(index, weights=confidence, minlength=bins)
    n = max(1, labels.numel())
    filled = count > 0
    gap = (acc_sum[filled] - conf_sum[filled]).abs()  # |bin| * |accuracy - confidence|
    table = [{"low": i / bins, "high": (i + 1) / bins, "count": int(count[i]),
              "accuracy": float(acc_sum[i] / count[i]) if filled[i] else None,
              "confidence": float(conf_sum[i] / count[i]) if filled[i] else None} for i in range(bins)]
    return {"ece": float(gap.sum()) / n, "ece_bins": bins, "reliability": table}
