"""A student made from its teacher: fewer blocks, fewer channels, the teacher's weights as its start.

``derive(teacher, depth, width)`` returns a copy of the teacher with, in every stage, block 0 and
evenly spaced later blocks kept (``depth`` is the share kept; block 0 holds the stride and the
shortcut projection, the later blocks keep their input's shape, so any of them can go), and in
every layer a ``width`` share of its channels, taken at evenly spaced indices (Xu et al. 2023,
"weight selection"). Channels that a residual connection adds together are one *group*, and a
group keeps the same indices in every layer that reads or writes it, so the sums still line up.

With ``init="teacher"`` each kept tensor is the teacher's slice, BatchNorm statistics included:
at depth 1 and width 1 the student computes exactly what the teacher does. With ``"random"`` the
same architecture starts from its family's own initialisation (the ablation).

The student keeps the teacher's class and module names (a stage's kept blocks keep their numbers:
``layer1.0``, ``layer1.4``, ``layer1.8``), so its checkpoint is a state_dict like any other and
``P(w_t)``, the teacher slice it started from, is found by name. Its architecture depends on the
teacher's architecture alone, never its weights: ``derived_model`` rebuilds it from a config.
"""
from __future__ import annotations

import copy
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn

from . import MODELS, create_model
from .init import init_weights

DERIVED = "derived"  # the student name that asks for one
STUDENT_INITS = ("auto", "teacher", "random")  # auto: teacher for a derived student, random otherwise
# The families it knows how to cut (registry "family"), and how each initialises itself from scratch.
FAMILY_INIT = {
    "demo CNN": None,  # PyTorch's defaults
    "MLP": None,
    "CIFAR ResNet": {},
    "Wide ResNet": {"zero_linear_bias": True},
    "VGG": {"linear_std": 0.01},
    "MobileNetV2": {"linear_std": 0.01},
}


def family_of(teacher: str) -> str:
    return MODELS.meta(teacher).get("family", "") if teacher in MODELS else ""


def derive_problem(teacher: str) -> Optional[str]:
    """Why no student can be derived from ``teacher`` (a sentence), or None."""
    if teacher not in MODELS:
        return None  # the unknown name is refused on its own
    family = family_of(teacher)
    if family in FAMILY_INIT:
        return None
    return (f"a derived student cannot be made from the teacher {teacher!r} ({family}): its blocks are torchvision's, "
            f"which this studio does not cut; derive from a demo CNN, a CIFAR ResNet, a Wide ResNet, a VGG, "
            f"MobileNetV2 or the MLP, or choose a student architecture")


def resolved_init(student: str, student_init: str) -> str:
    """"teacher" or "random": what ``student_init`` means for ``student`` ("auto": teacher when derived)."""
    if student_init == "auto":
        return "teacher" if student == DERIVED else "random"
    return student_init


def evenly(n: int, fraction: float) -> list[int]:
    """``round(fraction * n)`` (at least 1) evenly spaced indices of ``range(n)``, the first and the
    last included from two on: 12 and 0.5 give 0, 2, 4, 7, 9, 11 (DistilBERT's layers)."""
    k = max(1, min(n, math.floor(fraction * n + 0.5)))
    if k == 1:
        return [0]
    return [math.floor(i * (n - 1) / (k - 1) + 0.5) for i in range(k)]


@dataclass
class Plan:
    """What a derivation keeps. ``layers``: path of each conv/linear -> (input group, output group,
    how many inputs each input channel spans: 9 for a 3x3-pooled flatten); ``norms``: path of each
    BatchNorm -> its group; a group of None is not cut (the image's channels, the classes)."""

    sizes: dict[str, int] = field(default_factory=dict)
    layers: dict[str, tuple[Optional[str], Optional[str], int]] = field(default_factory=dict)
    norms: dict[str, str] = field(default_factory=dict)
    stages: list[dict] = field(default_factory=list)  # {"path", "blocks": [[child names]], "kept": [i]}
    kept: dict[str, list[int]] = field(default_factory=dict)  # group -> channel indices

    def group(self, size: int) -> str:
        name = f"g{len(self.sizes)}"
        self.sizes[name] = size
        return name

    def layer(self, path: str, gin: Optional[str], gout: Optional[str], span: int = 1) -> None:
        self.layers[path] = (gin, gout, span)

    def stage(self, path: str, blocks: list[list[str]]) -> None:
        if blocks:
            self.stages.append({"path": path, "blocks": blocks, "kept": list(range(len(blocks)))})

    def is_kept(self, path: str, child: str) -> bool:
        for s in self.stages:
            if s["path"] == path and any(child in b for b in s["blocks"]):
                return any(child in s["blocks"][i] for i in s["kept"])
        return True  # not in a block: a pool, a stem


# ---- each family's stages (depth) and channel groups (width) -------------------------------------------
def _sequence_stages(plan: Plan, path: str, blocks: list[tuple[list[str], bool]]) -> None:
    """Stages of a sequence of blocks (child names, keeps its input's shape): a block that changes the
    shape (or follows a pool) starts a stage; the blocks that keep it can be removed."""
    stage: list[list[str]] = []
    for names, same_shape in blocks:
        if not same_shape and stage:
            plan.stage(path, stage)
            stage = []
        stage.append(names)
    plan.stage(path, stage)


def _resnet_stages(model, plan, paths) -> None:
    for path in paths:
        plan.stage(path, [[name] for name, _ in model.get_submodule(path).named_children()])


def _plain(model: nn.Module, plan: Plan, wiring: bool) -> None:
    """The demo CNNs and VGG: conv-BN-ReLU blocks in ``features`` (nested or flat), pools between."""
    children = list(model.features.named_children())
    blocks: list[tuple[list[str], bool]] = []
    after_pool = True
    for i, (name, m) in enumerate(children):
        if isinstance(m, nn.MaxPool2d):
            after_pool = True
            continue
        conv = m[0] if isinstance(m, nn.Sequential) else m
        if isinstance(conv, nn.Conv2d):
            names = [name] if isinstance(m, nn.Sequential) else [c for c, _ in children[i:i + 3]]
            blocks.append((names, not after_pool and conv.in_channels == conv.out_channels))
            after_pool = False
    if not wiring:
        _sequence_stages(plan, "features", blocks)
        return
    g = None
    for names, _ in blocks:
        if not plan.is_kept("features", names[0]):
            continue
        conv_path = f"features.{names[0]}.0" if len(names) == 1 else f"features.{names[0]}"
        bn_path = f"features.{names[0]}.1" if len(names) == 1 else f"features.{names[1]}"
        out = plan.group(model.get_submodule(conv_path).out_channels)
        plan.layer(conv_path, g, out)
        plan.norms[bn_path] = out
        g = out
    linears = [(p, m) for p, m in model.classifier.named_modules() if isinstance(m, nn.Linear)] \
        if isinstance(model.classifier, nn.Sequential) else [("", model.classifier)]
    span = 9 if len(linears) > 1 else 1  # a head reads the 3x3-pooled map, flattened channel by channel
    for j, (p, m) in enumerate(linears):
        out = None if j == len(linears) - 1 else plan.group(m.out_features)
        plan.layer("classifier" + (f".{p}" if p else ""), g, out, span if j == 0 else 1)
        g = out


def _cifar_resnet(model: nn.Module, plan: Plan, wiring: bool) -> None:
    stages = ("layer1", "layer2", "layer3")
    if not wiring:
        return _resnet_stages(model, plan, stages)
    g = plan.group(model.conv1.out_channels)
    plan.layer("conv1", None, g)
    plan.norms["bn1"] = g
    for path in stages:
        for name, block in model.get_submodule(path).named_children():
            if not plan.is_kept(path, name):
                continue
            p = f"{path}.{name}"
            h = plan.group(block.conv1.out_channels)
            plan.layer(f"{p}.conv1", g, h)
            plan.norms[f"{p}.bn1"] = h
            out = g if block.downsample is None else plan.group(block.conv2.out_channels)
            plan.layer(f"{p}.conv2", h, out)
            plan.norms[f"{p}.bn2"] = out
            if block.downsample is not None:
                plan.layer(f"{p}.downsample.0", g, out)
                plan.norms[f"{p}.downsample.1"] = out
            g = out
    plan.layer("fc", g, None)


def _wide_resnet(model: nn.Module, plan: Plan, wiring: bool) -> None:
    stages = ("block1", "block2", "block3")
    if not wiring:
        return _resnet_stages(model, plan, stages)
    g = plan.group(model.conv1.out_channels)
    plan.layer("conv1", None, g)
    for path in stages:
        for name, block in model.get_submodule(path).named_children():
            if not plan.is_kept(path, name):
                continue
            p = f"{path}.{name}"
            plan.norms[f"{p}.bn1"] = g
            h = plan.group(block.conv1.out_channels)
            plan.layer(f"{p}.conv1", g, h)
            plan.norms[f"{p}.bn2"] = h
            out = g if block.shortcut is None else plan.group(block.conv2.out_channels)
            plan.layer(f"{p}.conv2", h, out)
            if block.shortcut is not None:
                plan.layer(f"{p}.shortcut", g, out)
            g = out
    plan.norms["bn"] = g
    plan.layer("fc", g, None)


def _mobilenetv2(model: nn.Module, plan: Plan, wiring: bool) -> None:
    children = list(model.features.named_children())
    blocks = children[1:-1]  # the stem and the last 1x1 conv are no blocks
    if not wiring:
        return _sequence_stages(plan, "features", [([n], bool(b.residual)) for n, b in blocks])
    g = plan.group(model.features[0][0].out_channels)
    plan.layer("features.0.0", None, g)
    plan.norms["features.0.1"] = g
    for name, block in blocks:
        if not plan.is_kept("features", name):
            continue
        p, layers, i = f"features.{name}.conv", list(block.conv), 0
        h = g
        if len(layers) == 4:  # a 1x1 expansion first
            h = plan.group(layers[0][0].out_channels)
            plan.layer(f"{p}.0.0", g, h)
            plan.norms[f"{p}.0.1"] = h
            i = 1
        plan.layer(f"{p}.{i}.0", h, h)  # depthwise: its groups follow the channels
        plan.norms[f"{p}.{i}.1"] = h
        out = g if block.residual else plan.group(layers[i + 1].out_channels)
        plan.layer(f"{p}.{i + 1}", h, out)
        plan.norms[f"{p}.{i + 2}"] = out
        g = out
    last = children[-1][0]
    out = plan.group(model.features[-1][0].out_channels)
    plan.layer(f"features.{last}.0", g, out)
    plan.norms[f"features.{last}.1"] = out
    plan.layer("classifier", out, None)


def _mlp(model: nn.Module, plan: Plan, wiring: bool) -> None:
    if not wiring:
        return  # one stage of one block: width only
    linears = [(p, m) for p, m in model.net.named_children() if isinstance(m, nn.Linear)]
    g = None
    for j, (p, m) in enumerate(linears):
        out = None if j == len(linears) - 1 else plan.group(m.out_features)
        plan.layer(f"net.{p}", g, out)
        g = out


FAMILIES = {"demo CNN": _plain, "VGG": _plain, "CIFAR ResNet": _cifar_resnet, "Wide ResNet": _wide_resnet,
            "MobileNetV2": _mobilenetv2}


def plan_for(teacher: nn.Module, family: str, depth: float, width: float) -> Plan:
    plan = Plan()
    walk = _mlp if family == "MLP" else FAMILIES[family]
    walk(teacher, plan, wiring=False)
    for s in plan.stages:
        s["kept"] = evenly(len(s["blocks"]), depth)
    walk(teacher, plan, wiring=True)
    plan.kept = {g: evenly(n, width) for g, n in plan.sizes.items()}
    return plan


# ---- cutting -----------------------------------------------------------------------------------------------
def _index(kept: Optional[list[int]], size: int, span: int = 1) -> torch.Tensor:
    idx = list(range(size // span)) if kept is None else kept
    return torch.tensor([c * span + j for c in idx for j in range(span)], dtype=torch.long)


def _cut_layer(m: nn.Module, out_idx: torch.Tensor, in_idx: torch.Tensor) -> nn.Module:
    w = m.weight.detach()
    kw = {"device": w.device, "dtype": w.dtype}
    if isinstance(m, nn.Linear):
        new = nn.Linear(len(in_idx), len(out_idx), bias=m.bias is not None, **kw)
        weight = w.index_select(0, out_idx.to(w.device)).index_select(1, in_idx.to(w.device))
    else:
        depthwise = m.groups > 1
        if depthwise and not m.groups == m.in_channels == m.out_channels:
            raise ValueError(f"grouped convolution {m} cannot be cut")
        new = nn.Conv2d(len(out_idx) if depthwise else len(in_idx), len(out_idx), m.kernel_size, m.stride,
                        m.padding, m.dilation, len(out_idx) if depthwise else 1, m.bias is not None,
                        m.padding_mode, **kw)
        weight = w.index_select(0, out_idx.to(w.device))
        if not depthwise:
            weight = weight.index_select(1, in_idx.to(w.device))
    with torch.no_grad():
        new.weight.copy_(weight)
        if m.bias is not None:
            new.bias.copy_(m.bias.detach().index_select(0, out_idx.to(w.device)))
    return new


def _cut_norm(m: nn.BatchNorm2d, idx: torch.Tensor) -> nn.BatchNorm2d:
    kw = {"device": m.weight.device, "dtype": m.weight.dtype} if m.affine else {}
    new = nn.BatchNorm2d(len(idx), m.eps, m.momentum, m.affine, m.track_running_stats, **kw)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            source = getattr(m, name)
            if source is not None:
                getattr(new, name).copy_(source.detach().index_select(0, idx.to(source.device)))
        if m.num_batches_tracked is not None:
            new.num_batches_tracked.copy_(m.num_batches_tracked)
    return new


def _replace(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, module)


def derive(teacher: nn.Module, family: str, depth: float = 0.5, width: float = 0.5,
           init: str = "teacher") -> nn.Module:
    """The derived student of ``teacher`` (left untouched), on its device. ``init``: "teacher" (its
    slices, BatchNorm statistics included) or "random" (the family's own initialisation; seed torch
    first for repeatable weights). ``student.derivation`` describes what was kept."""
    if family not in FAMILY_INIT:
        raise ValueError(f"cannot derive a student from a {family or 'unknown'} model")
    if not (0 < depth <= 1 and 0 < width <= 1):
        raise ValueError(f"depth and width must be in (0, 1], got {depth} and {width}")
    plan = plan_for(teacher, family, depth, width)
    student = copy.deepcopy(teacher)
    renamed: dict[str, str] = {}
    for s in plan.stages:  # depth: the removed blocks go, the kept ones keep their names
        seq = student.get_submodule(s["path"])
        gone = {n for i, b in enumerate(s["blocks"]) if i not in s["kept"] for n in b}
        last = s["blocks"][s["kept"][-1]]
        for i, b in enumerate(s["blocks"]):
            if i not in s["kept"]:  # a feature tap at a removed block moves to the stage's last kept one
                renamed.update({f"{s['path']}.{n}": f"{s['path']}.{last[j]}" for j, n in enumerate(b)})
        _replace(student, s["path"], nn.Sequential(OrderedDict(
            (n, m) for n, m in seq.named_children() if n not in gone)))
    for path, (gin, gout, span) in plan.layers.items():
        m = student.get_submodule(path)
        size_in = m.in_features if isinstance(m, nn.Linear) else m.in_channels
        size_out = m.out_features if isinstance(m, nn.Linear) else m.out_channels
        _replace(student, path, _cut_layer(m, _index(plan.kept.get(gout), size_out),
                                           _index(plan.kept.get(gin), size_in, span)))
    for path, g in plan.norms.items():
        _replace(student, path, _cut_norm(student.get_submodule(path), _index(plan.kept[g], plan.sizes[g])))
    if hasattr(teacher, "feature_taps"):
        student.feature_taps = tuple(renamed.get(p, p) for p in teacher.feature_taps)
    if init == "random":
        reinitialise(student, family)
    elif init != "teacher":
        raise ValueError(f"init must be 'teacher' or 'random', got {init!r}")
    student.derivation = describe(plan, depth, width)
    return student.requires_grad_(True).train(teacher.training)


def reinitialise(model: nn.Module, family: str) -> None:
    """The family's initialisation from scratch, as its constructor does it."""
    for m in model.modules():
        if m is not model and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    if FAMILY_INIT.get(family) is not None:
        init_weights(model, **FAMILY_INIT[family])


def describe(plan: Plan, depth: float, width: float) -> dict:
    """What the Distill page draws: per stage, its blocks and the kept ones; per layer group, its
    channels and the kept ones (as counts)."""
    return {"depth": depth, "width": width,
            "stages": [{"path": s["path"], "blocks": len(s["blocks"]), "kept": list(s["kept"])} for s in plan.stages],
            "channels": [[plan.sizes[g], len(plan.kept[g])] for g in plan.sizes]}


def derived_model(teacher: str, in_channels: int, num_classes: int, image_size: int, depth: float, width: float,
                  source: Optional[nn.Module] = None, init: str = "random") -> nn.Module:
    """The student derived from ``teacher``: from the model ``source`` (its trained weights, with
    ``init="teacher"``), or from a fresh one of that architecture (what a checkpoint is loaded into)."""
    if (problem := derive_problem(teacher)) is not None:
        raise ValueError(problem)
    if source is None:
        source = create_model(teacher, in_channels, num_classes, image_size)
    return derive(source, family_of(teacher), depth, width, init)


def student_model(student: str, teacher: str, in_channels: int, num_classes: int, image_size: int,
                  depth: float = 0.5, width: float = 0.5, source: Optional[nn.Module] = None,
                  init: str = "random") -> nn.Module:
    """A run's student: a registered architecture, or ``DERIVED`` from the teacher."""
    if student == DERIVED:
        return derived_model(teacher, in_channels, num_classes, image_size, depth, width, source, init)
    return create_model(student, in_channels, num_classes, image_size)


def teacher_slice(teacher: nn.Module, family: str, depth: float, width: float) -> dict[str, torch.Tensor]:
    """P(w_t): for each parameter of the derived student, the slice of the teacher's it starts from."""
    reference = derive(teacher, family, depth, width, init="teacher")
    return {name: p.detach().clone() for name, p in reference.named_parameters()}


def origin(student: str, teacher: str, init: str, weight_anchor: float, model: nn.Module) -> dict:
    """results.json's "student_origin": how a run's students were made (Compare and Runs say it)."""
    out = {"arch": student, "init": init, "weight_anchor": weight_anchor}
    if getattr(model, "derivation", None):
        out.update(derived_from=teacher, derivation=model.derivation)
    return out


def origin_words(origin: dict) -> str:
    """'derived from resnet56 (2/3 of its blocks ... ), initialised from the teacher's weights'."""
    init = "from the teacher's weights" if origin.get("init") == "teacher" else "from random weights"
    words = f"initialised {init}"
    if origin.get("derived_from"):
        d = origin.get("derivation") or {}
        words = (f"derived from {origin['derived_from']} (blocks kept per stage {_num(d.get('depth'))}, channels "
                 f"kept {_num(d.get('width'))}), " + words)
    if origin.get("weight_anchor"):
        words += f", weight anchor μ = {_num(origin['weight_anchor'])}"
    return words


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)
