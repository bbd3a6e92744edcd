"""Distillation methods: the ``DistillMethod`` contract and its registry (``base``), one module per
method, and the loss functions they share (``losses``). Importing this package registers them all."""
from . import kd  # noqa: F401  (registers "kd")
from .base import METHODS, DistillMethod, create_method, list_methods
from .losses import LossParts, kd_loss, soft_kl

__all__ = ["METHODS", "DistillMethod", "create_method", "list_methods", "LossParts", "kd_loss", "soft_kl"]
