"""Colours and names that stay the same on every page and chart."""
from __future__ import annotations

from distill_core import (CANCELLED, DISTILLED, DONE, FAILED, INTERRUPTED, MEASURE, QUEUED, ROLE_LABEL, RUNNING, SCRATCH,
                          TEACHER)

ROLE_COLOR = {TEACHER: "#5B5BD6", SCRATCH: "#E8873A", DISTILLED: "#12A37F"}
PHASE_LABEL = {**ROLE_LABEL, MEASURE: "measuring"}
STATUS_BADGE = {  # (material icon, colour name for st.badge)
    QUEUED: (":material/schedule:", "gray"),
    RUNNING: (":material/autorenew:", "blue"),
    DONE: (":material/check_circle:", "green"),
    FAILED: (":material/error:", "red"),
    CANCELLED: (":material/block:", "orange"),
    INTERRUPTED: (":material/power_off:", "orange"),
}
UNKNOWN_BADGE = (":material/help:", "gray")  # a status this app does not know yet (a newer engine's)
