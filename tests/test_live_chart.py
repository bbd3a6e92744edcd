"""The Live page's chart specs and the component that draws them in place (studio.live_chart)."""
import re

import plotly.graph_objects as go

from distill_core import paths
from studio import live_chart
from studio.charts import accuracy_figure, ema, loss_figure

STEPS = {"teacher": [{"x": 0.5, "loss": 2.0}, {"x": 1.0, "loss": 1.0}],
         "student_kd": [{"x": 0.5, "loss": 3.0, "kd": 2.0, "ce": 1.0}, {"x": 1.0, "loss": 2.0, "kd": 1.0, "ce": 2.0}]}
HISTORY = {"teacher": [{"epoch": 1, "val_accuracy": 0.9, "train_accuracy": 0.8}],
           "student_kd": [{"epoch": 1, "val_accuracy": 0.7, "train_accuracy": None, "train_kd": 1.0, "train_ce": 1.0}]}


def traces(spec: dict) -> dict[str, dict]:
    return {t["name"]: t for t in spec["data"]}


def test_live_specs_are_valid_plotly_figures():
    # Built as plain dicts for speed; plotly's own validation must still accept every one of them.
    for spec in (loss_figure(STEPS, HISTORY, 0.9), loss_figure({}, {}, 0.5), accuracy_figure(HISTORY),
                 accuracy_figure({})):
        go.Figure(spec)


def test_loss_parts_are_the_weighted_terms():
    spec = loss_figure(STEPS, HISTORY, alpha=0.75, smoothing=0.0)
    by_name = traces(spec)
    assert by_name["α·T²·KL (soft targets)"]["y"] == [0.75 * 2.0, 0.75 * 1.0]
    assert by_name["(1−α)·CE (true labels)"]["y"] == [0.25 * 1.0, 0.25 * 2.0]
    assert by_name["teacher: loss"]["y"] == [2.0, 1.0]


def test_loss_parts_fall_back_to_epoch_averages():
    steps = {"student_kd": [{"x": 0.5, "loss": 3.0}]}  # an engine that reports no per-step parts
    by_name = traces(loss_figure(steps, HISTORY, alpha=0.5))
    assert by_name["α·T²·KL (soft targets)"]["x"] == [1]
    assert by_name["α·T²·KL (soft targets)"]["mode"] == "lines+markers"


def test_smoothing_and_empty_charts():
    assert ema([1.0, None, 3.0], 0.0) == [1.0, None, 3.0]
    assert ema([2.0, 2.0], 0.9) == [2.0, 2.0]  # debiased: a constant stays constant
    smoothed = traces(loss_figure(STEPS, {}, 0.9, smoothing=0.5))["teacher: loss"]["y"]
    assert 1.0 < smoothed[1] < 2.0
    assert "annotations" in loss_figure({}, {}, 0.9)["layout"]
    acc = traces(accuracy_figure(HISTORY))
    assert acc["teacher: val"]["y"] == [90.0] and acc["teacher: train"]["y"] == [80.0]
    assert "distilled student: train" not in acc  # no train accuracy reported, no line


def test_component_folder_holds_the_page_and_plotly():
    folder = live_chart.assets_folder(paths.home())
    page = (folder / "index.html").read_text()
    assert page == live_chart.PAGE.read_text()
    for src in re.findall(r'src="([^"]+)"', page):  # everything the page loads is served beside it
        assert (folder / src).is_file(), src
    assert (folder / "plotly.min.js").stat().st_size == live_chart.PLOTLY_JS.stat().st_size
    (folder / "index.html").write_text("stale")  # an older studio's page is replaced
    live_chart._copy_if_changed(live_chart.PAGE, folder / "index.html")
    assert (folder / "index.html").read_text() == page
