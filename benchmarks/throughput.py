"""How fast is the engine? Its distillation epoch against a plain KD loop, and the demo end to end.

    python benchmarks/throughput.py                      # mnist5k, cnn_large -> cnn_tiny, 2 threads
    python benchmarks/throughput.py --demo-runs 0        # the epoch comparison only
    python benchmarks/throughput.py --compile            # adds the engine with torch.compile
    python benchmarks/throughput.py --teacher resnet56 --student resnet20 --dataset cifar10 --device cuda

1. One distillation epoch, in images/s: the plain loop is what one writes from the PyTorch KD
   tutorial, in fp32 with contiguous tensors: per batch, augment, teacher forward under no_grad,
   student forward, KL + CE, step. The engine is ``train_phase`` with the run's defaults
   (channels_last; the teacher labels each chunk of augmented images in large inference batches,
   in bf16 where that is fast), in fp32 and in ``--precision auto``. All train the same student
   against the same frozen teacher on the same tensors, batch size, augmentation and optimizer.
   Round robin, one epoch of each in turn, so a change in machine load hits all alike; the first
   round is dropped; medians. The ratio is engine images/s over plain-loop images/s (above 1:
   the engine is faster).
2. The default demo end to end: ``python -m distill_core run --num-threads N`` with a fresh home
   (so the teacher trains), timed around the process, so Python's start-up counts. The phases
   are the run's own ``phase_seconds``. fp32 and auto alternate; medians.

The machine's load is printed before and after: on a shared machine, read the ratios (measured
in the same rounds) before the absolute figures. ``--clock cpu`` (with ``--threads 1``) counts this
process's CPU seconds instead of wall seconds: other processes on the machine then change the
figures much less (with 2 threads, a thread waiting for its descheduled twin still spends CPU).
In that mode each epoch of the plain loop gets the same validation pass as the engine's, since
the CPU clock is read around the whole call.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distill_core import RunConfig, create_model, load_dataset, resolve_device, resolve_precision  # noqa: E402
from distill_core.data.augment import standard_augment  # noqa: E402
from distill_core.device import synchronize  # noqa: E402
from distill_core.events import EventLog  # noqa: E402
from distill_core.methods import create_method  # noqa: E402
from distill_core.training.trainer import build_optimizer, seeded_generator, train_phase, validate  # noqa: E402

PHASES = ("setup", "teacher", "student_scratch", "student_kd", "measure")


def machine_load() -> str:
    """The 1-minute load average and the share of both cores busy over the last second (all
    processes, this one included)."""
    def ticks():
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]
    try:
        total0, idle0 = ticks()
        time.sleep(1.0)
        total1, idle1 = ticks()
        busy = 100 * (1 - (idle1 - idle0) / max(1, total1 - total0))
        return f"load average {os.getloadavg()[0]:.2f}, CPU {busy:.0f}% busy over 1 s"
    except OSError:
        return "load unknown (no /proc)"


def plain_loop(student, teacher, data, config, device, epochs: int) -> list[float]:
    """The hand-written fp32 loop. Returns images per second for each epoch."""
    opt = build_optimizer(student.parameters(), config)
    gen = seeded_generator(config.seed, device)
    n, bs = data.train_x.shape[0], config.batch_size
    T, alpha = config.temperature, config.alpha
    student.train()
    teacher.eval()
    rates = []
    for _ in range(epochs):
        synchronize(device)
        start = time.perf_counter()
        perm = torch.randperm(n, generator=gen, device=device)
        seen = 0
        for i in range(0, n - bs + 1, bs):
            idx = perm[i:i + bs]
            x = standard_augment(data.normalize(data.train_x[idx]), data.crop_padding, data.hflip, gen)
            y = data.train_y[idx]
            with torch.no_grad():
                t_logits = teacher(x)
            s_logits = student(x)
            kd = F.kl_div(F.log_softmax(s_logits / T, 1), F.softmax(t_logits / T, 1), reduction="batchmean") * T * T
            loss = alpha * kd + (1 - alpha) * F.cross_entropy(s_logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += bs
        synchronize(device)
        rates.append(seen / (time.perf_counter() - start))
    return rates


def engine_loop(student, teacher, data, config, device, epochs: int) -> list[float]:
    """The engine's trainer; its images/s covers the training part of each epoch (augmentation,
    teacher labelling, steps, metrics, events), not the validation pass after it."""
    method = create_method("kd", student, teacher, temperature=config.temperature, alpha=config.alpha)
    result = train_phase(method, data, config, epochs=epochs, phase="student_kd", emit=EventLog(),
                         precision=resolve_precision(config.precision, device))
    return [row["images_per_s"] for row in result.history]


def timed(loop, clock: str):
    """``loop`` with its images/s on ``clock``: "wall" (its own figures) or "cpu" (this process's CPU
    seconds around each one-epoch call, a validation pass included for both loops)."""
    if clock == "wall":
        return loop

    def on_cpu(student, teacher, data, config, device, epochs: int) -> list[float]:
        rates = []
        for _ in range(epochs):
            started = time.process_time()
            loop(student, teacher, data, config, device, 1)
            if loop is plain_loop:  # the engine validates after each epoch
                validate(student, data, channels_last=config.channels_last)
            images = data.train_x.shape[0] // config.batch_size * config.batch_size if loop is plain_loop else \
                data.train_x.shape[0]
            rates.append(images / (time.process_time() - started))
        return rates
    return on_cpu


def model_pair(teacher: str, student: str, data, device, channels_last: bool):
    """(frozen teacher, student), seeded: every variant of a comparison starts from the same weights."""
    torch.manual_seed(0)
    t = create_model(teacher, data.in_channels, data.num_classes, data.image_size).to(device)
    s = create_model(student, data.in_channels, data.num_classes, data.image_size).to(device)
    if channels_last:
        t, s = t.to(memory_format=torch.channels_last), s.to(memory_format=torch.channels_last)
    return t.eval().requires_grad_(False), s


def round_robin(variants: dict, data, device, repeats: int) -> dict[str, list[float]]:
    """Each variant's images/s over ``repeats`` epochs, one epoch of each in turn (so a change in the
    machine's load hits all alike), after a first round that is dropped (warm-up)."""
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats + 1):
        for name, (loop, (teacher, student), cfg) in variants.items():
            rates[name] += loop(student, teacher, data, cfg, device, epochs=1)
    return {name: values[1:] for name, values in rates.items()}


def epoch_comparison(args, device) -> None:
    data = load_dataset(args.dataset).to(device)
    base = RunConfig(dataset=args.dataset, teacher=args.teacher, student=args.student, batch_size=args.batch_size,
                     device=device.type)

    def models(channels_last: bool):
        return model_pair(args.teacher, args.student, data, device, channels_last)

    plain, engine = timed(plain_loop, args.clock), timed(engine_loop, args.clock)
    rates = round_robin({
        "plain loop, fp32": (plain, models(False), base.replace(channels_last=False, precision="fp32")),
        "engine, fp32": (engine, models(base.channels_last), base.replace(precision="fp32")),
        "engine, precision auto": (engine, models(base.channels_last), base.replace(precision="auto")),
        **({"engine, auto + compile": (engine, models(base.channels_last), base.replace(precision="auto", compile=True))}
           if args.compile else {}),
    }, data, device, args.repeats)
    auto = resolve_precision("auto", device)
    fp32 = resolve_precision("fp32", device)
    print(f"\n1. One distillation epoch: {args.teacher} -> {args.student} on {args.dataset}, batch {args.batch_size}, "
          f"{device}, {torch.get_num_threads()} threads, median of {args.repeats} epochs (round robin, first dropped), "
          f"images per {'CPU' if args.clock == 'cpu' else 'wall'} second")
    print(f"   engine, fp32: trains in {fp32.train}, teacher labels in {fp32.teacher_labels}; "
          f"precision auto: trains in {auto.train}, labels in {auto.teacher_labels} ({auto.reason})")
    print_rates(rates)


def print_rates(rates: dict[str, list[float]]) -> None:
    """Each variant's median images/s, its spread, and its ratio to the plain loop's median."""
    plain = statistics.median(rates["plain loop, fp32"])
    print(f"   {'':<24} {'images/s':>10}  {'spread':>17}  engine / plain")
    for name, values in rates.items():
        med = statistics.median(values)
        print(f"   {name:<24} {med:>10,.0f}  {min(values):>7,.0f}-{max(values):<7,.0f}  {med / plain:.2f}x")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def demo_run(precision: str, threads: int) -> dict:
    """One default run in a fresh home, timed around its process."""
    with tempfile.TemporaryDirectory() as home:
        out = Path(home) / "run"
        env = {**os.environ, "DISTILL_STUDIO_HOME": home}
        cmd = [sys.executable, "-m", "distill_core", "run", "--num-threads", str(threads), "--precision", precision,
               "--quiet", "--out", str(out)]
        started, cpu = time.perf_counter(), children_cpu_s()
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        wall, cpu = time.perf_counter() - started, children_cpu_s() - cpu
        results = json.loads((out / "results.json").read_text())
    phases = results.get("phase_seconds", {})
    return {"wall": wall, "cpu": cpu, "run": results["seconds"], "start-up": wall - results["seconds"], **phases,
            "accuracy": {r: results[r]["accuracy"] for r in ("teacher", "student_scratch", "student_kd")},
            "precision": results["precision"]}


def demo_comparison(args) -> None:
    runs: dict[str, list[dict]] = {"fp32": [], "auto": []}
    for _ in range(args.demo_runs):
        for precision in runs:
            runs[precision].append(demo_run(precision, args.threads or 2))
    print(f"\n2. The default demo end to end (python -m distill_core run --num-threads {args.threads or 2} "
          f"--precision P, a fresh home), median of {args.demo_runs}, seconds:")
    cols = ("wall", "cpu", "start-up", "setup", "teacher", "student_scratch", "student_kd", "measure")
    heads = {"student_scratch": "scratch", "student_kd": "distilled", "measure": "measuring"}
    print("   " + f"{'precision':<33}" + "".join(f"{heads.get(c, c):>10}" for c in cols))
    for precision, rows in runs.items():
        p = rows[0]["precision"]
        label = f"{precision} (trains {p['train']}, labels {p['teacher_labels']})"
        cells = "".join(f"{statistics.median(r[c] for r in rows):>10.1f}" for c in cols)
        print(f"   {label:<33}{cells}")
        walls = ", ".join(f"{r['wall']:.1f}" for r in rows)
        acc = rows[0]["accuracy"]
        print(f"   {'':<33} each wall: {walls}; accuracy (last epoch, val): teacher {100 * acc['teacher']:.1f} %, "
              f"scratch {100 * acc['student_scratch']:.1f} %, distilled {100 * acc['student_kd']:.1f} %")
    print("   (wall: the process, timed outside; cpu: its CPU seconds, all threads; start-up: wall minus the "
          "run's own clock (Python, imports, preload); setup: loading the data)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--teacher", default=RunConfig.teacher)
    p.add_argument("--student", default=RunConfig.student)
    p.add_argument("--batch-size", type=int, default=RunConfig.batch_size)
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=5, help="epochs timed for each, after one warm-up round")
    p.add_argument("--threads", type=int, default=2, help="torch threads (the demo's --num-threads too)")
    p.add_argument("--demo-runs", type=int, default=3, help="default demo runs per precision (0: none)")
    p.add_argument("--compile", action="store_true",
                   help="also time the engine with torch.compile (its compilation falls in the dropped first round)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="images per wall second, or per CPU second of this process (steadier on a shared "
                        "machine, with --threads 1)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"before: {machine_load()}")
    epoch_comparison(args, device)
    if args.demo_runs > 0:
        demo_comparison(args)
    print(f"\nafter: {machine_load()}")


if __name__ == "__main__":
    main()
