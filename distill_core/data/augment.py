"""Batch augmentation on tensors, on the training device: no per-sample Python.

Two kinds, applied in this order to a uint8-normalised float batch:
1. ``standard_augment``: random crop with padding and (where it makes sense) horizontal flips,
   the usual CIFAR/MNIST recipe. Every model phase gets it, so the comparison stays fair.
2. "Distillation data" (``distill_transform``): transforms of the batch that make a richer
   transfer set for the teacher to label on the fly: ``mask`` (random erasing), ``replace``
   (CutMix-style patch from another image) and ``mixup``. Mixed batches come back with soft
   targets (class probabilities) for the CE term, weighted by pixel share or mixing ratio.
All randomness comes from an explicit ``torch.Generator``, so a seed fixes the batches.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def rand(shape, generator: torch.Generator, device) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=device)


def randint(high: int, shape, generator: torch.Generator, device) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=generator, device=device)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and cut a random window of the original size from each image."""
    if padding <= 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = randint(2 * padding + 1, (b,), generator, x.device)
    dx = randint(2 * padding + 1, (b,), generator, x.device)
    rows = (torch.arange(h, device=x.device)[None] + dy[:, None])  # b, h
    cols = (torch.arange(w, device=x.device)[None] + dx[:, None])  # b, w
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = rand((x.shape[0],), generator, x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def standard_augment(x: torch.Tensor, padding: int, hflip: bool, generator: torch.Generator) -> torch.Tensor:
    x = random_crop(x, padding, generator)
    return random_hflip(x, generator) if hflip else x


def box_masks(b: int, h: int, w: int, area: torch.Tensor, generator: torch.Generator, device) -> torch.Tensor:
    """One random axis-aligned box per image covering about ``area`` of it; bool [b, 1, h, w]."""
    side_h = (area.sqrt() * h).round().clamp(1, h).long()
    side_w = (area.sqrt() * w).round().clamp(1, w).long()
    top = (rand((b,), generator, device) * (h - side_h + 1)).long()
    left = (rand((b,), generator, device) * (w - side_w + 1)).long()
    r = torch.arange(h, device=device)[None, :]
    c = torch.arange(w, device=device)[None, :]
    in_rows = (r >= top[:, None]) & (r < (top + side_h)[:, None])  # b, h
    in_cols = (c >= left[:, None]) & (c < (left + side_w)[:, None])  # b, w
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]


def distill_transform(mode: str, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                      generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a "distillation data" mode; returns the new batch and its CE targets."""
    if mode == "none":
        return x, y
    b, _, h, w = x.shape
    device = x.device
    if mode == "mask":
        area = 0.05 + 0.25 * rand((b,), generator, device)  # erase 5-30% of each image
        mask = box_masks(b, h, w, area, generator, device)
        return x.masked_fill(mask, 0.0), y  # 0 is the mean pixel after normalisation
    onehot = F.one_hot(y, num_classes).float() if y.dim() == 1 else y
    perm = torch.randperm(b, generator=generator, device=device)
    if mode == "replace":
        area = 0.1 + 0.4 * rand((b,), generator, device)
        mask = box_masks(b, h, w, area, generator, device)
        mixed = torch.where(mask, x[perm], x)
        share = mask.flatten(1).float().mean(1)[:, None]  # the real pasted share, after rounding
        return mixed, (1 - share) * onehot + share * onehot[perm]
    if mode == "mixup":
        lam = rand((b,), generator, device)  # Beta(1, 1), drawn from our generator
        lam = torch.maximum(lam, 1 - lam)  # the original image always dominates
        mixed = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[perm]
        return mixed, lam[:, None] * onehot + (1 - lam[:, None]) * onehot[perm]
    raise ValueError(f"unknown distillation data mode {mode!r}")
