"""A run's method in words, the same on every page: "dkd (b = 6) · T = 4", "kd · T = 4, α = 0.9".

Only the settings the method reads are named (DKD weighs its terms with a and b, not alpha;
attention transfer reads neither T nor alpha), and of its options those that differ from their
defaults, so that two runs of a sweep differ where they really differ.
"""
from __future__ import annotations

from typing import Any, Optional

from distill_core import METHODS, method_uses, options_text

# "Which method when", in plain words: the Home page's table.
WHEN = [
    ("kd", "Almost always, first: the teacher's softened class probabilities. Cheap, any pair of models, and the "
           "baseline the others are measured against."),
    ("kd + standardize", "When teacher and student are very different in size: z-scored logits let a small student "
                         "learn the teacher's ranking of the classes without matching the size of its logits."),
    ("dkd", "When plain KD helps little: it weighs separately how sure the teacher is of the right class and how "
            "it ranks the wrong ones. The best logit method of the reference table, for the same cost as KD."),
    ("fitnet", "When the student is deep and thin, and both are convolutional: it also matches one intermediate "
               "feature map, through a small regressor the student does not keep. Its weight suits CIFAR ResNets: "
               "on a tiny student, try one ten times smaller."),
    ("at", "When teacher and student are convolutional networks of one family: it matches where they look, stage "
           "by stage; nothing extra to train. Its weight suits CIFAR ResNets: on a tiny student, try one a "
           "hundred times smaller."),
]


def method_setting(config: dict, with_values: bool = True) -> str:
    """``config``'s method, its non-default options, and the T and alpha it reads."""
    name = str(config.get("method") or "kd")
    extra: dict[str, Any] = config.get("extra") if isinstance(config.get("extra"), dict) else {}
    changed = options_text(name, extra)
    text = f"{name} ({changed})" if changed else name
    if not with_values or name not in METHODS:
        return text
    knobs = loss_knobs(name, extra, config.get("temperature"), config.get("alpha"))
    return f"{text} · {knobs}" if knobs else text


def loss_knobs(name: str, extra: dict, temperature: Optional[float], alpha: Optional[float]) -> str:
    uses = method_uses(name, extra) if name in METHODS else ("temperature", "alpha")
    parts = []
    if "temperature" in uses and isinstance(temperature, (int, float)):
        parts.append(f"T = {temperature:g}")
    if "alpha" in uses and isinstance(alpha, (int, float)):
        parts.append(f"α = {alpha:g}")
    return ", ".join(parts)


def method_title(name: str) -> str:
    """'DKD (Decoupled KD)': how a sentence names a method."""
    if name not in METHODS:
        return name
    return f"{name} ({METHODS.meta(name).get('title', name)})"
