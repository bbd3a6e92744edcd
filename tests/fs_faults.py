"""Real file-system faults for tests: a read-only folder and a full disk.

Permissions do not stop root, and a monkeypatched ``open`` does not reach SQLite or a separate
server process, so these are made for real: a read-only bind mount and a small tmpfs where the
test may mount (root on Linux), and ``chmod`` where it runs as another user. Where neither works,
the test is skipped with the reason.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest


def _mount(*args: str) -> bool:
    if not shutil.which("mount") or os.geteuid() != 0:
        return False
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` (which must exist) made read-only for everyone, root included, until the end."""
    folder = Path(folder)
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if not p.is_symlink()}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield folder
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    if not (_mount("--bind", str(folder), str(folder)) and _mount("-o", "remount,bind,ro", str(folder))):
        _umount(folder)
        pytest.skip("cannot make a read-only folder here: root without permission to mount")
    try:
        probe = folder / ".probe"
        with contextlib.suppress(OSError):
            probe.write_text("x")
            probe.unlink()
            pytest.fail(f"{folder} was mounted read-only but can be written")
        yield folder
    finally:
        _umount(folder)


@contextlib.contextmanager
def small_disk(folder: Path, kilobytes: int):
    """A ``kilobytes``-sized tmpfs at ``folder``: writing more fails with "No space left on device"."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not _mount("-t", "tmpfs", "-o", f"size={kilobytes}k", "tmpfs", str(folder)):
        pytest.skip("cannot mount a small tmpfs here (needs root with permission to mount)")
    try:
        yield folder
    finally:
        _umount(folder)
