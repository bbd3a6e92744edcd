"""Files that someone may read while they are being written.

The app's pages read a run's results.json, config.json and checkpoints, the Live page's frame
its feed, a second server the teacher cache, all while a run writes them. Each file here is
written beside its target under a name no other writer uses, then renamed over it (atomic on
one file system), so a reader sees the old file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import io
import os
import threading
from pathlib import Path
from typing import Any

import torch

from .errors import write_error


def write_atomic(target: str | Path, data: bytes | str) -> Path:
    """Replace ``target`` with ``data`` (text is written as UTF-8), creating its folder.

    A failed write raises ``WriteError`` (an ``OSError``) naming ``target``: the error of a full
    disk says only "No space left on device", not where."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(target, exc) from None
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        partial.write_bytes(data.encode() if isinstance(data, str) else data)
        os.replace(partial, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)  # a full disk or a failed rename leaves no debris behind
        if isinstance(exc, OSError):
            raise write_error(target, exc) from None
        raise
    return target


def save_atomic(obj: Any, target: str | Path) -> Path:
    """``torch.save`` that a reader never sees half-written (checkpoints here are megabytes)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return write_atomic(target, buf.getvalue())
