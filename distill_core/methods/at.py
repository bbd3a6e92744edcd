"""Attention transfer (Zagoruyko & Komodakis, ICLR 2017): the student's spatial attention maps
match the teacher's, stage by stage.

    a(f) = normalize(mean_c(f^p).flatten(1)),  p = 2, L2-normalised per image
    loss = CE(y, s) + w * sum over stages of mean((a(f_s) - a(f_t))^2)

This is the common code form (mdistiller's and RepDistiller's ``at_loss``, torchdistill's
default), not the paper's eq. 2, which sums the p-norm (not its square) of the difference over
each map, halved (beta / 2). As mdistiller: stages 1 to 3, w = 1000, and when two maps differ in
size the larger one is average-pooled down to the smaller before its attention map is taken.
Attention maps have no channels, so any teacher pairs with any student and nothing is trained
besides the student.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import CE_LABEL, METHODS, DistillMethod, Loss, Option, Term
from .features import Reader, forward_with_maps, stage_numbers

P = 2
STAGE_CHOICES = ("1", "2", "3", "1,2", "1,3", "2,3", "1,2,3")


def attention(f: torch.Tensor) -> torch.Tensor:
    """a(f): the channel mean of f^p, flattened and L2-normalised per image."""
    return F.normalize(f.float().pow(P).mean(1).flatten(1))


def same_size(fs: torch.Tensor, ft: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The larger map average-pooled to the smaller one's size (mdistiller's rule)."""
    (sh, sw), (th, tw) = fs.shape[2:], ft.shape[2:]
    if sh * sw > th * tw:
        fs = F.adaptive_avg_pool2d(fs, (th, tw))
    elif sh * sw < th * tw:
        ft = F.adaptive_avg_pool2d(ft, (sh, sw))
    return fs, ft


def at_loss(student_maps: list[torch.Tensor], teacher_maps: list[torch.Tensor]) -> torch.Tensor:
    """Sum over stages of mean((a(f_s) - a(f_t))^2), unweighted."""
    total = 0.0
    for fs, ft in zip(student_maps, teacher_maps):
        fs, ft = same_size(fs, ft)
        total = total + (attention(fs) - attention(ft)).pow(2).mean()
    return total


@METHODS.register("at", title="Attention transfer", cite="Zagoruyko & Komodakis 2017",
                  paper="Zagoruyko, Komodakis 2017, Paying More Attention to Attention (ICLR)",
                  summary="where the teacher looks: its spatial attention maps, stage by stage",
                  reference="mdistiller's AT (the common code form, p = 2, stages 1-3, weight 1000)")
class AttentionTransfer(DistillMethod):
    sliceable = False  # feature maps: one teacher call per batch
    FEATURES = True
    USES = ()
    LEGEND = ("z_s: the student's logits; σ: softmax; f^(j): a model's feature map at stage j of its three (their "
              "outputs at its last three sizes); S: the stages matched; a(f): the attention map, the mean over "
              "channels of f², flattened to unit length.")
    OPTIONS = (
        Option("stages", str, "1,2,3", "which of the three stages to match (mdistiller: all three)",
               choices=STAGE_CHOICES),
        Option("weight", float, 1000.0, "weight w of the attention loss (mdistiller: 1000)", 0.0, 1e6),
    )

    def __init__(self, student, teacher, **kwargs):
        super().__init__(student, teacher, **kwargs)
        self.stages = stage_numbers(self.options["stages"])
        if teacher is not None:  # refuse a model without taps now, not at the first step
            for model in (student, teacher):
                Reader(model, self.stages)

    @torch.inference_mode()
    def teacher_targets(self, x):
        if self.teacher is None:
            return None
        with self.label_precision():
            maps = forward_with_maps(self.teacher, x, self.stages)[1]
        return [m.float() for m in maps]

    def distill(self, x, y, teacher_out):
        teacher_maps = [m.clone() for m in teacher_out]
        with Reader(self.student, self.stages) as reader:
            logits = self.student(x)
        at = at_loss(reader.get(), teacher_maps)
        ce = F.cross_entropy(logits.float(), y)
        w = self.options["weight"]
        return Loss(ce + w * at, (Term("ce", CE_LABEL, 1.0, ce), Term("at", "w·AT (attention maps)", w, at))), logits

    @classmethod
    def formula(cls, temperature, alpha, options):
        # Short lines: the Distill page gives the formula less than half a laptop's width.
        diff = r"\mathrm{mean}\left(a(f_s^{(j)}) - a(f_t^{(j)})\right)^2"
        symbols = (r"\begin{aligned}\mathcal{L} &= \mathrm{CE}(y, \sigma(z_s))\\ &\quad + w \sum_{j \in S} " + diff
                   + r"\\ a(f) &= \mathrm{vec}\left(\mathrm{mean}_c f^2\right) / \left\|\cdot\right\|_2"
                   r"\end{aligned}")
        stages = "\\{" + options["stages"].replace(",", ", ") + "\\}"
        values = (r"\begin{aligned} &= \mathrm{CE}(y, \sigma(z_s))\\ &\quad + " + f"{options['weight']:g}"
                  + r"\sum_{j \in " + stages + "} " + diff + r"\end{aligned}")
        return symbols, values
