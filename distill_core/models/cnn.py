"""Demo-sized networks: fast enough to train three of them in half a minute on a laptop CPU.

``cnn_large`` is the teacher of the offline demo; ``cnn_small`` and ``cnn_tiny`` are students
about 40x and 200x smaller; ``mlp`` is the classic Hinton et al. baseline. All end in global
average pooling (or flatten, for the MLP), so they accept any image size from 8x8 up.
"""
from __future__ import annotations

import torch.nn as nn

from . import MODELS
from .taps import last_per_level


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PlainCNN(nn.Module):
    """VGG-style stages of 3x3 conv-BN-ReLU; a 2x2 max-pool closes each stage but the last.

    Pools are skipped once the feature map is 2x2 or smaller, so 8x8 inputs work too. With
    ``head`` > 0 the features are pooled to 3x3 and go through a wide hidden layer: lots of
    parameters for few FLOPs, which is what a teacher that trains in seconds on a CPU needs.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int,
                 stages: list[list[int]], head: int = 0, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        cin, size = in_channels, image_size
        ends = []  # (path, size) of each stage's last conv-BN-ReLU, before its pool
        for i, widths in enumerate(stages):
            for width in widths:
                layers.append(conv_bn(cin, width))
                cin = width
            ends.append((f"features.{len(layers) - 1}", size))
            if i < len(stages) - 1 and size > 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
        self.features = nn.Sequential(*layers)
        self.feature_taps = last_per_level(ends)  # the stages (models/taps.py)
        if head:
            self.pool = nn.AdaptiveAvgPool2d(3)
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(cin * 9, head), nn.ReLU(inplace=True), nn.Dropout(dropout),
                nn.Linear(head, num_classes))
        else:
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(cin, num_classes))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


class MLP(nn.Module):
    """Flatten, then fully connected layers: no spatial feature maps, so no feature taps."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int, hidden: tuple[int, ...] = (128,)):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * image_size * image_size
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


@MODELS.register("cnn_large", family="demo CNN", role="teacher")
def cnn_large(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return PlainCNN(in_channels, num_classes, image_size,
                    stages=[[16], [32, 32], [64, 64]], head=1024, dropout=0.3)


@MODELS.register("cnn_small", family="demo CNN", role="student")
def cnn_small(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return PlainCNN(in_channels, num_classes, image_size, stages=[[16], [32], [64]])


@MODELS.register("cnn_tiny", family="demo CNN", role="student")
def cnn_tiny(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return PlainCNN(in_channels, num_classes, image_size, stages=[[8], [16], [16]])


@MODELS.register("mlp", family="MLP", role="student", features=False)
def mlp(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return MLP(in_channels, num_classes, image_size, hidden=(128,))
