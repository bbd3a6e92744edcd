"""Listing an image folder: its class sub-folders and their image files, within bounds.

A folder named in a shared link or typed by anyone on a workshop network may be ``/``: the
listing stops at ``MAX_FILES`` entries and ``MAX_SECONDS`` (and refuses the folder, naming the
bound), does not go deeper than ``MAX_DEPTH`` folders inside a class, never enters /proc, /sys or
/dev, follows no link out of the folder, and turns every error of the file system into a note
that names the path, so that a file vanishing mid-walk costs a line, not the page.
"""
from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataUnavailableError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MAX_FILES = 200_000  # entries looked at: above any image folder this studio can hold in memory
MAX_DEPTH = 8  # folders inside a class folder
MAX_SECONDS = 15.0
SPECIAL = ("/proc", "/sys", "/dev")  # the kernel's own file systems: no images, and endless or changing


@dataclass
class FolderScan:
    root: Path
    classes: dict[str, list[Path]] = field(default_factory=dict)  # class -> its image files, sorted
    empty: list[str] = field(default_factory=list)  # class folders without an image
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (path, why): unreadable, links out, too deep


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def special(path: str | Path) -> bool:
    real = os.path.realpath(path)
    return any(_inside(real, s) for s in SPECIAL)


class _Walk:
    def __init__(self, root: Path, max_files: int, max_depth: int, max_seconds: float):
        self.root, self.real_root = root, os.path.realpath(root)
        self.max_files, self.max_depth = max_files, max_depth
        self.deadline = time.monotonic() + max_seconds
        self.max_seconds = max_seconds
        self.seen = 0
        self.left_out: list[tuple[str, str]] = []
        self.visited: set[str] = set()

    def count(self) -> None:
        self.seen += 1
        if self.seen > self.max_files:
            raise DataUnavailableError(
                f"image folder {self.root} holds more than {self.max_files:,} files and folders: point it at a "
                "folder of class sub-folders, not at a whole disk")
        if self.seen % 500 == 0 and time.monotonic() > self.deadline:
            raise DataUnavailableError(
                f"image folder {self.root} took more than {self.max_seconds:g} s to list (a very large folder, or "
                "a slow or network disk): point it at a folder of class sub-folders")

    def entries(self, folder: str) -> list[os.DirEntry]:
        try:
            with os.scandir(folder) as it:
                return sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self.left_out.append((folder, exc.strerror or type(exc).__name__))
            return []

    def kind(self, entry: os.DirEntry, real_parent: str) -> tuple[str, str]:
        """("dir" | "file" | "", its real path): links are followed only inside the root; "" is left
        out, with the reason noted."""
        try:
            if entry.is_symlink():
                real = os.path.realpath(entry.path)
                if not _inside(real, self.real_root):
                    self.left_out.append((entry.path, "a link out of the image folder"))
                    return "", real
                mode = os.stat(entry.path).st_mode
                is_dir, is_file = stat.S_ISDIR(mode), stat.S_ISREG(mode)
            else:  # what the folder listing already said: no call to the file system
                real = os.path.join(real_parent, entry.name)
                is_dir, is_file = entry.is_dir(follow_symlinks=False), entry.is_file(follow_symlinks=False)
        except OSError as exc:  # gone since it was listed, unreadable, a broken link
            self.left_out.append((entry.path, exc.strerror or type(exc).__name__))
            return "", ""
        if is_dir:
            if any(_inside(real, s) for s in SPECIAL) or real in self.visited:  # a link back up: a loop
                return "", real
            self.visited.add(real)
            return "dir", real
        return ("file" if is_file else ""), real

    def images(self, folder: str, real_folder: str, depth: int) -> list[Path]:
        found: list[Path] = []
        for entry in self.entries(folder):
            self.count()
            kind, real = self.kind(entry, real_folder)
            if kind == "file" and os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(Path(entry.path))
            elif kind == "dir":
                if depth >= self.max_depth:
                    self.left_out.append((entry.path, f"more than {self.max_depth} folders deep in its class"))
                else:
                    found.extend(self.images(entry.path, real, depth + 1))
        return found


def scan_folder(root: str | Path, max_files: int = MAX_FILES, max_depth: int = MAX_DEPTH,
                max_seconds: float = MAX_SECONDS) -> FolderScan:
    """Each class sub-folder's image files, by name (nothing is opened), within the bounds above.

    Raises ``DataUnavailableError`` for a folder that is missing, unreadable, a kernel file system,
    or beyond a bound; whatever else cannot be read is left out and noted in ``left_out``."""
    root = Path(root)
    try:
        if not root.is_dir():
            raise DataUnavailableError(f"image folder {root} does not exist or is not a folder")
    except OSError as exc:  # a name too long, a loop of links
        raise DataUnavailableError(f"image folder {root} cannot be read: {exc.strerror or exc}") from None
    if special(root):
        raise DataUnavailableError(f"image folder {root} is a kernel file system ({', '.join(SPECIAL)}), "
                                   "not a folder of images")
    walk = _Walk(root, max_files, max_depth, max_seconds)
    walk.visited.add(walk.real_root)
    scan = FolderScan(root)
    top = walk.entries(str(root))
    if not top and walk.left_out:
        raise DataUnavailableError(f"image folder {root} cannot be read: {walk.left_out[0][1]}")
    for entry in top:
        walk.count()
        if entry.name.startswith("."):
            continue
        kind, real = walk.kind(entry, walk.real_root)
        if kind != "dir":
            continue
        files = sorted(walk.images(entry.path, real, 1))
        if files:
            scan.classes[entry.name] = files
        else:
            scan.empty.append(entry.name)
    scan.left_out = walk.left_out
    return scan
