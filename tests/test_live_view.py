"""The Live page's frame: the chart specs, the feed the job manager publishes, and the frame's script.

The script's smoothing runs in a real Chromium (skipped outside CI when there is none, as the
browser test is); the frame's polling and reruns are driven end to end by tests/test_e2e_browser.py.
"""
import json
import math
import os
import re
import threading
import time
from pathlib import Path

import plotly.graph_objects as go
import pytest

from distill_core import RunConfig, paths
from distill_core.events import EPOCH, PHASE, STEP, Event
from distill_core.runs.jobs import JobManager
from studio import live_feed, live_view
from studio.charts import SMOOTH, accuracy_figure, log_range, loss_figure, round_top, stage_spans

KD, CE = "α·T²·KL (soft targets)", "(1−α)·CE (true labels)"
# Terms as the engine reports them: each step's contribution (weight x value), by name, and labels.
STEPS = {"teacher": [{"x": 0.5, "loss": 2.0}, {"x": 1.0, "loss": 1.0}],
         "student_kd": [{"x": 0.5, "loss": 3.0, "terms": {"kd": 1.0, "ce": 0.5}},
                        {"x": 1.0, "loss": 2.0, "terms": {"kd": 0.5, "ce": 1.0}}]}
LABELS = {"student_kd": {"kd": KD, "ce": CE}}
HISTORY = {"teacher": [{"epoch": 1, "val_accuracy": 0.9, "train_accuracy": 0.8}],
           "student_kd": [{"epoch": 1, "val_accuracy": 0.7, "train_accuracy": None, "train_kd": 1.0, "train_ce": 1.0,
                           "terms": [{"name": "kd", "label": KD, "weight": 0.5, "contribution": 0.5},
                                     {"name": "ce", "label": CE, "weight": 0.5, "contribution": 0.5}]}]}
CHROMIUM = "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TINY = RunConfig(dataset="digits", teacher="cnn_small", student="cnn_tiny", epochs=1, teacher_epochs=1, alpha=0.5)


def traces(spec: dict) -> dict[str, dict]:
    return {t["name"]: t for t in spec["data"]}


# ---- chart specs ---------------------------------------------------------------------------------
def test_live_specs_are_valid_plotly_figures():
    # Built as plain dicts for speed; plotly's own validation must still accept every one of them.
    spans = [(0, 1, "hints")]
    for spec in (loss_figure(STEPS, HISTORY, term_labels=LABELS), loss_figure({}, {}), accuracy_figure(HISTORY),
                 accuracy_figure({}), loss_figure(STEPS, HISTORY, spans=spans), accuracy_figure(HISTORY, spans=spans)):
        go.Figure(spec)


def test_loss_terms_are_drawn_as_the_method_weighed_them():
    by_name = traces(loss_figure(STEPS, HISTORY, term_labels=LABELS))
    assert by_name[KD]["y"] == [1.0, 0.5] and by_name[CE]["y"] == [0.5, 1.0]  # as reported: no alpha applied here
    assert by_name["teacher: loss"]["y"] == [2.0, 1.0]  # raw: each viewer smooths in the frame
    assert all(t.get("meta") == SMOOTH for t in by_name.values())  # per-step lines are smoothed
    # Whatever terms a method reports, in its order and with its labels: DKD's three.
    dkd = {"student_kd": [{"x": 1.0, "loss": 2.6, "terms": {"ce": 2.0, "tckd": 0.1, "nckd": 0.5}}]}
    names = [t["name"] for t in loss_figure(dkd, {}, term_labels={"student_kd": {
        "ce": "CE (true labels)", "tckd": "a·TCKD (target class)", "nckd": "b·NCKD (other classes)"}})["data"]]
    assert names == ["distilled student: loss", "CE (true labels)", "a·TCKD (target class)", "b·NCKD (other classes)"]


def test_loss_terms_fall_back_to_epoch_averages():
    steps = {"student_kd": [{"x": 0.5, "loss": 3.0}]}  # an engine that reports no per-step terms
    by_name = traces(loss_figure(steps, HISTORY))
    kd = by_name[KD]
    assert kd["x"] == [1] and kd["y"] == [0.5] and kd["mode"] == "lines+markers"
    assert "meta" not in kd  # epoch averages are not smoothed


def test_a_methods_own_stage_is_a_shaded_band_on_both_charts():
    rows = [{"epoch": e, "val_accuracy": 0.1 * e, "stage": "hints"} for e in (1, 2)] + [{"epoch": 3, "val_accuracy": 0.5}]
    steps = {"student_kd": [{"x": 2.5, "loss": 1.0, "terms": {"ce": 1.0}}]}
    assert stage_spans([], rows) == [(0, 2, "hints")]
    assert stage_spans([{"x": 0.5, "stage": "hints"}], []) == [(0, 1, "hints")]  # the epoch under way
    for spec in (loss_figure(steps, {"student_kd": rows}, spans=stage_spans([], rows)),
                 accuracy_figure({"student_kd": rows}, spans=stage_spans([], rows))):
        band, = spec["layout"]["shapes"]
        assert (band["x0"], band["x1"]) == (0, 2)
        assert any(a["text"] == "hints only" for a in spec["layout"]["annotations"])
    assert "shapes" not in loss_figure(steps, {})["layout"]


def test_a_phase_with_one_loss_point_is_drawn_as_a_marker():
    """A short phase reports a single point; as a line alone it would be in the legend only."""
    steps = {"teacher": STEPS["teacher"], "student_scratch": [{"x": 1.0, "loss": 2.2}]}
    by_name = traces(loss_figure(steps, HISTORY))
    assert by_name["scratch student: loss"]["mode"] == "lines+markers"
    assert by_name["teacher: loss"]["mode"] == "lines"  # two points make a line


def test_the_loss_chart_carries_whole_decades_for_a_log_axis():
    assert loss_figure(STEPS, HISTORY)["layout"]["meta"]["log_range"] == [-1, 1]  # 0.5 .. 3.0
    assert log_range([14.0, 0.03]) == [-2, 2] and log_range([1.0]) == [0, 1] and log_range([]) == [-2, 1]


def test_loss_axes_have_fixed_ranges_that_change_only_when_outgrown():
    layout = loss_figure(STEPS, HISTORY, epochs=8)["layout"]
    assert layout["xaxis"]["range"] == [0, 8] and layout["yaxis"]["range"] == [0, 3.5]  # top loss 3.0
    steps = {"teacher": [{"x": 0.5, "loss": 2.9}, {"x": 9.5, "loss": 1.0}]}
    layout = loss_figure(steps, {}, epochs=8)["layout"]
    assert layout["xaxis"]["range"] == [0, 9.5] and layout["yaxis"]["range"] == [0, 3.5]  # 2.9 has room
    assert [round_top(v) for v in (2.3, 14.8, 0.09, 1.0, 0.0)] == [2.5, 16, 0.1, 1.2, 1.0]
    layout = accuracy_figure(HISTORY, epochs=5)["layout"]  # lowest accuracy 70 %
    assert layout["xaxis"]["range"] == [0, 5] and layout["yaxis"]["range"] == [60, 102]
    assert accuracy_figure({}, epochs=5)["layout"]["yaxis"]["range"] == [0, 102]


def test_empty_charts_and_diverged_losses():
    assert "annotations" in loss_figure({}, {})["layout"]
    acc = traces(accuracy_figure(HISTORY))
    assert acc["teacher: val"]["y"] == [90.0] and acc["teacher: train"]["y"] == [80.0]
    assert "distilled student: train" not in acc  # no train accuracy reported, no line
    nan = {"teacher": [{"x": 0.5, "loss": 2.0}, {"x": 1.0, "loss": math.nan}, {"x": 1.5, "loss": math.inf}]}
    assert traces(loss_figure(nan, {}))["teacher: loss"]["y"] == [2.0, None, None]  # gaps, valid JSON


# ---- the feed ------------------------------------------------------------------------------------
class Script:
    """A fake engine: a phase, two steps and an epoch, then it waits to be let go.

    ``next_phase`` starts the second phase; with ``obey_stop`` cleared, a stopped job stays
    "stopping" until it is set again (a long batch)."""

    def __init__(self):
        self.started, self.release = threading.Event(), threading.Event()
        self.next_phase, self.obey_stop = threading.Event(), threading.Event()
        self.obey_stop.set()

    def __call__(self, config, on_event=None, stop=None, run_id=None):
        on_event(Event(PHASE, "teacher", {"phase": "teacher", "index": 0, "total": 3, "epochs": 2}))
        for i in (1, 2):
            on_event(Event(STEP, "teacher", {"epoch": 1, "step": i, "steps": 2, "loss": 1.0 / i,
                                             "images_per_s": 1234.0, "progress": 0.1 * i}))
        on_event(Event(EPOCH, "teacher", {"epoch": 1, "train_accuracy": 0.5, "val_accuracy": 0.6, "epochs": 2,
                                          "progress": 0.25}))
        self.started.set()
        phase_two = False
        while not self.release.wait(0.01):
            if self.next_phase.is_set() and not phase_two:
                phase_two = True
                on_event(Event(PHASE, "student_scratch", {"phase": "student_scratch", "index": 1, "total": 3,
                                                          "epochs": 2}))
            if stop.is_set() and self.obey_stop.is_set():
                return {"status": "cancelled"}
        return {"status": "done", "seconds": 75.0}  # the engine's clock, not this test's wall time


def read_feed(job_id: str) -> dict:
    return json.loads((live_feed.feed_folder() / f"{job_id}.json").read_text())


def wait_for(check, timeout: float = 10):
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def test_the_manager_publishes_each_jobs_feed_where_the_frame_reads_it():
    script = Script()
    manager = JobManager(runner=script, publish=live_feed.publish, publish_every=0.05)
    try:
        first = manager.submit(TINY.replace(teacher_epochs=3))
        second = manager.submit(TINY.replace(seed=1))
        assert script.started.wait(10)
        # Published every 0.05 s: a feed written before the first job left the queue said place 2.
        wait_for(lambda: (live_feed.feed_folder() / f"{second}.json").exists()
                 and read_feed(second)["stage"] == "queued|1")
        assert read_feed(second)["label"] == ("Waiting for the runs before it: place 1 in the queue; it starts by "
                                             "itself when they finish")
        wait_for(lambda: read_feed(first)["label"] == "Phase 1 of 3: teacher · epoch 2 of 2")
        running = read_feed(first)
        assert running["stage"] == "running|None"
        metrics = dict(running["metrics"])
        assert list(metrics) == ["Progress", "Time left", "Speed", "Elapsed"]
        assert metrics["Progress"] == "25 %" and metrics["Speed"] == "1,234 img/s"
        assert running["caption"].startswith("2 loss points · 1 epoch logged")
        assert [t["y"] for t in running["loss"]["data"]] == [[1.0, 0.5]]
        assert running["loss"]["layout"]["xaxis"]["range"] == [0, 3]  # the teacher trains longest
        assert running["accuracy"]["data"][0]["y"] == [60.0] and not running["finished"]
        # A new phase, and Stop pressed: the label says so, the stage (the page's rerun) stays.
        script.next_phase.set()
        wait_for(lambda: read_feed(first)["label"].startswith("Phase 2 of 3: "))
        script.obey_stop.clear()
        manager.cancel(first)
        wait_for(lambda: read_feed(first)["label"].startswith("Stopping after the current batch"))
        assert read_feed(first)["stage"] == "running|None" and not read_feed(first)["finished"]
        script.obey_stop.set()
        wait_for(lambda: read_feed(first)["finished"])  # the final state, with a new stage
        assert read_feed(first)["label"].startswith("Stopped after ") and read_feed(first)["stage"] == "cancelled|None"
        wait_for(lambda: read_feed(second)["stage"] == "running|None")  # the queue moved
        script.release.set()
        wait_for(lambda: read_feed(second)["finished"])
        done = read_feed(second)  # the engine's clock, as the Compare page says, in both places
        assert done["label"] == "Finished in 1 min 15 s" and ["Elapsed", "1 min 15 s"] in done["metrics"]
        assert {p.name for p in live_feed.feed_folder().iterdir()} == {f"{first}.json", f"{second}.json"}
    finally:
        script.release.set()
        manager.shutdown()


def test_stale_feeds_are_removed(tmp_path):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text("{}")
    new.write_text("{}")
    os.utime(old, (time.time() - 8 * 86400,) * 2)
    assert live_feed.remove_stale(tmp_path) == 1
    assert not old.exists() and new.exists()


def test_component_folder_holds_the_page_its_script_and_plotly():
    folder = live_view.assets_folder(paths.home())
    page = (folder / "index.html").read_text()
    assert page == live_view.ASSETS["index.html"].read_text()
    for src in re.findall(r'src="([^"]+)"', page):  # everything the page loads is served beside it
        assert (folder / src).is_file(), src
    plotly_js = (folder / live_view.PLOTLY_JS).read_bytes()
    assert plotly_js == live_view.ASSETS[live_view.PLOTLY_JS].read_bytes()
    assert b"plotly.js (basic - minified) v4.1.1" in plotly_js[:200]  # the version the comment names
    assert live_feed.feed_folder() == folder / live_view.FEED
    (folder / "index.html").write_text("stale")  # an older studio's page is replaced
    live_view._copy_if_changed(live_view.ASSETS["index.html"], folder / "index.html")
    assert (folder / "index.html").read_text() == page


# ---- the frame's script, in a browser ------------------------------------------------------------
@pytest.fixture(scope="module")
def js_page(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing (CI=true: the browser tests must run)")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            env={**os.environ, "HOME": str(tmp_path_factory.mktemp("chromium_home"))})
        page = browser.new_page()
        page.set_content('<body><div id="loss"></div><div id="ref"></div></body>')
        page.add_script_tag(content=live_view.ASSETS[live_view.PLOTLY_JS].read_text())
        page.add_script_tag(content=live_view.ASSETS["live_view.js"].read_text())
        yield page
        browser.close()


def test_the_frames_smoothing_is_a_debiased_ema(js_page):
    assert js_page.evaluate("ema([1, null, 3], 0)") == [1, None, 3]
    assert js_page.evaluate("ema([2, 2, 2], 0.9)") == pytest.approx([2, 2, 2])  # debiased: constant stays
    # by hand: avg 0.5*0+0.5*2 = 1 over weight 0.5 -> 2; avg 0.5*1+0.5*1 = 1 over weight 0.75 -> 4/3
    assert js_page.evaluate("ema([2, 1], 0.5)") == pytest.approx([2, 4 / 3])
    spec = loss_figure(STEPS, HISTORY)
    smoothed = js_page.evaluate("([data, s]) => smoothed(data, s)", [spec["data"], 0.5])
    assert [t["y"] for t in smoothed] == [pytest.approx([2, 4 / 3]), pytest.approx([3, 7 / 3]),
                                          pytest.approx([1, 2 / 3]), pytest.approx([0.5, 5 / 6])]
    markers = loss_figure({"student_kd": [{"x": 0.5, "loss": 3.0}]}, HISTORY)["data"]
    assert js_page.evaluate("([data, s]) => smoothed(data, s)", [markers, 0.9])[1:] == markers[1:]  # epoch points


def test_the_frame_puts_the_loss_on_a_log_axis_when_asked(js_page):
    spec = loss_figure(STEPS, HISTORY, epochs=4)
    axis = js_page.evaluate("""async ([spec]) => {
        const el = document.getElementById("loss"), out = [];
        for (const log of [false, true, false]) {
          view.args = {smoothing: 0, log_scale: log};
          draw("loss", spec, [0, log]);
          out.push([el.layout.yaxis.type, el.layout.yaxis.range]);
        }
        return out;
    }""", [spec])
    linear = ["linear", spec["layout"]["yaxis"]["range"]]
    assert axis == [linear, ["log", [-1, 1]], linear]


def test_the_frame_moves_lines_in_place_until_the_chart_changes_shape(js_page):
    # Points added under the same axes: Plotly.animate moves the lines, and they end up where a
    # full Plotly.react would draw them. A new trace (the next phase): a full redraw.
    few = loss_figure({"teacher": STEPS["teacher"]}, {}, epochs=4)
    more = loss_figure({"teacher": STEPS["teacher"] + [{"x": 1.5, "loss": 0.7}]}, {}, epochs=4)
    phase = loss_figure({**STEPS, "teacher": STEPS["teacher"] + [{"x": 1.5, "loss": 0.7}]}, {}, epochs=4)
    drawn = lambda layout: {k: v for k, v in layout.items() if k != "meta"}  # the frame draws all but meta
    assert drawn(few["layout"]) == drawn(more["layout"])
    calls = js_page.evaluate("""async ([few, more, phase]) => {
        const calls = [], real = {react: Plotly.react, animate: Plotly.animate};
        for (const name of ["react", "animate"]) {
          Plotly[name] = (...args) => { calls.push(name); return (window.last = real[name](...args)); };
        }
        view.args = {smoothing: 0};
        const lines = (id) => [...document.querySelectorAll("#" + id + " .scatterlayer path.js-line")]
          .map((p) => p.getAttribute("d"));
        draw("loss", few, 0); await window.last;
        draw("loss", more, 0); await window.last;
        await real.react("ref", more.data, more.layout);
        const moved = lines("loss"), drawn = lines("ref");
        draw("loss", phase, 0); await window.last;
        Object.assign(Plotly, real);
        return {calls, same: moved.length === 1 && moved[0] === drawn[0], traces: lines("loss").length};
    }""", [few, more, phase])
    assert calls == {"calls": ["react", "animate", "react"], "same": True, "traces": 4}


def test_a_teacher_trained_before_is_a_flat_line_that_leaves_the_axis_to_the_students():
    cached = [{"epoch": e, "val_accuracy": 0.9 + e / 100, "train_accuracy": 0.95} for e in range(1, 7)]
    student = [{"epoch": 1, "val_accuracy": 0.5, "train_accuracy": 0.4}]
    spec = accuracy_figure({"teacher": cached, "student_kd": student}, epochs=2,
                           trained_before={"teacher": (0.96, "cache")})
    assert spec["layout"]["xaxis"]["range"] == [0, 2]  # not the cached teacher's 6 epochs
    lines = {t["name"]: t for t in spec["data"]}
    flat = lines["teacher: val (from the cache)"]
    assert flat["x"] == [0, 2] and flat["y"] == [96.0, 96.0]
    assert not any(name.startswith("teacher: ") and name != flat["name"] for name in lines)


def test_the_feed_draws_a_cached_teacher_as_trained_before():
    from distill_core.events import RESULT
    from distill_core.runs.job_state import Job

    job = Job("j", RunConfig(epochs=2, teacher_epochs=6), "cpu", "key")
    history = [{"epoch": e, "val_accuracy": 0.9, "train_accuracy": 0.95} for e in range(1, 7)]
    job.observe(Event(RESULT, "teacher", {"model": "teacher", "entry": {"source": "cache", "accuracy": 0.96,
                                                                       "history": history}}))
    feed = live_feed.feed(job.snapshot(None))
    assert feed["accuracy"]["layout"]["xaxis"]["range"] == [0, 2]
    assert [t["name"] for t in feed["accuracy"]["data"]] == ["teacher: val (from the cache)"]
    assert "0 epochs logged" in feed["caption"]  # not the cached teacher's six


def test_the_feed_draws_the_terms_a_method_reported_and_names_its_stage():
    from distill_core.runs.job_state import Job

    job = Job("j", RunConfig(method="fitnet", extra={"hint_epochs": 1}, epochs=2), "cpu", "key")
    job.observe(Event(PHASE, "student_kd", {"phase": "student_kd", "index": 2, "total": 3, "epochs": 2}))
    terms = [{"name": "ce", "label": "0·CE (true labels)", "weight": 0.0, "contribution": 0.0},
             {"name": "hint", "label": "w·MSE (hint)", "weight": 100.0, "contribution": 4.2}]
    job.observe(Event(STEP, "student_kd", {"epoch": 1, "step": 1, "steps": 2, "loss": 4.2, "terms": terms,
                                           "stage": "hints", "progress": 0.7}))
    feed = live_feed.feed(job.snapshot(None))
    assert "hints only" in feed["label"]
    lines = {t["name"]: t for t in feed["loss"]["data"]}
    assert lines["w·MSE (hint)"]["y"] == [4.2] and lines["0·CE (true labels)"]["y"] == [0.0]
    assert feed["loss"]["layout"]["shapes"][0]["x1"] == 1 and feed["accuracy"]["layout"]["shapes"]


def test_a_long_run_ticks_about_ten_epochs_not_each():
    rows = [{"epoch": e, "val_accuracy": 0.5} for e in range(1, 61)]
    assert accuracy_figure({"student_kd": rows}, epochs=60)["layout"]["xaxis"]["dtick"] == 6
    assert accuracy_figure({"student_kd": rows[:3]}, epochs=8)["layout"]["xaxis"]["dtick"] == 1
