"""Plotly figures for the live curves and the comparison, in the studio's colours.

Every figure sets ``uirevision`` so that a chart redrawn every second keeps the user's zoom.
"""
from __future__ import annotations

import math
from typing import Optional

import plotly.graph_objects as go

from distill_core import DISTILLED, ROLE_LABEL, ROLES

from .style import ROLE_COLOR

# Legends above the plot, under the title: below it they sat on the x axis's title ("epoch",
# "confidence"), which automargin places without knowing of them.
LEGEND_ABOVE = dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0, font=dict(size=12))
TITLE_TOP = dict(x=0, xanchor="left", y=1, yref="container", yanchor="top", pad=dict(t=8))
LIVE_LAYOUT = dict(margin=dict(l=10, r=10, t=80, b=10), height=440, uirevision="keep", legend=LEGEND_ABOVE,
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
    layout = dict(LIVE_LAYOUT, title=dict(TITLE_TOP, text=title), xaxis=dict(xaxis, **axis),
                  yaxis=dict(yaxis, **axis))
    if not data:
        layout["annotations"] = [dict(text=empty, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                                      font=dict(size=14, color="#888"))]
    return {"data": data, "layout": layout}


ENDED_EMPTY = "the run ended before any was logged"  # a chart's words for a run that is over


TERM_DASH = ("dot", "dash", "dashdot", "longdash", "longdashdot")
STAGE_WORDS = {"hints": "hints only"}  # a method's stage (FitNets' first), as the charts name its band


def term_series(steps: list[dict], rows: list[dict], labels: Optional[dict[str, str]] = None
                ) -> tuple[list, dict[str, list], dict[str, str], bool]:
    """(x, {term: contributions}, {term: label}, per step?) of the distilled student's loss terms:
    per step when the engine reported them, else each epoch's averages. Contributions are the
    method's own (weight x value): nothing here weighs a term."""
    if steps and any(p.get("terms") for p in steps):
        names = list(labels or {}) + [n for p in steps for n in p.get("terms") or {} if n not in (labels or {})]
        names = list(dict.fromkeys(names))
        return ([p["x"] for p in steps], {n: [(p.get("terms") or {}).get(n) for p in steps] for n in names},
                {n: (labels or {}).get(n, n) for n in names}, True)
    found: dict[str, str] = {}
    for row in rows:
        for t in row.get("terms") or []:
            found.setdefault(t["name"], t.get("label", t["name"]))
    values = {n: [next((t.get("contribution") for t in r.get("terms") or [] if t["name"] == n), None) for r in rows]
              for n in found}
    return [r["epoch"] for r in rows], values, found, False


def stage_spans(steps: list[dict], rows: list[dict]) -> list[tuple[float, float, str]]:
    """(first epoch - 1, last epoch, stage) of each stage a method reported (FitNets' hints), from
    its epochs' rows and the steps of the epoch under way."""
    epochs: dict[str, set[int]] = {}
    for row in rows:
        if row.get("stage"):
            epochs.setdefault(row["stage"], set()).add(int(row["epoch"]))
    for p in steps:
        if p.get("stage"):
            epochs.setdefault(p["stage"], set()).add(max(1, math.ceil(p["x"])))
    return [(min(e) - 1, max(e), stage) for stage, e in epochs.items()]


def _bands(spans: list[tuple[float, float, str]]) -> tuple[list[dict], list[dict]]:
    """Shaded bands and their labels for a chart's layout."""
    shapes = [dict(type="rect", xref="x", yref="paper", x0=x0, x1=x1, y0=0, y1=1, layer="below",
                   fillcolor="rgba(18, 163, 127, 0.10)", line=dict(width=0)) for x0, x1, _ in spans]
    notes = [dict(text=STAGE_WORDS.get(stage, stage), x=(x0 + x1) / 2, y=1, xref="x", yref="paper", yanchor="bottom",
                  showarrow=False, font=dict(size=11, color="#12A37F")) for x0, x1, stage in spans]
    return shapes, notes


def loss_figure(steps: dict[str, list[dict]], history: dict[str, list[dict]], epochs: Optional[float] = None,
                ended: bool = False, term_labels: Optional[dict[str, dict[str, str]]] = None,
                spans: Optional[list[tuple[float, float, str]]] = None) -> dict:
    """Training loss of each model, and the distilled student's loss split into the terms its method
    reports (KD: α·T²·KL and (1−α)·CE; DKD: CE, a·TCKD, b·NCKD; ...).

    Each term is drawn as its contribution, the weight the method gave it times its value, so the
    parts add up to the total that is backpropagated. Per-step terms are used when the engine
    reports them; otherwise each epoch's averages. Per-step lines are marked ``meta=SMOOTH``: the
    Live page's frame smooths them with each viewer's own EMA setting. ``spans`` shade a method's
    own stages (FitNets' hints-only epochs).

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
        if role != DISTILLED:
            continue
        xs, values, labels, per_step = term_series(points, history.get(role) or [], (term_labels or {}).get(role))
        for i, (name, ys) in enumerate(values.items()):
            data.append(_line(xs, ys, labels[name], "terms", color, 2, TERM_DASH[i % len(TERM_DASH)],
                              markers=not per_step, smooth=per_step))
    xs, ys = _points(data)
    y_top = round_top(max(ys)) if ys else 2.5
    spec = _live_spec(data, "Training loss", dict(title=dict(text="epoch"), range=_x_range(xs, epochs)),
                      dict(title=dict(text="loss"), range=[0, y_top]),
                      ENDED_EMPTY if ended else "waiting for the first training steps…")
    _add_bands(spec, spans)
    # A viewer may ask for a log y axis (the distilled student's loss carries T^2 and can sit ten
    # times above the others); its range is fixed here too, in whole decades, for the same reason.
    spec["layout"]["meta"] = {"log_range": log_range(ys)}
    return spec


def _add_bands(spec: dict, spans: Optional[list[tuple[float, float, str]]]) -> None:
    if spans:
        shapes, notes = _bands(spans)
        spec["layout"]["shapes"] = shapes
        spec["layout"]["annotations"] = spec["layout"].get("annotations", []) + notes


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
                    trained_before: Optional[dict[str, tuple[float, str]]] = None,
                    spans: Optional[list[tuple[float, float, str]]] = None) -> dict:
    """Train (dashed) and validation (solid) accuracy of the three models, on shared axes, and each
    student's top-1 agreement with the teacher on the validation images (dash-dot).

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
        if any(r.get("val_agreement") is not None for r in rows):  # a student's fidelity to its teacher
            data.append(_line(at, [100 * r["val_agreement"] if r.get("val_agreement") is not None else None
                                   for r in rows], f"{label}: agrees with teacher (val)", role, color, 1.5,
                              "dashdot", hover="%{y:.1f} %"))
    xs, ys = _points(data)
    bottom = max(0, 10 * math.floor((min(ys) - 2) / 10)) if ys else 0
    yaxis = dict(title=dict(text="accuracy (%)"), ticksuffix=" %", range=[bottom, 102])  # room for a 100 % marker
    x_range = _x_range(xs, epochs)  # whole epochs, at most about ten ticks: 60 labels smeared into one
    spec = _live_spec(data, "Accuracy", dict(title=dict(text="epoch"), range=x_range,
                                             dtick=max(1, math.ceil(x_range[1] / 10))), yaxis,
                      ENDED_EMPTY if ended else "the first point comes at the end of the first epoch")
    _add_bands(spec, spans)  # a hints-only stage: the classifier is not trained yet, accuracy waits
    return spec


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


def text_label(value) -> str:
    """A value from outside (a class folder's name) as plotly text: plotly reads <a href>, <b> and
    the like in labels, and decodes &lt; back to the character it stands for."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;")


def confusion_figure(matrix: list[list[int]], class_names: list[str], title: str, color: str) -> go.Figure:
    """Row-normalised confusion matrix (each true class sums to 100 %), counts on hover."""
    n = len(matrix)
    names = [text_label(c) for c in (class_names or range(n))][:n]
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


def reliability_figure(entries: dict[str, dict]) -> go.Figure:
    """Reliability diagram: each model's accuracy against its mean confidence per confidence bin
    (the bins behind its ECE); a calibrated model lies on the diagonal. Marker size: images in the bin."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="#bbb", dash="dot"),
                               name="calibrated", hoverinfo="skip"))
    for role in ROLES:
        bins = [b for b in (entries.get(role) or {}).get("reliability") or [] if b.get("count")]
        if not bins:
            continue
        ece = entries[role].get("ece")
        fig.add_trace(go.Scatter(
            x=[b["confidence"] for b in bins], y=[b["accuracy"] for b in bins], mode="lines+markers",
            name=f"{ROLE_LABEL[role]} (ECE {ece:.3f})" if ece is not None else ROLE_LABEL[role],
            line=dict(color=ROLE_COLOR[role], width=2),
            marker=dict(size=[4 + 10 * math.sqrt(b["count"] / max(c["count"] for c in bins)) for b in bins]),
            customdata=[b["count"] for b in bins],
            hovertemplate="confidence %{x:.2f}: accuracy %{y:.2f} (%{customdata} images)<extra></extra>"))
    fig.update_layout(title=dict(TITLE_TOP, text="Reliability (validation split, last epoch)", font=dict(size=14)),
                      margin=dict(l=10, r=10, t=90, b=10), height=400, uirevision="keep", legend=LEGEND_ABOVE)
    fig.update_xaxes(title_text="confidence", range=[0, 1.02])
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02])
    return fig


def class_gain_figure(gains: list[float], class_names: list[str]) -> go.Figure:
    """Distilled minus scratch accuracy for each class, in points: where the teacher's soft targets helped."""
    names = [str(c) for c in class_names][:len(gains)] or [str(i) for i in range(len(gains))]
    fig = go.Figure(go.Bar(x=names, y=gains, marker_color=["#12A37F" if g >= 0 else "#D64545" for g in gains],
                           hovertemplate="class %{x}: %{y:+.1f} points<extra></extra>"))
    # Two short lines: on one, the title was wider than its half of a 1024-pixel page and plotly cut it.
    fig.update_layout(title=dict(text="KD gain per class (points)<br><span style='font-size:12px'>validation split, "
                                      "last epoch</span>", x=0, xanchor="left", font=dict(size=14)),
                      margin=dict(l=10, r=10, t=60, b=10), height=340, uirevision="keep")
    fig.update_xaxes(type="category", title_text="class")
    fig.update_yaxes(title_text="points", zeroline=True, zerolinecolor="#888")
    return fig
