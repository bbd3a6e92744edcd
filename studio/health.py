"""What keeps this server from starting runs, said once, at the top of every page (app.py).

Two things stop every run before it starts: a home folder that cannot be written (a read-only
disk, a path under a file) and a damaged run store. Each page still opens and shows what it can
read; Start and the demo are disabled with the reason.
"""
from __future__ import annotations

from typing import Optional

import streamlit as st

from distill_core import DistillError, RunStore, StoreDamagedError, paths

from . import fmt

RUNS_PAGE = "runs"  # its url_path: that page shows the damaged store itself, with its Rebuild button


def home_problem() -> Optional[str]:
    """Why the home folder cannot be written, in the system's words, or None."""
    return paths.home_unwritable()


def _stat(path) -> tuple:
    try:
        s = path.stat()
        return s.st_mtime_ns, s.st_size
    except OSError:
        return ()


_checked: dict[tuple, Optional[StoreDamagedError]] = {}


def store_problem() -> Optional[StoreDamagedError]:
    """The run store's damage, or None (also when there is no store yet, or it cannot be opened:
    the home's own problem says that). Checked again only when the file or its -wal changes."""
    path = paths.run_store()
    key = (str(path), _stat(path), _stat(path.with_name(path.name + "-wal")))
    if not key[1]:
        return None
    if key not in _checked:
        try:
            RunStore(path, check_interrupted=False).check()
            found = None
        except StoreDamagedError as exc:
            found = exc
        except DistillError:
            found = None
        _checked.clear()
        _checked[key] = found
    return _checked[key]


def start_blocker() -> Optional[str]:
    """Why no run can start on this server now, in a few words for a disabled button, or None."""
    if home_problem():
        return "The home folder cannot be written (see the top of the page)."
    if store_problem():
        return "The run store is damaged: rebuild it on the Runs page (see the top of the page)."
    return None


def banner(page: str = "") -> None:
    """The server's problems, once, above the page ``page`` (its url_path)."""
    if reason := home_problem():
        st.error(f"**This server cannot write its home folder** {fmt.code(paths.home())} ({fmt.plain(reason)}). "
                 "No run can start and nothing can be uploaded; finished runs are shown where they can be read. "
                 "To fix it, stop the server and start it again with `DISTILL_STUDIO_HOME` set to a folder it can "
                 "write: `DISTILL_STUDIO_HOME=/path/to/folder streamlit run app.py`.", icon=":material/error:")
    if page != RUNS_PAGE and (damage := store_problem()):
        st.error(f"**The run store {fmt.code(damage.path)} is damaged** ({fmt.plain(damage.reason)}). No run can "
                 "start until it is rebuilt from the run folders, which are kept: the Runs page does it in one "
                 "click.", icon=":material/error:")
        st.page_link("pages/runs.py", label="Rebuild it on the Runs page", icon=":material/build:")
