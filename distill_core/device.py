"""Pick the training device, and say clearly when the one asked for is not there."""
from __future__ import annotations

import gc

import torch

from .errors import DeviceError


def available_devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found.insert(0, "cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.insert(0, "mps")
    return found


def describe_devices() -> dict[str, str]:
    """Human names for what this machine has, for the app's device picker and the CLI."""
    names = {"cpu": f"CPU ({torch.get_num_threads()} threads)"}
    if torch.cuda.is_available():
        names["cuda"] = f"CUDA: {torch.cuda.get_device_name(0)}"
    if "mps" in available_devices():
        names["mps"] = "Apple MPS"
    return names


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if "mps" in available_devices():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device 'cuda' was requested but this machine has no CUDA GPU; "
                          "use --device auto or cpu")
    if name == "mps" and "mps" not in available_devices():
        raise DeviceError("device 'mps' was requested but Apple MPS is not available here; "
                          "use --device auto or cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda or mps")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work: GPU kernels run behind the Python that launched them,
    so a clock read without this measures the launches, not the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def release(device: torch.device | str) -> None:
    """Give memory back when a job ends, fails or is cancelled: first the Python objects still
    holding tensors (reference cycles), then the GPU allocator's cached blocks."""
    gc.collect()
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
