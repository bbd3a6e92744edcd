"""Colours and names that stay the same on every page and chart."""
from __future__ import annotations

ROLES = ("teacher", "student_scratch", "student_kd")
ROLE_LABEL = {"teacher": "teacher", "student_scratch": "scratch student", "student_kd": "distilled student"}
ROLE_COLOR = {"teacher": "#5B5BD6", "student_scratch": "#E8873A", "student_kd": "#12A37F"}
PHASE_LABEL = {**ROLE_LABEL, "measure": "measuring"}
STATUS_BADGE = {  # (material icon, colour name for st.badge)
    "queued": (":material/schedule:", "gray"),
    "running": (":material/autorenew:", "blue"),
    "done": (":material/check_circle:", "green"),
    "failed": (":material/error:", "red"),
    "cancelled": (":material/block:", "orange"),
}
