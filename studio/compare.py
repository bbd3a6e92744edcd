"""The Compare page's numbers, read from a results dict (docs/architecture.md, "results.json")."""
from __future__ import annotations

from typing import Any, Optional

import pandas as pd

import statistics

from distill_core import (DERIVED, DONE, ROLE_LABEL, ROLES, DistillError, RunStore, comparison_headline, options_text,
                          origin_words, resolved_init)

from . import fmt
from .methods_text import method_title


def _kind(device: Optional[str]) -> Optional[str]:
    if not device:
        return None
    return "GPU" if device.split(":")[0] in ("cuda", "mps") else "CPU"


def latencies(entry: dict) -> dict[str, dict[str, float]]:
    """{"CPU"|"GPU": {"batch_1": median ms, ...}} from an entry's latency measurements.

    The engine measures on the run's device (``latency_ms``) and, on a GPU run, on the CPU too
    (``latency_ms_cpu``).
    """
    found: dict[str, dict[str, float]] = {}
    sources = [entry.get("latency_ms") or {}, {"device": "cpu", **(entry.get("latency_ms_cpu") or {})}]
    for lat in sources:
        kind = _kind(lat.get("device"))
        if kind is None:
            continue
        for key, value in lat.items():
            if key.startswith("batch_") and isinstance(value, dict) and value.get("median") is not None:
                found.setdefault(kind, {})[key] = float(value["median"])
    return found


def _comparison(results: dict) -> dict:
    if results.get("comparison"):
        return results["comparison"]
    try:
        return comparison_headline(results)
    except Exception:  # noqa: BLE001 - partial results simply have fewer numbers
        return {}


def headline(results: dict) -> dict[str, Any]:
    """The four headline numbers and a sentence; any of them None when the run lacks it."""
    comp = _comparison(results)
    kd = comp.get("kd_vs_teacher") or {}
    batch = int((results.get("config") or {}).get("latency_batch") or 64)
    timed = (results.get("teacher") or {}).get("latency_ms") or {}
    device = _kind(timed.get("device")) or "CPU"
    out = {"smaller_x": kd.get("smaller_x"), "faster_x": kd.get("faster_x_batch_1"), "threads": timed.get("threads"),
           "faster_x_batch": kd.get(f"faster_x_batch_{batch}"), "batch": batch, "latency_device": device,
           "delta_points": kd.get("delta_points"), "kd_gain": comp.get("kd_gain_points")}
    # Each clause reads on its own, so a run without latencies (cancelled before the timing) still
    # makes a sentence: "is 124x smaller ..., 3.1 points below it ..., and 8.3 points better ...".
    parts = []
    smaller, faster = out["smaller_x"], out["faster_x"]
    if smaller or faster:
        said = [f"**{fmt.times(smaller)} smaller** (its checkpoint file)" if smaller else "",
                f"**{fmt.times(faster)} faster** (batch 1, {device})" if faster else ""]
        parts.append("is " + " and ".join(p for p in said if p) + " than its teacher")
    if out["delta_points"] is not None:
        delta = f"**{fmt.above_below(out['delta_points'])}**"
        said = "validation accuracy at the last epoch"
        parts.append(f"{delta} it in {said}" if parts else f"is {delta} its teacher in {said}")
    if out["kd_gain"] is not None:
        verb = "better" if out["kd_gain"] > 0 else "worse" if out["kd_gain"] < 0 else "no different"
        gain = fmt.points(abs(out["kd_gain"]), signed=False)
        said = (f"**{gain} {verb}** than the same student trained without a teacher" if verb != "no different"
                else "no different from the same student trained alone")
        parts.append(("and " if parts else "is ") + said)
    out["sentence"] = (f"The student distilled with {distilled_with(results)} " + ", ".join(parts) + ".") if parts \
        else ""
    return out


def speed_terms(h: dict) -> str:
    """How the Faster card's figures were measured, in its few words: '2 threads, fp32' (the card's
    label names the device); nothing when nothing was timed."""
    if h.get("faster_x") is None:
        return ""
    where = fmt.things(int(h["threads"]), "thread") if h.get("threads") and h["latency_device"] == "CPU" \
        else h["latency_device"]
    return f"{where}, fp32"


def distilled_with(results: dict) -> str:
    """'dkd (Decoupled KD, b = 6)': the method and the options that differ from its defaults."""
    cfg = results.get("config") or {}
    name = str(cfg.get("method") or "kd")
    changed = options_text(name, cfg.get("extra") if isinstance(cfg.get("extra"), dict) else {})
    title = method_title(name)
    return f"{title[:-1]}, {changed})" if changed and title.endswith(")") else title


def student_made(results: dict) -> str:
    """How the students were made: their architecture (derived from the teacher, or from the zoo) and
    the weights both started from. A run from before derived students started from random weights."""
    cfg = results.get("config") or {}
    student = cfg.get("student")
    origin = results.get("student_origin") or {  # a run stopped before its students: what its config says
        "arch": student, "init": resolved_init(student, cfg.get("student_init", "auto")),
        "weight_anchor": cfg.get("weight_anchor"),
        **({"derived_from": cfg.get("teacher"), "derivation": {"depth": cfg.get("derive_depth"),
                                                               "width": cfg.get("derive_width")}}
           if student == DERIVED else {})}
    lead = "" if origin.get("derived_from") else f"{fmt.code(cfg.get('student'))}, "
    return (f"Students: {lead}{fmt.plain(origin_words(origin))}. The scratch and the distilled student started from "
            "the same weights, so the KD gain is the teacher's soft targets alone.")


def loss_terms(results: dict) -> str:
    """The distilled student's last-epoch loss as its method weighed it: each term's label, its
    value, weight and contribution (results.json's history ``terms``)."""
    history = (results.get("student_kd") or {}).get("history") or []
    last = history[-1] if history else {}
    parts = []
    for term in last.get("terms") or []:
        value = last.get(f"train_{term['name']}")
        weight, contribution = term.get("weight"), term.get("contribution")
        if value is None or weight is None or contribution is None:
            continue
        parts.append(f"{term['label']}: {weight:.3g} × {value:.3g} = **{contribution:.3g}**")
    if not parts:
        return ""
    stage = f" (in its {last['stage']} stage)" if last.get("stage") else ""
    return (f"The distilled student's training loss in its last epoch{stage}, as its method weighed it: "
            + " · ".join(parts) + f" · total **{last.get('train_loss', 0):.3g}**.")


def trained_epochs(entry: dict) -> Optional[int]:
    """How many epochs a model trained (its last epoch's number), from its history: a cached
    teacher's and a reused scratch student's come with them; a checkpoint from elsewhere has none,
    and its config's teacher_epochs would misstate it."""
    history = entry.get("history") or []
    return (history[-1].get("epoch") or len(history)) if history else None


def comparison_tables(results: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What each model scored, and what it costs: two tables of the same rows, each narrow enough for
    a 1024-pixel laptop's page (in one, st.table cut the last columns, the latencies)."""
    table = comparison_table(results)
    costs = [c for c in table.columns if c in COST_COLUMNS or c.startswith(LATENCY_COLUMN)]
    return table.drop(columns=costs), table[["model", *costs]]


COST_COLUMNS = ("params", "size (fp32)", "FLOPs")
LATENCY_COLUMN = "latency "  # then the batch size and the devices


def comparison_table(results: dict) -> pd.DataFrame:
    """One row per model that finished, as display strings (st.table shows them as they are)."""
    batch = int((results.get("config") or {}).get("latency_batch") or 64)
    tested = any(isinstance(results.get(r), dict) and results[r].get("test_accuracy") is not None for r in ROLES)
    # A CPU run has no GPU figures: its columns say CPU alone, not "0.62 ms · —" in every cell.
    on_gpu = any("GPU" in latencies(results[r]) for r in ROLES if isinstance(results.get(r), dict))
    kinds = ("CPU", "GPU") if on_gpu else ("CPU",)
    rows = []
    for role in ROLES:
        entry = results.get(role)
        if not isinstance(entry, dict):
            continue
        lat = latencies(entry)
        rows.append({
            "model": ROLE_LABEL[role],
            "architecture": (f"derived from {(results.get('config') or {}).get('teacher')}"
                             if entry.get("model") == DERIVED else entry.get("model", "")),
            # which epoch each accuracy is from: the teacher's last is not the students'
            "epochs": str(trained_epochs(entry) or "—"),
            "val accuracy (last epoch)": fmt.percent(entry.get("accuracy")),
            "val accuracy (best epoch)": fmt.percent(entry.get("best_accuracy"))
            + (f" (epoch {entry['best_epoch']})" if entry.get("best_epoch") and entry.get("best_accuracy") is not None
               else ""),
            **({"test accuracy (last epoch)": fmt.percent(entry.get("test_accuracy"))} if tested else {}),
            **dict(zip(COST_COLUMNS, (fmt.params(entry.get("params")), fmt.size(entry.get("size_bytes")),
                                      fmt.count(entry.get("flops"))))),
            **{f"{LATENCY_COLUMN}b{b}, {' · '.join(kinds)}": " · ".join(fmt.ms(lat.get(k, {}).get(f"batch_{b}"))
                                                                     for k in kinds)
               for b in (1, batch)},
        })
    return pd.DataFrame(rows)


def latency_table(results: dict) -> dict[str, Any]:
    """Batch-1 latency per role on the run's device, and a note on what was not measured."""
    b1, kinds = {}, set()
    device = _kind(((results.get("teacher") or {}).get("latency_ms") or {}).get("device")) or "CPU"
    for role in ROLES:
        entry = results.get(role)
        if isinstance(entry, dict):
            lat = latencies(entry)
            kinds |= set(lat)
            if lat.get(device, {}).get("batch_1") is not None:
                b1[role] = lat[device]["batch_1"]
    if not kinds:
        return {"b1": b1, "note": "Latencies are timed once all three models have trained: this run ended "
                                  "before that."}
    missing = {"CPU", "GPU"} - kinds
    # Runs from before the models were timed in turn have no "in_turn": they were timed one after the other.
    teacher = results.get("teacher") or {}
    measured = teacher.get("latency_ms") or {}
    in_turn = (measured.get("in_turn") or 1) > 1
    how = "the three models timed in turn" if in_turn else "each model timed on its own, one after the other"
    # The thread count is the CPU timings': on a GPU run those are latency_ms_cpu's.
    on_cpu = measured if _kind(measured.get("device")) == "CPU" else teacher.get("latency_ms_cpu") or {}
    threads = f" with {fmt.things(int(on_cpu['threads']), 'CPU thread')}" if on_cpu.get("threads") else ""
    note = f"Latency: median of timed forward passes after warm-up{threads}, {how}."
    # what a stakeholder should know before quoting "5x faster"
    note += (" They were taken as the run ended, on the machine as busy as it was then: on a shared machine "
             "the same models can time several times faster or slower later (the compression table below "
             "re-measures them)" + ("; the ratios between models timed in turn move less." if in_turn else "."))
    if missing == {"GPU"}:
        note += " No GPU numbers: this run was measured on the CPU."
    elif missing == {"CPU"}:
        note += " No CPU numbers: this run was measured on the GPU."
    return {"b1": b1, "note": note}


def seed_runs(run_id: str, store: Optional[RunStore] = None) -> list[dict]:
    """The finished runs of this run's sweep that differ from it in the seed alone (its cell), this
    one included, by seed; empty unless there are two or more, and when the run store cannot be
    read (the page says why at its top; the run itself is read from its folder)."""

    def cell(config: dict) -> dict:
        return {k: v for k, v in config.items() if k not in ("seed", "out")}

    try:
        store = store or RunStore()
        run = store.get_run(run_id)
        if not run or not run.get("sweep_id"):
            return []
        found = [r for r in store.list_runs(sweep_id=run["sweep_id"], status=DONE)
                 if cell(r["config"]) == cell(run["config"]) and r["gain_points"] is not None]
    except DistillError:
        return []
    return sorted(found, key=lambda r: r["seed"]) if len(found) > 1 else []


def over_seeds(rows: list[dict]) -> dict[str, tuple[float, float]]:
    """Mean and sample std over the seeds: gain (points), KD, scratch and teacher accuracy (%)."""
    out = {}
    for key, scale in (("gain_points", 1.0), ("kd_accuracy", 100.0), ("scratch_accuracy", 100.0),
                       ("teacher_accuracy", 100.0)):
        values = [scale * r[key] for r in rows if r.get(key) is not None]
        if len(values) > 1:
            out[key] = (statistics.fmean(values), statistics.stdev(values))
    return out
