"""The run store: round trip, recording a real run, crashes, interrupted runs, deletion."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from distill_core import paths
from distill_core.errors import DistillError
from distill_core.events import EPOCH, ERROR, RESULT, STATUS, Event
from distill_core.runs.liveness import pid_alive
from distill_core.runs.recording import RunRecorder, run_recorded
from distill_core.runs.store import RunStore, default_path
from tiny_runs import fake_run, history, real_run, tiny_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return real_run(tmp_path_factory)


def test_default_path_follows_the_home_setting(studio_home):
    assert default_path() == studio_home / "runs.db"
    store = RunStore()
    assert store.path == studio_home / "runs.db" and store.path.is_file()
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_round_trip(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    cfg = tiny_config(tmp_path, temperature=3.0, alpha=0.7)
    store.create_run("r1", cfg, status="queued", source="app")
    run = store.get_run("r1")
    assert run["status"] == "queued" and run["config"] == cfg.to_dict() and run["pid"] == os.getpid()
    assert (run["dataset"], run["teacher"], run["student"], run["temperature"], run["alpha"], run["method"]) == \
        ("digits", "cnn_small", "cnn_tiny", 3.0, 0.7, "kd")
    store.set_status("r1", "running", message="training")
    for row in history(2, 0.5, 0.1):
        store.add_epoch("r1", "teacher", row)
    store.add_epoch("r1", "teacher", {**history(2, 0.5, 0.2)[1]})  # the same epoch again replaces it
    rows = store.epochs("r1")
    assert [(r["model"], r["epoch"]) for r in rows] == [("teacher", 1), ("teacher", 2)]
    assert rows[1]["val_accuracy"] == pytest.approx(0.9)
    store.set_model("r1", "student_scratch", {"model": "cnn_tiny", "accuracy": 0.5, "history": history(2, 0.3, 0.1)})
    assert len(store.epochs("r1", "student_scratch")) == 2  # the entry's history fills in its epochs
    results = {"run_id": "r1", "status": "done", "config": cfg.to_dict(), "device": "cpu",
               "teacher": {"model": "cnn_small", "accuracy": 0.9, "history": history(2, 0.5, 0.2)},
               "student_scratch": {"model": "cnn_tiny", "accuracy": 0.5, "history": history(2, 0.3, 0.1)},
               "student_kd": {"model": "cnn_tiny", "accuracy": 0.6, "history": history(2, 0.4, 0.1)},
               "artifacts": {"dir": str(tmp_path / "r1"), "student_kd_last": str(tmp_path / "r1" / "kd.pt")}}
    store.set_results("r1", results)
    reopened = RunStore(tmp_path / "runs.db")
    run = reopened.get_run("r1")
    assert run["status"] == "done" and run["results"] == results and run["finished_at"] >= run["started_at"]
    assert set(run["models"]) == {"teacher", "student_scratch", "student_kd"}
    assert "history" not in run["models"]["student_kd"]
    assert run["artifacts"] == {"student_kd_last": str(tmp_path / "r1" / "kd.pt")}
    assert len(reopened.epochs("r1")) == 6
    (summary,) = reopened.list_runs()
    assert summary["run_id"] == "r1" and summary["status"] == "done"
    assert summary["kd_accuracy"] == 0.6 and summary["scratch_accuracy"] == 0.5
    assert summary["gain_points"] == pytest.approx(10.0)
    assert (summary["T"], summary["alpha"], summary["method"]) == (3.0, 0.7, "kd")
    frame = reopened.runs_frame()
    for column in ("date", "dataset", "teacher", "student", "T", "alpha", "method", "kd_accuracy",
                   "scratch_accuracy", "gain_points", "status"):
        assert column in frame.columns
    assert reopened.list_runs(status="failed") == [] and len(reopened.list_runs(dataset="digits")) == 1


def test_recorder_writes_events_and_failures(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    store.create_run("r2", tiny_config(tmp_path), status="running")
    rec = RunRecorder(store, "r2")
    rec(Event(STATUS, None, {"status": "running", "message": "loading", "out": str(tmp_path / "r2"), "device": "cpu"}))
    rec(Event(EPOCH, "student_kd", {**history(1, 0.5, 0.1)[0], "epochs": 3, "progress": 0.2}))
    rec(Event(RESULT, "teacher", {"model": "teacher", "entry": {"model": "cnn_small", "source": "cache",
                                                               "accuracy": 0.8, "history": history(2, 0.6, 0.1)}}))
    rec(Event(ERROR, None, {"message": "the GPU ran out of memory", "type": "DeviceError"}))
    run = store.get_run("r2")
    assert run["status"] == "failed" and run["error"] == "the GPU ran out of memory"
    assert run["device"] == "cpu" and run["artifacts_dir"] == str(tmp_path / "r2")
    assert [(r["model"], r["epoch"]) for r in store.epochs("r2")] == [("teacher", 1), ("teacher", 2),
                                                                       ("student_kd", 1)]
    partial = store.results("r2")  # a run that never returned still reads like results.json
    assert partial["status"] == "failed" and partial["teacher"]["accuracy"] == 0.8
    assert len(partial["teacher"]["history"]) == 2 and len(partial["partial_history"]["student_kd"]) == 1


def test_run_recorded_marks_an_exception_failed(tmp_path):
    store = RunStore(tmp_path / "runs.db")

    def broken(config, on_event=None, stop=None, run_id=None):
        on_event(Event(EPOCH, "teacher", {**history(1, 0.5, 0.1)[0], "epochs": 2, "progress": 0.1}))
        raise ValueError("a bug in the engine")

    with pytest.raises(ValueError):
        run_recorded(tiny_config(tmp_path), run_id="r3", store=store, runner=broken)
    run = store.get_run("r3")
    assert run["status"] == "failed" and "a bug in the engine" in run["error"]
    assert len(store.epochs("r3")) == 1


def test_real_run_is_recorded(tiny):
    store, results = tiny
    run = store.get_run("tiny")
    assert results["status"] == "done" and run["status"] == "done" and run["source"] == "cli"
    assert run["results"]["run_id"] == "tiny"
    assert {r["model"] for r in store.epochs("tiny")} == {"teacher", "student_scratch", "student_kd"}
    assert run["artifacts"]["student_kd_last"] == results["artifacts"]["student_kd_last"]
    (row,) = store.list_runs()
    assert row["kd_accuracy"] == pytest.approx(results["student_kd"]["accuracy"])
    assert row["scratch_accuracy"] == pytest.approx(results["student_scratch"]["accuracy"])


def test_cached_teacher_epochs_come_from_its_result(tiny, tmp_path):
    store, first = tiny
    root = Path(first["artifacts"]["dir"]).parent.parent
    config = tiny_config(root, out=str(tmp_path / "again"))  # same teacher cache as the real run
    again = run_recorded(config, store=RunStore(tmp_path / "other.db"), run_id="again")
    assert again["teacher"]["source"] == "cache"
    other = RunStore(tmp_path / "other.db")
    teacher_rows = other.epochs("again", "teacher")
    assert len(teacher_rows) == 1 and teacher_rows[0]["val_accuracy"] == pytest.approx(
        first["teacher"]["history"][0]["val_accuracy"])


def test_concurrent_writers(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    for i in range(4):
        store.create_run(f"t{i}", tiny_config(tmp_path), status="running")
    errors = []

    def write(i: int) -> None:
        try:
            own = RunStore(tmp_path / "runs.db", check_interrupted=False)
            for row in history(25, 0.1, 0.01):
                own.add_epoch(f"t{i}", "student_kd", row)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [len(store.epochs(f"t{i}")) for i in range(4)] == [25, 25, 25, 25]


def test_dead_and_recycled_processes_become_interrupted(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    store.create_run("dead", tiny_config(tmp_path), status="running", pid=dead_pid)
    store.create_run("mine", tiny_config(tmp_path), status="running")  # this process: alive
    store.create_run("queued", tiny_config(tmp_path), status="queued")
    store.create_run("recycled", tiny_config(tmp_path), status="running")
    with sqlite3.connect(store.path) as conn:  # same pid, but another process (a restarted server)
        conn.execute("UPDATE runs SET proc_token = 'another-boot:123' WHERE id = 'recycled'")
    assert not pid_alive(dead_pid) and pid_alive(os.getpid())
    reopened = RunStore(tmp_path / "runs.db")
    status = {r["run_id"]: r["status"] for r in reopened.list_runs()}
    assert status == {"dead": "interrupted", "mine": "running", "queued": "queued", "recycled": "interrupted"}


def test_killed_cli_run_shows_as_interrupted(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "DISTILL_STUDIO_HOME": str(home), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "distill_core", "run", "--dataset", "digits", "--teacher", "cnn_small",
           "--student", "cnn_tiny", "--epochs", "200", "--teacher-epochs", "200", "--num-threads", "1", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = home / "runs.db"
    try:
        deadline = time.time() + 90
        run = None
        while time.time() < deadline and proc.poll() is None:
            if db.is_file():
                store = RunStore(db)  # opening it must not touch a run that is alive
                runs = store.list_runs()
                if runs and len(store.epochs(runs[0]["run_id"])) >= 1:
                    run = runs[0]
                    break
            time.sleep(0.2)
        assert run is not None, f"the run never recorded an epoch: {proc.stderr.read().decode()[-2000:]}"
        assert run["status"] == "running" and run["source"] == "cli"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    store = RunStore(db)
    killed = store.get_run(run["run_id"])
    assert killed["status"] == "interrupted" and killed["finished_at"] is not None
    rows = store.epochs(run["run_id"])
    assert rows and all(r["val_accuracy"] is not None for r in rows)
    assert store.results(run["run_id"])["status"] == "interrupted"


def test_delete_removes_rows_and_files(tmp_path, studio_home):
    store = RunStore()
    runs = paths.runs_dir()
    fake_run(store, "keep", runs)
    results = fake_run(store, "gone", runs)
    teacher_elsewhere = tmp_path / "teacher.pt"
    teacher_elsewhere.write_bytes(b"shared")
    store.add_artifact("gone", "teacher", teacher_elsewhere)  # a shared file, like the teacher cache
    run_dir = Path(results["artifacts"]["dir"])
    assert run_dir.is_dir() and store.epochs("gone")
    assert store.delete_run("gone")
    assert store.get_run("gone") is None and not run_dir.exists() and teacher_elsewhere.is_file()
    with sqlite3.connect(store.path) as conn:
        for table in ("epochs", "models", "artifacts"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id = 'gone'").fetchone()[0] == 0
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id = 'keep'").fetchone()[0] > 0
    assert (runs / "keep").is_dir() and store.delete_run("gone") is False


def test_delete_outside_the_runs_folder_keeps_foreign_files(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    mine = tmp_path / "my_project"
    results = fake_run(store, "custom", tmp_path / "x")
    results["artifacts"]["dir"] = str(mine)
    mine.mkdir()
    for name in ("config.json", "results.json", "student_kd_last.pt"):
        (mine / name).write_text("{}")
    (mine / "notes.txt").write_text("mine, not the run's")
    (mine / "exports" / "compressed").mkdir(parents=True)
    (mine / "exports" / "mine.txt").write_text("the user's too")  # a folder named as the studio's
    (mine / "exports" / "cnn_tiny_custom_student_kd_last.onnx").write_text("an export of the run")
    (mine / "exports" / "metrics_custom.csv").write_text("an export of the run")
    (mine / "exports" / "compressed" / "teacher_int8.onnx").write_text("compress's")
    store.set_results("custom", results)
    store.delete_run("custom")
    assert sorted(str(p.relative_to(mine)) for p in mine.rglob("*")) == ["exports", "exports/mine.txt", "notes.txt"]


def test_delete_refuses_a_live_run(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    store.create_run("live", tiny_config(tmp_path), status="running")
    with pytest.raises(DistillError, match="still running"):
        store.delete_run("live")


def test_scan_imports_run_folders_without_rows(tmp_path, studio_home):
    store = RunStore()
    fake_run(store, "old", paths.runs_dir())
    with sqlite3.connect(store.path) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM runs")
    assert store.list_runs() == []
    assert store.scan() == ["old"]
    (row,) = store.list_runs()
    assert row["run_id"] == "old" and row["status"] == "done" and len(store.epochs("old")) == 9
    assert store.scan() == []


def test_cli_runs_lists_and_deletes(studio_home, capsys):
    from distill_core.cli import main

    store = RunStore()
    fake_run(store, "one", paths.runs_dir(), temperature=2.0)
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert "one" in out and "done" in out and str(store.path) in out
    assert main(["runs", "--delete", "one"]) == 0
    assert store.get_run("one") is None
    assert main(["runs", "--delete", "one"]) == 2
    assert json.loads(json.dumps(store.list_runs())) == []


def test_a_new_store_opened_by_several_threads_at_once(tmp_path):
    """The app's first job and a page can open a brand-new runs.db together; switching it to WAL
    used to fail for one of them with "database is locked" (about 2 % of such openings)."""
    failures = []
    for i in range(100):
        barrier = threading.Barrier(3)

        def open_it(path=tmp_path / f"s{i}" / "runs.db"):
            barrier.wait()
            try:
                RunStore(path)
            except Exception as exc:  # noqa: BLE001 - collected, asserted below
                failures.append(repr(exc))

        threads = [threading.Thread(target=open_it) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not failures, failures[:3]


def test_a_late_queued_record_never_overwrites_the_run_it_became(tmp_path):
    # The job manager writes "queued" outside its lock; the job may already have started.
    store = RunStore(tmp_path / "runs.db")
    config = tiny_config(tmp_path)
    store.create_run("r1", config, status="running", source="app")
    store.create_run("r1", config, status="queued", source="app", if_new=True)
    assert store.get_run("r1")["status"] == "running"
    store.create_run("r2", config, status="queued", source="app", if_new=True)  # a new one is written
    assert store.get_run("r2")["status"] == "queued"


def test_liveness_never_signals_a_process(monkeypatch):
    """On Windows os.kill(pid, 0) terminates the process; liveness asks psutil instead, which uses
    OpenProcess there. Here a Windows-like psutil is mocked and os.kill must not be called."""
    from distill_core.runs import liveness

    def kill(*args):
        raise AssertionError("os.kill was called: on Windows it would terminate the run")

    class Proc:
        def __init__(self, pid):
            self.pid = pid

        def status(self):
            return "running"

        def create_time(self):
            return 1000.0

    class FakePsutil:
        STATUS_ZOMBIE, STATUS_DEAD = "zombie", "dead"
        Error, NoSuchProcess, AccessDenied = psutil.Error, psutil.NoSuchProcess, psutil.AccessDenied

        @staticmethod
        def pid_exists(pid):
            return pid == 4242

        Process = Proc

    monkeypatch.setattr(liveness.os, "kill", kill)
    monkeypatch.setattr(liveness, "psutil", FakePsutil)
    assert liveness.pid_alive(4242, "1000.00")
    assert not liveness.pid_alive(4242, "999.00")  # the pid was given to another process since
    assert not liveness.pid_alive(4343, "1000.00")  # gone
    assert liveness.pid_alive(4242)  # no token recorded: the pid alone


def test_a_zombie_is_not_alive():
    """A child killed but not yet reaped still has a pid: it runs nothing."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 20
    while time.time() < deadline and psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.05)
    try:
        assert not pid_alive(child.pid)
    finally:
        child.wait()


DKD_ROW = {"epoch": 1, "train_loss": 2.6, "train_ce": 2.0, "train_tckd": 0.1, "train_nckd": 0.07, "stage": "warm",
           "train_accuracy": 0.4, "val_accuracy": 0.5, "progress": 0.9, "epochs": 2,
           "terms": [{"name": "ce", "label": "CE (true labels)", "weight": 1.0, "contribution": 2.0},
                     {"name": "tckd", "label": "a·TCKD (target class)", "weight": 0.5, "contribution": 0.05},
                     {"name": "nckd", "label": "b·NCKD (other classes)", "weight": 4.0, "contribution": 0.28}]}


def test_a_methods_other_terms_survive_the_store_and_reach_the_csv(tmp_path):
    from distill_core.tools.export import metrics_csv, open_run

    store = RunStore(tmp_path / "runs.db")
    store.create_run("d", tiny_config(tmp_path, method="dkd", out=str(tmp_path / "d")), status="running")
    store.add_epoch("d", "student_kd", DKD_ROW)
    row, = store.epochs("d")
    assert (row["train_tckd"], row["train_nckd"], row["stage"], row["terms"]) == (0.1, 0.07, "warm", DKD_ROW["terms"])
    assert row["train_kd"] is None and "progress" not in row  # the event's own keys are not a history's
    history, = store.results("d")["partial_history"]["student_kd"]
    assert history["train_tckd"] == 0.1
    header, line = metrics_csv(open_run("d", store)).splitlines()
    assert header.split(",")[-3:] == ["train_tckd", "train_nckd", "stage"]
    assert line.split(",")[-3:] == ["0.1", "0.07", "warm"]


def test_a_store_from_before_method_terms_gains_their_column_and_keeps_its_rows(tmp_path):
    """Version 3 (sweeps) had no column for a method's other terms; version 4 adds it."""
    from distill_core.runs.schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION

    path = tmp_path / "runs.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
        for statement in MIGRATIONS[2] + MIGRATIONS[3]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 3")
        conn.execute("INSERT INTO runs (id, created_at, updated_at, status, config) VALUES ('old', 1, 1, 'done', '{}')")
        conn.execute("INSERT INTO epochs (run_id, model, epoch, val_accuracy) VALUES ('old', 'teacher', 1, 0.5)")
        assert "terms" not in {r[1] for r in conn.execute("PRAGMA table_info(epochs)")}
    store = RunStore(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 4
        assert "terms" in {r[1] for r in conn.execute("PRAGMA table_info(epochs)")}
    assert store.epochs("old")[0]["val_accuracy"] == 0.5  # the old rows read as before
    store.add_epoch("old", "student_kd", DKD_ROW)
    assert store.epochs("old", "student_kd")[0]["train_nckd"] == 0.07
    RunStore(path)  # opening it again applies nothing twice


def test_a_version_1_store_is_migrated_and_keeps_its_runs(tmp_path):
    """Stores written before sweeps existed gain the sweep column and table, rows kept."""
    from distill_core.runs.schema import SCHEMA, SCHEMA_VERSION

    path = tmp_path / "runs.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA + "\nPRAGMA user_version = 1;")
        conn.execute("INSERT INTO runs (id, created_at, updated_at, status, config) VALUES ('old', 1, 1, 'done', '{}')")
    store = RunStore(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 2
    assert [r["run_id"] for r in store.list_runs()] == ["old"] and store.list_runs()[0]["sweep_id"] is None
    RunStore(path)  # opened again: nothing is applied twice
    cfg = tiny_config(tmp_path)
    store.create_run("trial", cfg, status="running", sweep_id="s1")
    store.create_run("trial", cfg, status="running")  # taken over (a rerun): still the sweep's
    assert [r["run_id"] for r in store.list_runs(sweep_id="s1")] == ["trial"]
    store.save_sweep("s1", {"grid": {"temperature": [1, 2]}}, "running", folder=tmp_path, backend="local")
    store.save_sweep("s1", {"grid": {"temperature": [1, 2]}}, "done")
    sweep = store.get_sweep("s1")
    assert (sweep["status"], sweep["folder"], sweep["backend"], sweep["spec"]["grid"]) == \
        ("done", str(tmp_path), "local", {"temperature": [1, 2]})
    assert [s["id"] for s in store.list_sweeps()] == ["s1"] and store.get_sweep("nope") is None


def test_a_store_of_an_older_version_is_brought_up_to_date(tmp_path):
    """A runs.db written before the fidelity columns existed opens, keeps its rows and takes new ones."""
    from distill_core.runs.schema import MIGRATIONS, SCHEMA

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO runs (id, created_at, updated_at, status, config) VALUES ('old', 1, 1, 'done', '{}')")
        conn.execute("INSERT INTO epochs (run_id, model, epoch, val_accuracy) VALUES ('old', 'student_kd', 1, 0.5)")
    store = RunStore(path)
    store.add_epoch("old", "student_kd", {"epoch": 2, "val_accuracy": 0.6, "val_agreement": 0.8, "val_kl_teacher": 0.3})
    rows = store.epochs("old")
    assert [(r["epoch"], r["val_accuracy"], r["val_agreement"]) for r in rows] == [(1, 0.5, None), (2, 0.6, 0.8)]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == max(MIGRATIONS)
    RunStore(path)  # opening it again changes nothing
