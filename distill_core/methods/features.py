"""What feature methods share: reading a model's feature taps with forward hooks, and one dry
forward pass that tells the maps' shapes, so connectors (a hint regressor) are sized for any pair.

The taps are declared by each model family (models/taps.py); hooks read them without touching the
models' ``forward``, which stays the plain one that is trained, exported and timed.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn

from ..errors import ConfigError
from ..models.taps import feature_taps, tap_modules


def stage_numbers(text: str) -> list[int]:
    """'1,3' -> [1, 3]: the stages an option names (1-based, of the three taps)."""
    return [int(part) for part in str(text).split(",") if part.strip()]


class Reader:
    """Reads the taps of ``stages`` on every forward, for as long as a ``with`` block lasts."""

    def __init__(self, model: nn.Module, stages: Sequence[int]):
        if not feature_taps(model):
            raise ConfigError(f"{type(model).__name__} has no feature taps: a feature method needs "
                              "convolutional feature maps (models/taps.py)")
        self.model, self.stages = model, list(stages)
        self.maps: dict[int, torch.Tensor] = {}
        self.handles: list = []

    def __enter__(self) -> "Reader":
        self.maps = {}
        modules = tap_modules(self.model)
        for stage in self.stages:
            self.handles.append(modules[stage - 1].register_forward_hook(self._keeper(stage)))
        return self

    def _keeper(self, stage: int):
        def keep(_module, _inputs, output):
            self.maps[stage] = output
        return keep

    def __exit__(self, *exc) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def get(self) -> list[torch.Tensor]:
        return [self.maps[s] for s in self.stages]


def forward_with_maps(model: nn.Module, x: torch.Tensor, stages: Sequence[int]) -> tuple[torch.Tensor,
                                                                                           list[torch.Tensor]]:
    """(logits, the maps of ``stages``) of one forward pass."""
    with Reader(model, stages) as reader:
        logits = model(x)
    return logits, reader.get()


@torch.no_grad()
def dry_shapes(model: nn.Module, input_shape: Optional[tuple[int, int, int]], stages: Sequence[int]) -> list[tuple]:
    """The (C, H, W) of the maps of ``stages`` for one image of ``input_shape``: one forward in eval
    mode, so no BatchNorm statistic moves and no dropout draws a random number."""
    if input_shape is None:
        raise ValueError("a feature method needs input_shape (C, H, W) to size its connectors")
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, *input_shape, device=param.device)
        _, maps = forward_with_maps(model, x, stages)
    finally:
        model.train(was_training)
    return [tuple(m.shape[1:]) for m in maps]
