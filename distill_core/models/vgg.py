"""CIFAR VGGs with batch norm, laid out as in RepDistiller (vgg13 -> vgg8 is a benchmark pair).

Five stages of 3x3 conv-BN-ReLU, 2x2 max-pools between them, global average pooling and a
single linear classifier. As in RepDistiller, the first three stages end in a pool (32 -> 4;
a fourth pool from 64x64 up) so the 512-wide stages stay cheap. A pool is skipped once the
map is 1x1, so 8x8 inputs work too (8 -> 1).
"""
from __future__ import annotations

import torch.nn as nn

from . import MODELS
from .init import init_weights
from .taps import last_per_level

_CONFIGS = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
}


class VGG(nn.Module):
    def __init__(self, stages: list[list[int]], in_channels: int = 3, num_classes: int = 10,
                 image_size: int = 32, max_pools: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        cin, size = in_channels, image_size
        ends = []  # (path, size) of each stage's last ReLU, before its pool
        for i, widths in enumerate(stages):
            for width in widths:
                layers += [nn.Conv2d(cin, width, 3, padding=1), nn.BatchNorm2d(width),
                           nn.ReLU(inplace=True)]
                cin = width
            ends.append((f"features.{len(layers) - 1}", size))
            if i < max_pools and size > 1:
                layers.append(nn.MaxPool2d(2))
                size //= 2
        self.features = nn.Sequential(*layers)
        # Five stages, four sizes at 32x32 (32, 16, 8, 4 twice): the ends of stages 2, 3 and 5.
        self.feature_taps = last_per_level(ends)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, num_classes)

        init_weights(self, linear_std=0.01)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


def _max_pools(image_size: int) -> int:
    # RepDistiller's rule: three pools, a fourth for 64x64 and up, so the last stages see 4x4.
    return 4 if image_size >= 64 else 3


@MODELS.register("vgg8", family="VGG", role="student")
def vgg8(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return VGG(_CONFIGS["vgg8"], in_channels, num_classes, image_size, _max_pools(image_size))


@MODELS.register("vgg13", family="VGG", role="teacher")
def vgg13(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return VGG(_CONFIGS["vgg13"], in_channels, num_classes, image_size, _max_pools(image_size))
