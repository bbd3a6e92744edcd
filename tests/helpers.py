"""Small configs that train in a second or two on 2 CPU cores.

They train on the CPU even where a GPU is present: several tests compare two runs bit for bit,
which CUDA's kernels do not promise. tests/test_gpu.py asks for the GPU by name."""
from distill_core import RunConfig


def tiny_config(**changes) -> RunConfig:
    base = RunConfig(dataset="digits", teacher="cnn_small", student="cnn_tiny", epochs=2, teacher_epochs=2,
                     batch_size=64, lr=0.05, latency_repeats=5, latency_batch=8, device="cpu")
    return base.replace(**changes)


def write_fake_mnist(root, train: int = 300, test: int = 60) -> None:
    """MNIST's four files, uncompressed, in ``root/MNIST/raw``, as torchvision reads them: random
    digits-shaped images with balanced labels, so tests can load "mnist" without a download."""
    import struct
    from pathlib import Path

    import numpy as np

    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", train), ("t10k", test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())
