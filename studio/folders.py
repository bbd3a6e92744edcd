"""The Distill page's image folder: whether a path may be read here, and what it holds.

A path reaches the page typed by the person at it, or in a link, which anyone can write and
send. So:

* a path that came in the link is shown but not read until the person at the page confirms it;
* a relative path is refused: it would be read from wherever the server was started;
* on a server that listens beyond this machine (``server.address`` is not a loopback address),
  the folder must lie under one of the data roots (``distill_core.paths.data_roots``: the home's
  ``data/`` and ``uploads/``, and ``DISTILL_STUDIO_DATA_ROOTS``), links resolved first;
* the listing itself is bounded (``distill_core.scan_folder``).
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Optional

import streamlit as st

from distill_core import DistillError, classes_problem, paths, scan_folder, split_problem

from . import fmt

MAX_PATH = 4096  # Linux's PATH_MAX: a longer path names no folder, and some calls fail on it
STAMP_ENTRIES = 10_000  # class folders whose times make the listing's cache key
FROM_LINK, CONFIRMED = "data_dir_from_link", "data_dir_confirmed"  # session state
FOLDER_NEEDED = "Type the path of an image folder on this server, or upload a .zip of one: one sub-folder of " \
                "images per class."


def served_beyond_loopback() -> bool:
    """Whether other machines can reach this server (Streamlit's ``server.address``; unset means
    every interface)."""
    address = str(st.get_option("server.address") or "")
    return not (address == "localhost" or address == "::1" or address.startswith("127."))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def path_problem(data_dir: str) -> Optional[str]:
    """Why this path may not be read on this server at all, or None."""
    if len(data_dir) > MAX_PATH:
        return f"That path is {len(data_dir):,} characters long; a folder's path has at most {MAX_PATH:,}."
    if not all(c.isprintable() for c in data_dir):
        return "That path holds a line break or a control character, which no folder name here has."
    try:
        folder = Path(data_dir).expanduser()
    except RuntimeError:  # "~someone" who is not a user here
        return f"{fmt.code(data_dir)} names no home folder on this server: give the folder's full path."
    if not folder.is_absolute():
        return ("Give the folder's full path, starting with / (or ~): a relative path would be read from wherever "
                "the server was started.")
    if served_beyond_loopback():
        roots = paths.data_roots()
        real = os.path.realpath(folder)
        if not any(_inside(real, os.path.realpath(root)) for root in roots):
            return ("This server is reached over the network, so it reads image folders only under "
                    f"{', '.join(fmt.code(r) for r in roots)}. Upload a .zip of the class folders instead, or ask "
                    "whoever runs the server to add the folder to `DISTILL_STUDIO_DATA_ROOTS`.")
    return None


def note_link(data_dir: Optional[str]) -> None:
    """Remember the folder a link named: it waits for the person at the page. Every folder any link
    named in this session is kept (the Distill and Sweep pages each read their own link), so one
    page's link cannot release another's."""
    named = st.session_state.get(FROM_LINK, [])
    if (data_dir := (data_dir or "").strip()) and data_dir not in named:
        st.session_state[FROM_LINK] = [*named, data_dir]


def confirm(data_dir: str) -> None:
    st.session_state[CONFIRMED] = [*st.session_state.get(CONFIRMED, []), data_dir.strip()]


def awaiting_confirmation(data_dir: Optional[str]) -> bool:
    """Whether ``data_dir`` is the link's folder, not yet confirmed (a path typed here needs nothing)."""
    data_dir = (data_dir or "").strip()
    ss = st.session_state
    return bool(data_dir) and data_dir in ss.get(FROM_LINK, []) and data_dir not in ss.get(CONFIRMED, [])


def gate(data_dir: Optional[str]) -> tuple[Optional[Path], Optional[str]]:
    """(the folder to read, why it is not read): exactly one of them is None, or both for no path."""
    data_dir = (data_dir or "").strip()
    if not data_dir:
        return None, None
    if problem := path_problem(data_dir):
        return None, problem
    if awaiting_confirmation(data_dir):
        return None, (f"The link names the image folder {fmt.code(data_dir)} on this server. It is not read until "
                      "you confirm it: press Read this folder.")
    return Path(data_dir).expanduser(), None


def readable(data_dir: Optional[str]) -> Optional[Path]:
    return gate(data_dir)[0]


def _folder_stamp(folder: Path) -> tuple:
    """The folder's and its class folders' modification times: they change when a class or an
    image is added or removed, so a listing cached under them is redone exactly then."""
    try:
        with os.scandir(folder) as it:
            entries = list(itertools.islice(it, STAMP_ENTRIES))
        return (folder.stat().st_mtime_ns,
                *sorted((e.name, e.stat().st_mtime_ns) for e in entries if e.is_dir()))
    except OSError:
        return ()


@st.cache_data(max_entries=32, show_spinner="Listing the image folder…")
def folder_listing(folder: str, stamp: tuple) -> dict | str:
    """{"counts": images per class, "empty": class folders without one, "left_out": [(path, why)]},
    or why the folder holds no usable classes. Cached by ``stamp``: listing every file of a large
    folder on each rerun of the Distill page (each widget touched) took a noticeable while.
    Counted by name, so a file that is not really an image is found by the run."""
    try:
        scan = scan_folder(Path(folder))
    except DistillError as exc:
        return fmt.sentence(str(exc))
    if problem := classes_problem(Path(folder), list(scan.classes)):
        return fmt.sentence(problem)
    return {"counts": {cls: len(files) for cls, files in scan.classes.items()}, "empty": scan.empty,
            "left_out": scan.left_out}


def folder_listing_of(data_dir: Optional[str]) -> dict | str | None:
    """``folder_listing`` of a path as typed; None when it may not be read, or names no folder here."""
    folder = readable(data_dir)
    try:
        if folder is None or not folder.is_dir():
            return None
    except OSError:
        return None
    return folder_listing(str(folder), _folder_stamp(folder))


def folder_counts(data_dir: Optional[str]) -> Optional[dict[str, int]]:
    listing = folder_listing_of(data_dir)
    return listing["counts"] if isinstance(listing, dict) else None


def folder_problem(data_dir: Optional[str], val_fraction: float) -> Optional[str]:
    """Why this image folder cannot train, or None: not readable here, missing, no images, one
    class, too few to split. Said before Start, not after the run fails."""
    folder, why = gate(data_dir)
    if why or folder is None:
        return why or FOLDER_NEEDED
    listing = folder_listing_of(data_dir)
    if listing is None:
        try:
            is_file = folder.is_file()
        except OSError:
            is_file = False
        return (f"The image folder {fmt.code(data_dir)} is a file, not a folder." if is_file else
                f"The image folder {fmt.code(data_dir)} does not exist on this server.")
    if isinstance(listing, str):
        return fmt.plain(listing)
    problem = split_problem(folder, list(listing["counts"].values()), val_fraction)
    return fmt.plain(fmt.sentence(problem)) if problem else None


def folder_summary(data_dir: Optional[str]) -> Optional[str]:
    """What the run will read from an image folder: its classes with their image counts, the
    sub-folders it leaves out for holding no images, and what could not be read (each said)."""
    listing = folder_listing_of(data_dir)
    if not isinstance(listing, dict):
        return None
    counts = listing["counts"]
    shown = ", ".join(f"{fmt.plain(name)} ({count})" for name, count in list(counts.items())[:12])
    more = f" and {len(counts) - 12} more" if len(counts) > 12 else ""
    text = f"{len(counts)} classes, {fmt.things(sum(counts.values()), 'image')}: {shown}{more}."  # 2 or more
    if listing["empty"]:
        text += f" Left out, with no images: {', '.join(fmt.plain(name) for name in listing['empty'])}."
    if left := listing["left_out"]:
        path, why = left[0]
        text += (f" Not read: {fmt.code(path)} ({fmt.plain(why)})"
                 + (f" and {fmt.things(len(left) - 1, 'other path')}." if len(left) > 1 else "."))
    return text


def folder_classes(data_dir: Optional[str]) -> Optional[int]:
    """How many classes an image folder has, for the size estimate; None if it cannot tell."""
    counts = folder_counts(data_dir)
    return len(counts) if counts else None
