"""Feature taps: which modules of a model give its stage outputs, for feature-based distillation.

Every family in the zoo names three modules, by their paths in the model (``features.6``,
``layer2``): the outputs of its last three resolution levels, that is the feature map just before
each of its last two downsamplings and the final map before global pooling. CIFAR ResNets and WRNs
have exactly three stages, and the taps are those stages (as mdistiller's and RepDistiller's
``feats[1:]``); deeper families (VGG, MobileNets, torchvision's ResNet-18) name the stage that ends
each of those levels. Three everywhere means "stage 2" means the middle of any model, so any teacher
can be paired with any student, and a method's options need no model to be checked.

A method reads the taps with forward hooks (methods/features.py), so the models' ``forward`` stays
the plain one that is exported. The MLP has no spatial features: it names none, and its registry
entry says ``features=False`` so that a config can be refused before any model is built.
"""
from __future__ import annotations

import torch.nn as nn

TAPS = 3  # every family's number of taps


def last_per_level(ends: list[tuple[str, int]]) -> tuple[str, ...]:
    """From (module path, output size) of each stage end, in order: the last module of each size
    level, the last three of them. With fewer distinct sizes (tiny inputs), the last three ends."""
    levels: list[str] = []
    for i, (path, size) in enumerate(ends):
        if i + 1 == len(ends) or ends[i + 1][1] != size:
            levels.append(path)
    chosen = levels[-TAPS:] if len(levels) >= TAPS else [p for p, _ in ends][-TAPS:]
    return tuple(chosen)


def feature_taps(model: nn.Module) -> tuple[str, ...]:
    """The model's tap paths; empty for a model without spatial features (the MLP)."""
    return tuple(getattr(model, "feature_taps", ()))


def tap_modules(model: nn.Module) -> list[nn.Module]:
    return [model.get_submodule(path) for path in feature_taps(model)]
