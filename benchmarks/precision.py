"""What does bf16 cost in accuracy, and what does it save in time? The default demo over seeds.

    python benchmarks/precision.py                 # seeds 0 1 2, about 5 minutes on 2 quiet cores
    python benchmarks/precision.py --seeds 0 1 2 3 4 --threads 2

Each seed runs the default demo (mnist5k, cnn_large -> cnn_tiny, a fresh home: the teacher
trains) three ways, in turn, in this process:

* ``fp32, fp32 labels``: everything in fp32. Not a setting of its own: the run's precision is
  resolved with the teacher's labels kept in fp32, to measure what labelling in bf16 changes;
* ``fp32`` (``--precision fp32``): training in fp32, the teacher's labelling pass in
  bf16 where bf16 is fast (as on this machine), in fp32 elsewhere;
* ``bf16`` (``--precision bf16``, what the default ``auto`` picks where bf16 is fast): the forward
  passes of training in bf16 too.

Accuracy (last epoch, validation) is deterministic for a seed and a thread count, so it does not
depend on the machine's load; the times do: they are the runs' own ``phase_seconds``, medians
over the seeds. Where this CPU has no bf16, the bf16 rows are skipped.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill_core import RunConfig, resolve_device, resolve_precision, run_experiment  # noqa: E402
from distill_core.runs import experiment  # noqa: E402

ROLES = ("teacher", "student_scratch", "student_kd")
PHASES = ("teacher", "student_scratch", "student_kd", "measure")


def fp32_labels(asked, device):
    return dataclasses.replace(resolve_precision(asked, device), teacher_labels="fp32")


VARIANTS = {  # name: (config.precision, how the run resolves it)
    "fp32, fp32 labels": ("fp32", fp32_labels),
    "fp32": ("fp32", resolve_precision),
    "bf16": ("bf16", resolve_precision),
}


def one_run(precision: str, resolver, seed: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as home:
        os.environ["DISTILL_STUDIO_HOME"] = home
        experiment.resolve_precision = resolver
        try:
            results = run_experiment(RunConfig(seed=seed, precision=precision, num_threads=threads,
                                               out=str(Path(home) / "run")))
        finally:
            experiment.resolve_precision = resolve_precision
    return {"accuracy": {r: results[r]["accuracy"] for r in ROLES}, "seconds": results["seconds"],
            **results["phase_seconds"], "precision": results["precision"]}


def mean_std(values: list[float]) -> str:
    values = [100 * v for v in values]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):5.2f} ± {spread:4.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    device = resolve_device("auto")
    variants = dict(VARIANTS)
    try:
        resolve_precision("bf16", device)
    except Exception as exc:  # noqa: BLE001 - no bf16 here: only the fp32 rows
        print(f"bf16 rows skipped: {exc}")
        variants.pop("bf16")
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, {device}, {args.threads} threads, "
          f"seeds {args.seeds}, load average {os.getloadavg()[0]:.2f} at the start")
    rows: dict[str, list[dict]] = {name: [] for name in variants}
    for seed in args.seeds:
        for name, (precision, resolver) in variants.items():
            rows[name].append(one_run(precision, resolver, seed, args.threads))
            acc = rows[name][-1]["accuracy"]
            print(f"  seed {seed} {name:<18} teacher {100 * acc['teacher']:.1f} %, scratch "
                  f"{100 * acc['student_scratch']:.1f} %, distilled {100 * acc['student_kd']:.1f} %, "
                  f"{rows[name][-1]['seconds']:.1f} s", flush=True)
    print(f"\nAccuracy, last epoch, validation (%), mean ± std over {len(args.seeds)} seeds; times: median seconds")
    head = (f"{'variant':<18} {'trains / labels':<16} {'teacher':>13} {'scratch':>13} {'distilled':>13} "
            f"{'KD gain':>13} " + " ".join(f"{c:>9}" for c in ("teacher s", "scratch s", "distill s", "measure s",
                                                                 "run s")))
    print(head)
    for name, runs in rows.items():
        p = runs[0]["precision"]
        gains = [r["accuracy"]["student_kd"] - r["accuracy"]["student_scratch"] for r in runs]
        cells = [mean_std([r["accuracy"][role] for r in runs]) for role in ROLES] + [mean_std(gains)]
        times = [statistics.median(r[k] for r in runs) for k in (*PHASES, "seconds")]
        print(f"{name:<18} {p['train'] + ' / ' + p['teacher_labels']:<16} " + " ".join(f"{c:>13}" for c in cells)
              + " " + " ".join(f"{t:>9.1f}" for t in times))
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
