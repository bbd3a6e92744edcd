"""FitNets (Romero et al., ICLR 2015): the student's feature map at one stage, through a trainable
regressor, matches the teacher's map at the same stage (a "hint").

    loss = CE(y, s) + w * MSE(r(f_s), f_t)

As mdistiller's FitNet: the hint at the middle stage (its hint layer 2), w = 100, the MSE averaged
over every element, one stage of training with the regressor optimised together with the student.
The regressor r is a conv (3x3 stride 2 when the student's map is twice the teacher's size, a
transposed conv when half, otherwise a conv whose kernel absorbs the difference), then BN and ReLU,
as mdistiller's ConvReg; sizes it does not cover (a map more than twice as large, or smaller but not
half) are pooled or upsampled first. It is sized by one dry forward pass of both models, belongs to
the method and not to the student: it is never exported, nor counted in the student's size.

``hint_epochs`` > 0 gives the paper's two stages: for that many epochs the hint alone (its
gradients reach the student only up to the hint layer, and the regressor), then KD with the run's
T and alpha (Hinton's loss, as the paper's second stage). The Live page shows the first stage as
a phase of its own. One learning-rate schedule spans both stages.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import CE_LABEL, METHODS, DistillMethod, Loss, Option, Term
from .features import Reader, dry_shapes, forward_with_maps
from .losses import kd_loss

HINTS = "hints"  # the name of the first stage of the two-stage schedule


def regressor(student_shape: tuple, teacher_shape: tuple) -> nn.Sequential:
    """Maps a student map (C, H, W) to the teacher's shape."""
    sc, sh, sw = student_shape
    tc, th, tw = teacher_shape
    if (sh, sw) == (2 * th, 2 * tw):
        layers = [nn.Conv2d(sc, tc, 3, stride=2, padding=1)]
    elif (2 * sh, 2 * sw) == (th, tw):
        layers = [nn.ConvTranspose2d(sc, tc, 4, stride=2, padding=1)]
    elif th <= sh < 2 * th and tw <= sw < 2 * tw:
        layers = [nn.Conv2d(sc, tc, (1 + sh - th, 1 + sw - tw))]
    elif sh >= th and sw >= tw:
        layers = [nn.AdaptiveAvgPool2d((th, tw)), nn.Conv2d(sc, tc, 3, padding=1)]
    else:
        layers = [nn.Upsample(size=(th, tw), mode="nearest"), nn.Conv2d(sc, tc, 3, padding=1)]
    return nn.Sequential(*layers, nn.BatchNorm2d(tc), nn.ReLU(inplace=True))


@METHODS.register("fitnet", title="FitNets hints", cite="Romero et al. 2015",
                  paper="Romero, Ballas, Kahou, Chassang, Gatta, Bengio 2015, FitNets: Hints for Thin "
                                  "Deep Nets (ICLR)",
                  summary="the teacher's feature map at one stage, matched through a small trainable regressor",
                  reference="mdistiller's FitNet (hint layer 2, weight 100, one stage); hint_epochs gives the "
                            "paper's two stages")
class FitNet(DistillMethod):
    sliceable = False  # feature maps: one teacher call per batch
    FEATURES = True
    USES = ()
    LEGEND = ("z_s: the student's logits; σ: softmax; f^(k): a model's feature map at stage k of its three (their "
              "outputs at its last three sizes); r: a small trainable regressor, never part of the student.")
    USES_NOTE = "T and alpha in the KD stage, with hint_epochs"
    OPTIONS = (
        Option("stage", int, 2, "which of the three stages gives the hint (2 = the middle, mdistiller's hint layer)",
               1, 3),
        Option("weight", float, 100.0, "weight w of the hint loss (mdistiller: 100)", 0.0, 1e6),
        Option("hint_epochs", int, 0, "epochs of hints alone before KD, the paper's two stages (0 = one stage, "
                                      "CE + hint, as mdistiller)", 0, 10_000),
    )

    def __init__(self, student, teacher, **kwargs):
        super().__init__(student, teacher, **kwargs)
        self.regressor = None
        if teacher is not None:
            stage = [self.options["stage"]]
            s_shape, = dry_shapes(student, self.input_shape, stage)
            t_shape, = dry_shapes(teacher, self.input_shape, stage)
            with torch.random.fork_rng(devices=[]):  # the student's draws stay those of its scratch twin
                reg = regressor(s_shape, t_shape)
            self.regressor = reg.to(next(student.parameters()).device)

    @classmethod
    def uses(cls, options):
        return ("temperature", "alpha") if options.get("hint_epochs") else ()

    @classmethod
    def run_problems(cls, options, epochs):
        if options["hint_epochs"] >= epochs:
            return [f"option hint_epochs of 'fitnet' must be below the student epochs ({epochs}): the epochs after "
                    f"the hints train the classifier, got {options['hint_epochs']}"]
        return []

    @property
    def stage(self):
        # Without a teacher (the scratch student) there are no hints: plain CE every epoch.
        return HINTS if self.teacher is not None and self.epoch <= self.options["hint_epochs"] else None

    @torch.inference_mode()
    def teacher_targets(self, x):
        if self.teacher is None:
            return None
        with self.label_precision():
            logits, maps = forward_with_maps(self.teacher, x, [self.options["stage"]])
        return logits.float(), maps[0].float()

    def distill(self, x, y, teacher_out):
        teacher_logits, teacher_map = (t.clone() for t in teacher_out)
        stage = self.options["stage"]
        two_stage = self.options["hint_epochs"] > 0
        if two_stage and self.stage is None:  # the paper's second stage: KD, no hint
            logits = self.student(x)
            return kd_loss(logits, teacher_logits, y, self.temperature, self.alpha), logits
        with Reader(self.student, [stage]) as reader:
            logits = self.student(x)
        hint = F.mse_loss(self.regressor(reader.get()[0]).float(), teacher_map.float())
        ce = F.cross_entropy(logits.float(), y)
        w = self.options["weight"]
        if two_stage:  # hints alone; CE is reported, unweighted, to show the classifier waits
            return Loss(w * hint, (Term("ce", "0·CE (true labels)", 0.0, ce.detach()),
                                   Term("hint", "w·MSE (hint)", w, hint))), logits
        return Loss(ce + w * hint, (Term("ce", CE_LABEL, 1.0, ce), Term("hint", "w·MSE (hint)", w, hint))), logits

    @classmethod
    def formula(cls, temperature, alpha, options):
        # Short lines: the Distill page gives the formula less than half a laptop's width.
        k, w, h = options["stage"], options["weight"], options["hint_epochs"]
        hint = r"\mathrm{MSE}\!\left(r(f_s^{(k)}), f_t^{(k)}\right)"
        hint_k = hint.replace("(k)", f"({k})")
        if not h:
            return (r"\begin{aligned}\mathcal{L} &= \mathrm{CE}(y, \sigma(z_s))\\ &\quad + w\," + hint
                    + r"\end{aligned}",
                    r"\begin{aligned} &= \mathrm{CE}(y, \sigma(z_s))\\ &\quad + " + f"{w:g}" + r"\," + hint_k
                    + r"\end{aligned}")
        t, a = temperature, alpha
        symbols = (r"\begin{aligned}e \le H&:\ \mathcal{L} = w\," + hint + r"\\ e > H&:\ \mathcal{L} = \alpha\,"
                   r"T^2\,\mathrm{KL}\!\left(\sigma(z_t/T)\,\|\,\sigma(z_s/T)\right)\\ &\qquad + (1-\alpha)\,"
                   r"\mathrm{CE}(y, \sigma(z_s))\end{aligned}")
        values = (r"\begin{aligned}e \le " + f"{h}" + r"&:\ " + f"{w:g}" + r"\," + hint_k + r"\\ e > " + f"{h}"
                  + r"&:\ " + f"{a:.2f}" + r"\cdot " + f"{t:g}" + r"^2\,\mathrm{KL}\!\left(\sigma(z_t/" + f"{t:g}"
                  + r")\,\|\,\sigma(z_s/" + f"{t:g}" + r")\right)\\ &\qquad + " + f"{1 - a:.2f}"
                  + r"\,\mathrm{CE}(y, \sigma(z_s))\end{aligned}")
        return symbols, values
