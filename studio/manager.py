"""The one job manager of this server process, shared by every session and tab."""
from __future__ import annotations

import atexit
import contextlib

import streamlit as st

from distill_core import JobManager, preload

from . import live_feed

SHUTDOWN_WAIT_S = 10.0  # Stop ends a run within a few seconds; a server exit waits this long at most


@st.cache_resource(show_spinner=False)
def get_manager() -> JobManager:
    # cache_resource: one instance per process, so a refresh or a second tab sees the same jobs.
    preload()  # the imports of a run's first step, so the first run starts training at once

    with contextlib.suppress(OSError):  # a home that cannot be written: the pages say so, and start no run
        live_feed.remove_stale(live_feed.feed_folder())
    # The Live page reads each job's state from its feed, which the manager publishes once a second.
    manager = JobManager(publish=live_feed.publish)
    # When the server stops (Ctrl-C, SIGTERM) during a run, stop the run as Stop does, so it ends
    # "cancelled" with what finished written out: a training thread left to die with the interpreter
    # is inside torch, and aborts the process ("terminate called without an active exception").
    atexit.register(manager.shutdown, SHUTDOWN_WAIT_S)
    return manager
