"""The Sweep page's logic, apart from Streamlit: its URL, its presets, the grid it builds, its
heatmap and parallel coordinates, and the words it says about a result.

The URL holds the whole sweep: the recipe as the Distill page writes it (``urlstate``), each swept
field as a comma list (``temperature=1,2,4,8``), the seeds (``seeds=0,1``) and the backend. So a
link shares a sweep's definition; ``sweep=<id>`` names a sweep to show.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import plotly.graph_objects as go

from distill_core import SWEEPABLE, Problem, RunConfig, SweepSpec, best_cells, parse_values, spec_problems, student_label

from . import fmt, urlstate

SWEEP_PARAMS = ("seeds", "backend", "sweep")  # the page's own; the rest is the recipe and the grid
# Names a chart's axis or a box gives a sweepable field where its own (``epochs``, ``student``,
# ``method``) would not do; any other field, a new one included, is named by its field name.
SHORT = {"temperature": "T", "alpha": "α", "distill_data": "distill data", "derive_depth": "blocks kept",
         "derive_width": "channels kept", "student_init": "init", "weight_anchor": "μ anchor"}  # the charts'
BOX = {"epochs": "Student epochs", "lr": "Learning rate", "distill_data": "Distillation data",
       "derive_depth": "Blocks kept (derived student)", "derive_width": "Channels kept (derived student)",
       "student_init": "Student init (teacher, random)", "weight_anchor": "Weight anchor μ"}  # the page's boxes


def label(name: str) -> str:
    """A swept field's short name, on the charts' axes and in the tables."""
    return SHORT.get(name, name.replace("_", " "))


# The page's boxes beyond T and alpha: every other sweepable field, once, in the engine's order.
MORE_FIELDS = {name: BOX.get(name, label(name).capitalize()) for name in SWEEPABLE if name not in ("temperature", "alpha")}


@dataclass(frozen=True)
class Preset:
    label: str
    base: RunConfig
    grid: dict[str, str]  # field -> comma list as the page's boxes hold it
    seeds: str
    help: str


PRESETS = {
    "what_t": Preset("What does T do?", RunConfig(), {"temperature": "1,2,4,8,16", "alpha": "0.9"}, "0,1",
                     "T in 1, 2, 4, 8 and 16 at alpha 0.9, two seeds each, on the offline default (MNIST sample, "
                     "cnn_large teaching cnn_tiny): ten distilled students, two teachers and two scratch "
                     "students. A few minutes on a 2-core laptop."),
}


def text_of(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def from_params(params: Mapping[str, Any], draft: Optional[dict] = None,
                read_link: Callable[[Mapping[str, Any]], tuple[RunConfig, list[str]]] = urlstate.from_params,
                ) -> tuple[RunConfig, dict[str, str], str, str, list[str]]:
    """(recipe, {field: comma list}, seeds, backend, notes) from the URL; with no recipe in it, the
    Distill page's draft of this session is the recipe. ``read_link`` reads a recipe from the URL:
    the page passes the Distill page's, which holds back the folder and checkpoint a link names."""
    flat = {k: (v[-1] if isinstance(v, (list, tuple)) else str(v)) for k, v in params.items()}
    lists = {k: flat.pop(k) for k in list(flat) if k in SWEEPABLE and "," in flat[k]}
    own = {k: flat.pop(k) for k in list(flat) if k in SWEEP_PARAMS}
    recipe = {k: v for k, v in flat.items() if k not in urlstate.OTHER_PAGES}
    base = RunConfig.from_dict(draft) if draft and not recipe and not lists else None
    notes: list[str] = []
    if base is None:
        base, notes = read_link(recipe)
    grid = {name: lists.get(name, text_of(getattr(base, name))) for name in SWEEPABLE}
    return base, grid, own.get("seeds", str(base.seed)), own.get("backend", "local"), notes


# What the probe's timing depends on (``probe_speed``): the data and its size, the models, where
# and how they train.
PROBE_FIELDS = ("dataset", "data_dir", "image_size", "val_fraction", "teacher", "student", "derive_depth",
                "derive_width", "device", "precision", "batch_size", "method", "extra")


def probe_key(config: RunConfig) -> str:
    """The key a probe's timing is kept under: a probe of another batch size, precision or method
    says nothing of this recipe's speed."""
    return json.dumps({name: getattr(config, name) for name in PROBE_FIELDS}, sort_keys=True, default=str)


def to_params(base: RunConfig, grid: dict[str, str], seeds: str, backend: str = "local") -> dict[str, str]:
    """The URL's parameters: the recipe's non-default fields, the lists, the seeds."""
    out = urlstate.to_params(base.replace(**{k: getattr(RunConfig, k) for k in SWEEPABLE}, seed=RunConfig.seed))
    for name, text in grid.items():
        if text.strip() != text_of(getattr(RunConfig, name)):
            out[name] = text.replace(" ", "")
    if seeds.replace(" ", "") != str(RunConfig.seed):
        out["seeds"] = seeds.replace(" ", "")
    if backend != "local":
        out["backend"] = backend
    return out


def build(base: RunConfig, grid: dict[str, str], seeds: str) -> tuple[Optional[SweepSpec], list[Problem]]:
    """The sweep the boxes describe, or None and why not: a list of several values is an axis, one
    value sets the recipe. Each problem names its box's field ("seed" for the seeds; None: the
    sweep as a whole), in the CLI's words, and all are found at once: a box that cannot be read
    leaves the others to the engine's checks."""
    axes, fixed, found = {}, {}, []
    for name, text in grid.items():
        try:
            values = parse_values(name, text)
        except ValueError as exc:
            found.append(unreadable(name, label(name), exc))
            continue
        if not values:
            found.append(Problem(name, f"{label(name)}: give a value, or a comma list such as 1,2,4"))
        elif len(values) == 1:
            fixed[name] = values[0]
        else:
            axes[name] = values
    try:
        seed_list = parse_values("seed", seeds)
    except ValueError as exc:
        found.append(unreadable("seed", "Seeds", exc))
        seed_list = None
    if seed_list == []:
        found.append(Problem("seed", "Seeds: give at least one, such as 0,1"))
    spec = SweepSpec(base.replace(**fixed, seed=(seed_list or [base.seed])[0], out=None), axes, seed_list or [0])
    unread = {p.field for p in found}  # said once, as read: the engine would fault the recipe's value in its place
    engine = [p for p in spec_problems(spec) if p.field not in unread]
    found += [Problem(p.field, fmt.sentence(p.message.replace("; give --yes to run it anyway", ""))) for p in engine]
    return (None, found) if found else (spec, [])


def unreadable(field: str, box: str, exc: ValueError) -> Problem:
    """A box whose text is no list of values, in the page's words (float()'s own are a programmer's)."""
    return Problem(field, f"{box}: {exc}".replace("could not convert string to float: ", "not a number: "))


def follow(old: RunConfig, new: RunConfig, boxes: dict[str, str], seeds: str) -> tuple[dict[str, str], str]:
    """The boxes once the recipe changed from ``old`` to ``new`` (on the Distill page): a box that
    held the old recipe's value takes the new one's; a list, or a value typed here, stays."""
    moved = {name: text_of(getattr(new, name)) if text.strip() == text_of(getattr(old, name)) else text
             for name, text in boxes.items()}
    return moved, str(new.seed) if seeds.strip() == str(old.seed) else seeds


def set_here(spec: SweepSpec, recipe: Optional[RunConfig]) -> dict[str, Any]:
    """The fields a box sets to one value other than the recipe's (``recipe``: the Distill page's)."""
    if recipe is None:
        return {}
    return {name: getattr(spec.base, name) for name in SWEEPABLE
            if name not in spec.grid and getattr(spec.base, name) != getattr(recipe, name)}


def shape_text(spec: SweepSpec, recipe: Optional[RunConfig] = None) -> str:
    """``10 trials: 5 T x 2 seeds``, and what the boxes set over ``recipe`` (``· set here: epochs = 1``)."""
    axes = " × ".join(f"{len(v)} {label(k)}" for k, v in spec.grid.items())
    text = (f"{fmt.things(spec.size(), 'trial')}: {axes + ' × ' if axes else 'one cell × '}"
            f"{fmt.things(len(spec.seeds), 'seed')}")
    if changed := set_here(spec, recipe):
        text += " · set here: " + ", ".join(f"{label(k)} = {fmt.plain(text_of(v))}" for k, v in changed.items())
    return text


def recipe_text(config: RunConfig, spec: Optional[SweepSpec] = None, recipe: Optional[RunConfig] = None) -> str:
    """The recipe the trials run: ``spec.base`` (the boxes' single values in it) with the swept
    fields as their lists, each marked "swept", and a value set here over ``recipe`` marked so."""
    grid = spec.grid if spec is not None else {}
    changed = set_here(spec, recipe) if spec is not None else {}

    def said(name: str, one: str, many: str) -> str:
        # the recipe may come from a link: its names in code spans, shown as text
        if name in grid:
            return f"{many}: {', '.join(fmt.code(text_of(v)) for v in grid[name])} (swept)"
        return one + (f" (set here; Distill: {fmt.code(text_of(getattr(recipe, name)))})" if name in changed else "")

    return (f"{fmt.plain(config.dataset)}: {fmt.code(config.teacher)} teaches "
            f"{said('student', fmt.code(student_label(config)), 'students')} · "
            f"{said('method', 'method ' + fmt.code(config.method), 'methods')} · "
            f"{fmt.things(config.teacher_epochs, 'teacher epoch')}, "
            f"{said('epochs', fmt.things(config.epochs, 'student epoch'), 'student epochs')} · "
            f"batch {config.batch_size}, {said('lr', f'lr {config.lr:g}', 'lr')} · device {fmt.plain(config.device)}")


def duration_text(seconds: Optional[float]) -> str:
    if seconds is None:
        return fmt.DASH
    return f"about {max(1, round(seconds / 60))} min" if seconds >= 90 else f"about {max(1, round(seconds))} s"


def axes_of(spec: SweepSpec) -> tuple[Optional[str], Optional[str]]:
    """The heatmap's (x, y) fields: T and alpha when swept, else the first swept fields."""
    fields = sorted(spec.fields, key=lambda f: (f not in ("temperature", "alpha"), spec.fields.index(f)))
    return (fields[0] if fields else None), (fields[1] if len(fields) > 1 else None)


def cell_label(cell: Mapping[str, Any]) -> str:
    return ", ".join(f"{label(k)} = {text_of(v)}" for k, v in cell.items()) or "the one cell"


def heatmap(spec: SweepSpec, summary: list[dict], running: Optional[dict] = None) -> go.Figure:
    """Mean gain (points) over the first two swept fields, each cell annotated mean ± std and n; the
    cell of the trial running now says so, with its progress. Other swept fields: the best of them."""
    x_field, y_field = axes_of(spec)
    xs = spec.grid.get(x_field, [None]) if x_field else [None]
    ys = spec.grid.get(y_field, [None]) if y_field else [None]

    def at(x, y) -> Optional[dict]:
        mine = [r for r in summary if (x_field is None or r[x_field] == x) and (y_field is None or r[y_field] == y)]
        return max(mine, key=lambda r: r["gain_mean"]) if mine else None

    z, text = [], []
    for y in ys:
        z_row, t_row = [], []
        for x in xs:
            cell = at(x, y)
            note = ""
            if running and (x_field is None or running["cell"].get(x_field) == x) and \
                    (y_field is None or running["cell"].get(y_field) == y):
                note = f"<br>running {100 * running.get('progress', 0):.0f} %"
            if cell is None:
                z_row.append(None)
                t_row.append(note.removeprefix("<br>") or "·")
            else:
                z_row.append(100 * cell["gain_mean"])
                std = f" ± {100 * cell['gain_std']:.1f}" if cell["gain_std"] is not None else ""
                t_row.append(f"{100 * cell['gain_mean']:+.1f}{std}<br>n = {cell['n']}{note}")
        z.append(z_row)
        text.append(t_row)
    found = [v for row in z for v in row if v is not None]
    reach = max([abs(v) for v in found] + [1.0])
    fig = go.Figure(go.Heatmap(
        z=z, x=[text_of(x) if x is not None else "" for x in xs], y=[text_of(y) if y is not None else "" for y in ys],
        text=text, texttemplate="%{text}", textfont=dict(size=13), colorscale="RdBu", zmid=0, zmin=-reach,
        zmax=reach, colorbar=dict(title=dict(text="gain (pts)")), hoverongaps=True, xgap=2, ygap=2,
        hovertemplate=f"{label(x_field) if x_field else ''} %{{x}}, {label(y_field) if y_field else ''} %{{y}}: "
                      "%{z:+.2f} pts<extra></extra>"))
    # Clicking a cell selects it: Streamlit reports selections of points, which a heatmap has none of.
    fig.add_trace(go.Scatter(x=[text_of(x) if x is not None else "" for x in xs for _ in ys],
                             y=[text_of(y) if y is not None else "" for _ in xs for y in ys], mode="markers",
                             marker=dict(size=40, opacity=0), hoverinfo="skip", showlegend=False))
    fig.update_xaxes(type="category", title_text=label(x_field) if x_field else "")
    fig.update_yaxes(type="category", title_text=label(y_field) if y_field else "")
    fig.update_layout(title=dict(text="KD gain over scratch: mean ± std over seeds (points)", x=0, xanchor="left"),
                      margin=dict(l=10, r=10, t=50, b=10), height=max(260, 90 + 70 * len(ys)), uirevision="keep")
    return fig


def parallel(spec: SweepSpec, summary: list[dict]) -> go.Figure:
    """One line per cell across every swept field, coloured by its mean gain."""
    dims = []
    for name in spec.fields:
        values = [r[name] for r in summary]
        if all(isinstance(v, (int, float)) for v in values):
            dims.append(dict(label=label(name), values=values))
        else:
            order = [str(v) for v in spec.grid[name]]
            dims.append(dict(label=label(name), values=[order.index(str(v)) for v in values],
                             tickvals=list(range(len(order))), ticktext=order))
    gains = [100 * r["gain_mean"] for r in summary]
    dims.append(dict(label="gain (pts)", values=gains))
    fig = go.Figure(go.Parcoords(line=dict(color=gains, colorscale="RdBu", cmid=0, showscale=True), dimensions=dims))
    fig.update_layout(margin=dict(l=40, r=40, t=40, b=20), height=360)
    return fig


def verdict(spec: SweepSpec, summary: list[dict]) -> Optional[str]:
    """The best cell in a sentence, and whether it is clear of the runner-up given the spread over seeds."""
    best = best_cells(summary)
    if best is None:
        return None
    b = best["best"]
    std = f" ± {100 * b['gain_std']:.1f}" if b["gain_std"] is not None else ""
    cell = cell_label({k: b[k] for k in spec.fields})
    text = (f"Best: **{cell}**, a gain of {100 * b['gain_mean']:+.1f}{std} points" if b["gain_mean"] >= 0 else
            f"No cell gained from the teacher; the smallest loss: **{cell}**, {100 * b['gain_mean']:+.1f}{std} points")
    if best["second"] is None:
        return text + "."
    s = best["second"]
    runner = f"{cell_label({k: s[k] for k in spec.fields})} ({100 * s['gain_mean']:+.1f} points)"
    if best["clear"]:
        return text + f": clear of the second best, {runner}, by more than their spread over seeds."
    why = "one seed gives no spread to judge by" if b["gain_std"] is None else "within their spread over seeds"
    return text + f", but not clear of the second best, {runner}: {why}."


def cells_table(spec: SweepSpec, summary: list[dict]) -> list[dict]:
    """The summary as the page's table: one row per cell, in points; a cell of one seed has no
    spread ("—", as the other tables say a missing value, not the dataframe's "None")."""
    return [{**{label(k): text_of(r[k]) for k in spec.fields}, "n": r["n"],
             "gain (pts)": round(100 * r["gain_mean"], 2),
             "± std": "—" if r["gain_std"] is None else f"{100 * r['gain_std']:.2f}",
             "KD acc (%)": round(100 * r["kd_accuracy_mean"], 2)} for r in summary]
