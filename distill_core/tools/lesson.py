"""What the Learn page teaches, computed from real models: a finished run's teacher (with its
distilled student, when it finished), or the cached teacher of the offline demo.

Everything is on the validation split, from logits computed once when the lesson opens; a
temperature is then only a division, so the page redraws at once as a slider moves.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ..checkpoints import load_into
from ..config import RunConfig
from ..data.datasets import DataRequest, ImageData, load_dataset
from ..errors import CheckpointError, DistillError
from ..models import create_model
from ..runs.teacher_cache import cached_path
from ..vocab import DISTILLED, TEACHER
from .export import build_model, load_data, open_run


@dataclass
class Lesson:
    """A teacher's (and maybe a student's) answers on every validation image, as logits."""

    title: str  # where the models come from, for the page
    config: RunConfig
    data: ImageData
    teacher_logits: torch.Tensor  # N x K, fp32, CPU
    student_logits: Optional[torch.Tensor]  # the distilled student's, when the run has one
    run_id: Optional[str] = None

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.data.classes]

    @property
    def labels(self) -> torch.Tensor:
        return self.data.val_y.cpu()

    def check_image(self, index: int) -> int:
        n = int(self.labels.shape[0])
        if not 0 <= index < n:
            raise DistillError(f"there is no validation image {index}: this dataset has {n} (0 to {n - 1})")
        return index


@torch.inference_mode()
def logits_of(model: torch.nn.Module, data: ImageData, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    out = [model(data.normalize(data.val_x[i:i + batch_size])).float() for i in range(0, data.val_x.shape[0],
                                                                                       batch_size)]
    return torch.cat(out).cpu()


def open_lesson(run_id: Optional[str] = None) -> Lesson:
    """The lesson of a finished run (its teacher and, when it finished, its distilled student), or
    with no run, of the cached demo teacher. A missing file is a ``DistillError`` that says which."""
    if run_id is None:
        return demo_lesson()
    run = open_run(run_id)
    try:
        teacher = build_model(run, TEACHER)
    except CheckpointError as exc:
        raise DistillError(f"run {run.run_id}'s teacher cannot be loaded: {exc}. Pick another run, or the demo "
                           "teacher") from None
    try:
        student = build_model(run, DISTILLED)
    except CheckpointError:
        student = None  # the run stopped before its distilled student finished: the teacher alone
    data = load_data(run)
    return Lesson(f"run {run.run_id} ({run.config.teacher} → {run.config.student} on {run.config.dataset})",
                  run.config, data, logits_of(teacher, data), None if student is None else logits_of(student, data),
                  run.run_id)


def demo_config() -> RunConfig:
    return RunConfig()  # the offline default: mnist5k, cnn_large -> cnn_tiny


def demo_teacher_ready() -> bool:
    return cached_path(demo_config()).is_file()


def demo_lesson() -> Lesson:
    config = demo_config()
    path = cached_path(config)
    if not path.is_file():
        raise DistillError("the demo teacher is not trained yet: run the demo once (Home, or Train it here)")
    data = load_dataset(config.dataset, DataRequest(seed=config.seed, download=False))
    teacher = create_model(config.teacher, data.in_channels, data.num_classes, data.image_size)
    load_into(teacher, path, config.teacher, data.num_classes)
    return Lesson(f"the cached demo teacher ({config.teacher} on {config.dataset})", config, data,
                  logits_of(teacher, data), None)


# ---- 1. what the teacher knows ------------------------------------------------------------------
def soft_targets(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(z / T): what the student is taught from at temperature T."""
    return F.softmax(logits.double() / temperature, dim=-1)


def entropy_bits(p: torch.Tensor) -> float:
    """How spread the distribution is, in bits: 0 for a one-hot answer, log2(K) for a uniform one."""
    p = p.double().clamp_min(1e-300)
    return float(-(p * p.log2()).sum())


def dark_knowledge(p: torch.Tensor, label: int) -> float:
    """The probability the teacher puts on the wrong classes: what one-hot labels cannot teach."""
    return float(1.0 - p.double()[label])


def kl_shares(p_teacher: torch.Tensor, p_student: torch.Tensor) -> list[float]:
    """Each class's term of KL(p_t || p_s) = sum_k p_t[k] log(p_t[k] / p_s[k]), in nats (they add
    up to the KL; a term can be negative, the sum cannot)."""
    p_t, p_s = p_teacher.double().clamp_min(1e-300), p_student.double().clamp_min(1e-300)
    return [float(v) for v in p_teacher.double() * (p_t.log() - p_s.log())]


# ---- 2. which classes look alike ----------------------------------------------------------------
def class_similarity(logits: torch.Tensor, labels: torch.Tensor, temperature: float,
                     pairs: int = 3) -> tuple[list[list[float]], list[tuple[int, int, float]]]:
    """The teacher's mean soft probabilities per true class (row: true class, column: the class it
    gives probability to), and the ``pairs`` most confused pairs of classes: those whose mutual
    probability (both directions, averaged) is highest."""
    p = soft_targets(logits, temperature)
    k = p.shape[1]
    matrix = torch.zeros(k, k, dtype=torch.float64)
    for c in range(k):
        rows = p[labels == c]
        if rows.shape[0]:
            matrix[c] = rows.mean(0)
    mutual = (matrix + matrix.T) / 2
    found = sorted(((float(mutual[a, b]), a, b) for a in range(k) for b in range(a + 1, k)), reverse=True)[:pairs]
    return matrix.tolist(), [(a, b, share) for share, a, b in found]


# ---- 3. why T^2 ----------------------------------------------------------------------------------
def soft_gradient_norms(teacher_logits: torch.Tensor, student_logits: torch.Tensor,
                        temperatures: list[float]) -> list[dict]:
    """For each T: the mean per-image norm of the gradient of the soft term KL(p_t^T || p_s^T) with
    respect to the student's logits, with and without the T^2 factor. Without it, the soft term's
    gradient shrinks about as 1/T^2 (Hinton et al. 2015, section 2); with it, it stays about level."""
    out = []
    for t in temperatures:
        z = student_logits.detach().double().clone().requires_grad_(True)
        kl = F.kl_div(F.log_softmax(z / t, dim=1), F.log_softmax(teacher_logits.double() / t, dim=1),
                      reduction="batchmean", log_target=True)
        (grad,) = torch.autograd.grad(kl, z)
        plain = float(grad.norm(dim=1).mean()) * z.shape[0]  # per image: batchmean divided by the batch
        out.append({"temperature": t, "without_t2": plain, "with_t2": plain * t * t})
    return out
