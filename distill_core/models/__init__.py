"""The model registry: one decorated factory per architecture.

Every factory has the same signature, ``(in_channels, num_classes, image_size)``, so any model
runs on any registered dataset, grey or colour, 8x8 to 32x32 (and larger for image folders).
To add a model, write a factory in one of these modules and decorate it with
``@MODELS.register("name", family="...")``.
"""
from __future__ import annotations

import torch.nn as nn

from ..registry import Registry

MODELS: Registry = Registry("model")


def create_model(name: str, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Build a registered model, freshly initialised (seed torch first for repeatable weights)."""
    factory = MODELS.get(name)
    return factory(in_channels=in_channels, num_classes=num_classes, image_size=image_size)


def list_models() -> list[dict]:
    return [{"name": name, **MODELS.meta(name)} for name in MODELS.names()]


def has_features(name: str) -> bool:
    """Whether a model has spatial feature maps for feature methods (all but the MLP, whose
    registry entry says ``features=False``; models/taps.py)."""
    return MODELS.meta(name).get("features", True)


def compatible_pairs(features: bool = False) -> list[tuple[str, str]]:
    """(teacher, student) pairs the registry marks compatible: a model registered as a teacher (or
    either) with a different one registered as a student (or either), and with ``features`` both
    with feature taps."""
    def role(name: str) -> str:
        return MODELS.meta(name).get("role", "either")

    return [(t, s) for t in MODELS.names() for s in MODELS.names()
            if t != s and role(t) in ("teacher", "either") and role(s) in ("student", "either")
            and (not features or (has_features(t) and has_features(s)))]


# Importing the modules registers their models; the order here is the order users see.
from . import cnn  # noqa: E402, F401

for _optional in ("resnet_cifar", "wrn", "vgg", "mobilenetv2", "tv"):
    try:
        __import__(f"{__name__}.{_optional}")
    except ModuleNotFoundError as _exc:  # a module not written yet; never a missing dependency
        if _exc.name != f"{__name__}.{_optional}":
            raise
