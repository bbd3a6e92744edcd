"""Load a user's state_dict safely, and say exactly why one does not fit.

``torch.load(..., weights_only=True)`` refuses pickles that would run code. On top of that we
check the keys and shapes against the chosen architecture, so a checkpoint for another model
or another class count is refused with a message instead of a shape error mid-run.
"""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch
import torch.nn as nn

from .errors import CheckpointError, first_line
from .files import save_atomic


SAVE_A_STATE_DICT = "torch.save(model.state_dict(), path)"  # how to make a file this module reads


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path).expanduser()
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder; give the .pt file in it")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses every pickle opcode that would import or call something: a GLOBAL.
        # Any other refusal is a file that is damaged or not a checkpoint at all.
        if "GLOBAL" in str(exc):
            raise CheckpointError(
                f"checkpoint {path} was refused: it holds pickled objects that could run code, "
                f"not just tensors. Save a plain state_dict: {SAVE_A_STATE_DICT}") from None
        raise CheckpointError(f"checkpoint {path} is not a PyTorch file, or it is damaged") from None
    except Exception as exc:  # torch.load on arbitrary bytes can raise almost anything
        # ...such as KeyError(101) for a text file: its words would mean nothing to the user.
        detail = "" if isinstance(exc, (KeyError, IndexError, ValueError, EOFError)) else f" ({first_line(exc, 200)})"
        raise CheckpointError(f"checkpoint {path} is not a PyTorch file, or it is damaged: save one with "
                              f"{SAVE_A_STATE_DICT}{detail}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]  # the common {"state_dict": ...} wrapper
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"checkpoint {path} is not a state_dict (a dict of parameter tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}  # DataParallel prefixes


def classifier_key(model: nn.Module) -> str | None:
    """The weight of the last Linear layer: its rows are the class count."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = f"{name}.weight" if name else "weight"
    return last


def check_fits(state: dict[str, torch.Tensor], model: nn.Module, arch: str, num_classes: int,
               path: str | Path = "checkpoint") -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        raise CheckpointError(f"checkpoint {path} is not a state_dict of {arch}: " + "; ".join(parts))
    # Checked once the keys match: another model's layer of the same name is not a class count.
    head = classifier_key(model)
    if head and state[head].dim() == 2 and state[head].shape[0] != num_classes \
            and state[head].shape[1] == expected[head].shape[1]:
        raise CheckpointError(
            f"checkpoint {path} is for {state[head].shape[0]} classes, but this dataset has {num_classes}")
    wrong = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in expected.items()
             if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        k, got, want = wrong[0]
        raise CheckpointError(
            f"checkpoint {path} does not fit {arch} on this dataset: {k} has shape {got}, expected {want}"
            + (f" ({len(wrong) - 1} more)" if len(wrong) > 1 else ""))
    # A teacher with NaN or infinite weights trains nothing: its soft targets would be NaN.
    broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise CheckpointError(f"checkpoint {path} holds NaN or infinite values (in {', '.join(broken[:3])}"
                              + (f" and {len(broken) - 3} more" if len(broken) > 3 else "") + "); it cannot teach")


def load_into(model: nn.Module, path: str | Path, arch: str, num_classes: int) -> nn.Module:
    state = read_state_dict(path)
    check_fits(state, model, arch, num_classes, path)
    model.load_state_dict(state)
    return model


def save_state_dict(state: dict[str, torch.Tensor], path: str | Path) -> Path:
    return save_atomic(state, path)  # the Runs page may offer it for download meanwhile


def state_sha256(model: nn.Module) -> str:
    """A hash of a model's weights: each tensor's name, dtype, shape and bytes, in order. Two runs
    whose teachers hash alike taught with the very same teacher."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())  # as bytes: bf16 has no numpy type
    return digest.hexdigest()
