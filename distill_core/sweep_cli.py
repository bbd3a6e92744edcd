"""``python -m distill_core sweep``: the run's flags, where each sweepable one takes a comma list.

    python -m distill_core sweep [run flags] --temperature 1,2,4,8 --alpha 0.5,0.9 --seeds 0,1,2 [--out DIR]
    python -m distill_core sweep --resume DIR
    python -m distill_core sweep ... --backend ray [--ray-address ADDR]

A flag given one value sets the recipe, as in ``run``; given several, it is an axis of the grid.
The flags are cli.py's (``add_run_flags``), so nothing is declared twice.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from .errors import DistillError
from .events import TRIAL, Event
from .runs import sweep_ray
from .runs.experiment import preload
from .runs.store import RunStore
from .runs.sweep import (MAX_TRIALS, SUMMARY_FILE, SWEEPABLE, TRIALS_FILE, SweepSpec, best_cells, parse_values,
                         spec_problems)
from .runs.sweep_run import run_sweep
from .vocab import CANCELLED, DONE

FLAG = {name: "--" + name.replace("_", "-") for name in SWEEPABLE}
OWN_FLAGS = ("command", "resume", "backend", "ray_address", "yes", "quiet")  # the rest describe a sweep


def add_parser(sub, add_run_flags: Callable) -> None:
    sweep = sub.add_parser("sweep", help="the same run over a grid of settings and several seeds: sweep.csv, "
                                         "summary.csv")
    add_run_flags(sweep, lists=SWEEPABLE, leave_out=("out",))
    sweep.add_argument("--seeds", help="comma list of seeds; every cell runs once per seed (default: --seed)")
    sweep.add_argument("--out", dest="sweep_out", metavar="DIR",
                       help="the sweep's folder: sweep.json, sweep.csv, summary.csv (default: sweeps/<id> in the home)")
    sweep.add_argument("--resume", metavar="DIR", help="go on with the sweep in DIR, skipping the trials that finished")
    sweep.add_argument("--backend", choices=("local", "ray"), default="local",
                       help="local: one trial after the other in this process; ray: Ray Tune trials")
    sweep.add_argument("--ray-address", metavar="ADDR",
                       help="a Ray cluster's address (host:port, or auto); default: a local Ray instance")
    sweep.add_argument("--yes", action="store_true", help=f"run a sweep of more than {MAX_TRIALS} trials")
    sweep.add_argument("--quiet", action="store_true", help="print only the summary")


def spec_from_args(args: argparse.Namespace, config_from_args: Callable) -> SweepSpec:
    """The sweep the flags describe: lists of two values or more are the grid, one value sets the recipe."""
    grid = {}
    for name in SWEEPABLE:
        if not hasattr(args, name):
            continue
        try:
            values = parse_values(name, getattr(args, name))
        except ValueError as exc:
            raise DistillError(f"{FLAG[name]}: {str(exc).replace('could not convert string to float: ', '')} is "
                               "not a number" if "convert" in str(exc) else f"{FLAG[name]}: {exc}") from None
        if not values:
            raise DistillError(f"{FLAG[name]} names no value; give one, or a comma list such as 1,2,4")
        if len(values) > 1:
            grid[name] = values
            delattr(args, name)
        else:
            setattr(args, name, values[0])
    if args.seeds is not None and hasattr(args, "seed"):
        raise DistillError("give --seed or --seeds, not both")
    base = config_from_args(args)  # the recipe, by the run's rules; the lists are the sweep's to check
    try:
        seeds = parse_values("seed", args.seeds) if args.seeds is not None else [base.seed]
    except ValueError as exc:
        raise DistillError(f"--seeds: {exc}") from None
    if args.seeds is not None and not seeds:
        raise DistillError("--seeds names no seed; give a comma list such as 0,1,2")
    spec = SweepSpec(base, grid, seeds)
    found = spec_problems(spec, None if args.yes else MAX_TRIALS)
    if found:
        raise DistillError("; ".join(p.message for p in found))
    return spec


class TrialPrinter:
    """A line as each trial starts and one as it ends: a sweep's log stays readable."""

    def __init__(self, stream=sys.stdout):
        self.stream = stream

    def __call__(self, event: Event) -> None:
        if event.kind != TRIAL:
            return
        d = event.data
        if d["state"] == "start":
            cell = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in d["cell"].items())
            print(f"trial {d['index'] + 1}/{d['total']}  {cell + '  ' if cell else ''}seed {d['seed']}",
                  file=self.stream, flush=True)
        elif d.get("row"):
            r = d["row"]
            print(f"  KD {100 * r['kd_accuracy']:.1f}%  scratch {100 * r['scratch_accuracy']:.1f}%  "
                  f"gain {100 * r['gain']:+.1f} pts  ({r['seconds'] or 0:.0f} s, run {r['run_id']})",
                  file=self.stream, flush=True)
        else:
            print(f"  {d['status']}{': ' + d['error'] if d.get('error') else ''}", file=self.stream, flush=True)


def format_summary(spec: SweepSpec, summary: list[dict]) -> str:
    """One line per cell: mean ± std of the gain and of the KD accuracy over its seeds (points)."""
    def pm(mean: float, std: Optional[float], signed: bool = False) -> str:
        text = f"{100 * mean:+.2f}" if signed else f"{100 * mean:.2f}"
        return text + (f" ± {100 * std:.2f}" if std is not None else "")

    header = [*spec.fields, "n", "gain (pts)", "KD acc (%)"]
    rows = [header] + [[f"{r[k]:g}" if isinstance(r[k], float) else str(r[k]) for k in spec.fields]
                       + [str(r["n"]), pm(r["gain_mean"], r["gain_std"], True),
                          pm(r["kd_accuracy_mean"], r["kd_accuracy_std"])] for r in summary]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    best = best_cells(summary)
    if best and best["second"] is not None:
        cell = ", ".join(f"{k} = {best['best'][k]:g}" if isinstance(best["best"][k], float) else
                         f"{k} = {best['best'][k]}" for k in spec.fields)
        lines.append(f"\nbest: {cell}, " + ("clear of the second best by more than their std" if best["clear"]
                                             else "not clear of the second best given the std over seeds"))
    return "\n".join(lines)


def cmd_sweep(args: argparse.Namespace, config_from_args: Callable) -> int:
    if args.resume:
        given = sorted(k for k, v in vars(args).items() if k not in OWN_FLAGS and v not in (None, []))  # --option: []
        if given:
            raise DistillError(f"--resume takes the sweep's definition from {Path(args.resume) / 'sweep.json'}; "
                               f"leave out {', '.join('--' + g.replace('_', '-') for g in given)}")
        spec, folder = SweepSpec.load(args.resume), Path(args.resume)
    else:
        spec, folder = spec_from_args(args, config_from_args), args.sweep_out
    if args.ray_address and args.backend != "ray":
        raise DistillError("--ray-address needs --backend ray")
    store = RunStore()
    started = time.perf_counter()
    printer = None if args.quiet else TrialPrinter()
    if args.backend == "ray":
        result = sweep_ray.run_sweep_ray(spec, folder, address=args.ray_address, on_event=printer, store=store)
    else:
        preload()
        print(f"sweep {spec.sweep_id}: {spec.size()} trials "
              f"({' x '.join(f'{len(v)} {k}' for k, v in spec.grid.items()) or 'one cell'}, "
              f"{len(spec.seeds)} seed{'s' if len(spec.seeds) > 1 else ''})", flush=True)
        result = run_sweep(spec, folder, on_event=printer, store=store)
    print()
    print(format_summary(spec, result["summary"]))
    folder = Path(result["folder"])
    print(f"\n{result['status']} in {time.perf_counter() - started:.1f}s: {len(result['rows'])} of {spec.size()} "
          f"trials finished; written to {folder / TRIALS_FILE} and {folder / SUMMARY_FILE}")
    if result["status"] != DONE:
        print(f"{'stopped' if result['status'] == CANCELLED else 'some trials did not finish'}; go on with: "
              f"python -m distill_core sweep --resume {folder}")
    return 0 if result["status"] == DONE else 1
