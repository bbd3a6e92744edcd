"""Train one model for one phase: the teacher, the scratch student or the distilled student.

The same function trains all three, so the scratch and the distilled student share every
detail of the recipe: data order, augmentation draws, optimizer, schedule and initial weights
all follow from the seed. The only difference is the method's teacher.

Speed, on 2 CPU cores as much as on a GPU (benchmarks/throughput.py times it against a plain loop):
* the dataset is a uint8 tensor on the device, sliced by a seeded permutation;
* augmentation runs on whole chunks of batches at once, on the device;
* the teacher labels a chunk's augmented images in large inference batches, so teacher and
  student always see the same view (Beyer et al. 2022) at a fraction of the per-step cost;
* running sums stay on the device; the host reads them once an epoch (and for the throttled
  progress events, one read for all their numbers), so a GPU is never made to wait in the step loop;
* the forward passes run in the run's precision (``precision.py``: bf16 autocast where it is
  fast, the teacher's labelling pass too), the losses and the optimizer in fp32;
* with ``config.compile`` the student and the teacher run ``torch.compile``d.

The loss is whatever terms the method reports (methods/base.py): each epoch's row has the mean of
each term's unweighted value as ``train_<name>`` and, under ``terms``, its label, mean weight and
mean contribution, so a chart draws what the method weighed and weighs nothing itself.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn

from ..config import RunConfig
from ..data.augment import distill_transform, standard_augment
from ..data.datasets import ImageData
from ..device import synchronize
from ..errors import Cancelled, TrainingDiverged
from ..events import EPOCH, STEP, Event, Observer
from ..methods import DistillMethod, Loss
from ..precision import Precision, resolve_precision
from ..vocab import ROLE_LABEL
from .fidelity import agreement_sums

CHUNK_IMAGES = 4096  # images augmented (and labelled by the teacher) at once
TEACHER_BATCH = 256  # big enough to amortise per-call overhead, small enough to stay in CPU cache
STEP_EVENT_SECONDS = 0.5


@dataclass
class PhaseResult:
    history: list[dict]
    best_state: dict
    last_state: dict
    best_epoch: int
    best_accuracy: float
    val_probs: Optional[torch.Tensor] = None  # the last epoch's, per validation image (CPU), for its report


def build_optimizer(params, config: RunConfig) -> torch.optim.Optimizer:
    """foreach: each update step is a few calls over all the parameters at once, not a few per
    parameter (on a CPU torch would loop over them in Python: the demo student's 12 tensors
    made about 60 small calls a step). The same arithmetic: the weights come out identical."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               nesterov=config.momentum > 0, weight_decay=config.weight_decay, foreach=True)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def build_schedule(optimizer: torch.optim.Optimizer, config: RunConfig, total_steps: int):
    """Per-step schedules, so short demo runs get a smooth curve too."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=max(2, total_steps))
    # step: divide by 10 at 50% and 75% of training (the CIFAR recipe, compressed)
    milestones = [int(total_steps * 0.5), int(total_steps * 0.75)]
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)


def seeded_generator(seed: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


class TermSums:
    """One epoch's running sums of a method's loss terms, on the device: per term its value and its
    contribution (both times the batch size), its weight (times the batch size) and its label.
    A step adds one stacked tensor for all its terms: a few calls a step, not a few per term."""

    def __init__(self, device: torch.device):
        self.device = device
        self.sums: dict[tuple[str, ...], torch.Tensor] = {}  # the terms' names -> (2, terms)
        self.factors: dict[tuple[float, ...], torch.Tensor] = {}  # the terms' weights -> (2, 1) rows of 1, w
        self.weights: dict[str, float] = {}
        self.labels: dict[str, str] = {}
        self.seen: dict[str, int] = {}

    def add(self, loss: Loss, k: int) -> None:
        names = tuple(t.name for t in loss.terms)
        weights = tuple(float(t.weight) for t in loss.terms)
        factor = self.factors.get(weights)
        if factor is None:
            factor = self.factors[weights] = torch.tensor([[1.0] * len(weights), list(weights)], device=self.device)
        pair = torch.stack([t.value.detach().float() for t in loss.terms]) * factor * k
        if names in self.sums:
            self.sums[names] += pair
        else:
            self.sums[names] = pair
        for term, weight in zip(loss.terms, weights):
            self.weights[term.name] = self.weights.get(term.name, 0.0) + weight * k
            self.labels[term.name] = term.label
            self.seen[term.name] = self.seen.get(term.name, 0) + k

    def row(self) -> dict:
        """``train_<name>`` (mean unweighted value) per term, and ``terms``: label, mean weight and
        mean contribution of each."""
        totals: dict[str, list[float]] = {}
        for names, pair in self.sums.items():
            for name, (value, contribution) in zip(names, pair.t().tolist()):
                got = totals.setdefault(name, [0.0, 0.0])
                got[0] += value
                got[1] += contribution
        out: dict = {}
        terms = []
        for name, (value, contribution) in totals.items():
            n = self.seen[name]
            out[f"train_{name}"] = value / n
            terms.append({"name": name, "label": self.labels[name], "weight": self.weights[name] / n,
                          "contribution": contribution / n})
        out["terms"] = terms
        return out


def step_terms(loss: Loss) -> tuple[float, list[dict]]:
    """A STEP event's loss and terms (name, label, weight and contribution of this step), read
    from the device in one go."""
    values = torch.stack([loss.total.detach().float()] + [t.contribution.detach().float() for t in loss.terms])
    total, *contributions = values.tolist()
    return total, [{"name": t.name, "label": t.label, "weight": float(t.weight), "contribution": c}
                   for t, c in zip(loss.terms, contributions)]


@torch.inference_mode()
def validate(model: nn.Module, data: ImageData, batch_size: int = 1024, channels_last: bool = False,
             stop: Optional[threading.Event] = None, reference: Optional[torch.Tensor] = None,
             keep_probs: bool = False) -> dict:
    """Validation loss and top-1, in fp32. With ``keep_probs`` also "probs", each image's softmax
    (on the CPU): the last epoch keeps them, and the full report (per class, confusion) is made
    from them (``measure.class_report``) instead of a second pass over the same images.
    With ``reference`` (the teacher's log-probabilities of the validation images, in order), also
    the student's fidelity to it: ``val_agreement`` and ``val_kl_teacher`` (training/fidelity.py).
    Stop is checked between batches: 5,000 CIFAR images through a big teacher take seconds."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, device=data.val_x.device)  # loss, correct, agreeing images, KL to the teacher
    probs = []
    try:
        for start in range(0, data.val_x.shape[0], batch_size):
            check_stop(stop)
            x = data.normalize(data.val_x[start:start + batch_size])
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = data.val_y[start:start + batch_size]
            logits = model(x).float()
            sums[:2] += torch.stack([nn.functional.cross_entropy(logits, y, reduction="sum"),
                                     (logits.argmax(1) == y).sum().float()])
            if reference is not None:
                sums[2:] += agreement_sums(logits, reference[start:start + batch_size])
            if keep_probs:
                probs.append(logits.softmax(dim=1))
    finally:
        model.train(was_training)
    n = data.val_x.shape[0]
    loss, correct, agree, kl = sums.tolist()  # one read for all four; divided in Python's doubles
    out = {"val_loss": loss / n, "val_accuracy": correct / n}
    if reference is not None:
        out.update(val_agreement=agree / n, val_kl_teacher=kl / n)
    if keep_probs:
        out["probs"] = torch.cat(probs).cpu()
    return out


def train_phase(method: DistillMethod, data: ImageData, config: RunConfig, *, epochs: int,
                phase: str, emit: Observer, stop: Optional[threading.Event] = None,
                distill_data: str = "none", reference: Optional[torch.Tensor] = None,
                progress: Callable[[float], float] = lambda f: f,
                precision: Optional[Precision] = None) -> PhaseResult:
    """Train ``method.student`` for ``epochs`` and return its history and best/last weights.

    ``progress`` maps this phase's completed fraction to the whole run's, for the events;
    ``reference`` is the teacher's validation log-probabilities, for the fidelity columns (``validate``).
    ``precision``: the run's, resolved once at its start (by default, from ``config.precision``).
    """
    model = method.student
    device = data.train_x.device
    teacher = method.teacher
    if teacher is not None:  # frozen and in eval mode, always
        teacher.eval()
        teacher.requires_grad_(False)
    precision = precision or resolve_precision(config.precision, device)
    method.set_precision(device, precision.train, precision.teacher_labels)
    with method.compiled(config.compile):
        return _train(method, model, teacher, data, config, epochs, phase, emit, stop, distill_data, reference,
                      progress)


def _train(method: DistillMethod, model: nn.Module, teacher: Optional[nn.Module], data: ImageData,
           config: RunConfig, epochs: int, phase: str, emit: Observer, stop: Optional[threading.Event],
           distill_data: str, reference: Optional[torch.Tensor],
           progress: Callable[[float], float]) -> PhaseResult:
    device = data.train_x.device

    n = data.train_x.shape[0]
    bs = min(config.batch_size, n)
    steps_per_epoch = n // bs + (1 if n % bs > 1 else 0)  # a lone last image would break BatchNorm
    used = min(n, steps_per_epoch * bs)
    optimizer = build_optimizer(list(model.parameters()) + method.extra_parameters(), config)
    schedule = build_schedule(optimizer, config, epochs * steps_per_epoch)
    data_gen = seeded_generator(config.seed, device)  # order and standard augmentation
    distill_gen = seeded_generator(config.seed + 1, device)  # KD-only draws leave data_gen alone
    chunk = max(bs, (CHUNK_IMAGES // bs) * bs)

    history: list[dict] = []
    best_accuracy, best_epoch, best_state, val_probs = -1.0, 0, {}, None
    last_event = 0.0
    # The speed STEP events report, measured at the end of a chunk. Mid-chunk, seen / elapsed
    # would undercount: the teacher labels the whole chunk before its first step (a KD epoch
    # read about 270 img/s at its start, for about 3,600 over the epoch). None until one ends.
    # Read only when an event may be due and at the epoch's end: each reading waits for a GPU.
    speed: Optional[float] = None
    for epoch in range(1, epochs + 1):
        model.train()
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]  # the epoch's first step's: at its end it is the next epoch's
        method.begin_epoch(epoch, epochs)
        stage = {"stage": method.stage} if method.stage else {}  # a method's own stage (FitNets' hints)
        sums = torch.zeros(2, device=device)  # loss, correct (weighted by batch size)
        term_sums = TermSums(device)
        seen = 0
        perm = torch.randperm(n, generator=data_gen, device=device)[:used]
        for chunk_start in range(0, used, chunk):
            idx = perm[chunk_start:chunk_start + chunk]
            x = data.normalize(data.train_x[idx])
            y = data.train_y[idx]
            if config.augment:
                x = standard_augment(x, data.crop_padding, data.hflip, data_gen)
            x, y = distill_transform(distill_data, x, y, data.num_classes, distill_gen)
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            targets = None
            if teacher is not None and method.sliceable:
                parts_ = []
                for i in range(0, x.shape[0], TEACHER_BATCH):  # a big teacher takes seconds per chunk
                    check_stop(stop)
                    parts_.append(method.teacher_targets(x[i:i + TEACHER_BATCH]))
                targets = torch.cat(parts_)
            for start in range(0, idx.shape[0], bs):
                check_stop(stop)
                xb, yb = x[start:start + bs], y[start:start + bs]
                if teacher is None:
                    tb = None
                elif targets is not None:
                    tb = targets[start:start + bs]
                else:
                    tb = method.teacher_targets(xb)
                loss, logits = method.loss(xb, yb, tb)
                optimizer.zero_grad(set_to_none=True)
                loss.total.backward()
                optimizer.step()
                schedule.step()
                with torch.no_grad():
                    hard = yb if yb.dim() == 1 else yb.argmax(1)
                    k = xb.shape[0]
                    sums += torch.stack([loss.total.detach().float() * k, (logits.argmax(1) == hard).sum().float()])
                    term_sums.add(loss, k)
                seen += xb.shape[0]
                now = time.perf_counter()
                # Throttled, but the epoch's last step always reports: a short epoch (digits takes
                # a fraction of a second) gave a whole phase one loss point, and no curve.
                if now - last_event >= STEP_EVENT_SECONDS or seen >= used:
                    last_event = now
                    done = (epoch - 1 + seen / used) / epochs
                    loss_now, terms_now = step_terms(loss)
                    emit(Event(STEP, phase, {
                        "epoch": epoch, "step": seen // bs, "steps": steps_per_epoch,
                        "loss": loss_now, "terms": terms_now, **stage,
                        "progress": progress(done), "phase_progress": done,
                        **({"images_per_s": speed} if speed is not None else {})}))
            if seen >= used or time.perf_counter() - last_event >= STEP_EVENT_SECONDS:  # speed is due
                synchronize(device)  # the speed counts the work done, not the work queued on a GPU
                speed = seen / max(1e-9, time.perf_counter() - started)
        train_seconds = time.perf_counter() - started
        mean_loss, correct = (sums / seen).tolist()
        val = validate(model, data, channels_last=config.channels_last, stop=stop, reference=reference,
                       keep_probs=epoch == epochs)
        val_probs = val.pop("probs", None)
        row = {"epoch": epoch, "train_loss": mean_loss, **term_sums.row(), "train_accuracy": correct,
               **val, "lr": lr, "images_per_s": seen / max(1e-9, train_seconds),
               "seconds": time.perf_counter() - started, **stage}
        history.append(row)
        if row["val_accuracy"] > best_accuracy:
            best_accuracy, best_epoch = row["val_accuracy"], epoch
            best_state = cpu_state(model)
        emit(Event(EPOCH, phase, {**row, "epochs": epochs, "progress": progress(epoch / epochs)}))
        if not math.isfinite(mean_loss):  # NaN weights teach nothing and learn nothing more: say so now
            raise diverged(phase, epoch, mean_loss, config, teacher is not None)
    return PhaseResult(history, best_state, cpu_state(model), best_epoch, best_accuracy, val_probs)


def check_stop(stop: Optional[threading.Event]) -> None:
    """Raise ``Cancelled`` once Stop was pressed: between batches here, between phases in a run."""
    if stop is not None and stop.is_set():
        raise Cancelled()


def diverged(phase: str, epoch: int, loss: float, config: RunConfig, distilled: bool) -> TrainingDiverged:
    who = f"The {ROLE_LABEL.get(phase, phase)}"
    hint = f"lower the learning rate (it is {config.lr:g})"
    if distilled:
        hint += f", or use a temperature between 1 and 10 (it is {config.temperature:g})"
    return TrainingDiverged(f"{who}'s training diverged: its loss was {loss} in epoch {epoch}; {hint}")


def cpu_state(model: nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

