"""A student derived from its teacher: what the teacher's weights are worth as a start, with and without KD.

Two setups, several seeds each, both initialisations of the same derived architecture, through
``run_experiment`` as a user's run goes (``--student derived``):

* ``mnist5k``: ``cnn_large`` cut to half its blocks per stage and a quarter of its channels, the
  offline default recipe;
* ``digits``: ``resnet56`` cut to a third of its blocks (blocks 0, 4 and 8 of each stage: the depth
  of a resnet20), every channel kept, the recipe of benchmarks/methods.py.

For each initialisation (teacher: the teacher's weight slices; random: the same architecture from
scratch) it reports the scratch and the distilled student's accuracy (validation split, last epoch,
mean ± std over the seeds) and the KD gain; then the gain from the teacher's initialisation, without
KD (teacher-init scratch minus random-init scratch) and with it (the same of the distilled students).
Each seed's teacher is trained once and cached, so both initialisations learn from the same teacher.

    python benchmarks/derived.py                        # 3 seeds, each setup's own epochs
    python benchmarks/derived.py --seeds 1 --epochs 2   # a quick look
    python benchmarks/derived.py --json out.json        # every run's numbers too
    python benchmarks/derived.py --setups digits --inits teacher --weight-anchor 0.001   # with the anchor

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
from methods import add_seed_flags, seeded  # noqa: E402  (the same flags and per-seed recipe)

SETUPS = {
    "mnist5k": RunConfig(teacher="cnn_large", student="derived", derive_depth=0.5, derive_width=0.25),
    "digits": RunConfig(dataset="digits", teacher="resnet56", student="derived", derive_depth=1 / 3,
                        derive_width=1.0, teacher_epochs=15, epochs=15, batch_size=64),
}
INITS = ("teacher", "random")


def run(setup: RunConfig, name: str, init: str, seed: int, args) -> dict:
    anchor = args.weight_anchor if init == "teacher" else 0.0
    results = run_experiment(seeded(setup, seed, args, student_init=init, weight_anchor=anchor))
    row = {"setup": name, "init": init, "seed": seed, "weight_anchor": anchor, "scratch": 100 * results["student_scratch"]["accuracy"],
           "distilled": 100 * results["student_kd"]["accuracy"], "teacher": 100 * results["teacher"]["accuracy"],
           "gain": results["comparison"]["kd_gain_points"], "params": results["student_kd"]["params"],
           "teacher_params": results["teacher"]["params"], "origin": results["student_origin"]}
    print(f"  {name:<8} {init:<7} seed {seed}: scratch {row['scratch']:.2f} %, distilled {row['distilled']:.2f} %, "
          f"KD gain {row['gain']:+.2f} pts (teacher {row['teacher']:.2f} %, student {row['params']:,} params)",
          flush=True)
    return row


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {spread:.2f}"


def table(rows: list[dict]) -> str:
    lines = ["| setup | init | scratch (%) | distilled (%) | KD gain (pts) |", "|---|---|---|---|---|"]
    gains = ["", "| setup | teacher init minus random init, scratch (pts) | the same, distilled (pts) |",
             "|---|---|---|"]
    for setup in dict.fromkeys(r["setup"] for r in rows):
        by = {init: sorted((r for r in rows if r["setup"] == setup and r["init"] == init), key=lambda r: r["seed"])
              for init in INITS}
        for init, these in by.items():
            if these:
                lines.append(f"| {setup} | {init} | {mean_std([r['scratch'] for r in these])} | "
                             f"{mean_std([r['distilled'] for r in these])} | {mean_std([r['gain'] for r in these])} |")
        pairs = [(t, r) for t in by["teacher"] for r in by["random"] if t["seed"] == r["seed"]]  # seed by seed
        if pairs:
            gains.append(f"| {setup} | {mean_std([t['scratch'] - r['scratch'] for t, r in pairs])} | "
                         f"{mean_std([t['distilled'] - r['distilled'] for t, r in pairs])} |")
    return "\n".join(lines + gains)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_seed_flags(parser, SETUPS)
    parser.add_argument("--inits", default=",".join(INITS), help="comma-separated: teacher, random")
    parser.add_argument("--weight-anchor", type=float, default=0.0,
                        help="mu of the weight anchor for the teacher-initialised runs (random ones have none)")
    args = parser.parse_args()
    os.environ.setdefault("DISTILL_STUDIO_HOME", tempfile.mkdtemp(prefix="distill_derived_"))
    preload()
    rows = []
    started = time.perf_counter()
    for name in args.setups.split(","):
        for seed in range(args.seeds):
            for init in args.inits.split(","):
                rows.append(run(SETUPS[name], name, init, seed, args))
    print(f"\n{len(rows)} runs in {(time.perf_counter() - started) / 60:.1f} min. Accuracy: validation split, last "
          "epoch, mean ± std over seeds. KD gain: distilled minus scratch student (same initial weights).\n")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": rows}, indent=1))


if __name__ == "__main__":
    main()
