"""The Runs page, driven with Streamlit's AppTest against a store holding two runs."""
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from distill_core import paths
from distill_core.runs.store import RunStore
from tiny_runs import fake_run

ROOT = Path(__file__).resolve().parent.parent

# app.py's navigation, with the Runs page first (app.py gains it in the same way).
HARNESS = f"""
import streamlit as st
root = {str(ROOT)!r}
st.navigation([
    st.Page(root + "/pages/runs.py", title="Runs", url_path="runs", default=True),
    st.Page(root + "/pages/compare.py", title="Compare", url_path="compare"),
    st.Page(root + "/pages/distill.py", title="Distill", url_path="distill"),
    st.Page(root + "/pages/live.py", title="Live run", url_path="live"),
]).run()
"""


@pytest.fixture
def two_runs(studio_home):
    store = RunStore()
    fake_run(store, "20260101-090000-aaaa", paths.runs_dir(), temperature=2.0, alpha=0.5, kd_start=0.5)
    fake_run(store, "20260102-090000-bbbb", paths.runs_dir(), temperature=8.0, alpha=0.9, kd_start=0.7)
    return store


def app() -> AppTest:
    at = AppTest.from_string(HARNESS, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_table_lists_both_runs_and_filters(two_runs):
    at = app()
    assert at.title[0].value == "Runs"
    table = at.dataframe[0].value
    assert list(table["run_id"]) == ["20260102-090000-bbbb", "20260101-090000-aaaa"]  # newest first
    for column in ("date", "dataset", "teacher", "student", "T", "alpha", "method", "kd_acc", "scratch_acc", "gain",
                   "status", "epochs"):
        assert column in table.columns
    # What an exploration compares comes first, so a 1024-pixel laptop shows it without scrolling;
    # the date, which the run id says too, last
    order = list(at.dataframe[0].proto.column_order)
    assert order[:9] == ["run_id", "status", "T", "alpha", "epochs", "gain", "kd_acc", "scratch_acc", "teacher_acc"]
    assert order[-1] == "date"
    assert list(table["T"]) == [8.0, 2.0] and table["gain"].notna().all()
    # The status is the bare word (no emoji, which needs a font the viewer may lack), beside the run id.
    assert list(table.columns[:2]) == ["run_id", "status"] and list(table["status"]) == ["done", "done"]
    assert at.multiselect(key="runs_f_status").options == ["done"]
    at.text_input(key="runs_f_text").input("bbbb").run()
    assert list(at.dataframe[0].value["run_id"]) == ["20260102-090000-bbbb"]
    at.text_input(key="runs_f_text").input("").run()
    at.multiselect(key="runs_f_status").select("done").run()
    assert len(at.dataframe[0].value) == 2
    # A missing number (a run without a distilled student) shows as a dash, not Streamlit's "None".
    assert at.dataframe[0].proto.placeholder == "—"
    # The gain, right after the settings, wide enough for its sign: sized to its header, it clipped
    # "+8.3 pts" to what read as "-8.3 pts".
    assert list(table.columns).index("gain") == list(table.columns).index("epochs") + 1
    gain = json.loads(at.dataframe[0].proto.columns)["gain"]
    assert gain["width"] >= 90 and gain["label"] == "KD gain"
    # Every run used "kd": the method column gives its room to the accuracies.
    assert "method" not in at.dataframe[0].proto.column_order and "teacher_acc" in at.dataframe[0].proto.column_order


def test_methods_are_a_column_a_filter_and_an_overlay_on_one_pair(two_runs):
    fake_run(two_runs, "20260103-090000-cccc", paths.runs_dir(), method="dkd", extra={"b": 6.0}, kd_start=0.8)
    fake_run(two_runs, "20260103-100000-dddd", paths.runs_dir(), method="at", status="failed")
    at = app()
    table = at.dataframe[0].value
    assert list(table["method"]) == ["at", "dkd (b = 6)", "kd", "kd"]  # with the options that differ
    assert "method" in at.dataframe[0].proto.column_order  # shown now that runs differ in method
    assert at.multiselect(key="runs_f_method").options == ["at", "dkd", "kd"]
    at.multiselect(key="runs_f_method").select("dkd").run()
    assert list(at.dataframe[0].value["run_id"]) == ["20260103-090000-cccc"]
    at.multiselect(key="runs_f_method").unselect("dkd").run()
    at.button(key="runs_methods").click().run()  # the newest finished run of each method on this pair
    assert at.multiselect(key="runs_pick").value == ["20260103-090000-cccc", "20260102-090000-bbbb"]
    assert list(at.dataframe[1].value["method"]) == ["dkd (b = 6)", "kd"]
    legend = [t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert any("dkd (b = 6)" in name for name in legend) and any(" · kd · " in name for name in legend)


def test_overlay_and_results_of_several_runs(two_runs):
    at = app()
    assert at.multiselect(key="runs_pick").value == ["20260102-090000-bbbb", "20260101-090000-aaaa"]
    results = at.dataframe[1].value
    assert list(results["run_id"]) == ["20260102-090000-bbbb", "20260101-090000-aaaa"]
    assert results["kd_acc"].iloc[0] > results["kd_acc"].iloc[1]
    assert at.dataframe[1].proto.placeholder == "—"
    chart = at.get("plotly_chart")
    assert chart  # the overlaid validation curves
    at.multiselect(key="runs_pick").unselect("20260101-090000-aaaa").run()
    assert list(at.dataframe[1].value["run_id"]) == ["20260102-090000-bbbb"]


def test_downloads_are_offered(two_runs):
    at = app()
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Metrics (CSV)", "Config (JSON)", "Student (.pt)", "Student (.safetensors)", "Student (.onnx)"]


def test_a_run_whose_files_were_deleted_outside_the_app_offers_no_student_download(two_runs):
    import shutil

    shutil.rmtree(paths.runs_dir() / "20260102-090000-bbbb")  # the newest: the page shows it first
    at = app()
    assert not at.exception, [e.value for e in at.exception]
    buttons = {b.label: b for b in at.get("download_button")}
    assert [buttons[k].disabled for k in ("Student (.pt)", "Student (.safetensors)", "Student (.onnx)")] == [True] * 3
    help_text = buttons["Student (.pt)"].help  # the warning's sentence, as the caption below says it
    assert help_text.startswith("The distilled student's file cannot be read: ") and help_text.endswith(".")
    assert "has no student_kd checkpoint" in help_text
    assert [w.value for w in at.warning if w.value == help_text]
    assert f"{help_text} There is nothing to compress." in [c.value for c in at.caption]
    assert not [b for b in at.button if b.key in ("runs_onnx_check", "runs_compress_run")]


def test_downloads_are_named_as_the_cli_names_its_exports(two_runs):
    from distill_core.tools import export
    from studio.runs_view import downloads

    run = export.open_run("20260101-090000-aaaa", store=two_runs)
    names = [d["file_name"] for d in downloads(run.run_id, run.arch("student_kd"))]
    assert names == [export.default_name(run, fmt) for fmt in ("csv", "json", "pt", "safetensors", "onnx")]


def test_delete_asks_first_then_removes_rows_and_files(two_runs):
    at = app()
    at.selectbox(key="runs_one").select("20260101-090000-aaaa").run()
    at.button(key="runs_delete").click().run()
    assert two_runs.get_run("20260101-090000-aaaa") is not None  # nothing happens before the confirmation
    at.button(key="runs_delete_no").click().run()
    assert two_runs.get_run("20260101-090000-aaaa") is not None
    at.button(key="runs_delete").click().run()
    at.button(key="runs_delete_yes").click().run()
    assert not at.exception
    assert two_runs.get_run("20260101-090000-aaaa") is None
    assert not (paths.runs_dir() / "20260101-090000-aaaa").exists()
    assert list(at.dataframe[0].value["run_id"]) == ["20260102-090000-bbbb"]


def test_open_in_compare_and_rerun(two_runs):
    at = app()
    at.selectbox(key="runs_one").select("20260101-090000-aaaa").run()
    at.button(key="runs_open").click().run()
    assert at.query_params["run"] == ["20260101-090000-aaaa"] or at.query_params["run"] == "20260101-090000-aaaa"
    assert at.session_state["compare_run"] == "20260101-090000-aaaa"  # the Compare page picked it up
    assert at.title[0].value == "Compare" and not at.exception

    at = app()
    at.selectbox(key="runs_one").select("20260101-090000-aaaa").run()
    at.button(key="runs_rerun").click().run()
    assert at.session_state["draft"]["temperature"] == 2.0 and at.session_state["draft"]["alpha"] == 0.5
    assert at.session_state["draft"]["out"] is None  # a rerun writes a new run folder
    assert at.title[0].value == "Distill" and not at.exception
    assert at.slider(key="cfg_temperature").value == 2.0 and at.slider(key="cfg_alpha").value == 0.5


def test_onnx_check_and_compression_from_the_page(two_runs):
    at = app()
    at.button(key="runs_onnx_check").click().run()
    assert not at.exception and not at.error
    assert any("matches PyTorch" in c.value for c in at.caption)
    at.slider(key="runs_compress_sparsity").set_value(0.3).run()
    at.button(key="runs_compress_run").click().run()
    assert not at.exception and not at.error
    table = at.dataframe[2].value
    assert {"fp32", "fp16", "int8", "pruned-30%"} <= set(table["variant"])
    assert table["accuracy"].notna().all() and (table["size_kb"] > 0).all()
    assert at.dataframe[2].proto.placeholder == "—"  # the sparse estimate exists for pruned rows only


def test_a_cli_run_written_outside_the_runs_folder_opens_in_compare(two_runs, tmp_path):
    # `python -m distill_core run --out runs/demo`: the store knows its folder, the runs folder does not hold it
    fake_run(two_runs, "20260104-090000-dddd", tmp_path / "elsewhere")
    at = app()
    at.selectbox(key="runs_one").select("20260104-090000-dddd").run()
    assert not at.button(key="runs_open").disabled
    at.button(key="runs_open").click().run()
    assert at.title[0].value == "Compare" and not at.exception
    assert at.session_state["compare_run"] == "20260104-090000-dddd"
    assert not any("has no results" in w.value for w in at.warning), [w.value for w in at.warning]


def test_an_interrupted_run_shows_what_it_recorded(two_runs):
    from tiny_runs import history

    from distill_core import RunConfig

    two_runs.create_run("20260103-090000-cccc", RunConfig(dataset="digits", teacher="cnn_small", student="cnn_tiny"),
                        status="running", pid=999999999)
    for row in history(2, 0.5, 0.1):
        two_runs.add_epoch("20260103-090000-cccc", "teacher", row)
    at = app()
    table = at.dataframe[0].value
    assert table["status"].iloc[0] == "interrupted"
    at.selectbox(key="runs_one").select("20260103-090000-cccc").run()
    assert any("interrupted" in w.value for w in at.warning)
    assert at.button(key="runs_open").disabled  # Compare needs results
    assert [b.disabled for b in at.get("download_button")] == [False, False, True, True, True]


def test_an_overlay_of_three_runs_draws_each_of_them(two_runs):
    import json

    fake_run(two_runs, "20260103-090000-cccc", paths.runs_dir(), temperature=4.0, alpha=0.7, kd_start=0.6)
    at = app()
    three = ["20260103-090000-cccc", "20260102-090000-bbbb", "20260101-090000-aaaa"]
    at.multiselect(key="runs_pick").set_value(three).run()
    assert not at.exception
    assert list(at.dataframe[1].value["run_id"]) == three
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = " ".join(str(trace.get("name", "")) + str(trace.get("legendgroup", "")) for trace in spec["data"])
    assert all(run_id in names for run_id in three), names
    assert "20260103-090000-cccc · T 4, α 0.7 · distilled student" in names  # a sweep's runs told apart
    assert all(len(trace["x"]) > 0 for trace in spec["data"])


def test_a_damaged_run_store_is_explained(studio_home):
    paths.home().mkdir(parents=True, exist_ok=True)
    (paths.home() / "runs.db").write_bytes(b"not a database" * 200)
    at = app()
    assert at.title[0].value == "Runs"
    assert any("is damaged" in e.value and "runs --rebuild" in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="runs_rebuild")


def test_a_deleted_run_leaves_this_servers_pages(two_runs, monkeypatch):
    """The job manager keeps finished jobs in memory: a deleted run must not live on there (on
    Compare, or written back into its folder by "Measure"), whether the Runs page or the CLI
    deleted it."""
    import studio.manager
    from distill_core import RunConfig
    from distill_core.runs.jobs import JobManager
    from studio import runs as studio_runs

    kept = json.loads((paths.runs_dir() / "20260101-090000-aaaa" / "results.json").read_text())
    studio.manager.get_manager.clear()
    monkeypatch.setattr(studio.manager, "JobManager",
                        lambda **kw: JobManager(runner=lambda config, **_: dict(kept), **kw))
    manager = studio.manager.get_manager()
    try:
        job = manager.submit(RunConfig())  # finishes at once with that run's results and folder
        assert manager.wait(job, timeout=10).status == "done"
        assert job in [r["run_id"] for r in studio_runs.list_runs()] and studio_runs.load_results(job)
        forgotten = []
        monkeypatch.setattr(manager, "forget", lambda run_id: forgotten.append(run_id) or True)
        at = app()
        at.selectbox(key="runs_one").select("20260101-090000-aaaa").run()
        at.button(key="runs_delete").click().run()
        at.button(key="runs_delete_yes").click().run()
        assert not at.exception and forgotten == ["20260101-090000-aaaa"]
        # the job whose folder went with it (as after `runs --delete` from another process) is gone too
        assert job not in [r["run_id"] for r in studio_runs.list_runs()] and studio_runs.load_results(job) is None
    finally:
        manager.shutdown()
        studio.manager.get_manager.clear()


def test_the_overlay_ticks_whole_epochs(two_runs):
    from studio import runs_view as rv

    fig = rv.curves_figure(two_runs, ["20260101-090000-aaaa"], ["student_kd"], {})
    assert fig.data and fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tick0 == 1
    # a run's colour is no role's: two runs in teacher blue and distilled green read as teacher and student
    from studio.style import ROLE_COLOR
    assert not set(rv.PALETTE) & set(ROLE_COLOR.values())
    assert rv.column_config()["T"]["type_config"]["format"] == "%g"  # T 0.25 is not 0.3
