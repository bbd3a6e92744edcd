"""Plotly figures for the live curves and the comparison, in the studio's colours.

Every figure sets ``uirevision`` so that a chart redrawn every second keeps the user's zoom.
"""
from __future__ import annotations

import math
from typing import Optional

import plotly.graph_objects as go

from distill_core import ROLE_LABEL, ROLES

from .style import ROLE_COLOR

LIVE_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=420, uirevision="keep",
                   legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0, font=dict(size=12)),
                   hovermode="x unified", showlegend=True)
SMOOTH = "ema"  # a trace's ``meta``: smooth this line with the viewer's EMA (studio/web/live_view.js)


def _line(x: list, y: list, name: str, group: str, color: str, width: float, dash: str = "solid",
          markers: bool = False, hover: str = "%{y:.3f}", smooth: bool = False) -> dict:
    y = [v if v is None or math.isfinite(v) else None for v in y]  # a diverged run's NaN: a gap, valid JSON
    # A lone point drawn as a line is invisible: a short phase that reported one loss point
    # would be in the legend but nowhere on the chart.
    markers = markers or sum(v is not None for v in y) < 2
    trace = dict(type="scatter", x=x, y=y, mode="lines+markers" if markers else "lines", name=name,
                 legendgroup=group, line=dict(color=color, width=width, dash=dash), hovertemplate=hover)
    if markers:
        trace["marker"] = dict(size=7)
    if smooth:
        trace["meta"] = SMOOTH
    return trace


def _points(data: list[dict]) -> tuple[list, list]:
    """Every x and every drawn y of a live figure's traces, for its axis ranges."""
    return [x for t in data for x in t["x"]], [y for t in data for y in t["y"] if y is not None]


def _x_range(xs: list, epochs: Optional[float]) -> list:
    """A live chart's epochs axis: the run's longest phase, or further if a point lies beyond."""
    return [0, max([epochs or 0] + xs) or 1]


def _live_spec(data: list[dict], title: str, xaxis: dict, yaxis: dict, empty: str) -> dict:
    # ticklabeloverflow "allow": the default measures every tick label against the div on every
    # redraw (a forced layout each), about 5 of the 30 ms a live redraw takes; automargin keeps them in.
    axis = dict(automargin=True, ticklabeloverflow="allow")
    layout = dict(LIVE_LAYOUT, title=dict(text=title, x=0, xanchor="left"), xaxis=dict(xaxis, **axis),
                  yaxis=dict(yaxis, **axis))
    if not data:
        layout["annotations"] = [dict(text=empty, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                                      font=dict(size=14, color="#888"))]
    return {"data": data, "layout": layout}


ENDED_EMPTY = "the run ended before any was logged"  # a chart's words for a run that is over


def loss_figure(steps: dict[str, list[dict]], history: dict[str, list[dict]], alpha: float,
                epochs: Optional[float] = None, ended: bool = False) -> dict:
    """Training loss of each model, and the distilled student's loss split into its two terms.

    The split shows the weighted terms, alpha * T^2 * KL and (1 - alpha) * CE, so the two parts
    add up to the total that is backpropagated. Per-step parts are used when the engine
    reports them; otherwise each epoch's averages. Per-step lines are marked ``meta=SMOOTH``:
    the Live page's frame smooths them with each viewer's own EMA setting.

    The axes have fixed ranges: x up to ``epochs`` (the run's longest phase), y up to a round
    number above the highest loss. So they change only when a phase starts, and in between the
    frame moves the lines without redrawing the axes (half the CPU of a full redraw).

    Live figures are plain plotly.js specs, not ``go.Figure``: they are rebuilt every second and
    plotly's validation took about 25 ms per figure, time taken from training on a small CPU.
    """
    data = []
    for role in ROLES:
        color, label = ROLE_COLOR[role], ROLE_LABEL[role]
        points = steps.get(role) or []
        if points:
            data.append(_line([p["x"] for p in points], [p.get("loss") for p in points], f"{label}: loss", role,
                              color, 2.5, smooth=True))
        if role != "student_kd":
            continue
        if points and "kd" in points[-1]:
            xs = [p["x"] for p in points]
            kd = [alpha * p["kd"] if p.get("kd") is not None else None for p in points]
            ce = [(1 - alpha) * p["ce"] if p.get("ce") is not None else None for p in points]
            markers = False
        else:
            rows = history.get(role) or []
            xs = [r["epoch"] for r in rows]
            kd = [alpha * r["train_kd"] if r.get("train_kd") is not None else None for r in rows]
            ce = [(1 - alpha) * r["train_ce"] if r.get("train_ce") is not None else None for r in rows]
            markers = True
        if xs:
            per_step = not markers
            data.append(_line(xs, kd, "α·T²·KL (soft targets)", "kd_parts", color, 2, "dot", markers, smooth=per_step))
            data.append(_line(xs, ce, "(1−α)·CE (true labels)", "kd_parts", color, 2, "dash", markers, smooth=per_step))
    xs, ys = _points(data)
    y_top = round_top(max(ys)) if ys else 2.5
    spec = _live_spec(data, "Training loss", dict(title=dict(text="epoch"), range=_x_range(xs, epochs)),
                      dict(title=dict(text="loss"), range=[0, y_top]),
                      ENDED_EMPTY if ended else "waiting for the first training steps…")
    # A viewer may ask for a log y axis (the distilled student's loss carries T^2 and can sit ten
    # times above the others); its range is fixed here too, in whole decades, for the same reason.
    spec["layout"]["meta"] = {"log_range": log_range(ys)}
    return spec


def log_range(ys: list) -> list:
    """The decades around the positive values, as plotly's log-axis range (powers of ten)."""
    positive = [y for y in ys if y > 0]
    if not positive:
        return [-2, 1]
    low, high = math.floor(math.log10(min(positive))), math.ceil(math.log10(1.05 * max(positive)))
    return [low, max(high, low + 1)]


ROUND_STEPS = (1, 1.2, 1.4, 1.6, 1.8, 2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 9, 10)


def round_top(value: float) -> float:
    """A round number 5 % or more above ``value`` (losses are >= 0): 2.3 -> 2.5, 14.8 -> 16."""
    if not value > 0:
        return 1.0
    target = 1.05 * value
    scale = 10 ** math.floor(math.log10(target))
    return next(round(step * scale, 12) for step in ROUND_STEPS if step * scale >= target)


def accuracy_figure(history: dict[str, list[dict]], epochs: Optional[float] = None, ended: bool = False,
                    trained_before: Optional[dict[str, tuple[float, str]]] = None) -> dict:
    """Train (dashed) and validation (solid) accuracy of the three models, on shared axes.

    Fixed ranges, as in ``loss_figure``: x up to ``epochs``, y from a multiple of 10 below the
    lowest accuracy to 100 %, so a new epoch moves the lines without a full redraw.

    ``trained_before`` ({role: (validation accuracy 0..1, where from: "cache" or "checkpoint")}):
    models this run did not train, drawn as a flat line at their accuracy: their own curves would
    stretch the x axis to their epochs, and squeeze a shorter student into a corner."""
    data = []
    for role, (accuracy, source) in (trained_before or {}).items():
        top = max(epochs or 0, 1)
        where = {"cache": "from the cache", "checkpoint": "uploaded"}.get(source, "trained before")
        data.append(_line([0, top], [100 * accuracy] * 2, f"{ROLE_LABEL[role]}: val ({where})", role,
                          ROLE_COLOR[role], 2, "dot", hover="%{y:.1f} %"))
    for role in ROLES:
        rows = history.get(role) or []
        if not rows or role in (trained_before or {}):
            continue
        color, label = ROLE_COLOR[role], ROLE_LABEL[role]
        at = [r["epoch"] for r in rows]
        data.append(_line(at, [100 * r["val_accuracy"] for r in rows], f"{label}: val", role, color, 2.5,
                          markers=True, hover="%{y:.1f} %"))
        if any(r.get("train_accuracy") is not None for r in rows):
            data.append(_line(at, [100 * r["train_accuracy"] if r.get("train_accuracy") is not None else None
                                       for r in rows], f"{label}: train", role, color, 1.5, "dash",
                              hover="%{y:.1f} %"))
    xs, ys = _points(data)
    bottom = max(0, 10 * math.floor((min(ys) - 2) / 10)) if ys else 0
    yaxis = dict(title=dict(text="accuracy (%)"), ticksuffix=" %", range=[bottom, 102])  # room for a 100 % marker
    x_range = _x_range(xs, epochs)  # whole epochs, at most about ten ticks: 60 labels smeared into one
    return _live_spec(data, "Accuracy", dict(title=dict(text="epoch"), range=x_range,
                                             dtick=max(1, math.ceil(x_range[1] / 10))), yaxis,
                      ENDED_EMPTY if ended else "the first point comes at the end of the first epoch")


def bar_figure(title: str, values: dict[str, Optional[float]], fmt: str) -> go.Figure:
    """One metric, three bars (teacher, scratch, distilled): a small chart of its own, so that the
    Compare page can wrap them two to a row on a phone (one figure of five subplots could not)."""
    roles = [r for r in ROLES if values.get(r) is not None]
    fig = go.Figure(go.Bar(x=[ROLE_LABEL[r].replace(" student", "<br>student") for r in roles],
                           y=[values[r] for r in roles], marker_color=[ROLE_COLOR[r] for r in roles],
                           text=[fmt.format(values[r]) for r in roles], textposition="outside", cliponaxis=False,
                           hoverinfo="skip", showlegend=False))
    fig.update_layout(title=dict(text=title, x=0.5, xanchor="center", font=dict(size=13)),
                      margin=dict(l=4, r=4, t=50, b=10), height=330, uirevision="keep", bargap=0.25)
    fig.update_yaxes(showticklabels=False, showgrid=False, rangemode="tozero")
    fig.update_xaxes(tickfont=dict(size=11))
    return fig


def confusion_figure(matrix: list[list[int]], class_names: list[str], title: str, color: str) -> go.Figure:
    """Row-normalised confusion matrix (each true class sums to 100 %), counts on hover."""
    n = len(matrix)
    names = [str(c) for c in (class_names or range(n))][:n]
    share = []
    for row in matrix:
        total = sum(row) or 1
        share.append([100.0 * v / total for v in row])
    fig = go.Figure(go.Heatmap(
        z=share, x=names, y=names, customdata=matrix, colorscale=[[0, "#ffffff"], [1, color]], zmin=0, zmax=100,
        showscale=False, hovertemplate="true %{y}, predicted %{x}: %{customdata} images (%{z:.1f} %)<extra></extra>",
        text=[[f"{v:.0f}" if v >= 0.5 else "" for v in row] for row in share] if n <= 12 else None,
        texttemplate="%{text}" if n <= 12 else None, textfont=dict(size=10)))
    fig.update_layout(title=dict(text=title, x=0, xanchor="left", font=dict(size=14)),
                      margin=dict(l=10, r=10, t=40, b=10), height=360, uirevision="keep")
    fig.update_xaxes(title_text="predicted", type="category", tickangle=0 if n <= 12 else -45)
    fig.update_yaxes(title_text="true", type="category", autorange="reversed")
    return fig
