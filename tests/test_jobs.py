"""The job manager: queueing, de-duplication, cancel, failures, snapshots.

Most tests drive it with fake runners that emit engine events on cue, so they are fast and
exact; one test runs a real tiny experiment end to end through it.
"""
import threading
import time

import pytest

from distill_core import RunConfig
from distill_core.errors import ConfigError
from distill_core.events import EPOCH, PHASE, RESULT, STATUS, STEP, Event
from distill_core.runs.jobs import JobManager
from distill_core.vocab import CANCELLED, DONE, FAILED, QUEUED, RUNNING

TINY = RunConfig(dataset="digits", teacher="cnn_small", student="cnn_tiny", epochs=1, teacher_epochs=1,
                 device="cpu", latency_repeats=5)


class Gate:
    """A fake engine that reports progress and then waits until the test lets it finish."""

    def __init__(self):
        self.release = threading.Event()
        self.started = threading.Event()
        self.calls = []

    def __call__(self, config, on_event=None, stop=None, run_id=None):
        self.calls.append(config)
        on_event(Event(STATUS, None, {"status": "running", "message": "loading", "out": f"/tmp/{run_id}"}))
        on_event(Event(PHASE, "teacher", {"phase": "teacher", "index": 0, "total": 3, "epochs": 2,
                                          "source": "train"}))
        on_event(Event(STEP, "teacher", {"epoch": 1, "step": 1, "steps": 4, "loss": 2.0,
                                         "images_per_s": 100.0, "progress": 0.1}, time=time.time() - 1))
        on_event(Event(STEP, "teacher", {"epoch": 1, "step": 2, "steps": 4, "loss": 1.5,
                                         "images_per_s": 120.0, "progress": 0.2}))
        on_event(Event(EPOCH, "teacher", {"epoch": 1, "train_loss": 1.4, "train_ce": 1.4, "train_kd": 0.0,
                                          "train_accuracy": 0.5, "val_accuracy": 0.6, "epochs": 2,
                                          "progress": 0.3}))
        self.started.set()
        while not self.release.is_set():
            if stop is not None and stop.is_set():
                return {"run_id": run_id, "status": "cancelled", "config": config.to_dict()}
            time.sleep(0.01)
        on_event(Event(RESULT, "teacher", {"model": "teacher", "entry": {"accuracy": 0.6, "history": []}}))
        return {"run_id": run_id, "status": "done", "config": config.to_dict(), "teacher": {"accuracy": 0.6}}


@pytest.fixture
def gate():
    g = Gate()
    yield g
    g.release.set()


@pytest.fixture
def manager(gate):
    m = JobManager(runner=gate)
    yield m
    m.shutdown()


def test_snapshot_reports_progress_phase_and_curves(manager, gate):
    job = manager.submit(TINY)
    assert gate.started.wait(5)
    snap = manager.snapshot(job)
    assert snap.status == RUNNING and snap.active and not snap.finished
    assert snap.phase == "teacher" and snap.phase_source == "train"
    assert snap.epoch == 1 and snap.epochs == 2
    assert snap.progress == pytest.approx(0.3)
    assert snap.images_per_s == 120.0
    assert snap.eta_s is not None and snap.eta_s > 0
    assert [p["loss"] for p in snap.steps["teacher"]] == [2.0, 1.5]
    assert snap.steps["teacher"][1]["x"] == pytest.approx(0.5)
    assert snap.history["teacher"][0]["val_accuracy"] == 0.6
    assert snap.out_dir == f"/tmp/{job}"
    gate.release.set()
    done = manager.wait(job, timeout=5)
    assert done.status == DONE and done.results["status"] == "done"
    assert done.progress == 1.0 and done.entries["teacher"]["accuracy"] == 0.6


def test_identical_config_joins_the_running_job(manager, gate):
    first = manager.submit(TINY)
    assert manager.submit(TINY.replace()) == first  # a second click, or a second tab
    assert gate.started.wait(5)
    assert manager.submit(TINY) == first
    assert manager.snapshot(first).requests == 3  # so the Live page can say whom a Stop stops
    other = manager.submit(TINY.replace(seed=1))
    assert other != first and manager.snapshot(other).requests == 1
    gate.release.set()
    manager.wait(first, 5)
    manager.wait(other, 5)
    assert len(gate.calls) == 2
    again = manager.submit(TINY)  # finished jobs are not joined: this is a new run
    assert again not in (first, other)
    assert not manager.forget("no-such-job")
    assert manager.forget(first) and manager.snapshot(first) is None  # its run was deleted
    assert first not in [j.id for j in manager.jobs()] and not manager.forget(first)


def test_one_job_at_a_time_fifo_with_queue_positions(manager, gate):
    a = manager.submit(TINY)
    assert gate.started.wait(5)
    # another device waits too: a CPU job beside a GPU job would share torch's random generators
    b = manager.submit(TINY.replace(seed=1, device="cuda"))
    c = manager.submit(TINY.replace(seed=2))
    assert manager.snapshot(a).status == RUNNING
    assert (manager.snapshot(b).status, manager.snapshot(b).queue_position, manager.snapshot(b).device) == \
        (QUEUED, 1, "cuda")
    assert manager.snapshot(c).queue_position == 2
    assert manager.current().id == a
    assert manager.cancel(b)  # a queued job leaves the queue at once
    assert manager.snapshot(b).status == CANCELLED
    assert manager.snapshot(c).queue_position == 1
    gate.release.set()
    assert manager.wait(c, 5).status == DONE
    assert [cfg.seed for cfg in gate.calls] == [0, 2]
    assert [s.id for s in manager.jobs()] == [c, b, a]  # newest first


def test_cancel_a_running_job_ends_it_and_keeps_results(manager, gate):
    job = manager.submit(TINY)
    assert gate.started.wait(5)
    assert not manager.forget(job)  # a running job is stopped, not forgotten
    assert manager.cancel(job)
    snap = manager.wait(job, timeout=5)
    assert snap.status == CANCELLED and snap.results["status"] == "cancelled"
    assert not manager.cancel(job)  # already finished
    assert not manager.cancel("no-such-job")


def test_a_new_phase_clears_the_last_phases_speed():
    reported = threading.Event()

    def runner(config, on_event=None, stop=None, run_id=None):
        on_event(Event(PHASE, "teacher", {"phase": "teacher", "index": 0, "total": 3, "epochs": 1}))
        on_event(Event(STEP, "teacher", {"epoch": 1, "step": 1, "steps": 2, "loss": 1.0, "images_per_s": 900.0}))
        on_event(Event(PHASE, "student_scratch", {"phase": "student_scratch", "index": 1, "total": 3, "epochs": 1}))
        on_event(Event(STEP, "student_scratch", {"epoch": 1, "step": 1, "steps": 2, "loss": 2.0}))  # not measured yet
        reported.set()
        stop.wait(5)
        return {"status": "cancelled"}

    manager = JobManager(runner=runner)
    try:
        job = manager.submit(TINY)
        assert reported.wait(5)
        snap = manager.snapshot(job)
        assert snap.phase == "student_scratch" and snap.images_per_s is None  # "—", not the teacher's 900
        manager.cancel(job)
    finally:
        manager.shutdown()


def test_failures_are_reported_and_the_worker_goes_on():
    def runner(config, on_event=None, stop=None, run_id=None):
        if config.seed == 1:
            raise ConfigError("temperature T must be > 0")
        if config.seed == 2:
            raise ZeroDivisionError("division by zero")
        return {"status": "done"}

    manager = JobManager(runner=runner)
    try:
        user_error = manager.submit(TINY.replace(seed=1))
        bug = manager.submit(TINY.replace(seed=2))
        fine = manager.submit(TINY.replace(seed=3))
        assert manager.wait(user_error, 5).status == FAILED
        assert manager.snapshot(user_error).error == "temperature T must be > 0"
        snap = manager.wait(bug, 5)
        assert snap.status == FAILED and "ZeroDivisionError" in snap.error and "Traceback" not in snap.error
        assert manager.wait(fine, 5).status == DONE
    finally:
        manager.shutdown()


def test_unknown_job_and_empty_manager():
    manager = JobManager(runner=lambda *a, **k: {"status": "done"})
    assert manager.snapshot("nope") is None and manager.snapshot(None) is None
    assert manager.current() is None and manager.jobs() == []
    manager.shutdown()


def test_real_tiny_run_through_the_manager():
    manager = JobManager()
    try:
        job = manager.submit(TINY)
        snap = manager.wait(job, timeout=240)
        assert snap.status == DONE, snap.error
        assert set(snap.history) >= {"teacher", "student_scratch", "student_kd"}
        assert all(snap.steps.values())
        for role in ("teacher", "student_scratch", "student_kd"):
            assert snap.results[role]["params"] > 0
        assert snap.results["run_id"] == job
    finally:
        manager.shutdown()


def test_cancel_a_real_run_within_seconds():
    manager = JobManager()
    try:
        job = manager.submit(TINY.replace(teacher_epochs=50))
        deadline = time.time() + 120
        while manager.snapshot(job).phase != "teacher" or not manager.snapshot(job).steps:
            assert time.time() < deadline, "the teacher never started"
            time.sleep(0.1)
        done_before = len(manager.snapshot(job).history.get("teacher", []))
        manager.cancel(job)
        snap = manager.wait(job, timeout=120)
        assert snap.status == CANCELLED
        # Stopped within the epoch it was in: at most that one more finished (it may have ended
        # between the two calls above), not the 50 asked for.
        assert len(snap.history.get("teacher", [])) <= done_before + 1 < 50
    finally:
        manager.shutdown()


def test_queued_and_queue_cancelled_jobs_reach_the_run_store(gate):
    """The runner records a job once it starts; before that, the manager writes it as queued,
    and a job cancelled in the queue is stored as cancelled, so the Runs page lists both."""
    from distill_core.runs.jobs import record_in_store
    from distill_core.runs.store import RunStore

    manager = JobManager(runner=gate, record=record_in_store)
    try:
        a = manager.submit(TINY)
        assert gate.started.wait(5)
        b = manager.submit(TINY.replace(seed=1))
        assert RunStore().get_run(b)["status"] == QUEUED
        assert manager.cancel(b)
        assert RunStore().get_run(b)["status"] == CANCELLED
        assert not manager.cancel(b)  # finished: nothing to do, nothing written again
    finally:
        gate.release.set()
        manager.shutdown()
    assert RunStore().get_run(a) is not None


def test_publisher_hands_out_changes_and_sleeps_when_idle(gate):
    seen = []

    def publish(snap):
        seen.append((snap.id, snap.status))
        if len(seen) == 1:
            raise RuntimeError("a page's bug")  # logged; the run and the publishing go on

    manager = JobManager(runner=gate, publish=publish, publish_every=0.02)
    try:
        job = manager.submit(TINY)
        assert gate.started.wait(5)
        deadline = time.time() + 5
        while seen.count((job, RUNNING)) < 3:  # a running job: every tick (its clock moves)
            assert time.time() < deadline
            time.sleep(0.01)
        gate.release.set()
        assert manager.wait(job, 5).status == DONE
        while (job, DONE) not in seen:
            assert time.time() < deadline
            time.sleep(0.01)
        count = len(seen)
        time.sleep(0.3)
        assert len(seen) == count and seen[-1] == (job, DONE)  # finished and published: it sleeps
    finally:
        manager.shutdown()
    assert not [t for t in threading.enumerate() if t.name == "distill-publisher"]


def test_a_run_that_raises_systemexit_fails_and_the_worker_goes_on():
    """A BaseException (SystemExit from a library, KeyboardInterrupt re-raised by run_recorded)
    used to end the device's worker: its job stayed "running" and later jobs queued forever."""
    def runner(config, on_event=None, stop=None, run_id=None):
        if config.seed == 1:
            raise SystemExit(3)
        if config.seed == 2:
            raise KeyboardInterrupt
        return {"status": "done"}

    manager = JobManager(runner=runner)
    try:
        first, second, third = (manager.submit(TINY.replace(seed=s)) for s in (1, 2, 3))
        for job, kind in ((first, "SystemExit"), (second, "KeyboardInterrupt")):
            snap = manager.wait(job, 5)
            assert snap.status == FAILED and kind in snap.error
        assert manager.wait(third, 5).status == DONE
        assert manager.submit(TINY.replace(seed=1)) != first  # a failed job is not joined
    finally:
        manager.shutdown()


def test_start_while_a_run_is_stopping_starts_a_new_run(manager, gate):
    first = manager.submit(TINY)
    assert gate.started.wait(5)
    assert manager.cancel(first)
    second = manager.submit(TINY)  # the same setup, pressed again after Stop
    assert second != first
    assert manager.wait(first, 5).status == CANCELLED
    gate.release.set()
    assert manager.wait(second, 5).status == DONE and len(gate.calls) == 2


def test_a_final_state_that_failed_to_publish_is_published_again(gate):
    seen, broken = [], {"done": 1}

    def publish(snap):
        if snap.status == DONE and broken["done"]:
            broken["done"] -= 1
            raise PermissionError("the feed file is open elsewhere")  # once
        seen.append(snap.status)

    manager = JobManager(runner=gate, publish=publish, publish_every=0.02)
    try:
        job = manager.submit(TINY)
        gate.release.set()
        assert manager.wait(job, 5).status == DONE
        deadline = time.time() + 5
        while DONE not in seen:
            assert time.time() < deadline, "the final state was never published"
            time.sleep(0.01)
    finally:
        manager.shutdown()


def test_a_job_refused_before_it_starts_does_not_stay_queued_in_the_store(tmp_path):
    from distill_core.runs.store import RunStore

    (tmp_path / "a_file").write_text("in the way")
    manager = JobManager(record=None, runner=None)  # the real runner, recorded in the store
    try:
        job = manager.submit(TINY.replace(out=str(tmp_path / "a_file")))
        snap = manager.wait(job, 30)
        assert snap.status == FAILED and "cannot create the output folder" in snap.error
        row = RunStore().get_run(job)
        assert row["status"] == FAILED and "cannot create the output folder" in row["error"]
    finally:
        manager.shutdown()


def test_pages_do_not_wait_for_the_run_store(gate):
    """While another process holds the store's write lock, submit waits to write "queued", but
    the manager's lock is free: pages (jobs, snapshots) and the worker go on."""
    import sqlite3

    from distill_core.runs.jobs import record_in_store
    from distill_core.runs.store import RunStore

    store = RunStore()
    other = sqlite3.connect(str(store.path), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer, holding the lock
    manager = JobManager(runner=gate, record=record_in_store)
    submitted = []
    clicker = threading.Thread(target=lambda: submitted.append(manager.submit(TINY)))
    try:
        clicker.start()
        deadline = time.time() + 5
        while not manager.jobs():
            assert time.time() < deadline
            time.sleep(0.01)
        listed = []
        reader = threading.Thread(target=lambda: listed.append(len(manager.jobs())))
        reader.start()
        reader.join(30)
        assert listed == [1]  # a page's listing came back while sqlite's lock is still held...
        assert gate.started.wait(30)  # ...the worker started the job meanwhile...
        assert clicker.is_alive()  # ...and submit itself is still waiting to write "queued"
    finally:
        other.execute("ROLLBACK")
        other.close()
        clicker.join(10)
    gate.release.set()
    assert manager.wait(submitted[0], 5).status == DONE
    manager.shutdown()
    assert RunStore().get_run(submitted[0])["status"] == QUEUED  # the fake runner records nothing more


def test_a_sweep_is_one_job_in_the_queue_and_stop_ends_it(gate):
    """A sweep waits its turn behind a run, shows its current trial's run, and stops with Stop."""
    from distill_core.events import TRIAL
    from distill_core.runs.sweep import SweepSpec

    seen = {}

    def sweep_runner(spec, backend="local", on_event=None, stop=None):
        seen["spec"], seen["backend"] = spec, backend
        for index in range(spec.size()):
            on_event(Event(TRIAL, None, {"state": "start", "index": index, "total": spec.size(), "finished": index,
                                         "cell": {"temperature": 1.0}, "seed": 0}))
            on_event(Event(PHASE, "student_kd", {"phase": "student_kd", "index": 2, "total": 3, "epochs": 1,
                                                 "source": "train"}))
            while not stop.wait(0.01):
                pass
            return {"status": "cancelled", "rows": []}

    manager = JobManager(runner=gate, sweep_runner=sweep_runner)
    try:
        run_id = manager.submit(TINY)
        spec = SweepSpec(TINY, {"temperature": [1.0, 2.0]}, [0, 1])
        sweep_id = manager.submit_sweep(spec)
        assert manager.submit_sweep(SweepSpec(TINY, {"temperature": [1.0, 2.0]}, [0, 1])) == sweep_id  # joined
        queued = manager.snapshot(sweep_id)
        assert (queued.kind, queued.status, queued.queue_position) == ("sweep", QUEUED, 1)
        assert queued.sweep["grid"] == {"temperature": [1.0, 2.0]} and queued.sweep["sweep_id"] == sweep_id
        gate.release.set()
        manager.wait(run_id, 10)
        deadline = time.time() + 10
        while (manager.snapshot(sweep_id).trial is None or manager.snapshot(sweep_id).phase is None) \
                and time.time() < deadline:
            time.sleep(0.01)
        running = manager.snapshot(sweep_id)
        assert running.status == RUNNING and running.trial["total"] == 4 and running.phase == "student_kd"
        assert seen["spec"].sweep_id == sweep_id and seen["backend"] == "local"
        assert manager.cancel(sweep_id)
        final = manager.wait(sweep_id, 10)
        assert final.status == CANCELLED and final.message == "cancelled; finished trials kept"
    finally:
        manager.shutdown()
