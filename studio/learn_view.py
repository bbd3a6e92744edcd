"""The Learn page's pictures and its workshop exercises. Every number comes from a real model
(distill_core's lesson functions); this module only draws and words them."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional

import plotly.graph_objects as go
import streamlit as st
import torch

from distill_core import (DERIVED, DONE, DistillError, Lesson, RunConfig, RunStore, class_similarity, open_lesson,
                          resolved_init, run_store_path, soft_gradient_norms, soft_targets, student_label)

from .style import ROLE_COLOR

TEMPERATURES = [0.5, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 20]  # the slider's stops, and the T^2 chart's x
LEVEL = 0.2  # "level": within 20 % of the T^2 term's value at the largest T


def sweep_trials() -> set[str]:
    """The finished runs that are trials of a sweep: one short recipe each, not a lesson's first
    choice. The run store says so (a trial's results.json does not); with no store, none."""
    if not run_store_path().is_file():
        return set()
    try:
        return {r["run_id"] for r in RunStore(check_interrupted=False).list_runs(status=DONE) if r["sweep_id"]}
    except DistillError:  # a damaged store: said at the top of the page
        return set()


def first_choice(choices: list[Optional[str]], trials: set[str]) -> Optional[str]:
    """The teacher the page opens on: the newest run that is no sweep trial, else the newest."""
    return next((c for c in choices if c not in trials), choices[0] if choices else None)


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
    finds alike. The diagonal is left out so those cells can be read. The colours start at 0, with
    their scale beside them: at a high T every cell is near 1/k, and a scale stretched over what
    the cells span would paint differences of 0.01 as large as those at T = 1."""
    k = len(classes)
    shown = [[None if i == j else v for j, v in enumerate(row)] for i, row in enumerate(matrix)]
    top = max([v for row in shown for v in row if v is not None] + [1e-6])
    fig = go.Figure(go.Heatmap(z=shown, x=classes, y=classes, colorscale="Purples", zmin=0, zmax=top,
                               colorbar=dict(title=dict(text="mean prob.", side="right"), tickformat=".2~f"),
                               customdata=matrix,
                               hovertemplate="true %{y}: %{customdata:.3f} on %{x}<extra></extra>"))
    fig.update_layout(title=dict(text=f"Where the teacher puts its doubt, at T = {temperature:g} "
                                      "(the diagonal is left out)", x=0, xanchor="left"),
                      margin=dict(l=10, r=10, t=40, b=10), height=360 if k <= 12 else 480)
    fig.update_xaxes(type="category", title_text="probability given to class")
    fig.update_yaxes(type="category", title_text="true class", autorange="reversed")
    return fig


def level_from(rows: list[dict], tolerance: float = LEVEL) -> Optional[float]:
    """The lowest T from which the T^2 term stays within ``tolerance`` of its value at the largest T
    (the soft term's gradient is level only once T is large: below, the softmax saturates)."""
    end = rows[-1]["with_t2"]
    level = None
    for row in reversed(rows):
        if end <= 0 or abs(row["with_t2"] / end - 1) > tolerance:
            break
        level = row["temperature"]
    return level


def log_ticks(values: Iterable[float]) -> list[float]:
    """Ticks for a log axis over ``values``: 1, 2, 5 in each decade over up to two decades, the
    powers of ten over more (plotly's own log ticks label the minor steps too: "4 5 6 7 8 9 1 2")."""
    found = [v for v in values if v > 0]
    if not found:  # all zero (a student that is its teacher): plotly's own ticks
        return []
    low, high = min(found), max(found)
    steps = (1, 2, 5) if high / low <= 100 else (1,)
    ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 2)
             for m in steps]
    inside = [t for t in ticks if low / 1.01 <= t <= high * 1.01]
    if len(inside) < 2:  # a narrow span: the ticks either side of it
        inside = [max([t for t in ticks if t <= low] or [low]), min([t for t in ticks if t >= high] or [high])]
    return inside


def tick_text(value: float) -> str:
    return f"{value:g}" if 1e-3 <= value < 1e5 else f"1e{round(math.log10(value))}" if value > 0 else "0"


def gradient_words(rows: list[dict], tolerance: float = LEVEL) -> tuple[str, str]:
    """The two curves' legend entries, from the numbers: where the T^2 term is level, and by how
    much it is lower at the smallest T."""
    level = level_from(rows, tolerance)
    first, last = rows[0], rows[-1]
    if level is None or level >= last["temperature"]:
        scaled = f"T² · KL: not level up to T = {last['temperature']:g}"
        plain = "KL alone"
    else:
        scaled = f"T² · KL: level (± {100 * tolerance:.0f} %) from T = {level:g}"
        plain = f"KL alone: fades as 1/T² from T = {level:g}"
        if level > first["temperature"] and first["with_t2"] > 0:
            ratio = last["with_t2"] / first["with_t2"]  # a low T's softmax saturates (lower), or is unsure (higher)
            times = max(ratio, 1 / ratio)
            scaled += (f", {times:.0f}×" if times >= 10 else f", {times:.1f}×") \
                + f" {'lower' if ratio > 1 else 'higher'} at T = {first['temperature']:g}"
    return plain, scaled


def gradient_figure(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> go.Figure:
    """The soft term's gradient on the student's logits, against T, with and without T^2 (log axes)."""
    rows = soft_gradient_norms(teacher_logits, student_logits, TEMPERATURES)
    ts = [r["temperature"] for r in rows]
    plain_name, scaled_name = gradient_words(rows)
    ys = [r["without_t2"] for r in rows] + [r["with_t2"] for r in rows]
    fig = go.Figure([
        go.Scatter(x=ts, y=[r["without_t2"] for r in rows], name=plain_name, mode="lines+markers",
                   line=dict(color="#D64545", dash="dash")),
        go.Scatter(x=ts, y=[r["with_t2"] for r in rows], name=scaled_name, mode="lines+markers",
                   line=dict(color=ROLE_COLOR["student_kd"], width=3))])
    fig.update_layout(title=dict(text="Size of the soft term's gradient on the student", x=0, xanchor="left"),
                      margin=dict(l=10, r=10, t=40, b=10), height=360, legend=dict(orientation="h", y=-0.25, x=0))
    x_ticks, y_ticks = log_ticks(ts), log_ticks(ys)
    fig.update_xaxes(type="log", title_text="temperature T", tickvals=x_ticks or None,
                     ticktext=[tick_text(t) for t in x_ticks] or None)
    fig.update_yaxes(type="log", title_text="mean gradient norm per image", tickvals=y_ticks or None,
                     ticktext=[tick_text(t) for t in y_ticks] or None)
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
