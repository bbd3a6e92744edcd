"""Decoupled KD (Zhao et al., CVPR 2022): KD split into a target-class and a non-target part.

    loss = CE(y, s) + min(epoch / warmup, 1) * (a * TCKD + b * NCKD)

* TCKD: T^2 * KL between the binary distributions [p_y, 1 - p_y] of teacher and student, at T;
* NCKD: T^2 * KL between teacher and student softmax over the other classes only (the target's
  logit masked out, as mdistiller subtracts 1000 from it);
* both summed over classes and averaged over the batch, as mdistiller's ``dkd_loss``.

The defaults are mdistiller's CIFAR-100 ones (a = 1, b = 8, CE weight 1; T is the run's, 4 by
default as theirs). Their warmup is 20 of 240 epochs; ours is 2 epochs (of the default 8), so the
first epoch runs at half weight, the rest at full: an epoch-counted warmup as theirs (from 1), the
shortest that still ramps. alpha is not used: DKD weighs its own terms. With mixed images
(``distill_data`` replace or mixup) the target class is the one with the larger share.

With ``standardize`` (logit standardisation, Sun et al., CVPR 2024) both rows of logits are z-scored
before TCKD and NCKD; CE keeps the raw logits, and a, b and T stay as set. Sun et al. pair it with a
base temperature of 2 and multiply a and b by 9 for DKD; set those here to follow them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import CE_LABEL, METHODS, DistillMethod, Loss, Option, Term
from .kd import STANDARDIZE
from .losses import standardize


def dkd_parts(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
              temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(TCKD, NCKD), each T^2 * KL summed over classes and averaged over the batch, in fp32.

    The binary log-probabilities are computed with logsumexp (log p_y and log of the other
    classes' total), not as log(sum of probabilities): a confident teacher's 1 - p_y rounds to 0."""
    t = temperature
    s, te = student_logits.float() / t, teacher_logits.float() / t
    gt = F.one_hot(target, s.shape[1]).bool()
    batch = s.shape[0]

    def binary(z: torch.Tensor) -> torch.Tensor:
        total = torch.logsumexp(z, dim=1, keepdim=True)
        target_part = z.masked_select(gt).unsqueeze(1) - total
        others = torch.logsumexp(z.masked_fill(gt, float("-inf")), dim=1, keepdim=True) - total
        return torch.cat([target_part, others], dim=1)

    tckd = F.kl_div(binary(s), binary(te), reduction="sum", log_target=True) * (t * t) / batch
    log_s = F.log_softmax(s - 1000.0 * gt, dim=1)
    log_t = F.log_softmax(te - 1000.0 * gt, dim=1)
    nckd = F.kl_div(log_s, log_t, reduction="sum", log_target=True) * (t * t) / batch
    return tckd, nckd


@METHODS.register("dkd", title="Decoupled KD", cite="Zhao et al. 2022",
                  paper="Zhao, Cui, Song, Qiu, Liang 2022, Decoupled Knowledge Distillation (CVPR)",
                  summary="the teacher's class probabilities, split into how sure it is of the true class and "
                          "how it ranks the other classes, each with its own weight",
                  reference="mdistiller's DKD (a = 1, b = 8, CE weight 1; warmup 20 of 240 epochs there)")
class DecoupledKD(DistillMethod):
    USES = ("temperature",)
    LEGEND = ("z_t, z_s: teacher and student logits; σ: softmax; e: the epoch, W: the warmup. The T² keeps the soft "
              "terms' gradients the same size as T changes.")
    OPTIONS = (
        Option("a", float, 1.0, "weight of TCKD, the target-class part (mdistiller: 1)", 0.0, 100.0),
        Option("b", float, 8.0, "weight of NCKD, the other classes' part (mdistiller: 8 on CIFAR-100; 2 for "
                                "resnet56/110 teachers, 6 for VGG and WRN pairs, 0.5 on ImageNet)", 0.0, 100.0),
        Option("warmup", int, 2, "epochs over which a and b ramp up, as min(epoch / warmup, 1) (mdistiller: 20 of "
                                 "240; here 2 of the default 8); 0 = none", 0, 10_000),
        STANDARDIZE,
    )

    def warm(self) -> float:
        warmup = self.options["warmup"]
        return 1.0 if warmup <= 0 else min(self.epoch / warmup, 1.0)

    def distill(self, x, y, teacher_out):
        logits = self.student(x)
        teacher_logits = teacher_out.clone()
        ce = F.cross_entropy(logits.float(), y)
        target = y if y.dim() == 1 else y.argmax(1)
        s, t = (standardize(logits), standardize(teacher_logits)) if self.options["standardize"] else \
            (logits, teacher_logits)
        tckd, nckd = dkd_parts(s, t, target, self.temperature)
        w = self.warm()
        a, b = w * self.options["a"], w * self.options["b"]
        terms = (Term("ce", CE_LABEL, 1.0, ce), Term("tckd", "a·TCKD (target class)", a, tckd),
                 Term("nckd", "b·NCKD (other classes)", b, nckd))
        return Loss(ce + a * tckd + b * nckd, terms), logits

    @classmethod
    def formula(cls, temperature, alpha, options):
        # Short lines: the Distill page gives the formula less than half a laptop's width.
        zz = r"\tilde z" if options.get("standardize") else "z"
        symbols = (r"\begin{aligned}\mathcal{L} &= \mathrm{CE}(y, \sigma(z_s))\\ &\quad + \min\!\left(\tfrac{e}{W}, 1"
                   r"\right)\left(a\,\mathrm{TCKD} + b\,\mathrm{NCKD}\right)\\ \mathrm{TCKD} &= T^2\,\mathrm{KL}"
                   r"\!\left([p^t_y, 1-p^t_y]\,\|\,[p^s_y, 1-p^s_y]\right)\\ \mathrm{NCKD} &= T^2\,\mathrm{KL}"
                   r"\!\left(\hat p^t\,\|\,\hat p^s\right)\\ p = \sigma(" + zz + r"/T)&,\ \hat p = \sigma(" + zz
                   + r"_{\neg y}/T)\end{aligned}")
        w, a, b, t = options["warmup"], options["a"], options["b"], temperature
        ramp = (r"\min\!\left(\tfrac{e}{" + f"{w}" + r"}, 1\right)") if w else "1"
        values = (r"\begin{aligned} &= \mathrm{CE}(y, \sigma(z_s))\\ &\quad + " + ramp + r"\left(" + f"{a:g}"
                  + r"\,\mathrm{TCKD} + " + f"{b:g}" + r"\,\mathrm{NCKD}\right),\ T = " + f"{t:g}"
                  + r"\end{aligned}")
        return symbols, values
