"""The one job manager of this server process, shared by every session and tab."""
from __future__ import annotations

import atexit

import streamlit as st

from distill_core.runs.jobs import JobManager

from . import live_feed

SHUTDOWN_WAIT_S = 10.0  # Stop ends a run within a few seconds; a server exit waits this long at most


@st.cache_resource(show_spinner=False)
def get_manager() -> JobManager:
    # cache_resource: one instance per process, so a refresh or a second tab sees the same jobs.
    from distill_core.runs.experiment import preload  # the engine's heavy imports, once, in this thread

    preload()  # and those of a run's first step, so the first run starts training at once

    live_feed.remove_stale(live_feed.feed_folder())
    # The Live page reads each job's state from its feed, which the manager publishes once a second.
    manager = JobManager(publish=live_feed.publish)
    # When the server stops (Ctrl-C, SIGTERM) during a run, stop the run as Stop does, so it ends
    # "cancelled" with what finished written out. Left to die with the interpreter, its thread
    # was inside torch and the process aborted ("terminate called without an active exception").
    atexit.register(manager.shutdown, SHUTDOWN_WAIT_S)
    return manager
