"""Uploads on the Distill page: teacher checkpoints and zipped image folders, in the home's uploads.

Teacher checkpoints are saved, then read as a state_dict (``weights_only=True``); a file that is
none is deleted at once. The engine loads them again and checks them again; checking here too
means a wrong file is reported next to the upload widget, not a minute into a run. Zipped image
folders are ``folder_uploads``'. After each upload the folder is kept under its cap.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Optional

import streamlit as st

from distill_core import SAVE_A_STATE_DICT, CheckpointError, DistillError, check_fits, create_model, paths, read_state_dict, \
    write_atomic

from . import fmt, folder_uploads
from .manager import get_manager
from .model_info import input_spec

W = "cfg_"  # the Distill page's widget keys (studio/form.py)


def uploads_dir() -> Path:
    return paths.uploads_dir()


def save_upload(filename: str, data: bytes) -> Path:
    """Content-addressed, so uploading the same file twice reuses one copy."""
    digest = hashlib.sha256(data).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename).stem)[:60] or "teacher"
    path = uploads_dir() / f"{digest}-{stem}.pt"
    if not path.exists():
        write_atomic(path, data)  # two sessions uploading the same file write it side by side
    return path


def in_use(*more: Optional[str]) -> list[Optional[str]]:
    """Paths queued and running jobs read (uploads the cap must not remove), and ``more``."""
    jobs = [j.config for j in get_manager().jobs() if j.active]
    return [*more, *(c.data_dir for c in jobs), *(c.teacher_checkpoint for c in jobs)]


def mark_used(*used: Optional[str]) -> None:
    """A run starts with these paths: their uploads are the last the cap removes."""
    for path in used:
        if upload := folder_uploads.upload_of(path):
            folder_uploads.touch(upload)


def uploader_key(kind: str) -> str:
    """The uploader's key: a new one after a refusal, so Streamlit drops the refused file too."""
    return f"{W}{kind}_{st.session_state.get(f'{kind}_round', 0)}"


def _refused(kind: str, message: str) -> None:
    ss = st.session_state
    ss[f"{kind}_note"] = ("error", message)
    ss[f"{kind}_round"] = ss.get(f"{kind}_round", 0) + 1


def refusal(kind: str) -> Optional[str]:
    """Why the last upload of this kind was refused, or None: the field's problem says it, in place
    of asking for a file, so that a refused file gets one message."""
    note = st.session_state.get(f"{kind}_note")
    return note[1] if note and note[0] == "error" else None


SAVE_HINT = f"save one with {SAVE_A_STATE_DICT}"


def teacher_refusal(name: str, reason: str) -> str:
    """Why a teacher file was refused, naming it (the emptied uploader no longer shows it), with the
    one way to make a good one, whichever check refused it."""
    reason = re.sub(rf"^checkpoint {re.escape(name)} ", "", reason.strip().rstrip("."))
    reason = re.sub(rf"[:.;]? *(save one with|Save a plain state_dict:) {re.escape(SAVE_A_STATE_DICT)}", "", reason)
    return f"{fmt.code(name)} {fmt.plain(reason)}; {SAVE_HINT}."


def take_teacher() -> None:
    """The teacher uploader's callback: keep a state_dict, refuse (and delete) anything else."""
    ss = st.session_state
    uploaded = ss.get(uploader_key("teacher"))
    if uploaded is None:
        return
    try:
        path = save_upload(uploaded.name, uploaded.getvalue())
    except DistillError as exc:
        return _refused("teacher", f"{fmt.code(uploaded.name)} could not be saved: {fmt.plain(exc)}")
    try:
        read_state_dict(path)
    except CheckpointError as exc:
        path.unlink(missing_ok=True)  # never usable, whatever model is chosen: not kept
        return _refused("teacher", teacher_refusal(uploaded.name, str(exc).replace(str(path), uploaded.name)))
    ss.uploaded_path, ss.uploaded_name, ss.teacher_note = str(path), uploaded.name, None
    folder_uploads.touch(path)
    folder_uploads.prune(in_use(str(path)))


def take_zip() -> None:
    """The image-folder uploader's callback: unpack a checked .zip and point the folder field at it."""
    ss = st.session_state
    uploaded = ss.get(uploader_key("zip"))
    if uploaded is None:
        return
    try:
        folder = folder_uploads.unpack(uploaded.getvalue())
    except DistillError as exc:
        return _refused("zip", f"{fmt.code(uploaded.name)} was refused: {fmt.plain(exc)}.")
    ss[W + "data_dir"] = ss.zip_folder = str(folder)
    ss.zip_note = ("success", f"{fmt.code(uploaded.name)} is unpacked on this server; its classes are listed below.")
    folder_uploads.prune(in_use(str(folder)))


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
