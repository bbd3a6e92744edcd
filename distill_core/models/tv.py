"""torchvision's ImageNet families, adapted to 8x8-32x32 inputs and any channel count.

ImageNet stems shrink the input 4x (ResNet) or 2x (MobileNetV3) before the first block, which
leaves a 32x32 image at 1x1 far too early; the usual CIFAR fix is a stride-1 3x3 stem. Weights
are never downloaded (``weights=None``): the stem differs from the pretrained one anyway.
torchvision is imported when a model is built, so importing distill_core stays fast.
"""
from __future__ import annotations

import torch.nn as nn

from . import MODELS


def _get_model(name: str, num_classes: int) -> nn.Module:
    import torchvision  # here: 2 s to import on 2 cores, for torchvision's models alone

    return torchvision.models.get_model(name, weights=None, num_classes=num_classes)


def _stem(in_channels: int, out_channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def _small_input_resnet(name: str, in_channels: int, num_classes: int) -> nn.Module:
    model = _get_model(name, num_classes)
    model.conv1 = _stem(in_channels, model.conv1.out_channels)
    model.maxpool = nn.Identity()
    model.feature_taps = ("layer2", "layer3", "layer4")  # the last three sizes (models/taps.py)
    return model


def _small_input_mobilenet_v3(name: str, in_channels: int, num_classes: int) -> nn.Module:
    model = _get_model(name, num_classes)
    first = model.features[0]  # Conv2dNormActivation: conv, BN, Hardswish
    first[0] = _stem(in_channels, first[0].out_channels)
    # With the stride-1 stem, 32x32 ends blocks 3, 8 and the last 1x1 conv (12) at 8, 4 and 2.
    model.feature_taps = ("features.3", "features.8", "features.12")
    return model


@MODELS.register("resnet18", family="torchvision ResNet", role="teacher")
def resnet18(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """ResNet-18 with a 3x3 stride-1 stem and no max-pool (11M params, ~0.56 GMACs at 32x32)."""
    return _small_input_resnet("resnet18", in_channels, num_classes)


@MODELS.register("mobilenet_v3_small", family="torchvision MobileNetV3", role="student")
def mobilenet_v3_small(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """MobileNetV3-Small with a stride-1 stem (total stride 16, so 32x32 ends at 2x2)."""
    return _small_input_mobilenet_v3("mobilenet_v3_small", in_channels, num_classes)
