"""The Learn page's pictures and its workshop exercises. Every number comes from a real model
(distill_core's lesson functions); this module only draws and words them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import plotly.graph_objects as go
import streamlit as st
import torch

from distill_core import (DERIVED, Lesson, RunConfig, class_similarity, open_lesson, resolved_init, soft_gradient_norms,
                          soft_targets, student_label)

from .style import ROLE_COLOR

TEMPERATURES = [0.5, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 20]  # the slider's stops, and the T^2 chart's x


@st.cache_resource(show_spinner="Reading the teacher's answers…", max_entries=4)
def lesson_of(run_id: Optional[str]) -> Lesson:
    """A run's lesson (None: the demo teacher's), computed once per server: the logits of every
    validation image, so that moving a slider only divides them."""
    return open_lesson(run_id)


def soft_target_figure(classes: list[str], teacher: torch.Tensor, student: Optional[torch.Tensor], label: int,
                       temperature: float) -> go.Figure:
    """The teacher's softmax at T as bars (the true class outlined), the student's as markers over it."""
    colors = [ROLE_COLOR["teacher"]] * len(classes)
    fig = go.Figure(go.Bar(x=classes, y=teacher.tolist(), name="teacher", marker_color=colors,
                           marker_line=dict(color=["#111" if i == label else "rgba(0,0,0,0)"
                                                   for i in range(len(classes))], width=2),
                           hovertemplate="class %{x}: %{y:.3f}<extra>teacher</extra>"))
    if student is not None:
        fig.add_trace(go.Scatter(x=classes, y=student.tolist(), name="distilled student", mode="markers",
                                 marker=dict(color=ROLE_COLOR["student_kd"], size=12, symbol="diamond"),
                                 hovertemplate="class %{x}: %{y:.3f}<extra>student</extra>"))
    fig.update_layout(title=dict(text=f"Soft targets at T = {temperature:g}", x=0, xanchor="left"),
                      margin=dict(l=10, r=10, t=40, b=10), height=340, uirevision="keep", bargap=0.2,
                      legend=dict(orientation="h", y=-0.2, x=0))
    fig.update_xaxes(type="category", title_text="class")
    fig.update_yaxes(title_text="probability", range=[0, 1.02])
    return fig


def similarity_figure(classes: list[str], matrix: list[list[float]], temperature: float) -> go.Figure:
    """The teacher's mean soft probabilities per true class: bright off-diagonal cells are classes it
    finds alike. The diagonal is dimmed so those cells can be read."""
    k = len(classes)
    shown = [[None if i == j else v for j, v in enumerate(row)] for i, row in enumerate(matrix)]
    fig = go.Figure(go.Heatmap(z=shown, x=classes, y=classes, colorscale="Purples", showscale=False,
                               customdata=matrix,
                               hovertemplate="true %{y}: %{customdata:.3f} on %{x}<extra></extra>"))
    fig.update_layout(title=dict(text=f"Where the teacher puts its doubt, at T = {temperature:g} "
                                      "(the diagonal is left out)", x=0, xanchor="left"),
                      margin=dict(l=10, r=10, t=40, b=10), height=360 if k <= 12 else 480)
    fig.update_xaxes(type="category", title_text="probability given to class")
    fig.update_yaxes(type="category", title_text="true class", autorange="reversed")
    return fig


def gradient_figure(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> go.Figure:
    """The soft term's gradient on the student's logits, against T, with and without T^2 (log axes)."""
    rows = soft_gradient_norms(teacher_logits, student_logits, TEMPERATURES)
    ts = [r["temperature"] for r in rows]
    fig = go.Figure([
        go.Scatter(x=ts, y=[r["without_t2"] for r in rows], name="KL alone: fades as 1/T²", mode="lines+markers",
                   line=dict(color="#D64545", dash="dash")),
        go.Scatter(x=ts, y=[r["with_t2"] for r in rows], name="T² · KL: about level", mode="lines+markers",
                   line=dict(color=ROLE_COLOR["student_kd"], width=3))])
    fig.update_layout(title=dict(text="Size of the soft term's gradient on the student", x=0, xanchor="left"),
                      margin=dict(l=10, r=10, t=40, b=10), height=340, legend=dict(orientation="h", y=-0.25, x=0))
    fig.update_xaxes(type="log", title_text="temperature T")
    fig.update_yaxes(type="log", title_text="mean gradient norm per image")
    return fig


def confused_pairs(classes: list[str], logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> tuple:
    matrix, pairs = class_similarity(logits, labels, temperature)
    return matrix, [(classes[a], classes[b], share) for a, b, share in pairs]


def probabilities(logits: torch.Tensor, index: int, temperature: float) -> torch.Tensor:
    return soft_targets(logits[index], temperature)


# ---- exercises -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Exercise:
    title: str
    question: str
    look_for: str
    runs: tuple[tuple[str, RunConfig], ...]  # (what differs, the run's config)
    answer: str


def _demo(**changes) -> RunConfig:
    return RunConfig().replace(**changes)


EXERCISES = {
    "temperature": Exercise(
        "What T does", "Three runs of the demo at T = 1, 4 and 16 (alpha 0.9). Which student gains most?",
        "At T = 1 the soft targets are almost the hard labels: little dark knowledge passes. Watch the "
        "agreement with the teacher and the KD gain as T rises.",
        tuple((f"T = {t:g}", _demo(temperature=t)) for t in (1.0, 4.0, 16.0)),
        "A middle T usually wins: high enough to show the teacher's doubts, low enough that the targets "
        "are not flat. On small data the differences are within a point or two: compare with the noise "
        "band on Compare."),
    "alpha": Exercise(
        "What alpha does", "Three runs at alpha = 0.1, 0.5 and 0.9 (T = 4). How much should the student listen "
        "to the teacher rather than the labels?",
        "alpha weighs the soft term against the labels' cross-entropy. Watch the loss split on Live and the "
        "KD gain at the end.",
        tuple((f"alpha = {a:g}", _demo(alpha=a)) for a in (0.1, 0.5, 0.9)),
        "With a good teacher a high alpha helps most: the soft targets carry more than the labels. With a "
        "weak teacher a low alpha limits the harm."),
    "teacher": Exercise(
        "A bigger teacher, or a better one?", "The same student taught by a small teacher (cnn_small), by the "
        "big teacher trained for 2 epochs, and by the big teacher trained for 6. Which teaches best?",
        "Look at each teacher's own accuracy beside the student's gain: the best teacher is not always the "
        "best teacher for this student.",
        (("cnn_small, 6 epochs", _demo(teacher="cnn_small")), ("cnn_large, 2 epochs", _demo(teacher_epochs=2)),
         ("cnn_large, 6 epochs", _demo())),
        "A teacher that is better (more accurate) usually teaches better; a bigger one only if it is also "
        "better. A teacher far bigger than its student can be harder to copy (Mirzadeh et al. 2020)."),
}


def answer_rows(labels: list[str], results: list[Optional[dict]]) -> list[dict]:
    """One row per exercise run, from its results: the setting and what it bought."""
    rows = []
    for label, res in zip(labels, results):
        res = res or {}

        def acc(role: str) -> Optional[float]:
            value = (res.get(role) or {}).get("accuracy")
            return None if value is None else round(100 * value, 1)

        kd, scratch = acc("student_kd"), acc("student_scratch")
        agreement = (res.get("student_kd") or {}).get("val_agreement")
        rows.append({"run": label, "status": res.get("status") or "waiting", "teacher %": acc("teacher"),
                     "scratch %": scratch, "distilled %": kd,
                     "KD gain (pts)": None if kd is None or scratch is None else round(kd - scratch, 1),
                     "agrees with teacher %": None if agreement is None else round(100 * agreement, 1)})
    return rows


def weights_words(config: RunConfig) -> str:
    """Section 4, for this run's pair: when the weights of teacher and student can be subtracted
    (a student cut from the teacher, the same architecture), and why outputs are matched anyway."""
    teacher, student = config.teacher, student_label(config)
    if config.student == DERIVED:
        anchor = (f"here μ = {config.weight_anchor:g}" if config.weight_anchor else "off in this run")
        start = ("started as" if resolved_init(config.student, config.student_init) == "teacher" else
                 "has the shape of, though it started from random values,")
        pair = (f"Here the student, **{student}**, was cut from the teacher **{teacher}**: each of its weights "
                f"{start} a slice P(w_t) of the teacher's, so the two can be subtracted. That is this app's "
                f"weight anchor, μ·‖w_s − P(w_t)‖² ({anchor}). Matching outputs needs no such slice: ")
    elif config.student == teacher:
        pair = (f"Here teacher and student are both **{teacher}**: the shapes match and the weights can be "
                "subtracted, but two networks trained apart order their channels differently, so the difference "
                "compares unrelated units. Matching outputs needs no such correspondence: ")
    else:
        pair = (f"Here the teacher is **{teacher}** and the student **{student}**: their weights cannot be "
                "subtracted. Matching outputs ")
    return ("A weight-space objective, ‖w_s − w_t‖² + λ‖w_s‖², needs the student to have the teacher's shapes. "
            + pair + "works for any pair: both give one probability per class. (λ‖w_s‖² is the weight decay "
            "every recipe here already has.)")
