"""The Sweep page through AppTest: its URL, the preset, problems, Start, a sweep's heatmap and cells;
and the Live page sending a sweep job there."""
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import studio.manager
from distill_core import SWEEPABLE, RunConfig, RunStore, SweepSpec, run_sweep
from distill_core.runs.jobs import JobManager
from studio import sweep_view as sv
from test_app_pages import navigation_mode  # noqa: F401 - the pages run through app.py's navigation
from tiny_runs import tiny_config

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 60
RECIPE = dict(dataset="digits", teacher="cnn_small", student="cnn_tiny", epochs="1", teacher_epochs="1",
              latency_repeats="5")


@pytest.fixture
def sweeps(monkeypatch):
    """A fresh job manager whose sweeps are recorded as submitted, and never run."""
    submitted = []

    def runner(spec, backend="local", on_event=None, stop=None, **kwargs):
        submitted.append((spec, backend))
        stop.wait(30)
        return {"status": "cancelled", "rows": []}

    managers = []

    def make(**kwargs):
        managers.append(JobManager(runner=lambda *a, **k: {"status": "done"}, sweep_runner=runner, **kwargs))
        return managers[-1]

    monkeypatch.setattr(studio.manager, "JobManager", make)
    studio.manager.get_manager.clear()
    yield submitted
    for m in managers:
        m.shutdown()
    studio.manager.get_manager.clear()


def sweep_page(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in query.items():
        at.query_params[key] = str(value)
    at.run()
    at.switch_page("pages/sweep.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def sidebar(at: AppTest, path: str) -> AppTest:
    """Open a page as the sidebar does: Streamlit clears the query parameters on the way."""
    for key in list(at.query_params):
        del at.query_params[key]
    at.switch_page(path).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at) -> str:
    return "\n".join(str(x.value) for x in [*at.markdown, *at.caption, *at.error, *at.warning, *at.info])


def test_the_url_holds_the_grid_and_the_recipe():
    base, grid, seeds, backend, notes = sv.from_params({"temperature": "1,2,4", "alpha": "0.9", "seeds": "0,1",
                                                        "dataset": "digits", "epochs": "3"})
    assert (base.dataset, base.epochs, grid["temperature"], grid["alpha"], seeds, notes) == \
        ("digits", 3, "1,2,4", "0.9", "0,1", [])
    spec, found = sv.build(base, grid, seeds)
    assert found == [] and spec.grid == {"temperature": [1.0, 2.0, 4.0]} and spec.base.alpha == 0.9
    assert spec.seeds == [0, 1] and sv.shape_text(spec) == "6 trials: 3 T × 2 seeds"
    params = sv.to_params(base, grid, seeds)
    assert params == {"dataset": "digits", "epochs": "3", "temperature": "1,2,4", "seeds": "0,1"}
    assert sv.from_params(params)[1]["temperature"] == "1,2,4"
    draft = tiny_config(Path("/tmp")).replace(cache_dir=None).to_dict()  # no recipe in the URL: the Distill page's
    assert sv.from_params({"temperature": "1,2"}, draft)[0].dataset == "mnist5k"
    assert sv.from_params({}, draft)[0].dataset == "digits"
    assert any(f.field == "seed" and f.message.startswith("Seeds") for f in sv.build(base, grid, "")[1])
    assert any(f.field == "alpha" and "Alpha 2.0 in the list" in f.message
               for f in sv.build(base, {**grid, "alpha": "0.5,2"}, "0")[1])


def test_the_preset_and_start_queue_a_sweep(sweeps):
    at = sweep_page(**RECIPE, temperature="1,4", seeds="0")
    assert "2 trials: 2 T × 1 seed" in texts(at)
    at.button(key="sw_preset_what_t").click().run()
    assert at.text_input(key="sw_temperature").value == "1,2,4,8,16" and at.text_input(key="sw_seeds").value == "0,1"
    assert at.query_params["temperature"] == "1,2,4,8,16" and at.query_params["seeds"] == "0,1"
    assert "10 trials: 5 T × 2 seeds" in texts(at)
    at.text_input(key="sw_alpha").set_value("0.5,3").run()
    assert "Alpha 3.0 in the list" in texts(at)
    at.text_input(key="sw_alpha").set_value("0.9").run()
    at.button(key="sw_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    spec, backend = sweeps[0]
    assert spec.grid == {"temperature": [1.0, 2.0, 4.0, 8.0, 16.0]} and spec.seeds == [0, 1] and backend == "local"
    assert spec.base.dataset == "mnist5k"  # the preset's recipe: the offline default
    assert at.query_params["sweep"] == spec.sweep_id


def test_a_finished_sweep_shows_its_heatmap_best_cell_and_runs(sweeps):
    spec = SweepSpec(tiny_config(Path("/tmp"), cache_dir=None), {"temperature": [1.0, 4.0]}, [0])
    run_sweep(spec, store=RunStore())
    at = sweep_page(sweep=spec.sweep_id)
    heat = [c for c in at.get("plotly_chart")]
    assert heat, "no heatmap"
    said = texts(at)
    assert ("Best: **T = " in said or "the smallest loss: **T = " in said) and "2 of 2 trials finished" in said
    cells = at.dataframe[0].value
    assert list(cells["± std"]) == ["—", "—"] and len(cells) == 2  # one seed: no spread, not "None"
    links = [l for l in at.get("page_link") if "seed 0: KD" in str(l.proto.label)]
    assert len(links) == 1


def test_compare_shows_a_cells_mean_and_std_over_seeds_with_each_seed_under_them(sweeps):
    spec = SweepSpec(tiny_config(Path("/tmp"), cache_dir=None), {}, [0, 1])
    result = run_sweep(spec, store=RunStore())
    first = result["rows"][0]["run_id"]
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["run"] = first
    at.run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(s.value == "Over 2 seeds" for s in at.subheader)
    assert any(m.label == "KD gain over scratch" and "±" in m.value for m in at.metric)
    labels = [str(l.proto.label) for l in at.get("page_link")]
    assert sum(label.startswith("seed ") for label in labels) == 2 and any("← this run" in l for l in labels)


def test_the_live_page_sends_a_sweep_to_the_sweep_page(sweeps):
    spec = SweepSpec(tiny_config(Path("/tmp"), cache_dir=None), {"temperature": [1.0, 2.0]}, [0])
    sweep_id = studio.manager.get_manager().submit_sweep(spec)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["job"] = sweep_id
    at.run()
    at.switch_page("pages/live.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert f"This is sweep {sweep_id}" in texts(at)


def test_the_live_page_shows_the_curves_of_a_sweeps_running_trial(monkeypatch):
    """A local sweep's job holds its running trial's run: Live draws its curves under a header with
    the trial's settings, and the frame's label says which trial of how many."""
    import threading

    from distill_core.events import EPOCH, PHASE, STEP, TRIAL, Event
    from test_app_pages import fetched, live_frame

    release = threading.Event()

    def runner(spec, backend="local", on_event=None, stop=None, **kwargs):
        on_event(Event(TRIAL, None, {"state": "start", "index": 1, "total": 2, "cell": {"temperature": 8.0},
                                     "seed": 0, "finished": 1}))
        on_event(Event(PHASE, "student_kd", {"phase": "student_kd", "index": 2, "total": 3, "epochs": 1}))
        on_event(Event(STEP, "student_kd", {"epoch": 1, "step": 1, "steps": 4, "loss": 1.5, "progress": 0.7}))
        on_event(Event(EPOCH, "student_kd", {"epoch": 1, "train_loss": 1.4, "train_accuracy": 0.5,
                                             "val_accuracy": 0.6, "epochs": 1, "progress": 0.8}))
        release.wait(30)
        return {"status": "done", "rows": []}

    monkeypatch.setattr(studio.manager, "JobManager", lambda **kwargs: JobManager(
        runner=lambda *a, **k: {"status": "done"}, sweep_runner=runner, **kwargs))  # the app's feed publisher too
    studio.manager.get_manager.clear()
    manager = studio.manager.get_manager()
    try:
        spec = SweepSpec(tiny_config(Path("/tmp"), cache_dir=None), {"temperature": [1.0, 8.0]}, [0])
        sweep_id = manager.submit_sweep(spec)
        deadline = time.time() + 30
        while not (manager.snapshot(sweep_id).history.get("student_kd")):
            assert time.time() < deadline, "the sweep's trial never reported"
            time.sleep(0.05)
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.query_params["job"] = sweep_id
        at.run()
        at.switch_page("pages/live.py").run()
        assert not at.exception, [e.value for e in at.exception]
        said = texts(at)
        assert f"This is sweep {sweep_id}" in said and "Below, the trial training now." in said
        assert "T=8" in said.replace(" ", "")  # the header's method setting is the trial's, not the recipe's T
        assert live_frame(at)["feed"].endswith(f"{sweep_id}.json")
        feed = fetched(at, lambda f: f["label"].startswith("Trial 2 of 2 (T = 8, seed 0)"))
        assert [m[0] for m in feed["metrics"]] == ["Trial progress", "Trial time left", "Speed", "Sweep elapsed"]
        assert f"sweep `{sweep_id}`" in said  # the header names the sweep, not a run
        stop = at.button(key="stop")
        assert "Ends the trial running now and the sweep" in stop.help  # what Stop stops
        sweep_at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        sweep_at.query_params["sweep"] = sweep_id
        sweep_at.run()
        sweep_at.switch_page("pages/sweep.py").run()
        link = next(p for p in sweep_at.get("page_link") if p.proto.label == "Watch this trial's curves")
        assert link.proto.page.endswith("live") and f"job={sweep_id}" in link.proto.query_string
    finally:
        release.set()
        manager.shutdown()
        studio.manager.get_manager.clear()


def test_live_on_a_sweep_this_server_no_longer_runs_points_to_the_sweep_page(sweeps):
    """A reload of a sweep's Live page after a server restart: the store knows the sweep; Live says
    so and links to it, instead of calling it deleted or foreign."""
    spec = SweepSpec(tiny_config(Path("/tmp"), cache_dir=None), {"temperature": [1.0, 2.0]}, [0])
    RunStore().save_sweep("20260101-000000-swp1", spec.to_dict(), "cancelled")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["job"] = "20260101-000000-swp1"
    at.run()
    at.switch_page("pages/live.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert [w.value for w in at.warning] == ["Sweep `20260101-000000-swp1` is cancelled: its heatmap and its "
                                             "trials are on the Sweep page."]
    assert any(p.proto.label == "Open the sweep" for p in at.get("page_link"))


def test_starting_a_sweep_makes_it_the_job_the_live_page_shows(sweeps):
    at = sweep_page(**RECIPE, temperature="1,4", seeds="0")
    at.button(key="sw_start").click().run()
    assert at.session_state["job_id"] == at.session_state["sw_show"]


# ---- a recipe from a link: the Distill page's checks, before Start and before the probe -----------
def test_a_links_folder_is_not_read_or_swept_until_confirmed(sweeps, tmp_path, monkeypatch):
    import distill_core.runs.teacher_cache as teacher_cache
    from test_app_pages import write_image_folder

    read = []  # the sweep's estimate lists the folder for the teacher cache's key
    real = teacher_cache.folder_fingerprint
    monkeypatch.setattr(teacher_cache, "folder_fingerprint", lambda d: read.append(d) or real(d))
    write_image_folder(tmp_path / "private", ("ants", "bees"))
    at = sweep_page(dataset="imagefolder", data_dir=str(tmp_path / "private"), teacher="cnn_small",
                    student="cnn_tiny", temperature="1,4", seeds="0")
    assert f"The link names the image folder `{tmp_path / 'private'}` on this server" in texts(at)
    assert at.button(key="sw_start").disabled and at.button(key="sw_probe_button").disabled and read == []
    at.button(key="sw_data_dir_confirm").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.button(key="sw_start").disabled and "The link names the image folder" not in texts(at)
    at.button(key="sw_start").click().run()
    assert sweeps and sweeps[0][0].base.data_dir == str(tmp_path / "private")


def test_visiting_the_distill_page_does_not_release_the_sweep_links_folder(sweeps, tmp_path, monkeypatch):
    import distill_core.runs.teacher_cache as teacher_cache
    from test_app_pages import write_image_folder

    read = []
    real = teacher_cache.folder_fingerprint
    monkeypatch.setattr(teacher_cache, "folder_fingerprint", lambda d: read.append(d) or real(d))
    write_image_folder(tmp_path / "private", ("ants", "bees"))
    at = sweep_page(dataset="imagefolder", data_dir=str(tmp_path / "private"), teacher="cnn_small",
                    student="cnn_tiny", temperature="1,4", seeds="0")
    sidebar(at, "pages/distill.py")
    sidebar(at, "pages/sweep.py")
    assert not at.exception, [e.value for e in at.exception]
    assert at.text_input(key="sw_temperature").value == "1,4"  # the grid as it was left
    assert at.button(key="sw_start").disabled and read == []
    assert f"The link names the image folder `{tmp_path / 'private'}` on this server" in texts(at)


def test_a_links_checkpoint_not_kept_by_the_studio_is_dropped(sweeps):
    at = sweep_page(**RECIPE, teacher_source="checkpoint", teacher_checkpoint="/etc/hostname", temperature="1,4")
    said = texts(at)
    assert "names a teacher checkpoint that was not uploaded to this server" in said
    assert "needs a teacher_checkpoint" in said and "/etc/hostname" not in said
    assert not [b for b in at.button if b.key == "sw_start"]  # no sweep to start: the engine's problem says why


def test_a_device_this_machine_lacks_disables_start_with_the_reason(sweeps, monkeypatch):
    import studio.form

    monkeypatch.setattr(studio.form, "available_devices", lambda: ["cpu"])
    at = sweep_page(**RECIPE, device="cuda", temperature="1,4")
    assert "This machine has no CUDA GPU" in texts(at) and at.button(key="sw_start").disabled


def test_a_probe_that_fails_says_so_in_one_message(sweeps, monkeypatch):
    import distill_core
    from distill_core import DataUnavailableError

    def fails(config, batches=6):
        raise DataUnavailableError("cifar10 is not on this machine and cannot be downloaded")

    monkeypatch.setattr(distill_core, "probe_speed", fails)
    at = sweep_page(**RECIPE, temperature="1,4")
    at.button(key="sw_probe_button").click().run()
    assert not at.exception, [e.value for e in at.exception]
    failed = [e.value for e in at.error if "probe" in e.value]
    assert len(failed) == 1 and failed[0].startswith("The probe could not run: ") and "cannot be downloaded" in failed[0]


def test_the_probe_waits_while_a_run_trains(sweeps):
    spec = SweepSpec(tiny_config(Path("/tmp"), cache_dir=None), {"temperature": [1.0, 2.0]}, [0])
    studio.manager.get_manager().submit_sweep(spec)
    at = sweep_page(**{**RECIPE, "epochs": "2"}, temperature="1,4")
    assert at.button(key="sw_probe_button").disabled
    assert "is training on this server" in at.button(key="sw_probe_button").help


def test_a_probe_is_kept_for_what_its_timing_depends_on():
    base = RunConfig(dataset="digits")
    keys = {sv.probe_key(c) for c in (base, base.replace(batch_size=256), base.replace(precision="fp32"),
                                      base.replace(method="dkd"), base.replace(device="cpu"))}
    assert len(keys) == 5 and sv.probe_key(base.replace(temperature=8.0)) == sv.probe_key(base)


def test_a_field_with_no_label_of_its_own_is_named_by_its_field_name():
    spec = SweepSpec(RunConfig(dataset="digits"), {"batch_size": [32, 64], "temperature": [1.0, 4.0]}, [0])
    assert sv.shape_text(spec) == "4 trials: 2 batch size × 2 T × 1 seed"
    assert sv.cell_label({"batch_size": 32, "alpha": 0.5}) == "batch size = 32, α = 0.5"
    assert sv.MORE_FIELDS["student"] == "Student" and sv.MORE_FIELDS["epochs"] == "Student epochs"
    at = sweep_page(**RECIPE)
    assert {box.key for box in at.text_input} >= {"sw_" + name for name in SWEEPABLE}  # a box for each


def test_a_finished_sweep_is_not_listed_as_a_run(monkeypatch):
    """Compare's and Learn's run pickers list runs: a sweep's job (whose results are its summary)
    is not one of them, its trials are."""
    from studio.runs import list_runs, load_results

    manager = JobManager(runner=lambda *a, **k: {"status": "done"},
                         sweep_runner=lambda spec, **k: {"status": "done", "rows": [], "sweep_id": "x"})
    monkeypatch.setattr(studio.manager, "JobManager", lambda **kwargs: manager)
    studio.manager.get_manager.clear()
    try:
        sweep_id = studio.manager.get_manager().submit_sweep(
            SweepSpec(RunConfig(dataset="digits"), {"temperature": [1.0, 2.0]}, [0]))
        for _ in range(200):
            if (snap := manager.snapshot(sweep_id)) and snap.finished:
                break
            time.sleep(0.05)
        assert manager.snapshot(sweep_id).results  # what the pickers used to list
        assert sweep_id not in [r["run_id"] for r in list_runs()] and load_results(sweep_id) is None
    finally:
        manager.shutdown()
        studio.manager.get_manager.clear()


def test_the_verdict_does_not_call_a_loss_the_best_gain():
    spec = SweepSpec(RunConfig(dataset="digits"), {"temperature": [1.0, 4.0]}, [0])
    cells = [dict(temperature=t, gain_mean=g, gain_std=None, n=1, kd_accuracy_mean=0.5) for t, g in ((1.0, -0.003),
                                                                                                  (4.0, -0.02))]
    said = sv.verdict(spec, cells)
    assert said.startswith("No cell gained from the teacher; the smallest loss: **T = 1**, -0.3 points")
    cells[0]["gain_mean"] = 0.01
    assert sv.verdict(spec, cells).startswith("Best: **T = 1**, a gain of +1.0 points")
