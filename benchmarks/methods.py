"""What each distillation method buys over training from scratch, and what its epoch costs.

Runs every method (and KD with logit standardisation) on two setups, several seeds each, through
``run_experiment`` as a user's run goes:

* ``mnist5k``: the offline default, ``cnn_large`` -> ``cnn_tiny``, the default recipe;
* ``digits``: scikit-learn's 8x8 digits, a CIFAR ResNet pair (``resnet56`` -> ``resnet20``).

For each method it prints the gain of the distilled student over the scratch student (validation
split, last epoch, percentage points) as mean ± std over the seeds, and its distillation epoch's
time relative to ``kd`` (the median of the distilled student's epoch seconds over all its epochs
and seeds, over kd's). The methods of one seed run one after the other, so a change in the
machine's load falls on all of them alike; every seed's teacher is trained once and cached.

    python benchmarks/methods.py                       # 3 seeds, the recipes below
    python benchmarks/methods.py --seeds 1 --epochs 2  # a quick look
    python benchmarks/methods.py --json out.json       # every run's numbers too

The teacher cache and runs go to a fresh temporary Distill Studio home unless DISTILL_STUDIO_HOME
is set. docs/benchmarks.md has the table, with the command, date and machine that made it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill_core import RunConfig, preload, run_experiment  # noqa: E402

# (label, method, options)
METHODS = [("kd", "kd", {}), ("kd + standardize", "kd", {"standardize": True}), ("dkd", "dkd", {}),
           ("fitnet", "fitnet", {}), ("at", "at", {})]
SETUPS = {
    "mnist5k": RunConfig(),  # the offline default: cnn_large -> cnn_tiny, 6 teacher and 8 student epochs
    "digits": RunConfig(dataset="digits", teacher="resnet56", student="resnet20", teacher_epochs=15, epochs=15,
                        batch_size=64),
}


def run(setup: RunConfig, label: str, method: str, options: dict, seed: int, args) -> dict:
    changes = dict(method=method, extra=options, seed=seed, device="cpu", num_threads=args.threads,
                   latency_repeats=5, latency_batch=8)
    if args.epochs:
        changes.update(epochs=args.epochs, teacher_epochs=args.epochs)
    config = setup.replace(**changes)
    started = time.perf_counter()
    results = run_experiment(config)
    kd = results["student_kd"]
    row = {"setup": setup.dataset, "label": label, "method": method, "options": options, "seed": seed,
           "gain": results["comparison"]["kd_gain_points"], "scratch": 100 * results["student_scratch"]["accuracy"],
           "distilled": 100 * kd["accuracy"], "teacher": 100 * results["teacher"]["accuracy"],
           "epoch_seconds": [h["seconds"] for h in kd["history"]],
           "scratch_epoch_seconds": [h["seconds"] for h in results["student_scratch"]["history"]],
           "wall": time.perf_counter() - started}
    print(f"  {setup.dataset:<8} {label:<17} seed {seed}: gain {row['gain']:+.2f} pts (scratch {row['scratch']:.2f} %, "
          f"distilled {row['distilled']:.2f} %, teacher {row['teacher']:.2f} %), "
          f"{statistics.median(row['epoch_seconds']):.2f} s / epoch", flush=True)
    return row


def table(rows: list[dict]) -> str:
    lines = ["| setup | method | gain over scratch (pts, mean ± std) | distilled | scratch | epoch time vs kd |",
             "|---|---|---|---|---|---|"]
    for setup in dict.fromkeys(r["setup"] for r in rows):
        mine = [r for r in rows if r["setup"] == setup]
        kd_time = statistics.median(s for r in mine if r["label"] == "kd" for s in r["epoch_seconds"])
        for label in dict.fromkeys(r["label"] for r in mine):
            these = [r for r in mine if r["label"] == label]
            gains = [r["gain"] for r in these]
            spread = statistics.stdev(gains) if len(gains) > 1 else 0.0
            seconds = statistics.median(s for r in these for s in r["epoch_seconds"])
            lines.append(f"| {setup} | {label} | {statistics.mean(gains):+.2f} ± {spread:.2f} | "
                         f"{statistics.mean(r['distilled'] for r in these):.2f} % | "
                         f"{statistics.mean(r['scratch'] for r in these):.2f} % | {seconds / kd_time:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, help="student and teacher epochs for every setup (default: each "
                                                   "setup's own)")
    parser.add_argument("--setups", default=",".join(SETUPS), help="comma-separated: " + ", ".join(SETUPS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (1: steadier beside other "
                                                               "work on the machine)")
    parser.add_argument("--json", help="write every run's numbers here")
    args = parser.parse_args()
    os.environ.setdefault("DISTILL_STUDIO_HOME", tempfile.mkdtemp(prefix="distill_methods_"))
    preload()
    rows = []
    started = time.perf_counter()
    for name in args.setups.split(","):
        for seed in range(args.seeds):
            for label, method, options in METHODS:
                rows.append(run(SETUPS[name], label, method, options, seed, args))
    print(f"\n{len(rows)} runs in {(time.perf_counter() - started) / 60:.1f} min; gain: distilled minus scratch, "
          "validation split, last epoch; epoch time: median seconds of a distillation epoch (training and "
          "validation), relative to kd on the same setup\n")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
