"""Is the process that recorded a run still running it?

The run store records each run's pid, host and a token of the process's start time, so a pid the
system has since given to another process is not mistaken for the run's. psutil answers on Linux,
macOS and Windows alike. ``os.kill(pid, 0)`` is never used: on Windows any signal but the two
console events terminates the process (Python's ``os.kill`` docs), so merely opening the store on
a workshop laptop would kill a CLI run beside it.
"""
from __future__ import annotations

import os
import socket
from typing import Optional

import psutil

HOST = socket.gethostname()


def process_token(pid: int) -> Optional[str]:
    """The process's start time (seconds since the epoch, to 1/100 s); None if it is gone or hidden."""
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except (psutil.Error, OSError, ValueError):
        return None


_SELF: dict[int, Optional[str]] = {}  # pid -> token; keyed by pid so a forked child gets its own


def own_token() -> Optional[str]:
    pid = os.getpid()
    if pid not in _SELF:
        _SELF[pid] = process_token(pid)
    return _SELF[pid]


def _same_start(token: str, now: str) -> bool:
    """Tokens match to 1/10 s: create_time is computed from boot time and clock ticks, and may
    round differently between reads. A token that is no start time (an older store's) never matches."""
    try:
        return abs(float(token) - float(now)) < 0.1
    except ValueError:
        return False


def pid_alive(pid: Optional[int], token: Optional[str] = None) -> bool:
    """Is process ``pid`` alive, and still the one that recorded ``token``?"""
    if not pid or pid <= 0:
        return False
    if pid == os.getpid():
        mine = own_token()
        return token is None or mine is None or _same_start(token, mine)
    try:
        if not psutil.pid_exists(pid):
            return False
        proc = psutil.Process(pid)
        if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False  # killed, not yet reaped by its parent
        now = f"{proc.create_time():.2f}"
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it exists, under another user
    except (psutil.Error, OSError):
        return False
    return not token or _same_start(token, now)
