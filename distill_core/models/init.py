"""The weight initialisation the CIFAR model zoo shares (He et al. 2015 for convolutions)."""
from __future__ import annotations

from typing import Optional

import torch.nn as nn


def init_weights(model: nn.Module, linear_std: Optional[float] = None, zero_linear_bias: bool = False) -> None:
    """Kaiming-normal convolutions (fan_out), BatchNorm at identity, conv biases at zero.

    Linear layers keep PyTorch's default unless ``linear_std`` (normal weights, zero bias, as
    VGG and MobileNetV2 do) or ``zero_linear_bias`` (as WRN does) says otherwise.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_std is not None:
                nn.init.normal_(m.weight, 0, linear_std)
            if linear_std is not None or zero_linear_bias:
                nn.init.zeros_(m.bias)
