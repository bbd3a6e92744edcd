"""Image folders uploaded as a .zip, for people whose images are on their own laptop.

A participant on a workshop network cannot name a folder on the server; they upload a .zip of
their class folders instead. The archive is checked whole before anything is written: its size,
its number of entries, what it unpacks to (declared, and again as it is written, in case the
declaration lies), names that would land outside its folder (absolute, ``..``), links, encrypted
entries, and entries that expand too much (a zip bomb). Only image files are unpacked, into
``<home>/uploads/folders/<content hash>/``: the same archive always gives the same folder, with
the archive's own file times, so the teacher cache (keyed by the folder's listing) recognises it.
A refused archive leaves nothing behind.

The uploads folder (teacher checkpoints and these folders) is kept under ``UPLOADS_CAP``
(``DISTILL_STUDIO_UPLOADS_MB``, default 4096): after each upload, the uploads used least recently
go first, never one a queued or running job needs.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import threading
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterable, Optional

from distill_core import IMAGE_EXTENSIONS, DistillError, paths

MAX_ZIP_BYTES = 512 * 2**20  # the archive as uploaded
MAX_ENTRIES = 100_000
MAX_UNPACKED = 2 * 2**30  # what its images unpack to, in all
MAX_RATIO = 100  # unpacked / packed for one entry: images barely compress; a zip bomb is ~1000x
RATIO_FLOOR = 2**20  # entries smaller than this are not judged by their ratio (a blank PNG packs well)
CHUNK = 2**20
SKIPPED = "__MACOSX"  # macOS's resource forks ("__MACOSX/", "._name"): not images, nor the user's classes


class ZipRefused(DistillError):
    """The archive cannot be unpacked safely, or holds no image folder."""


def uploads_cap() -> int:
    """Bytes the uploads folder may hold; ``DISTILL_STUDIO_UPLOADS_MB`` sets it (default 4096 MB)."""
    try:
        return int(float(os.environ.get("DISTILL_STUDIO_UPLOADS_MB", "4096")) * 2**20)
    except ValueError:
        return 4096 * 2**20


def folders_dir() -> Path:
    return paths.uploads_dir() / "folders"


def _entry_path(name: str) -> Optional[PurePosixPath]:
    """The entry's path inside the folder, or None for a name that would land outside it."""
    if "\x00" in name or "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    path = PurePosixPath(name)
    if any(part in ("..", "") for part in path.parts) or path.is_absolute():
        return None
    return path


def check(data: bytes) -> tuple[zipfile.ZipFile, list[tuple[zipfile.ZipInfo, PurePosixPath]]]:
    """The archive and its image entries, or ``ZipRefused`` saying why, before anything is written."""
    if len(data) > MAX_ZIP_BYTES:
        raise ZipRefused(f"the archive is {len(data) / 2**20:,.0f} MB; at most {MAX_ZIP_BYTES // 2**20} MB is taken")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise ZipRefused(f"the file is not a readable .zip archive ({exc})") from None
    if len(entries) > MAX_ENTRIES:
        raise ZipRefused(f"the archive holds {len(entries):,} entries; at most {MAX_ENTRIES:,} are taken")
    images, total, seen = [], 0, set()
    for info in entries:
        path = _entry_path(info.filename)
        if path is None:
            raise ZipRefused(f"the entry {info.filename!r} would be written outside the folder")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ZipRefused(f"the entry {info.filename!r} is a link; links are not taken")
        if info.flag_bits & 0x1:
            raise ZipRefused(f"the entry {info.filename!r} is encrypted")
        if info.is_dir() or SKIPPED in path.parts or path.name.startswith("._") or \
                path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue  # only images are unpacked
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(1, info.compress_size):
            raise ZipRefused(f"the entry {info.filename!r} unpacks {info.file_size / max(1, info.compress_size):,.0f} "
                             "times larger than it is packed: a zip bomb, not an image")
        key = str(path).lower()  # names equal but for case would overwrite each other on some disks
        if key in seen:
            raise ZipRefused(f"the entry {info.filename!r} is in the archive twice")
        seen.add(key)
        total += info.file_size
        images.append((info, path))
    if total > MAX_UNPACKED:
        raise ZipRefused(f"the archive's images unpack to {total / 2**30:.1f} GB; at most "
                         f"{MAX_UNPACKED / 2**30:g} GB is taken")
    if not images:
        raise ZipRefused("the archive holds no images: zip a folder with one sub-folder of images per class")
    return archive, images


def _unpack(archive: zipfile.ZipFile, images: Iterable[tuple[zipfile.ZipInfo, PurePosixPath]], into: Path) -> None:
    """Write the checked entries. ``zipfile`` reads no more than an entry declares and then checks
    its CRC, so an archive that declares less than it holds fails here ("Bad CRC-32")."""
    for info, path in images:
        target = into.joinpath(*path.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, open(target, "xb") as out:
            shutil.copyfileobj(source, out, CHUNK)
        stamp = time.mktime((*info.date_time, 0, 0, -1))  # the archive's time: the same folder each time
        os.utime(target, (stamp, stamp))


def class_root(folder: Path) -> Path:
    """The folder whose sub-folders are the classes: a zip of "flowers/" holds flowers/<class>/..."""
    children = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(children) == 1 and children[0].is_dir() and any(p.is_dir() for p in children[0].iterdir()):
        return children[0]
    return folder


def unpack(data: bytes) -> Path:
    """Check ``data`` (a .zip) and unpack its images; returns the folder of class folders.

    Keyed by the archive's content: the same archive again reuses its folder (and marks it used)."""
    target = folders_dir() / hashlib.sha256(data).hexdigest()[:16]
    if target.is_dir():
        touch(target)
        return class_root(target)
    archive, images = check(data)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        partial.mkdir(parents=True)
        _unpack(archive, images, partial)
        try:
            os.replace(partial, target)
        except OSError:
            if not target.is_dir():  # another session unpacked the same archive first: use that one
                raise
    except (OSError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError) as exc:
        raise ZipRefused(f"the archive could not be unpacked: {getattr(exc, 'strerror', None) or exc}") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)  # a refused or failed archive leaves nothing behind
    touch(target)
    return class_root(target)


def touch(path: Path) -> None:
    """Mark an upload as used now: the cap removes the uploads used least recently first."""
    try:
        os.utime(path)
    except OSError:
        pass


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def upload_of(path: Optional[str]) -> Optional[Path]:
    """The upload (a checkpoint, or an unpacked folder) that ``path`` lies in, or None."""
    if not path:
        return None
    try:
        real = Path(path).expanduser().resolve()
        for root in (folders_dir().resolve(), paths.uploads_dir().resolve()):
            if real.is_relative_to(root) and real != root:
                return root / real.relative_to(root).parts[0]
    except (OSError, RuntimeError, ValueError):
        pass
    return None


def prune(in_use: Iterable[Optional[str]] = (), cap: Optional[int] = None) -> list[Path]:
    """Remove the uploads used least recently until the folder holds at most ``cap`` bytes; never
    one that ``in_use`` (paths of queued and running jobs, the upload just made) lies in."""
    cap = uploads_cap() if cap is None else cap
    keep = {u.resolve() for u in map(upload_of, in_use) if u is not None}
    found = []
    for root in (paths.uploads_dir(), folders_dir()):
        if root.is_dir():
            for p in root.iterdir():
                if not p.name.startswith(".") and p != folders_dir():
                    try:
                        found.append((p.stat().st_mtime, _size(p), p))
                    except OSError:
                        continue
    total, removed = sum(size for _, size, _ in found), []
    for _, size, p in sorted(found):
        if total <= cap:
            break
        if p.resolve() in keep:
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        total -= size
        removed.append(p)
    return removed
