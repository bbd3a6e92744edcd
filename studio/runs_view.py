"""The Runs page's helpers: the run table, its filters, overlaid curves, downloads, rerun.

Everything here reads the run store (``distill_core.RunStore``); the page is layout and widgets.
"""
from __future__ import annotations

import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from distill_core import (ACTIVE, DISTILLED, DONE, ROLE_LABEL, SCRATCH, TEACHER, DistillError, RunConfig, RunStore,
                          StoreDamagedError, compression_rows, config_json, export_bytes, export_file_name,
                          large_batch_key, load_compression_rows, metrics_csv, rebuild_store, repeat_command,
                          student_label)

from . import fmt, folders
from .charts import text_label
from .methods_text import loss_knobs, method_setting
from .runs import busy_note
from .urlstate import to_params

PAGES = Path(__file__).resolve().parent.parent / "pages"
COMPARE_PAGE = PAGES / "compare.py"  # absolute paths: st.switch_page matches them to app.py's pages
DISTILL_PAGE = PAGES / "distill.py"

MODEL_ORDER = (DISTILLED, SCRATCH, TEACHER)  # the Runs page's model picker, the student first
MODEL_DASH = {"student_kd": "solid", "student_scratch": "dash", "teacher": "dot"}
# One colour a run, none of them a role's (teacher blue, scratch orange, distilled green): with
# those, two runs read as a teacher and a student. The dash says the model.
PALETTE = ("#D6409F", "#0090FF", "#8E4EC6", "#AD7F58", "#E5484D", "#00A2C7", "#6E56CF", "#978365", "#F76B15",
           "#29A383")
# What a table shows for a number it does not have (a run without a distilled student, a variant not
# timed): Streamlit's default is a grey "None", a Python word.
MISSING = fmt.DASH
# The status is a plain word (an emoji is an empty box where the browser has no emoji font), next to
# the run id so it shows without scrolling sideways. What an exploration of T and alpha compares comes
# next, so that a laptop's width shows it all:
# T, alpha and the epochs (a gain after 3 epochs beside one after 8 is not a T or alpha effect),
# the gain, then the accuracies it is made of. Dataset and models (the filters above name them,
# and they rarely change within an exploration) and the method (almost always "kd") come last.
# The date is last: the run id says it too (20260102-090000 is Jan 2, 09:00), and the columns that
# matter more fit a 1024-pixel page before it.
TABLE_COLUMNS = ["run_id", "status", "T", "alpha", "epochs", "gain", "kd_acc", "scratch_acc",
                 "teacher_acc", "agreement", "dataset", "teacher", "student", "method", "date"]
# The filters' placeholder: "Choose options", Streamlit's, showed as "Choo" in a filter's column.
ALL = dict(placeholder="All", help="Empty: every run. Pick one or more to show only their runs.")


def open_store() -> RunStore:
    """The run store of this server's home; run folders written before the store are indexed.

    A damaged store raises ``StoreDamagedError`` (the page offers to rebuild it). A store on a
    disk that cannot be written is read as it is, so its finished runs stay listed."""
    try:
        store = RunStore()
    except StoreDamagedError:
        raise
    except DistillError as exc:
        try:
            store = RunStore(read_only=True)
        except DistillError:
            raise exc from None
    store.check()
    if not store.read_only:
        try:
            store.scan()
        except Exception:  # noqa: BLE001 - an unreadable folder must not hide the table
            pass
    return store


def damaged_store(exc: StoreDamagedError) -> None:
    """What is damaged, and a button that rebuilds the store from the run folders."""
    st.error(f"The run store {fmt.code(exc.path)} is damaged ({fmt.plain(exc.reason)}). The run folders are kept, "
             "and the store is only their index: rebuild it from their results.json files. The damaged file is "
             "moved aside, not deleted. From a terminal: `python -m distill_core runs --rebuild`.",
             icon=":material/error:")
    if st.button("Rebuild the run store from the run folders", key="runs_rebuild", type="primary",
                 icon=":material/build:"):
        try:
            done = rebuild_store()
        except DistillError as err:
            st.error(fmt.plain(fmt.sentence(str(err))), icon=":material/error:")
        else:
            st.session_state.runs_rebuilt = done.summary()
            st.rerun()


# ---- the table ---------------------------------------------------------------------------------------
def runs_table(store: RunStore) -> pd.DataFrame:
    """One row per run, newest first; accuracies in percent, gain in points."""
    raw = store.runs_frame()
    df = pd.DataFrame({
        "date": pd.to_datetime([datetime.fromtimestamp(t) for t in raw["created_at"]]),  # server's local time
        "run_id": raw["run_id"], "dataset": raw["dataset"], "teacher": raw["teacher"], "student": raw["student"],
        "T": raw["T"], "alpha": raw["alpha"], "epochs": raw["epochs"],
        "method": [method_setting({"method": m, "extra": o}, with_values=False) if isinstance(m, str) else m
                   for m, o in zip(raw["method"], raw["options"])],
        "kd_acc": raw["kd_accuracy"] * 100, "scratch_acc": raw["scratch_accuracy"] * 100,
        "gain": raw["gain_points"], "teacher_acc": raw["teacher_accuracy"] * 100, "agreement": pd.to_numeric(raw["kd_agreement"], errors="coerce") * 100,
        "status": raw["status"],
    }, columns=TABLE_COLUMNS)
    return df


def column_config() -> dict:
    cc = st.column_config
    return {
        # No year: the run id has the full date, and the table needs less room.
        "date": cc.DatetimeColumn("Date", format="MMM D, HH:mm", help="When the run was created (the server's local time)"),
        # Pinned: on a laptop the later columns are scrolled to, and the row's id stays in sight.
        "run_id": cc.TextColumn("Run", help="Run id: its folder name, and what the CLI's export takes", pinned=True),
        "dataset": cc.TextColumn("Dataset"), "teacher": cc.TextColumn("Teacher"), "student": cc.TextColumn("Student"),
        # Set widths on the short columns, so the accuracies fit a laptop's width beside them.
        "T": cc.NumberColumn("T", format="%g", width=48, help="Softmax temperature"),  # 0.25, not 0.3
        "alpha": cc.NumberColumn("α", format="%.2f", width=52, help="Weight of the soft-target (KD) term"),
        "epochs": cc.NumberColumn("Epochs", format="%d", width=62, help="Student epochs (scratch and KD alike)"),
        "method": cc.TextColumn("Method", help="The distillation method, with the options that differ from its "
                                               "defaults"),
        "kd_acc": cc.NumberColumn("KD acc", format="%.1f %%", width=70, help="Distilled student, validation, last epoch"),
        "scratch_acc": cc.NumberColumn("Scratch acc", format="%.1f %%", width=88,
                                       help="The same student trained without a teacher"),
        # A set width: sized to its header, the column clipped the left half of "+8.3 pts", which
        # then read as "-8.3 pts".
        "gain": cc.NumberColumn("KD gain", format="%+.1f pts", width=90,
                                help="Distilled minus scratch student, percentage points"),
        "teacher_acc": cc.NumberColumn("Teacher acc", format="%.1f %%", width=88),
        "agreement": cc.NumberColumn("Agrees", format="%.1f %%", width=70,
                                     help="The distilled student's top-1 answers that are the teacher's "
                                          "(validation split, last epoch)"),
        "status": cc.TextColumn("Status", help="queued, running, done, failed, cancelled, or interrupted "
                                               "(its process ended before the run finished)"),
    }


def choices(df: pd.DataFrame, column: str) -> list[str]:
    return sorted({str(v) for v in df[column].dropna()})


def shown_columns(df: pd.DataFrame) -> list[str]:
    """The table's columns, less the method while every run shown used the same one (almost
    always "kd"): its room goes to the accuracies, which otherwise scroll out of sight."""
    return [c for c in TABLE_COLUMNS if c != "method" or df["method"].nunique(dropna=True) > 1]


def method_of(label: str) -> str:
    """The method's name in a table's method cell ('dkd (b = 6)' -> 'dkd')."""
    return str(label).split(" (")[0]


def filter_table(df: pd.DataFrame, datasets: Sequence[str] = (), teachers: Sequence[str] = (),
                 students: Sequence[str] = (), statuses: Sequence[str] = (), methods: Sequence[str] = (),
                 text: str = "") -> pd.DataFrame:
    """Rows matching every filter given; an empty filter keeps everything."""
    keep = pd.Series(True, index=df.index)
    for column, wanted in (("dataset", datasets), ("teacher", teachers), ("student", students)):
        if wanted:
            keep &= df[column].astype(str).isin(list(wanted))
    if methods:  # by the method's name, whatever its options
        keep &= df["method"].astype(str).map(method_of).isin(list(methods))
    if statuses:
        keep &= df["status"].isin(list(statuses))
    if text:
        keep &= df["run_id"].str.contains(text.strip(), case=False, regex=False)
    return df[keep]


def run_label(row: dict | pd.Series) -> str:
    t = f"T {row['T']:g}" if pd.notna(row.get("T")) else ""
    a = f"α {row['alpha']:g}" if pd.notna(row.get("alpha")) else ""
    return " · ".join(x for x in (str(row["run_id"]), f"{row['dataset']}", f"{row['teacher']} → {row['student']}",
                                  t, a, str(row["status"])) if x)


# ---- several runs side by side ----------------------------------------------------------------------
def legend_label(row: dict | pd.Series, with_method: bool = False, with_student: bool = False) -> str:
    """A run in a chart's legend: its id and what tells runs of one sweep apart, T and alpha (those
    its method reads), its method where the runs shown differ in it, and its student where they
    differ in that (a derived student's label says its initialisation: teacher- and random-initialised
    runs side by side)."""
    parts = [str(row["run_id"])]
    if with_student and isinstance(row.get("student"), str):
        parts.append(row["student"])
    method = row.get("method") if isinstance(row.get("method"), str) else None
    if with_method and method:
        parts.append(method)
    if pd.notna(row.get("T")) and pd.notna(row.get("alpha")):
        knobs = loss_knobs(method_of(method or "kd"), {}, row["T"], row["alpha"])
        if knobs:
            parts.append(knobs.replace(" = ", " "))
    return " · ".join(parts)


def pair_label(df: pd.DataFrame, run_id: str) -> str:
    row = df[df["run_id"] == run_id].iloc[0]
    return f"{row['dataset']}, {row['teacher']} → {row['student']}"


def methods_on_pair(df: pd.DataFrame, run_id: str) -> list[str]:
    """The newest finished run of each method (with its options) on ``run_id``'s data, teacher and
    student: what the overlay needs to compare methods on one pair. ``df`` is newest first."""
    row = df[df["run_id"] == run_id]
    if row.empty:
        return []
    first = row.iloc[0]
    same = df[(df["dataset"] == first["dataset"]) & (df["teacher"] == first["teacher"])
              & (df["student"] == first["student"]) & (df["status"] == DONE)]
    return list(same.drop_duplicates("method")["run_id"])


def curves_figure(store: RunStore, run_ids: Sequence[str], models: Sequence[str], labels: dict[str, str],
                  legend: Optional[dict[str, str]] = None) -> go.Figure:
    """Validation accuracy per epoch: one colour per run, one dash style per model."""
    fig = go.Figure()
    for i, run_id in enumerate(run_ids):
        color = PALETTE[i % len(PALETTE)]
        rows = store.epochs(run_id)
        for model in models:
            points = [r for r in rows if r["model"] == model and r.get("val_accuracy") is not None]
            if not points:
                continue
            fig.add_trace(go.Scatter(
                x=[r["epoch"] for r in points], y=[100 * r["val_accuracy"] for r in points], mode="lines+markers",
                name=f"{text_label((legend or {}).get(run_id, run_id))} · {ROLE_LABEL.get(model, model)}",
                legendgroup=run_id,
                line=dict(color=color, dash=MODEL_DASH.get(model, "solid"), width=2.5), marker=dict(size=6),
                hovertemplate=f"{text_label(labels.get(run_id, run_id))}<br>{ROLE_LABEL.get(model, model)}: "
                              "epoch %{x}, %{y:.1f} %<extra></extra>"))
    # The legend goes under the plot: above it, a few runs' entries wrapped over the title. The
    # chart grows with the legend's rows (about two entries a row) so the plot keeps its height.
    rows = (len(fig.data) + 1) // 2
    fig.update_layout(title=dict(text="Validation accuracy", x=0, xanchor="left"), height=360 + 22 * rows,
                      uirevision="keep", margin=dict(l=10, r=10, t=40, b=10), hovermode="closest",
                      legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0))
    # Whole epochs only: plotly's own ticks for 3 epochs were 1, 1.5, 2, 2.5, 3.
    last = max((max(t.x) for t in fig.data if len(t.x)), default=1)
    fig.update_xaxes(title_text="epoch", tick0=1, dtick=max(1, math.ceil(last / 10)))
    fig.update_yaxes(title_text="accuracy (%)")
    if not fig.data:
        fig.add_annotation(text="no epochs recorded for these runs yet", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper", font=dict(size=14, color="#888"))
    return fig


def results_table(store: RunStore, run_ids: Sequence[str]) -> pd.DataFrame:
    """The runs' final numbers in one table, one row per run."""
    rows = []
    for run_id in run_ids:
        run = store.get_run(run_id)
        if run is None:
            continue
        entries = run["models"]
        kd, scratch, teacher = (entries.get(r) or {} for r in ("student_kd", "student_scratch", "teacher"))

        def acc(e: dict) -> Optional[float]:
            return 100 * e["accuracy"] if e.get("accuracy") is not None else None

        lat = ((kd.get("latency_ms") or {}).get("batch_1") or {}).get("median")
        t_size, s_size = teacher.get("size_bytes"), kd.get("size_bytes")
        # In the runs table's order: what differs between the runs first, then the models.
        rows.append({
            "run_id": run_id, "method": method_setting(run.get("config") or {}, with_values=False),
            "T": run["temperature"], "alpha": run["alpha"], "epochs": run["epochs"],
            "gain": acc(kd) - acc(scratch) if acc(kd) is not None and acc(scratch) is not None else None,
            "kd_acc": acc(kd), "scratch_acc": acc(scratch), "teacher_acc": acc(teacher),
            "kd_size": fmt.size(s_size), "smaller": fmt.times(t_size / s_size) if t_size and s_size else fmt.DASH,
            "kd_ms_b1": lat, "seconds": fmt.duration(
                run["finished_at"] - run["started_at"] if run["finished_at"] and run["started_at"] else None),
            "dataset": run["dataset"], "teacher": run["teacher"], "student": run["student"], "status": run["status"]})
    return pd.DataFrame(rows)


def results_column_config() -> dict:
    cc = st.column_config
    return {**column_config(), "kd_size": cc.TextColumn("KD size", help="The distilled student's fp32 file"),
            "smaller": cc.TextColumn("Smaller", help="Than the teacher's file"),
            "kd_ms_b1": cc.NumberColumn("KD ms (batch 1)", format="%.2f"), "seconds": cc.TextColumn("Took")}


# ---- one run ----------------------------------------------------------------------------------------
def is_active(run: dict) -> bool:
    return run.get("status") in ACTIVE


def has_results(run: dict) -> bool:
    """Compare reads finished runs from their results.json."""
    return bool(run.get("results")) and bool(run.get("artifacts_dir")) and \
        (Path(run["artifacts_dir"]) / "results.json").is_file()


def rerun_params(config: dict) -> dict[str, str]:
    """Prepare the Distill page to show ``config`` and return the query parameters to open it with.

    The Distill page reads its draft from the URL once per browser session (studio/form.py), so
    its draft and widget values are dropped here and it reads the URL again.
    """

    cfg = RunConfig.from_dict({k: v for k, v in config.items() if k != "out"})
    ss = st.session_state
    for key in [k for k in list(ss.keys()) if str(k).startswith("cfg_")] + ["draft", "form_notes", "uploaded_path"]:
        ss.pop(key, None)
    if cfg.data_dir:  # a run of this server's, chosen here: its folder needs no confirming, as a link's would
        folders.confirm(cfg.data_dir)
    return to_params(cfg)


def downloads(run_id: str, student: str) -> list[dict]:
    """Download buttons' arguments; files are produced when clicked (deferred ``data``)."""

    def deferred(fmt_: str) -> Callable[[], bytes]:
        return lambda: export_bytes(run_id, fmt_)[0]

    def name(fmt_: str) -> str:
        return export_file_name(run_id, fmt_, student)  # the CLI's export names, so both agree

    return [
        {"label": "Metrics (CSV)", "data": lambda: metrics_csv(run_id), "file_name": name("csv"),
         "mime": "text/csv", "key": "dl_csv", "help": "One row per model per epoch"},
        {"label": "Config (JSON)", "data": lambda: config_json(run_id), "file_name": name("json"),
         "mime": "application/json", "key": "dl_json",
         "help": f"{repeat_command(name('json'))} repeats this run"},
        {"label": "Student (.pt)", "data": deferred("pt"), "file_name": name("pt"),
         "mime": "application/octet-stream", "key": "dl_pt",
         "help": "The distilled student's state_dict (last epoch): torch.load(path, weights_only=True)"},
        {"label": "Student (.safetensors)", "data": deferred("safetensors"), "file_name": name("safetensors"),
         "mime": "application/octet-stream", "key": "dl_safetensors",
         "help": "The same weights as safetensors, with the architecture and input shape in its metadata"},
        {"label": "Student (.onnx)", "data": deferred("onnx"), "file_name": name("onnx"),
         "mime": "application/octet-stream", "key": "dl_onnx",
         "help": "Exported from a fresh student (the teacher is never inside) and checked with onnxruntime "
                 "on the validation split before it is offered"},
    ]


def parity_text(report: dict) -> str:
    p = report.get("parity") or {}
    if not p:
        return ""
    # Material icons: Streamlit ships their font, an emoji needs one on the viewer's machine.
    verdict = ":material/check_circle: matches PyTorch" if p.get("ok") else ":material/cancel: does not match PyTorch"
    return (f"{verdict}: top-1 agreement {100 * p['top1_agreement']:.2f} % on {p['images']} validation images, "
            f"accuracy {fmt.percent(p['accuracy_onnx'], 2)} (PyTorch {fmt.percent(p['accuracy_torch'], 2)}), "
            f"largest logit difference {p['max_abs_logit_diff']:.1e} (tolerance {p['tolerance']:.0e}). "
            f"File: {report.get('size_bytes', 0) / 1e3:.1f} kB, opset {report.get('opset')}.")


def compression_frame(rows: list[dict]) -> pd.DataFrame:
    """Compression rows (distill_core.compression_rows) as a table: size, accuracy, latency per variant."""
    out = []
    for r in rows:
        lat = r.get("latency_ms") or {}
        big = large_batch_key(lat)
        out.append({
            "model": ROLE_LABEL.get(r["model"], r["model"]), "variant": r["variant"], "engine": r["engine"],
            "size_kb": r["size_bytes"] / 1e3 if r.get("size_bytes") else None,
            "sparse_kb": r["size_sparse_bytes"] / 1e3 if r.get("size_sparse_bytes") else None,
            "vs_fp32": r.get("size_vs_fp32"),
            "accuracy": 100 * r["accuracy"] if r.get("accuracy") is not None else None,
            "delta": r.get("delta_points"),
            "ms_b1": (lat.get("batch_1") or {}).get("median"),
            "ms_big": (lat.get(big) or {}).get("median") if big else None,
            "notes": r.get("notes", "")})
    return pd.DataFrame(out)


def compression_column_config(rows: list[dict]) -> dict:
    cc = st.column_config
    big = large_batch_key(*(r.get("latency_ms") for r in rows)) or "batch_64"
    return {
        "model": cc.TextColumn("Model"), "variant": cc.TextColumn("Variant"), "engine": cc.TextColumn("Engine"),
        "size_kb": cc.NumberColumn("Size (kB)", format="%.1f", help="File size; for pruned rows the dense file"),
        "sparse_kb": cc.NumberColumn("Sparse est. (kB)", format="%.1f",
                                     help="Pruned rows: non-zero fp32 values + a 1-bit mask (an estimate)"),
        "vs_fp32": cc.NumberColumn("vs fp32", format="%.2f×",
                                   help="Size against the fp32 row of the same engine"),
        "accuracy": cc.NumberColumn("Accuracy", format="%.2f %%", help="Validation split, top-1"),
        "delta": cc.NumberColumn("Δ points", format="%+.2f", help="Against the fp32 PyTorch row of the same model"),
        "ms_b1": cc.NumberColumn("ms, batch 1", format="%.3f", help="Median after warm-up"),
        "ms_big": cc.NumberColumn(f"ms, batch {big[6:]}", format="%.2f", help="Median after warm-up"),
    }


def variant_notes(rows: list[dict]) -> str:
    """What each variant is, once per variant and engine (the teacher's rows and the student's say
    the same), as lines under the table: as its last column, the notes were cut at any laptop width."""
    seen: dict[tuple[str, str], str] = {}
    for r in rows:
        if r.get("notes"):
            seen.setdefault((r["variant"], r["engine"]), r["notes"])
    return "  \n".join(f"**{variant}, {engine}**: {fmt.plain(note)}" for (variant, engine), note in seen.items())


def describe(run: dict) -> str:
    cfg = run.get("config") or {}
    parts = [f"**{run['status']}**", f"{cfg.get('dataset')}", f"{cfg.get('teacher')} → {student_label(cfg)}",
             f"method {method_setting(cfg)}", fmt.things(cfg.get('epochs') or 0, "student epoch"),
             f"from the {run.get('source') or '?'}"]
    return " · ".join(parts)


def against_the_run(results: Optional[dict], rows: list[dict]) -> Optional[str]:
    """The compression table's fp32 rows beside the run's own timing of the same models: one
    method (batch, threads, memory layout, fp32, warm-up), two moments of a machine whose load
    may differ, so both are shown rather than one left to contradict the other."""
    if not isinstance(results, dict):
        return None
    said = []
    for key in ("batch_1", large_batch_key(*(r.get("latency_ms") for r in rows))):
        pairs = {}
        for role in (TEACHER, DISTILLED):
            now = next(((r.get("latency_ms") or {}).get(key) or {} for r in rows
                        if r["model"] == role and r["variant"] == "fp32" and r["engine"] == "torch"), {})
            then = (((results.get(role) or {}).get("latency_ms") or {}).get(key) or {})
            if now.get("median") and then.get("median"):
                pairs[role] = (now["median"], then["median"])
        if key and len(pairs) == 2:
            (t_now, t_then), (s_now, s_then) = pairs[TEACHER], pairs[DISTILLED]
            said.append(f"batch {key[6:]}: teacher {fmt.ms(t_now)} here, {fmt.ms(t_then)} in the run; distilled "
                        f"student {fmt.ms(s_now)} here, {fmt.ms(s_then)} in the run ({fmt.times(t_now / s_now)} "
                        f"faster here, {fmt.times(t_then / s_then)} in the run)")
    if not said:
        return None
    return ("The fp32 rows re-time the run's models as the run timed them (the same batches, threads, memory "
            "layout and warm-up); only the machine's other work differs between the two moments: "
            + "; ".join(said) + ".")


def when(timestamp: Optional[float]) -> str:
    return "at an unknown time" if not timestamp else time.strftime("on %Y-%m-%d at %H:%M", time.localtime(timestamp))


def compression_section(run: Any, key: str = "compress", store: Optional[RunStore] = None,
                        results: Optional[dict] = None) -> None:
    """The compression block: sparsity, a button that measures, and the saved rows as a table.

    ``run``: a run id, a run folder or a results dict (the Compare page passes its results).
    Rows are saved in the run's compression.json, so they show again on every page and restart.
    """

    saved = load_compression_rows(run, store)
    k1, k2 = st.columns(2, vertical_alignment="bottom")  # half the row: the button's label fits at 1024 px
    sparsity = k1.slider("Pruning sparsity", 0.1, 0.9, 0.5, 0.1, key=f"{key}_sparsity",
                         help="Share of conv and linear weights set to zero (global L1 magnitude pruning)")
    busy = busy_note()
    if k2.button("Measure fp16, int8 and pruned", key=f"{key}_run", icon=":material/compress:", width="stretch",
                 disabled=busy is not None,
                 help=busy or "Half precision and magnitude pruning in PyTorch; int8 static quantisation of the ONNX "
                              "export with onnxruntime, calibrated on training images. Takes a while for big models."):
        with st.spinner("Quantising, pruning and timing…"):
            try:
                compression_rows(run, sparsity=sparsity, store=store)
            except Exception as exc:  # noqa: BLE001 - shown, not raised
                st.error(f"Compression failed: {fmt.plain(exc)}")
        saved = load_compression_rows(run, store)
    if saved and saved.get("rows"):
        rows = saved["rows"]
        table = compression_frame(rows)
        st.dataframe(table, hide_index=True, width="stretch", key=f"{key}_table",
                     column_config=compression_column_config(rows), placeholder=MISSING,
                     column_order=[c for c in table.columns if c != "notes"])
        if notes := variant_notes(rows):
            st.caption(notes)
        st.caption("fp32, fp16 and pruned run in PyTorch on the run's device; fp32 and int8 ONNX run in onnxruntime "
                   f"on the CPU ({fmt.things(saved['threads'], 'thread') if saved.get('threads') else 'its threads'}). int8: static quantisation calibrated on "
                   f"{saved.get('calibration_images')} training images. Pruned sizes are the dense file; the sparse "
                   "column estimates a sparse encoding. Latencies were measured on this server "
                   f"{when(saved.get('created_at'))}, apart from the run's own timing: compare each row with "
                   "the fp32 row of the same model here, not with the run's table (a busy machine moves both).")
        if beside := against_the_run(results if results is not None else run, rows):
            st.caption(beside)
    else:
        st.caption("Not measured yet for this run." + (f" {busy}" if busy else ""))
