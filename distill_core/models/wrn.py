"""Wide ResNets (Zagoruyko & Komodakis 2016), WRN-depth-k as in RepDistiller.

Pre-activation blocks (BN-ReLU-conv), depth 6n + 4, stage widths 16k/32k/64k. The benchmark
pairs are wrn_40_2 -> wrn_16_2 and wrn_40_2 -> wrn_40_1. No dropout, as in the KD papers.
"""
from __future__ import annotations

import torch.nn as nn

from . import MODELS
from .init import init_weights


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x):
        pre = self.relu(self.bn1(x))
        # When the shape changes the shortcut sees the pre-activated input, as in the original.
        identity = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + identity


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen: int, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n + 4, got {depth}")
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        cin = 16
        stages = []
        for i, width in enumerate((16 * widen, 32 * widen, 64 * widen)):
            blocks = []
            for j in range(n):
                blocks.append(PreActBlock(cin, width, stride=2 if (i > 0 and j == 0) else 1))
                cin = width
            stages.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = stages
        self.bn = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU(inplace=True)
        # Pre-activation blocks: the last stage's map is the one after the final BN-ReLU.
        self.feature_taps = ("block1", "block2", "relu")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

        init_weights(self, zero_linear_bias=True)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = self.relu(self.bn(x))
        return self.fc(self.pool(x).flatten(1))


@MODELS.register("wrn_16_1", family="Wide ResNet", role="student")
def wrn_16_1(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return WideResNet(16, 1, in_channels, num_classes)


@MODELS.register("wrn_16_2", family="Wide ResNet", role="student")
def wrn_16_2(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return WideResNet(16, 2, in_channels, num_classes)


@MODELS.register("wrn_40_1", family="Wide ResNet", role="student")
def wrn_40_1(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return WideResNet(40, 1, in_channels, num_classes)


@MODELS.register("wrn_40_2", family="Wide ResNet", role="teacher")
def wrn_40_2(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return WideResNet(40, 2, in_channels, num_classes)
