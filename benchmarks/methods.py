"""What each distillation method buys over training from scratch, and what its epoch costs.

Runs every method (and KD with logit standardisation) on two setups, several seeds each, through
``run_experiment`` as a user's run goes:

* ``mnist5k``: the offline default, ``cnn_large`` -> ``cnn_tiny``, the default recipe;
* ``digits``: scikit-learn's 8x8 digits, a CIFAR ResNet pair (``resnet56`` -> ``resnet20``).

Two parts:

* ``gains``: for each method, the gain of the distilled student over the scratch student
  (validation split, last epoch, percentage points) as mean ± std over the seeds. The methods of
  one seed run one after the other; every seed's teacher is trained once and cached.
* ``timing``: each method's distillation epoch (the engine's ``train_phase``, one epoch, the same
  teacher and student) timed in turn, round robin, so that the machine's load falls on all of them
  alike; the median of the rounds, relative to ``kd``. (The runs of the first part time their
  epochs too, but minutes apart: on a shared machine those differ by more than the methods do.)

    python benchmarks/methods.py                       # both parts: 3 seeds, 5 timing rounds
    python benchmarks/methods.py --part timing         # the timing alone
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


def add_seed_flags(parser: argparse.ArgumentParser, setups: dict) -> None:
    """The flags of a benchmark that runs setups over seeds (this one and derived.py)."""
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, help="student and teacher epochs for every setup (default: each "
                                                   "setup's own)")
    parser.add_argument("--setups", default=",".join(setups), help="comma-separated: " + ", ".join(setups))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (1: steadier beside other "
                                                               "work on the machine)")
    parser.add_argument("--json", help="write every run's numbers here")


def seeded(setup: RunConfig, seed: int, args, **changes) -> RunConfig:
    """``setup`` for one run of a seed on the CPU, with ``--threads`` and ``--epochs``, briefly timed."""
    epochs = dict(epochs=args.epochs, teacher_epochs=args.epochs) if args.epochs else {}
    return setup.replace(seed=seed, device="cpu", num_threads=args.threads, latency_repeats=5, latency_batch=8,
                         **epochs, **changes)


def run(setup: RunConfig, label: str, method: str, options: dict, seed: int, args) -> dict:
    config = seeded(setup, seed, args, method=method, extra=options)
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


def timing(setup: RunConfig, rounds: int, threads: int) -> dict[str, float]:
    """Median seconds of one distillation epoch per method (label), timed round robin."""
    import torch

    from distill_core import create_method, create_model, load_dataset
    from distill_core.data.datasets import DataRequest
    from distill_core.events import EventLog
    from distill_core.training.trainer import train_phase

    torch.set_num_threads(threads)
    config = setup.replace(device="cpu")
    data = load_dataset(config.dataset, DataRequest(seed=config.seed))
    shape = (data.in_channels, data.image_size, data.image_size)
    torch.manual_seed(0)
    teacher = create_model(config.teacher, *shape[:1], data.num_classes, data.image_size).eval()
    times: dict[str, list[float]] = {label: [] for label, _, _ in METHODS}
    for _ in range(rounds + 1):  # the first round warms caches up and is dropped
        for label, method, options in METHODS:
            torch.manual_seed(0)
            student = create_model(config.student, *shape[:1], data.num_classes, data.image_size)
            if config.channels_last:
                student, teacher = (m.to(memory_format=torch.channels_last) for m in (student, teacher))
            m = create_method(method, student, teacher, temperature=config.temperature, alpha=config.alpha,
                              input_shape=shape, **options)
            started = time.perf_counter()
            train_phase(m, data, config, epochs=1, phase="student_kd", emit=EventLog())
            times[label].append(time.perf_counter() - started)
    return {label: statistics.median(t[1:]) for label, t in times.items()}


def table(rows: list[dict], timings: dict[str, dict[str, float]]) -> str:
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
            ratio = (timings[setup][label] / timings[setup]["kd"] if setup in timings
                     else seconds / kd_time)  # without the timing part, the runs' own epochs
            lines.append(f"| {setup} | {label} | {statistics.mean(gains):+.2f} ± {spread:.2f} | "
                         f"{statistics.mean(r['distilled'] for r in these):.2f} % | "
                         f"{statistics.mean(r['scratch'] for r in these):.2f} % | {ratio:.2f}x |")
    return "\n".join(lines)


def timing_table(timings: dict[str, dict[str, float]]) -> str:
    lines = ["| setup | method | distillation epoch (s, median) | vs kd |", "|---|---|---|---|"]
    for setup, by_label in timings.items():
        for label, seconds in by_label.items():
            lines.append(f"| {setup} | {label} | {seconds:.2f} | {seconds / by_label['kd']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_seed_flags(parser, SETUPS)
    parser.add_argument("--part", choices=("both", "gains", "timing"), default="both")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds (after one dropped warm-up round)")
    args = parser.parse_args()
    os.environ.setdefault("DISTILL_STUDIO_HOME", tempfile.mkdtemp(prefix="distill_methods_"))
    preload()
    rows, timings = [], {}
    started = time.perf_counter()
    for name in args.setups.split(","):
        if args.part != "timing":
            for seed in range(args.seeds):
                for label, method, options in METHODS:
                    rows.append(run(SETUPS[name], label, method, options, seed, args))
        if args.part != "gains":
            timings[name] = timing(SETUPS[name], args.rounds, args.threads)
            print(f"  {name} timing: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings[name].items()), flush=True)
    print(f"\n{len(rows)} runs in {(time.perf_counter() - started) / 60:.1f} min. Gain: distilled minus scratch, "
          "validation split, last epoch. Epoch time: one distillation epoch (training and validation) relative to "
          "kd on the same setup\n")
    print(table(rows, timings) if rows else timing_table(timings))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": rows, "timings": timings}, indent=1))


if __name__ == "__main__":
    main()
