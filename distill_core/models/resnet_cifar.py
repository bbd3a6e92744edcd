"""CIFAR ResNets (He et al. 2016, section 4.2), laid out as in RepDistiller.

These are the teachers and students of the standard KD benchmark (resnet56 -> resnet20,
resnet110 -> resnet32, resnet32x4 -> resnet8x4), so the names, widths and shortcut style
(1x1 conv + BN whenever the shape changes) follow RepDistiller closely enough that parameter
counts match the literature. Depth is 6n + 2: a 3x3 stem, then three stages of n basic blocks.

The ``x4`` variants are RepDistiller's: stem of 32 channels, stages of 64/128/256 channels.
Global average pooling is adaptive, so 8x8 and 28x28 inputs work as well as 32x32.
"""
from __future__ import annotations

import torch.nn as nn

from . import MODELS
from .init import init_weights


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            # Projection shortcut ("option B"): what RepDistiller uses, and what its counts assume.
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                nn.BatchNorm2d(cout),
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class CifarResNet(nn.Module):
    def __init__(self, depth: int, widths: tuple[int, int, int, int], in_channels: int = 3,
                 num_classes: int = 10):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        cin = widths[0]
        stages = []
        for i, width in enumerate(widths[1:]):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(cin, width, stride=2 if (i > 0 and j == 0) else 1))
                cin = width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.feature_taps = ("layer1", "layer2", "layer3")  # each stage ends in its block's ReLU
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

        init_weights(self)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.pool(x).flatten(1))


_NARROW = (16, 16, 32, 64)
_WIDE = (32, 64, 128, 256)


@MODELS.register("resnet8", family="CIFAR ResNet", role="student")
def resnet8(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return CifarResNet(8, _NARROW, in_channels, num_classes)


@MODELS.register("resnet14", family="CIFAR ResNet", role="student")
def resnet14(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return CifarResNet(14, _NARROW, in_channels, num_classes)


@MODELS.register("resnet20", family="CIFAR ResNet", role="student")
def resnet20(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return CifarResNet(20, _NARROW, in_channels, num_classes)


@MODELS.register("resnet32", family="CIFAR ResNet", role="either")
def resnet32(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return CifarResNet(32, _NARROW, in_channels, num_classes)


@MODELS.register("resnet44", family="CIFAR ResNet", role="either")
def resnet44(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return CifarResNet(44, _NARROW, in_channels, num_classes)


@MODELS.register("resnet56", family="CIFAR ResNet", role="teacher")
def resnet56(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return CifarResNet(56, _NARROW, in_channels, num_classes)


@MODELS.register("resnet110", family="CIFAR ResNet", role="teacher")
def resnet110(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return CifarResNet(110, _NARROW, in_channels, num_classes)


@MODELS.register("resnet8x4", family="CIFAR ResNet", role="student")
def resnet8x4(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return CifarResNet(8, _WIDE, in_channels, num_classes)


@MODELS.register("resnet32x4", family="CIFAR ResNet", role="teacher")
def resnet32x4(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return CifarResNet(32, _WIDE, in_channels, num_classes)
