"""A job's live state as the Live page's frame draws it: one small JSON file per job.

The job manager calls ``publish`` from its publisher thread (about once a second while a job
runs, and on every status change). The frame (studio/live_view.py) fetches the file, so watching
a run costs one file write a second, however many tabs are open. Everything the frame shows is
worded and formatted here, in Python, where it is tested; the frame only places it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from distill_core import CANCELLED, DISTILLED, DONE, FAILED, QUEUED, ROLE_LABEL, ROLES, RUNNING, TEACHER, JobSnapshot, RunConfig, comparison_headline, paths, write_atomic

from . import fmt
from .charts import STAGE_WORDS, accuracy_figure, loss_figure, stage_spans
from .live_view import FEED, assets_folder
from .style import PHASE_LABEL
from .sweep_view import cell_label

STALE_DAYS = 7  # feeds of jobs from older server processes are removed after this


def stage(snap: JobSnapshot) -> str:
    """What the Streamlit part of the Live page depends on: it is redrawn when this changes.

    That part (status badge, Stop, queue place, error) changes with the status and the queue
    place only. The phase, epoch and "stopping" are in the frame's label, so a run's phases
    cost the browser no rerun of the page (each took about 0.12 s of its main thread, profiled).
    A second Start of the same setup (it joins the run) changes it too: Stop then asks first.
    """
    trial = running_trial(snap)  # a sweep's next trial redraws the page: its header names the trial's settings
    return (f"{snap.status}|{snap.queue_position}" + ("|shared" if snap.active and snap.requests > 1 else "")
            + (f"|trial {trial['index']}" if trial else ""))


def local_sweep(snap: JobSnapshot) -> bool:
    """A sweep whose trials run here, one at a time, and send the job their curves (Ray's do not)."""
    return snap.kind == "sweep" and (snap.sweep or {}).get("backend", "local") == "local"


def running_trial(snap: JobSnapshot) -> dict | None:
    """A sweep's trial that trains now, or has just ended (its curves are what the job's state holds
    until the next trial starts), else None."""
    return snap.trial if local_sweep(snap) and snap.active and snap.trial else None


def kept_words(snap: JobSnapshot) -> str:
    """What a stop keeps, in a few words."""
    return "the finished trials are kept" if snap.kind == "sweep" else "the models that finished are kept"


def run_config(snap: JobSnapshot) -> RunConfig:
    """The config of the run the feed shows: a run's own, or a sweep's running trial's (its recipe
    with the trial's swept values)."""
    trial = running_trial(snap)
    return snap.config.replace(**trial["cell"]) if trial else snap.config


def trial_words(trial: dict) -> str:
    return f"Trial {trial['index'] + 1} of {trial['total']} ({cell_label(trial['cell'])}, seed {trial['seed']})"


def progress_label(snap: JobSnapshot) -> str:
    if (trial := running_trial(snap)) is not None and not snap.stopping:
        return f"{trial_words(trial)} · {_run_label(snap)}"
    return _run_label(snap)


def _run_label(snap: JobSnapshot) -> str:
    if snap.finished:
        # The badge above the frame says "cancelled" or "failed": the label says when.
        took = fmt.duration(run_seconds(snap))
        return {DONE: f"Finished in {took}", FAILED: f"Ended after {took}",
                CANCELLED: f"Stopped after {took}"}.get(snap.status, snap.status.capitalize())
    if snap.stopping:
        return f"Stopping after the current batch; {kept_words(snap)}"
    if snap.phase == "measure":
        return "Measuring size, FLOPs and latency"
    if snap.phase:
        label = f"Phase {snap.phase_index + 1} of {snap.phase_total}: {PHASE_LABEL.get(snap.phase, snap.phase)}"
        points = snap.steps.get(snap.phase) or []
        if points and points[-1].get("stage"):  # a method's own stage: FitNets' hints before its KD
            label += f" · {STAGE_WORDS.get(points[-1]['stage'], points[-1]['stage'])}"
        return f"{label} · epoch {min(snap.epoch + 1, snap.epochs)} of {snap.epochs}" if snap.epochs else label
    if snap.status == QUEUED:  # said here alone: the page above the frame shows the badge
        place = f"place {snap.queue_position} in the queue; " if snap.queue_position else ""
        return f"Waiting for the runs before it: {place}it starts by itself when they finish"
    return "Loading the data"


def stopped_note(snap: JobSnapshot) -> str:
    """What a cancelled run keeps, in one sentence: the models this run finished. A teacher it
    took from the cache or a checkpoint existed before the run, so it is no reason to compare."""
    made = [role for role in ROLES if isinstance(snap.entries.get(role), dict)
            and not (role == TEACHER and snap.entries[role].get("source") in ("cache", "checkpoint"))]
    if not made:
        before = (snap.entries.get(TEACHER) or {}).get("source")
        why = f" (its teacher came from the {'cache' if before == 'cache' else 'given checkpoint'})" if before else ""
        return f"No model of this run finished before the stop{why}, so there is nothing new to compare."
    names = [ROLE_LABEL[r] for r in made]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    verb = "is" if len(names) == 1 else "are"
    return f"Kept from before the stop: the {listed}, which {verb} on the Compare page."


def run_seconds(snap: JobSnapshot) -> float:
    """How long the run took: once it has finished, the engine's own clock, as on the Compare page
    ("27 s in all"). The job's wall time also counts starting the thread and writing the results,
    so the two pages (and "Finished in" beside "Elapsed") gave one run two different times."""
    seconds = snap.results.get("seconds") if snap.finished and isinstance(snap.results, dict) else None
    return seconds if isinstance(seconds, (int, float)) else snap.elapsed_s


def feed(snap: JobSnapshot) -> dict:
    """The document the frame draws. Loss curves are unsmoothed: each viewer smooths its own."""
    running = snap.status == RUNNING
    trial = "trial " if running_trial(snap) else ""
    x_top = _longest_phase(snap)
    before = _trained_before(snap)
    steps = sum(len(v) for v in snap.steps.values())
    epochs = sum(len(v) for role, v in snap.history.items() if role not in before)  # this run's epochs only
    spans = stage_spans(snap.steps.get(DISTILLED) or [], snap.history.get(DISTILLED) or [])
    return {
        "stage": stage(snap),
        "finished": snap.finished,
        "label": progress_label(snap),
        "progress": min(1.0, snap.progress),
        # A sweep's job holds its running trial's progress and time left, and its own elapsed time.
        "metrics": [[f"{trial}progress".capitalize(), f"{100 * snap.progress:.0f} %"],
                    [f"{trial}time left".capitalize(), fmt.duration(snap.eta_s) if running else fmt.DASH],
                    ["Speed", fmt.rate(snap.images_per_s) if running else fmt.DASH],
                    ["Sweep elapsed" if trial else "Elapsed",
                     fmt.duration(run_seconds(snap)) if snap.started_at else fmt.DASH]],
        "caption": f"{fmt.things(steps, 'loss point')} · {fmt.things(epochs, 'epoch')} logged · updated every second",
        # Once the teacher and the scratch student are known, why a distilled student could only lose.
        "note": comparison_headline({**snap.entries, "config": run_config(snap).to_dict()}).get("weak_teacher"),
        "loss": loss_figure(snap.steps, snap.history, epochs=x_top, ended=snap.finished,
                            term_labels=snap.term_labels, spans=spans),
        "accuracy": accuracy_figure(snap.history, epochs=x_top, ended=snap.finished,
                                    trained_before=before, spans=spans),
    }


def _trained_before(snap: JobSnapshot) -> dict[str, tuple[float, str]]:
    """The teacher, when this run did not train it: its accuracy, and where it came from."""
    teacher = snap.entries.get("teacher") or {}
    if teacher.get("source") in ("cache", "checkpoint") and teacher.get("accuracy") is not None:
        return {"teacher": (float(teacher["accuracy"]), teacher["source"])}
    return {}


def _longest_phase(snap: JobSnapshot) -> int:
    """The charts' x range: the longest phase, in epochs (the teacher's counts only if it trains)."""
    config = run_config(snap)
    return max(config.epochs, config.teacher_epochs if snap.steps.get("teacher") else 0)


def feed_folder() -> Path:
    return assets_folder(paths.home()) / FEED


def publish(snap: JobSnapshot) -> None:
    """Write ``snap``'s feed, where the frame fetches it."""
    text = json.dumps(feed(snap), separators=(",", ":"), allow_nan=False)
    write_atomic(feed_folder() / f"{snap.id}.json", text.encode())


def remove_stale(folder: Path, days: float = STALE_DAYS) -> int:
    """Delete feeds older than ``days`` (jobs of servers long gone); returns how many."""
    cutoff, removed = time.time() - days * 86400, 0
    for path in folder.glob("*.json"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:  # another server removed it first
            pass
    return removed
