"""Uploaded teacher checkpoints: saved under the studio home, checked before a run starts.

The engine loads them again with ``weights_only=True`` and checks them again; checking here
too means a wrong file is reported next to the upload widget, not a minute into a run.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Optional

import streamlit as st

from distill_core import DistillError, check_fits, create_model, paths, read_state_dict, write_atomic

from . import fmt
from .model_info import input_spec


def uploads_dir() -> Path:
    return paths.home() / "uploads"


def save_upload(filename: str, data: bytes) -> Path:
    """Content-addressed, so uploading the same file twice reuses one copy."""
    digest = hashlib.sha256(data).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename).stem)[:60] or "teacher"
    path = uploads_dir() / f"{digest}-{stem}.pt"
    if not path.exists():
        write_atomic(path, data)  # two sessions uploading the same file write it side by side
    return path


def on_this_server(path: Optional[str]) -> bool:
    """True for files the studio itself keeps: uploads and cached teachers. A link may only
    name those, so a shared URL cannot make the server open arbitrary files."""
    if not path:
        return False
    try:
        resolved = Path(path).expanduser().resolve()
    except OSError:
        return False
    return any(resolved.is_relative_to(root.resolve()) for root in (uploads_dir(), paths.teacher_cache_dir()))


@st.cache_data(show_spinner="Checking the checkpoint…", max_entries=32)
def check_teacher_file_cached(path: str, arch: str, dataset: str, image_size: Optional[int] = None,
                              classes: Optional[int] = None) -> Optional[str]:
    # Uploads are content-addressed, so a path always names the same bytes.
    return check_teacher_file(path, arch, dataset, image_size, classes)


def check_teacher_file(path: str | Path, arch: str, dataset: str, image_size: Optional[int] = None,
                       classes: Optional[int] = None) -> Optional[str]:
    """None when the file is a state_dict of ``arch`` for this dataset, else why it is not.

    An image folder's class count comes from its listing (``classes``); whether its pictures
    are grey is known only once the run reads them, so a teacher for either fits here."""
    channels, size, count, exact = input_spec(dataset, image_size)
    candidates = [channels] if exact else [3, 1] if classes else []
    count = classes or count
    try:
        state = read_state_dict(path)
        errors = []
        for ch in candidates:
            try:
                check_fits(state, create_model(arch, ch, count, size), arch, count, Path(path).name)
                break
            except DistillError as exc:
                errors.append(exc)
        else:
            if errors:
                raise errors[0]
    except DistillError as exc:
        return fmt.sentence(str(exc).replace(str(path), Path(path).name))
    except Exception as exc:  # noqa: BLE001 - a model factory refusing the shape, say
        return fmt.sentence(f"could not check {Path(path).name} against {arch}: {exc}")
    return None
