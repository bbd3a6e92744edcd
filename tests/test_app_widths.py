"""What the pages show at a 1024-pixel laptop's width: short labels and values that fit, with the
full wording in their help, and layouts that wrap instead of cutting text.

The widths themselves are seen in a browser (screenshots at 1024 and 1440 px); these tests pin the
choices that made the text fit, so that a later change to a label says why it is as it is.
"""
import json
from pathlib import Path

from distill_core import GAIN_WORDS, RunConfig, comparison_headline, gain_verdict, paths
from distill_core.runs.store import RunStore
from streamlit.proto.Metric_pb2 import Metric
from test_app_pages import TINY, engine, manager, navigation_mode, page, texts  # noqa: F401 - fixtures
from tiny_runs import fake_run

RUN = "20260101-090000-wide"


def stored_run() -> dict:
    return fake_run(RunStore(), RUN, paths.runs_dir())


# ---- Distill ------------------------------------------------------------------------------------
def test_distill_dataset_box_names_the_data_and_says_its_sizes_under_it(engine):
    at = page("pages/distill.py", dataset="mnist5k")
    box = at.selectbox(key="cfg_dataset")
    assert "mnist5k  ·  offline" in box.options and "cifar10  ·  download" in box.options
    assert not any("train /" in o for o in box.options)  # the sizes were cut in the box ("4,000 train / 1,0…")
    assert "offline: comes with the studio" in box.help and "under the box" in box.help
    assert "4,000 train / 1,000 val images." in texts(at)
    at = page("pages/distill.py", dataset="cifar10")
    assert "45,000 train / 5,000 val / 10,000 test images." in texts(at)  # beside where it downloads from


def test_distill_formula_has_the_page_s_width_and_the_config_button_its_whole_name(engine):
    at = page("pages/distill.py", method="dkd")
    # The formula is under the method's options at the page's width, not in a column beside them
    # (287 px at 1024); the options share a row that wraps.
    assert any(r"\mathrm{NCKD}" in latex.value for latex in at.latex)
    assert all(type(p).__name__ != "Column" for latex in at.latex for p in _parents(at, latex))
    assert ".st-key-method_knobs > div" in "".join(h.proto.body for h in at.get("html"))
    assert [b.proto.label for b in at.get("download_button")] == ["config.json"]


def _parents(at, element) -> list:
    """The blocks above ``element`` in the page's tree, innermost first."""
    found = []

    def walk(node, trail):
        for child in getattr(node, "children", {}).values():
            if child is element:
                found.extend(reversed(trail))
                return True
            if walk(child, trail + [child]):
                return True
        return False

    walk(at._tree, [])
    return found


# ---- Compare ------------------------------------------------------------------------------------
def test_compare_splits_the_side_by_side_table_and_keeps_each_card_s_terms(engine, studio_home):
    results = stored_run()
    at = page("pages/compare.py", run=RUN)
    scores, costs = at.table[0].value, at.table[1].value
    assert list(scores.columns) == ["model", "architecture", "epochs", "val accuracy (last epoch)",
                                    "val accuracy (best epoch)"]
    assert list(costs.columns) == ["model", "params", "size (fp32)", "FLOPs", "latency b1, CPU", "latency b64, CPU"]
    assert list(scores["model"]) == list(costs["model"])
    cards = {m.label: m.proto for m in at.metric}
    faster = cards["Faster, batch 1 (CPU)"]
    assert faster.delta.startswith("batch ") and faster.delta.endswith(", fp32") and "thread" in faster.delta
    assert cards["Accuracy vs the teacher"].delta == "validation, last epoch"
    # The gain card's colour and arrow follow the verdict: "distillation hurt" was green, pointing up.
    gain = cards["KD gain over scratch"]
    verdict = gain_verdict(comparison_headline(results)["kd_gain_points"])
    assert gain.delta == GAIN_WORDS[verdict]
    expected = {"helped": (Metric.MetricColor.GREEN, Metric.MetricDirection.UP),
                "hurt": (Metric.MetricColor.RED, Metric.MetricDirection.DOWN),
                "unclear": (Metric.MetricColor.GRAY, Metric.MetricDirection.NONE)}[verdict]
    assert (gain.color, gain.direction) == expected
    # The confusion matrices wrap, two to a row where three would be too narrow to read their cells.
    assert ".st-key-confusion_matrices > div" in "".join(h.proto.body for h in at.get("html"))


def test_the_kd_gain_per_class_title_is_two_short_lines():
    from studio.charts import class_gain_figure

    title = class_gain_figure([1.0, -2.0], ["cat", "dog"]).layout.title.text
    first, second = title.split("<br>")  # each shorter than half a 1024-pixel page
    assert first == "KD gain per class (points)" and "validation split, last epoch" in second


def test_compression_notes_are_said_once_per_variant_under_the_table():
    from studio.runs_view import compression_column_config, variant_notes

    rows = [{"model": m, "variant": v, "engine": e, "notes": n, "latency_ms": {}}
            for m in ("teacher", "student_kd")
            for v, e, n in (("fp32", "torch", "as trained"), ("int8", "onnxruntime", "static int8, calibrated"))]
    said = variant_notes(rows)
    assert said.splitlines() == ["**fp32, torch**: as trained  ", "**int8, onnxruntime**: static int8, calibrated"]
    assert "notes" not in compression_column_config(rows)  # not a last column, cut at 1440 px


# ---- Runs ---------------------------------------------------------------------------------------
def test_runs_filters_say_all_and_the_table_starts_with_what_a_user_compares(engine, studio_home):
    stored_run()
    at = page("pages/runs.py")
    for name in ("dataset", "teacher", "student", "method", "status"):
        box = at.multiselect(key=f"runs_f_{name}")
        assert box.placeholder == "All" and "Empty: every run" in box.help, name
    order = list(at.dataframe[0].proto.column_order)
    assert order[:3] == ["run_id", "status", "T"] and order[-1] == "date"  # the run id says the date too
    config = json.loads(at.dataframe[0].proto.columns)
    assert config["run_id"]["pinned"] is True  # in sight while the later columns are scrolled to
    models = at.get("button_group")[0]  # pills: every model whole, chosen or not
    assert [o.content for o in models.proto.options] == ["distilled student", "scratch student", "teacher"]


# ---- Live ---------------------------------------------------------------------------------------
def test_live_header_gives_the_run_id_a_line_of_its_own(engine):
    job = manager().submit(RunConfig(**TINY))
    assert engine.started.wait(10)
    at = page("pages/live.py", job=job)
    (head,) = [m.value for m in at.markdown if f"`{job}`" in m.value]
    assert head.endswith(f"  \nrun `{job}`")


def test_live_numbers_go_two_by_two_in_a_narrow_frame():
    html = (Path(__file__).resolve().parent.parent / "studio" / "web" / "live_view.html").read_text()
    assert "@media (max-width: 880px) { #metrics { grid-template-columns: repeat(2, minmax(0, 1fr)); } }" in html
