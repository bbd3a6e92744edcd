"""Distillation methods: the ``DistillMethod`` contract, its options and registry (``base``), one
module per method, the loss pieces logit methods share (``losses``) and the feature taps' reader
(``features``). Importing this package registers them all; the order here is the order users see."""
from . import kd, fitnet, at, dkd  # noqa: F401  (each registers its method)
from .base import (METHODS, DistillMethod, Loss, Option, Term, create_method, format_value, list_methods,
                   method_formula, method_legend, method_options, method_uses, option_problems, options_text)
from .anchor import ANCHOR_LABEL, WeightAnchor
from .losses import kd_loss, soft_kl, standardize

__all__ = ["METHODS", "DistillMethod", "Loss", "Option", "Term", "create_method", "list_methods", "method_formula",
           "method_legend", "method_options", "method_uses", "option_problems", "options_text", "format_value", "kd_loss",
           "soft_kl", "standardize", "WeightAnchor", "ANCHOR_LABEL"]
