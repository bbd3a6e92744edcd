"""How fast is the engine's distillation epoch against a plain hand-written PyTorch KD loop?

Both train the same student against the same frozen teacher, on the same in-memory tensors,
with the same batch size, augmentation, optimizer and device. The plain loop is what one
writes from the PyTorch KD tutorial: per batch, augment, teacher forward under no_grad,
student forward, KL + CE, step. The engine adds metrics, events and a stop check, and labels
each chunk of augmented images with the teacher in large inference batches.

    python benchmarks/throughput.py                 # the offline default pair on mnist5k
    python benchmarks/throughput.py --teacher resnet56 --student resnet20 --dataset cifar10 --device cuda

Prints images/s for each and the time ratio engine / plain (at most 1.0 = no slower).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill_core import RunConfig, create_model, load_dataset, resolve_device  # noqa: E402
from distill_core.data.augment import standard_augment  # noqa: E402
from distill_core.events import EventLog  # noqa: E402
from distill_core.methods import create_method  # noqa: E402
from distill_core.training.trainer import build_optimizer, seeded_generator, train_phase  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_loop(student, teacher, data, config, device, epochs: int) -> list[float]:
    """The hand-written loop. Returns images per second for each epoch."""
    opt = build_optimizer(student.parameters(), config)
    gen = seeded_generator(config.seed, device)
    n, bs = data.train_x.shape[0], config.batch_size
    T, alpha = config.temperature, config.alpha
    student.train()
    teacher.eval()
    rates = []
    for _ in range(epochs):
        sync(device)
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
        sync(device)
        rates.append(seen / (time.perf_counter() - start))
    return rates


def engine_loop(student, teacher, data, config, device, epochs: int) -> list[float]:
    """The engine's trainer; its images/s covers the training part of each epoch (augmentation,
    teacher labelling, steps, metrics, events), not the validation pass after it."""
    method = create_method("kd", student, teacher, temperature=config.temperature, alpha=config.alpha)
    result = train_phase(method, data, config, epochs=epochs, phase="student_kd", emit=EventLog())
    return [row["images_per_s"] for row in result.history]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--teacher", default=RunConfig.teacher)
    p.add_argument("--student", default=RunConfig.student)
    p.add_argument("--batch-size", type=int, default=RunConfig.batch_size)
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=5, help="epochs timed for each, after one warm-up epoch")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = load_dataset(args.dataset).to(device)
    config = RunConfig(dataset=args.dataset, teacher=args.teacher, student=args.student,
                       batch_size=args.batch_size, device=str(device.type))

    def models(channels_last=False):
        torch.manual_seed(0)
        t = create_model(args.teacher, data.in_channels, data.num_classes, data.image_size).to(device)
        s = create_model(args.student, data.in_channels, data.num_classes, data.image_size).to(device)
        if channels_last:
            t, s = t.to(memory_format=torch.channels_last), s.to(memory_format=torch.channels_last)
        return t.eval().requires_grad_(False), s

    # Round robin: one epoch of each variant in turn, each on its own models throughout, so a
    # drift in machine load hits all alike. The first round (allocator, kernel choice) is dropped.
    variants = {
        "plain loop": (plain_loop, models(), config),
        "engine": (engine_loop, models(), config),
        "engine, channels_last": (engine_loop, models(True), config.replace(channels_last=True)),
    }
    rates = {name: [] for name in variants}
    for _ in range(args.repeats + 1):
        for name, (loop, (teacher, student), cfg) in variants.items():
            rates[name] += loop(student, teacher, data, cfg, device, epochs=1)
    rates = {name: values[1:] for name, values in rates.items()}
    print(f"{args.teacher} -> {args.student} on {args.dataset}, batch {config.batch_size}, {device}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} epochs")
    plain = statistics.median(rates["plain loop"])
    for name, values in rates.items():
        med = statistics.median(values)
        print(f"  {name:<24} {med:>10,.0f} img/s   time ratio to the plain loop {plain / med:.2f}")


if __name__ == "__main__":
    main()
