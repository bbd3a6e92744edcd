"""Training events: what a run tells the world while it works.

The trainer calls ``emit`` with small dicts; observers (the CLI printer, the app's job
manager, the run store) read them. ``EventLog`` is a buffer any observer can read later (the
tests do): appends and reads take a lock for a list operation only, so a reader can never
stall training.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

log = logging.getLogger(__name__)

# kinds
STATUS = "status"  # data: {"status": "running"|"done"|"cancelled", "message": str}; a failure is an ERROR
PHASE = "phase"  # data: {"phase": ..., "index": i, "total": n, "epochs": e}, and a "message" where a
# phase goes otherwise than asked (a scratch student not reused after all); a phase begins
STEP = "step"  # data: {"epoch", "step", "steps", "loss", "progress"}, "images_per_s" once measured; throttled
EPOCH = "epoch"  # data: one history row (trainer.train_phase's history) plus "progress"
RESULT = "result"  # data: a finished model entry, {"model": name, "entry": {...}}
ERROR = "error"  # data: {"message": str, "type": exception class name}
# A sweep's trial starts or ends (runs/sweep_run.py); the run's own events come in between.
# data: {"state": "start"|"end", "index", "total", "cell", "seed", "run_id"}, and at the end
# "status" and "row" (its sweep.csv row, None unless it finished)
TRIAL = "trial"


@dataclass
class Event:
    kind: str
    phase: Optional[str] = None
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return asdict(self)


Observer = Callable[[Event], None]


class EventLog:
    """Thread-safe append-only event list with cheap incremental reads."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    def since(self, index: int) -> list[Event]:
        with self._lock:
            return self._events[index:]

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)


def fan_out(*observers: Optional[Observer]) -> Observer:
    """One observer that forwards to several; a failing observer never kills training."""
    live = [o for o in observers if o is not None]

    def emit(event: Event) -> None:
        for observer in live:
            try:
                observer(event)
            except Exception:  # an observer's bug must not cost the user their run, but is logged
                log.exception("observer %r failed on a %s event", observer, event.kind)

    return emit
