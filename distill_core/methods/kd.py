"""Hinton KD: the student matches the teacher's temperature-softened class probabilities.

    loss = alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(y, s)

With ``standardize`` (logit standardisation, Sun et al., CVPR 2024) both rows of logits are
z-scored before the temperature softmax, so the student learns the teacher's ranking of the
classes without having to match its logits' scale. Their paper pairs it with T = 2 and a KD weight
of 9 beside a CE weight of 0.1 (not a convex pair); here alpha and T stay the run's.
"""
from __future__ import annotations

from .base import METHODS, DistillMethod, Option
from .losses import kd_loss

STANDARDIZE = Option("standardize", bool, False, "z-score each row of logits, teacher's and student's, before the "
                                                 "temperature softmax (logit standardisation, Sun et al. 2024)")
SOFTMAX = r"\sigma"


def z(name: str, standardized: bool) -> str:
    """A logit vector in the formulas: z_t, or its z-score when standardised."""
    return rf"\tilde z_{name}" if standardized else rf"z_{name}"


@METHODS.register("kd", title="Hinton KD", cite="Hinton et al. 2015",
                  paper="Hinton, Vinyals, Dean 2015, Distilling the Knowledge in a Neural Network",
                  summary="the teacher's temperature-softened class probabilities",
                  reference="the loss of RepDistiller and mdistiller's KD (T = 4, KD weight 0.9, CE 0.1)")
class LogitKD(DistillMethod):
    OPTIONS = (STANDARDIZE,)
    LEGEND = ("z_t, z_s: teacher and student logits; σ: softmax. The T² keeps the soft terms' gradients the same "
              "size as T changes.")

    def distill(self, x, y, teacher_out):
        logits = self.student(x)
        # Targets from teacher_targets come out of inference mode; clone() makes them usable in autograd.
        return kd_loss(logits, teacher_out.clone(), y, self.temperature, self.alpha,
                       standardized=self.options["standardize"]), logits

    @classmethod
    def formula(cls, temperature, alpha, options):
        st = bool(options.get("standardize"))
        zt, zs = z("t", st), z("s", st)
        symbols = (rf"\begin{{aligned}}\mathcal{{L}} &= \alpha\,T^2\,\mathrm{{KL}}\!\left({SOFTMAX}({zt}/T)\,\|\,"
                   rf"{SOFTMAX}({zs}/T)\right)\\ &\quad + (1-\alpha)\,\mathrm{{CE}}(y, {SOFTMAX}(z_s))\end{{aligned}}")
        t, a = temperature, alpha
        values = (rf"\begin{{aligned}} &= {a:.2f} \cdot {t:g}^2\,\mathrm{{KL}}\!\left({SOFTMAX}({zt}/{t:g})\,\|\,"
                  rf"{SOFTMAX}({zs}/{t:g})\right)\\ &\quad + {1 - a:.2f}\,\mathrm{{CE}}(y, {SOFTMAX}(z_s))"
                  r"\end{aligned}")
        if st:  # a line of its own: the page gives the formula less than half a laptop's width
            symbols = symbols.replace(r"\end{aligned}", r"\\ \tilde z &= \left(z - \mathrm{mean}(z)\right) / "
                                      r"\mathrm{std}(z)\end{aligned}")
        return symbols, values
