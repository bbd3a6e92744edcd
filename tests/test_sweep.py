"""Sweeps: the grid, its tables, nothing trained twice, stop and resume, bad input in one line."""
import csv
import threading
from pathlib import Path

import pytest

from distill_core.cli import main
from distill_core.events import TRIAL
from distill_core.runs.store import RunStore
from distill_core.runs.sweep import SweepSpec, best_cells, parse_values, spec_problems, summary_rows
from distill_core.runs.sweep_run import estimate_seconds, measured_speed, next_stage, probe_speed, run_sweep

from helpers import tiny_config

TINY = ["--dataset", "digits", "--teacher", "cnn_small", "--student", "cnn_tiny", "--epochs", "2",
        "--teacher-epochs", "1", "--batch-size", "64", "--latency-repeats", "5", "--latency-batch", "8",
        "--num-threads", "1"]


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory):
    """The issue's example at a tiny size: T 1,4 x alpha 0.5,0.9 x seeds 0,1, through the CLI."""
    root = tmp_path_factory.mktemp("sweep")
    mp = pytest.MonkeyPatch()
    mp.setenv("DISTILL_STUDIO_HOME", str(root / "home"))
    try:
        code = main(["sweep", *TINY, "--temperature", "1,4", "--alpha", "0.5,0.9", "--seeds", "0,1",
                     "--out", str(root / "out"), "--quiet"])
        store = RunStore()
        yield code, root / "out", store, SweepSpec.load(root / "out")
    finally:
        mp.undo()


def test_the_grid_is_the_product_and_seeds_repeat_every_cell():
    spec = SweepSpec(tiny_config(), {"temperature": [1.0, 4.0], "alpha": [0.5, 0.9]}, [0, 1])
    trials = spec.trials()
    assert spec.size() == len(trials) == 8
    assert [(t.cell["temperature"], t.cell["alpha"], t.seed) for t in trials[:3]] == [(1, 0.5, 0), (1, 0.5, 1),
                                                                                        (1, 0.9, 0)]
    assert all(t.config.temperature == t.cell["temperature"] and t.config.seed == t.seed for t in trials)
    # first the trials that train the scratch students (one per seed here), then all the others
    assert [(t.cell, t.seed) for t in next_stage(spec, {})] == [({"temperature": 1.0, "alpha": 0.5}, 0),
                                                               ({"temperature": 1.0, "alpha": 0.5}, 1)]
    done = {t.key: {} for t in trials[:2]}
    # finished, but with no run behind them, so no scratch student to reuse: their groups still need one
    assert len(next_stage(spec, done)) == 2
    students = SweepSpec(tiny_config(), {"student": ["cnn_tiny", "mlp"]}, [0])
    # two scratch groups, one teacher: only one trains it, the other waits for the cache
    assert len(next_stage(students, {})) == 1


def test_values_and_seeds_are_checked_one_by_one():
    assert parse_values("temperature", "1, 2,4") == [1.0, 2.0, 4.0]
    assert parse_values("epochs", "2,3") == [2, 3] and parse_values("student", "mlp") == ["mlp"]
    with pytest.raises(ValueError, match="empty item"):
        parse_values("alpha", "0.5,,0.9")
    spec = SweepSpec(tiny_config(), {"alpha": [0.5, 1.5], "temperature": [], "seed": [1, 2]}, [0, 0])
    said = [p.message for p in spec_problems(spec)]
    assert any(m.startswith("alpha 1.5 in the list: alpha must be in [0, 1]") for m in said), said
    assert "temperature: the list of values is empty" in said
    assert any(m.startswith("seed cannot be swept") for m in said) and "seeds list 0 more than once" in said
    big = SweepSpec(tiny_config(), {"temperature": [float(t) for t in range(1, 27)]}, list(range(20)))
    assert [p.field for p in spec_problems(big)] == [None] and spec_problems(big, None) == []


def test_the_best_cell_is_clear_only_beyond_the_spread_over_seeds():
    spec = SweepSpec(tiny_config(), {"temperature": [1.0, 2.0, 4.0]}, [0, 1])
    rows = [{"temperature": t, "seed": s, "gain": g, "kd_accuracy": 0.9, "run_id": f"{t}-{s}"}
            for t, s, g in [(1.0, 0, 0.01), (1.0, 1, 0.03), (2.0, 0, 0.05), (2.0, 1, 0.07), (4.0, 0, 0.0),
                            (4.0, 1, 0.2)]]
    summary = summary_rows(spec, rows)
    assert [r["n"] for r in summary] == [2, 2, 2] and summary[0]["gain_mean"] == pytest.approx(0.02)
    verdict = best_cells(summary)
    assert verdict["best"]["temperature"] == 4.0 and verdict["second"]["temperature"] == 2.0
    assert verdict["clear"] is False  # 0.10 against 0.06, with a std of 0.14
    summary[2]["gain_std"] = 0.001
    assert best_cells(summary)["clear"] is True  # 0.04 apart, the runner-up's std 0.014
    summary[1]["gain_std"] = 0.05
    assert best_cells(summary)["clear"] is False


def test_the_cli_sweep_writes_both_tables_and_trains_nothing_twice(grid_sweep):
    code, out, store, spec = grid_sweep
    assert code == 0
    rows, summary = read_csv(out / "sweep.csv"), read_csv(out / "summary.csv")
    assert list(rows[0]) == ["temperature", "alpha", "seed", "kd_accuracy", "scratch_accuracy", "gain",
                             "teacher_accuracy", "seconds", "run_id"]
    assert list(summary[0]) == ["temperature", "alpha", "n", "gain_mean", "gain_std", "kd_accuracy_mean",
                                "kd_accuracy_std"]
    assert len(rows) == 8 and len(summary) == 4 and {r["n"] for r in summary} == {"2"}
    for seed in ("0", "1"):  # one scratch student per seed, in every cell
        assert len({r["scratch_accuracy"] for r in rows if r["seed"] == seed}) == 1
    runs = {r["run_id"]: store.get_run(r["run_id"]) for r in rows}
    assert all(run["sweep_id"] == spec.sweep_id and run["status"] == "done" for run in runs.values())
    sources = [(run["models"]["teacher"]["source"], run["models"]["student_scratch"]["source"])
               for run in runs.values()]
    assert sources.count(("train", "train")) == 2  # one teacher and one scratch student per seed
    assert sources.count(("cache", "reused")) == 6
    for row in rows:
        assert float(row["gain"]) == pytest.approx(float(row["kd_accuracy"]) - float(row["scratch_accuracy"]))
    assert store.get_sweep(spec.sweep_id)["status"] == "done"


def test_a_stopped_sweep_resumes_where_it_stopped(tmp_path, capsys):
    spec = SweepSpec(tiny_config(epochs=1, teacher_epochs=1, num_threads=1, latency_repeats=5),
                     {"temperature": [1.0, 4.0]}, [0, 1])
    stop, ended = threading.Event(), []

    def watch(event):
        if event.kind == TRIAL and event.data["state"] == "end":
            ended.append(event.data)
            if len(ended) == 3:
                stop.set()

    first = run_sweep(spec, tmp_path / "sw", on_event=watch, stop=stop)
    assert first["status"] == "cancelled" and len(first["rows"]) == 3
    kept = {r["run_id"] for r in first["rows"]}
    code = main(["sweep", "--resume", str(tmp_path / "sw"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    rows = read_csv(tmp_path / "sw" / "sweep.csv")
    assert len(rows) == 4 and kept <= {r["run_id"] for r in rows}  # the finished trials were not run again
    assert "4 of 4 trials finished" in capsys.readouterr().out


def test_a_resumed_sweep_trains_its_own_scratch_student_where_the_finished_ones_ran_elsewhere(tmp_path):
    """Resumed on another machine (a GPU one, or one without bf16), a finished trial's scratch student
    is not the one this machine would train: the trials left train their own, the sweep goes on."""
    import json

    spec = SweepSpec(tiny_config(epochs=1, teacher_epochs=1, num_threads=1, latency_repeats=5),
                     {"temperature": [1.0, 4.0]}, [0, 1])
    stop = threading.Event()

    def watch(event):
        if event.kind == TRIAL and event.data["state"] == "end" and event.data["finished"] == 2:
            stop.set()  # the two seeds' first trials: each trained its seed's scratch student

    assert len(run_sweep(spec, tmp_path / "sw", on_event=watch, stop=stop)["rows"]) == 2
    store = RunStore()
    for row in read_csv(tmp_path / "sw" / "sweep.csv"):
        path = Path(store.get_run(row["run_id"])["artifacts_dir"]) / "results.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "device": "cuda:0"}))
    done = run_sweep(spec, tmp_path / "sw")
    assert done["status"] == "done" and len(done["rows"]) == 4
    sources = [store.get_run(r["run_id"])["models"]["student_scratch"]["source"] for r in done["rows"]]
    assert sources == ["train"] * 4


def test_a_run_over_several_seeds_is_a_sweep_of_one_cell(tmp_path, capsys):
    code = main(["sweep", *TINY, "--epochs", "1", "--seeds", "3,4", "--out", str(tmp_path / "one")])
    assert code == 0
    rows, summary = read_csv(tmp_path / "one" / "sweep.csv"), read_csv(tmp_path / "one" / "summary.csv")
    assert [r["seed"] for r in rows] == ["3", "4"] and len(summary) == 1 and summary[0]["n"] == "2"
    assert list(rows[0])[0] == "seed"
    assert "sweep" in capsys.readouterr().out


@pytest.mark.parametrize("argv, said", [
    (["--temperature", ""], "--temperature names no value"),
    (["--temperature", "1,,2"], "empty item"),
    (["--temperature", "1,0"], "temperature 0.0 in the list"),
    (["--alpha", "0.5,1.5"], "alpha 1.5 in the list"),
    (["--seeds", ""], "--seeds names no seed"),
    (["--seed", "1", "--seeds", "1,2"], "not both"),
    (["--temperature", ",".join(map(str, range(1, 27))), "--seeds", ",".join(map(str, range(20)))],
     "520 trials, more than 500"),
    (["--temperature", "1,2", "--backend", "ray", "--ray-address", "127.0.0.1:{port}"], "cannot reach a Ray cluster"),
    (["--resume", "{tmp}/none"], "holds no sweep"),
])
def test_bad_input_is_one_error_line(argv, said, capsys, tmp_path):
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [a.format(port=port, tmp=tmp_path) for a in argv]
    code = main(["sweep", *TINY, *argv] if argv[0] != "--resume" else ["sweep", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and said in err and err.count("\n") == 1, err
    assert not (tmp_path / "none").exists()


def test_the_time_left_comes_from_the_last_run_of_the_pair_or_a_probe(grid_sweep):
    _, _, store, spec = grid_sweep
    speed = measured_speed(spec.base, store)
    assert speed is not None and speed["student_kd"] > 0 and speed["run_id"]
    more = SweepSpec(spec.base, {"temperature": [1.0, 4.0, 8.0]}, [0, 1, 2])
    estimate = estimate_seconds(more, store)
    # another sweep: all of its 9 trials are left, and the teachers of this test's empty cache
    assert estimate["trials"] == 9 and estimate["seconds"] > 9 * speed["student_kd"]
    probed = probe_speed(tiny_config(num_threads=1), batches=2)
    assert min(probed[r] for r in ("teacher", "student_scratch", "student_kd")) > 0


def test_a_derived_students_initialisation_is_swept_and_each_trains_its_own_scratch_student(tmp_path, monkeypatch):
    """The ablation issue 19 asks for, as a sweep: the same derived student from the teacher's
    weights and from random ones. The scratch student depends on the initialisation, so neither
    cell may reuse the other's."""
    monkeypatch.setenv("DISTILL_STUDIO_HOME", str(tmp_path / "home"))
    argv = [a if a != "cnn_tiny" else "derived" for a in TINY]
    code = main(["sweep", *argv, "--derive-width", "0.5", "--student-init", "teacher,random", "--seeds", "0",
                 "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0
    rows = read_csv(tmp_path / "out" / "sweep.csv")
    assert [r["student_init"] for r in rows] == ["teacher", "random"]
    store = RunStore()
    runs = [store.get_run(r["run_id"]) for r in rows]
    assert [run["models"]["student_scratch"]["source"] for run in runs] == ["train", "train"]
    assert ["teacher init" in run["student"] for run in runs] == [True, False]
    assert "random init" in runs[1]["student"]


def test_the_sweep_page_has_one_box_and_one_axis_label_for_every_sweepable_field():
    from distill_core import SWEEPABLE
    from studio import sweep_view as sv

    labels = [sv.label(name) for name in SWEEPABLE]
    assert len(set(labels)) == len(SWEEPABLE)  # an axis or a cell names one field
    boxes = [*sv.MORE_FIELDS.values(), "Temperature T", "alpha"]
    assert len(set(boxes)) == len(SWEEPABLE) and "" not in boxes


def fake_finished(store, spec, trial, folder: Path, **changes) -> dict:
    """A finished trial as the run store and its folder hold it, without training: its store row
    and a results.json with what ``reusable_scratch`` reads, the two scratch checkpoints beside it.
    Returns its sweep.csv-like row (what ``done`` maps its trial key to)."""
    import json

    from distill_core.runs.scratch_reuse import scratch_fields

    folder.mkdir(parents=True)
    for which in ("best", "last"):
        (folder / f"student_scratch_{which}.pt").write_bytes(b"")
    results = {"run_id": folder.name, "status": "done", "config": trial.config.to_dict(), "device": "cpu",
               "precision": {"train": "fp32"}, "scratch_key": scratch_fields(trial.config),
               "student_scratch": {"source": "train", "accuracy": 0.5}, "artifacts": {"dir": str(folder)}, **changes}
    (folder / "results.json").write_text(json.dumps({k: v for k, v in results.items() if v is not None}))
    store.create_run(folder.name, trial.config, status="done", artifacts_dir=folder, sweep_id=spec.sweep_id)
    return {"run_id": folder.name}


def test_a_group_counts_as_trained_only_when_its_scratch_student_is_reusable(tmp_path):
    """The leaders, the estimate and each trial's origin go by one rule: a finished trial whose
    scratch student cannot be reused (a results.json from before runs recorded their scratch key)
    leaves its group untrained, so a leader trains it (once, not every trial of it at once on Ray)
    and the estimate counts that training."""
    from distill_core.runs.sweep_run import leaders, scratch_origin, work_left

    spec = SweepSpec(tiny_config(), {"temperature": [1.0, 4.0]}, [0, 1])
    trials, store = spec.trials(), RunStore()
    old, new = (t for t in trials if t.cell["temperature"] == 1.0)  # seeds 0 and 1: one per scratch group
    done = {old.key: fake_finished(store, spec, old, tmp_path / "old", scratch_key=None),
            new.key: fake_finished(store, spec, new, tmp_path / "new")}
    later = {t.seed: t for t in trials if t.key not in done}
    assert scratch_origin(spec, later[0], done, store) is None
    assert scratch_origin(spec, later[1], done, store) == str(tmp_path / "new")
    assert leaders(spec, done, store=store) == [later[0]]
    assert next_stage(spec, done, store=store) == [later[0]]
    monkey = pytest.MonkeyPatch()
    monkey.setattr("distill_core.runs.sweep_run.finished_trials", lambda spec, store: done)
    try:
        left = work_left(spec, store)
    finally:
        monkey.undo()
    assert [c.seed for c in left["scratch"]] == [0] and len(left["trials"]) == 2


@pytest.mark.parametrize("device, ran_on, reused", [("cuda", "cuda:0", True), ("auto", "cuda:0", True),
                                                    ("cpu", "cuda:0", False), ("cuda", "cpu", False)])
def test_the_driver_does_not_resolve_the_device_its_workers_train_on(tmp_path, monkeypatch, device, ran_on, reused):
    """A Ray sweep's driver may have no GPU while its workers do: asking for "cuda" there must not
    fail the sweep, and "auto" must not read as the driver's CPU and pass over every trial trained
    on a GPU. Only a device the config names is compared here; the worker's run compares the kind
    it resolves to when it starts (test_experiment's another_kind_of_device test)."""
    import torch

    from distill_core.runs.sweep_run import scratch_origin

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU-only driver
    spec = SweepSpec(tiny_config(device=device), {"temperature": [1.0, 4.0]}, [0])
    first, second = spec.trials()
    store = RunStore()
    done = {first.key: fake_finished(store, spec, first, tmp_path / "first", device=ran_on)}
    assert scratch_origin(spec, second, done, store) == (str(tmp_path / "first") if reused else None)


def test_each_trials_scratch_key_is_worked_out_once_for_the_trials_left(tmp_path, monkeypatch):
    """An image folder's scratch fields are a listing of every file: a sweep works them out once per
    trial, not once per pair of trials."""
    from distill_core.runs import scratch_reuse
    from distill_core.runs.scratch_reuse import scratch_fields, scratch_key
    from distill_core.runs.sweep_run import scratch_groups, scratch_origin

    spec = SweepSpec(tiny_config(), {"temperature": [1.0, 2.0, 4.0, 8.0]}, [0])
    store, trials = RunStore(), spec.trials()
    done = {trials[0].key: fake_finished(store, spec, trials[0], tmp_path / "first")}
    assert scratch_key(trials[0].config, scratch_fields(trials[0].config)) == scratch_key(trials[0].config)
    listed = []
    monkeypatch.setattr(scratch_reuse, "data_fields", lambda config, _real=scratch_reuse.data_fields:
                        listed.append(config) or _real(config))
    groups = scratch_groups(spec)
    origins = [scratch_origin(spec, trial, done, store, groups) for trial in trials[1:]]
    assert origins == [str(tmp_path / "first")] * 3 and len(listed) == len(trials)


def test_a_ray_worker_trains_its_own_scratch_student_where_the_drivers_choice_ran_elsewhere(tmp_path):
    """The driver passes a finished trial of another kind of device over only where the config names
    the device; with "auto" the worker finds out when it starts, and trains its own, not a failed trial."""
    import json

    from distill_core import run_experiment
    from distill_core.runs.sweep_ray import trial_job

    base = tiny_config(epochs=1, teacher_epochs=1, num_threads=1, latency_repeats=5,
                       cache_dir=str(tmp_path / "cache"))
    run_experiment(base.replace(out=str(tmp_path / "first")), run_id="first")
    path = tmp_path / "first" / "results.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "device": "cuda:0"}))
    figures = trial_job(base.replace(out=str(tmp_path / "second"), temperature=2.0).to_dict(), "second",
                        str(tmp_path / "first"))
    assert figures["run_id"] == "second"
    assert json.loads((tmp_path / "second" / "results.json").read_text())["student_scratch"]["source"] == "train"
