"""The GPU path: engine against a plain loop at CIFAR scale, and the default demo, on one device.

    python benchmarks/gpu.py                          # CUDA: about 3-5 minutes, no download
    python benchmarks/gpu.py --compile                # adds the engine with torch.compile
    python benchmarks/gpu.py --device cpu --quick     # checks that the script works, in about a minute

1. Throughput, resnet56 -> resnet20 at batch 512, on a synthetic CIFAR-shaped set (random uint8
   3x32x32 images, 10 classes; speed does not depend on what the pixels show, and nothing is
   downloaded). The plain loop is the PyTorch KD tutorial's, in fp32 with contiguous tensors:
   per batch, augment, teacher forward, student step. The engine is ``train_phase`` with the
   run's defaults: data on the device, augmentation on the device in chunks, channels_last,
   ``precision auto`` (bf16 autocast on a GPU with native bf16), the teacher labelling each chunk
   in large batches, no host sync in the step loop but the throttled progress reads.
   Round robin, one epoch each in turn, first round dropped, median images/s.
2. The default demo (mnist5k, cnn_large -> cnn_tiny) on the device, ``precision auto``, a fresh
   home: its phases' seconds and accuracies (a real dataset: accuracy means something there).

``--quick`` shrinks everything (fewer images, smaller batch, 1 timed epoch, 1-epoch demo) so
that the script can be checked on a CPU; its figures are not the GPU's.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill_core import ImageData, RunConfig, resolve_device, resolve_precision, run_experiment  # noqa: E402
from distill_core.device import describe_devices  # noqa: E402

from throughput import engine_loop, model_pair, plain_loop, print_rates, round_robin  # noqa: E402  (the same two loops as the CPU benchmark)


def synthetic_cifar(n_train: int, n_val: int, device: torch.device) -> ImageData:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n_train + n_val, 3, 32, 32), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 10, (n_train + n_val,), generator=gen)
    data = ImageData("synthetic-cifar", x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                     [str(i) for i in range(10)], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), crop_padding=4, hflip=True,
                     source="random uint8 images")
    return data.to(device)


def throughput(args, device: torch.device) -> None:
    data = synthetic_cifar(args.images, max(512, args.images // 50), device)
    base = RunConfig(dataset="cifar10", teacher="resnet56", student="resnet20", batch_size=args.batch_size,
                     device=device.type, precision="auto")

    def models(channels_last: bool):
        return model_pair("resnet56", "resnet20", data, device, channels_last)

    variants = {
        "plain loop, fp32": (plain_loop, models(False), base.replace(channels_last=False, precision="fp32")),
        "engine, precision auto": (engine_loop, models(True), base),
    }
    if args.compile:
        variants["engine, auto + compile"] = (engine_loop, models(True), base.replace(compile=True))
    rates = round_robin(variants, data, device, args.repeats)
    p = resolve_precision("auto", device)
    print(f"\n1. resnet56 -> resnet20, synthetic {args.images:,} images 3x32x32, batch {args.batch_size}, {device}; "
          f"median of {args.repeats} epochs (round robin, first dropped)")
    print(f"   precision auto here: trains in {p.train}, labels in {p.teacher_labels} ({p.reason})")
    print_rates(rates)


def demo(args, device: torch.device) -> None:
    epochs = {"epochs": 1, "teacher_epochs": 1} if args.quick else {}
    with tempfile.TemporaryDirectory() as home:
        os.environ["DISTILL_STUDIO_HOME"] = home
        started = time.perf_counter()
        results = run_experiment(RunConfig(device=device.type, precision="auto", compile=args.compile,
                                           out=str(Path(home) / "run"), **epochs))
        wall = time.perf_counter() - started
    phases = results["phase_seconds"]
    acc = {r: 100 * results[r]["accuracy"] for r in ("teacher", "student_scratch", "student_kd")}
    print(f"\n2. The default demo{' (1 epoch each: --quick)' if args.quick else ''} on {device}, precision auto "
          f"(trains in {results['precision']['train']}){', compiled' if args.compile else ''}: {wall:.1f} s in "
          f"this process (loading {phases['setup']:.1f}, teacher {phases['teacher']:.1f}, scratch "
          f"{phases['student_scratch']:.1f}, distilled {phases['student_kd']:.1f}, measuring {phases['measure']:.1f})")
    print(f"   accuracy (last epoch, val): teacher {acc['teacher']:.1f} %, scratch {acc['student_scratch']:.1f} %, "
          f"distilled {acc['student_kd']:.1f} %")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="a small check that runs on a CPU in about a minute")
    p.add_argument("--compile", action="store_true", help="also time the engine with torch.compile")
    p.add_argument("--repeats", type=int, default=None, help="timed epochs per variant (default 3; quick: 1)")
    args = p.parse_args()
    args.images = 1024 if args.quick else 50_000
    args.batch_size = 128 if args.quick else 512
    args.repeats = args.repeats or (1 if args.quick else 3)
    device = resolve_device(args.device)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, {describe_devices().get(device.type)}, "
          f"{torch.get_num_threads()} CPU threads")
    throughput(args, device)
    demo(args, device)


if __name__ == "__main__":
    main()
