"""MobileNetV2 (Sandler et al. 2018) for small images: the KD benchmark's "mobile_half" student.

Width 0.5 with expansion 6, laid out as in RepDistiller's CIFAR version (itself from the
Route Constrained Optimization paper): a stride-2 stem, the second stage at stride 1 instead
of 2 (total stride 16, so 32x32 ends at 2x2), plain ReLU, and a 1280-wide last 1x1 conv kept
at full width. It is the cheap student of the benchmark (about 6 MMACs at 32x32), and a
different family from the ResNet/VGG teachers, which is the interesting case for KD.
Unlike RepDistiller, the t=1 block has no 1x1 expansion (as in the paper and torchvision);
that saves 288 parameters.
"""
from __future__ import annotations

import torch.nn as nn

from . import MODELS
from .init import init_weights
from .taps import last_per_level


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand (1x1), filter (depthwise 3x3), project (1x1, linear: no ReLU on the bottleneck)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn_relu(cin, hidden, kernel=1))
        layers += [
            conv_bn_relu(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    # expansion t, channels c, repeats n, first stride s (stage 2 at stride 1 for 32x32 inputs)
    SETTINGS = [
        (1, 16, 1, 1),
        (6, 24, 2, 1),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: float = 0.5,
                 expand: int = 6, last_channel: int = 1280, image_size: int = 32):
        super().__init__()
        cin = int(32 * width)
        layers: list[nn.Module] = [conv_bn_relu(in_channels, cin, stride=2)]
        size = (image_size + 1) // 2
        ends = [("features.0", size)]  # (path, output size) of every block
        for t, c, n, s in self.SETTINGS:
            cout = int(c * width)
            for i in range(n):
                stride = s if i == 0 else 1
                layers.append(InvertedResidual(cin, cout, stride, expand if t != 1 else 1))
                size = (size + stride - 1) // stride
                ends.append((f"features.{len(layers) - 1}", size))
                cin = cout
        layers.append(conv_bn_relu(cin, last_channel, kernel=1))
        ends.append((f"features.{len(layers) - 1}", size))
        self.features = nn.Sequential(*layers)
        self.feature_taps = last_per_level(ends)  # at 32x32: blocks 6 (8x8), 13 (4x4) and the last conv (2x2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last_channel, num_classes)

        init_weights(self, linear_std=0.01)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


@MODELS.register("mobilenetv2", family="MobileNetV2", role="student")
def mobilenetv2(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """RepDistiller's ``mobile_half``: width 0.5, expansion 6."""
    return MobileNetV2(in_channels, num_classes, width=0.5, expand=6, image_size=image_size)
