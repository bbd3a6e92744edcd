"""The project's words, in one place: the three models' roles, a run's statuses, the per-epoch
metrics of a history row, and how the app names each of them. Every other module imports these."""
from __future__ import annotations

# ---- the three models of a run, in the order they train -------------------------------------
TEACHER, SCRATCH, DISTILLED = "teacher", "student_scratch", "student_kd"
ROLES = (TEACHER, SCRATCH, DISTILLED)
ROLE_LABEL = {TEACHER: "teacher", SCRATCH: "scratch student", DISTILLED: "distilled student"}
MEASURE = "measure"  # the phase after the three models: size, FLOPs, latency
PHASES = (*ROLES, MEASURE)

# ---- a run's status -----------------------------------------------------------------------------
QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "running", "done", "failed", "cancelled", "interrupted")
STATUSES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED)
ACTIVE = (QUEUED, RUNNING)
FINISHED = (DONE, FAILED, CANCELLED, INTERRUPTED)

# ---- one history row (results.json "history", the run store's epochs table, the CSV export) ----
METRICS = ("train_loss", "train_ce", "train_kd", "train_accuracy", "val_loss", "val_accuracy", "lr",
           "images_per_s", "seconds", "val_agreement", "val_kl_teacher")  # the last two: students only
