"""A user's walk through Compare, Live, Distill and Runs: what each page says, once, and where."""
import json

import pytest
from streamlit.testing.v1 import AppTest

from distill_core import RunConfig, paths
from distill_core.runs.store import RunStore
from test_app_pages import engine, navigation_mode, page, texts  # noqa: F401 - fixtures
from tiny_runs import fake_run

TINY = dict(dataset="digits", teacher="cnn_small", student="cnn_tiny", epochs=1, teacher_epochs=1,
            latency_repeats=5)


@pytest.fixture
def done_then_cancelled(studio_home):
    """A finished run, then a newer one cancelled before any model finished."""
    store = RunStore()
    fake_run(store, "20260101-090000-done", paths.runs_dir())
    cancelled = fake_run(store, "20260102-090000-stop", paths.runs_dir(), status="cancelled")
    for role in ("teacher", "student_scratch", "student_kd", "comparison"):
        cancelled.pop(role, None)
    cancelled["started_at"] += 100
    (paths.runs_dir() / "20260102-090000-stop" / "results.json").write_text(json.dumps(cancelled))
    return store


# ---- 1: Compare opens on a run that has something to compare ----------------------------------
def test_compare_opens_on_the_newest_finished_run_not_a_newer_cancelled_one(engine, done_then_cancelled):
    at = page("pages/compare.py")
    assert at.selectbox(key="compare_run").value == "20260101-090000-done"
    assert not at.warning
    at = page("pages/compare.py", run="20250101-000000-gone")  # a link to a run deleted since
    assert at.selectbox(key="compare_run").value == "20260101-090000-done"
    said = [w.value for w in at.warning]
    assert said == ["Run `20250101-000000-gone` has no results on this server; showing run `20260101-090000-done` "
                    "instead."]
    at.run()  # said once: the address names the run shown now
    assert not at.warning


def test_a_cancelled_run_says_what_it_kept_and_not_a_cached_teacher():
    from types import SimpleNamespace

    from studio.live_feed import stopped_note

    cached = SimpleNamespace(entries={"teacher": {"source": "cache", "accuracy": 0.9}})
    assert stopped_note(cached) == ("No model of this run finished before the stop (its teacher came from the cache), "
                                    "so there is nothing new to compare.")
    trained = SimpleNamespace(entries={"teacher": {"source": "train"}, "student_scratch": {}})
    assert stopped_note(trained) == ("Kept from before the stop: the teacher and scratch student, which are on the "
                                     "Compare page.")


# ---- 3: Live on a run that is gone --------------------------------------------------------------
def test_live_says_a_run_deleted_here_was_deleted(engine, studio_home):
    from studio.runs import note_deleted

    store = RunStore()
    fake_run(store, "20260103-090000-dele", paths.runs_dir())
    store.delete_run("20260103-090000-dele")
    at = page("pages/live.py", job="20260103-090000-dele")
    assert [w.value for w in at.warning] == ["Run `20260103-090000-dele` is not in this server's run history: it was "
                                             "deleted, or the link is from another server."]
    assert "restarted" not in texts(at)
    note_deleted("20260103-090000-dele")
    at = page("pages/live.py", job="20260103-090000-dele")
    assert [w.value for w in at.warning] == ["Run `20260103-090000-dele` was deleted on the Runs page."]


# ---- 4: a refused teacher file, said under its uploader -----------------------------------------
def order(at: AppTest) -> list[str]:
    """The page's elements from top to bottom: a widget's key, a message's text."""
    out = []
    for node in at.main:
        if getattr(node, "key", None):
            out.append(node.key)
        elif node.type in ("error", "alert") or type(node).__name__ == "Error":
            out.append(node.value)
    return out


def test_a_refused_teacher_file_is_named_under_its_uploader_with_how_to_save_one(engine):
    from studio.uploads import teacher_refusal

    said = teacher_refusal("junk.pt", "checkpoint junk.pt is not a PyTorch file, or it is damaged")
    assert said == "`junk.pt` is not a PyTorch file, or it is damaged; save one with torch.save(model.state_dict(), path)."
    assert teacher_refusal("junk.pt", "checkpoint junk.pt is not a PyTorch file, or it is damaged: save one with "
                                      "torch.save(model.state_dict(), path) (boom)").count("torch.save") == 1
    at = page("pages/distill.py", dataset="digits")
    at.session_state["teacher_note"] = ("error", said)
    at.radio(key="cfg_teacher_mode").set_value("upload").run()
    seen = order(at)
    assert [e.value for e in at.error] == [said]
    assert seen.index("cfg_teacher_0") < seen.index(said) < seen.index("cfg_student"), seen


# ---- 5 and 6: what each headline figure is of, and the two timings of one model ----------------
def test_compare_cards_say_split_epoch_batch_threads_and_precision(engine, done_then_cancelled):
    at = page("pages/compare.py", run="20260101-090000-done")
    cards = {m.label: m.proto.delta for m in at.metric}
    assert cards["Accuracy vs the teacher"] == "validation, last epoch"
    assert cards["Faster, batch 1 (CPU)"] == "batch 64: 1.0× · 1 thread, fp32"  # the label says CPU
    assert "in validation accuracy at the last epoch" in texts(at)
    assert "10-20 %" not in texts(at) and "taken as the run ended" in texts(at)


def test_the_compression_table_shows_the_runs_own_timing_beside_its_fp32_rows():
    from studio.runs_view import against_the_run

    def lat(b1, b64):
        return {"batch_1": {"median": b1}, "batch_64": {"median": b64}}

    results = {"teacher": {"latency_ms": lat(2.0, 91.3)}, "student_kd": {"latency_ms": lat(0.5, 28.0)}}
    rows = [{"model": "teacher", "variant": "fp32", "engine": "torch", "latency_ms": lat(1.0, 18.51)},
            {"model": "teacher", "variant": "fp16", "engine": "torch", "latency_ms": lat(9.0, 99.0)},
            {"model": "student_kd", "variant": "fp32", "engine": "torch", "latency_ms": lat(0.25, 4.12)}]
    said = against_the_run(results, rows)
    assert "the same batches, threads, memory layout and warm-up" in said
    assert ("batch 64: teacher 18.5 ms here, 91.3 ms in the run; distilled student 4.12 ms here, 28.0 ms in the run "
            "(4.5× faster here, 3.3× in the run)") in said
    assert against_the_run(None, rows) is None and against_the_run(results, rows[1:2]) is None


# ---- 8: settings that outlive a visit to another page -------------------------------------------
def test_live_and_runs_settings_come_back_after_another_page(engine, studio_home):
    from test_app_pages import manager

    job = manager().submit(RunConfig(**TINY))
    assert engine.started.wait(10)
    at = page("pages/live.py", job=job)
    at.slider(key="ema").set_value(0.0).run()
    at.toggle(key="log_loss").set_value(True).run()
    at.switch_page("pages/distill.py").run()
    at.switch_page("pages/live.py").run()
    assert at.slider(key="ema").value == 0.0 and at.toggle(key="log_loss").value is True
    assert not at.exception and not at.warning  # no "default value and Session State" warning

    store = RunStore()
    fake_run(store, "20260104-090000-kdkd", paths.runs_dir())
    fake_run(store, "20260105-090000-dkdk", paths.runs_dir(), method="dkd")
    at.switch_page("pages/runs.py").run()
    at.multiselect(key="runs_f_method").set_value(["dkd"]).run()
    at.switch_page("pages/compare.py").run()
    at.switch_page("pages/runs.py").run()
    assert at.multiselect(key="runs_f_method").value == ["dkd"]
    assert list(at.dataframe[0].value["run_id"]) == ["20260105-090000-dkdk"]


# ---- 9: legends clear of the axis titles --------------------------------------------------------
def test_legends_sit_above_the_plot_clear_of_the_x_axis_title():
    from studio.charts import accuracy_figure, reliability_figure

    history = {"teacher": [{"epoch": 1, "val_accuracy": 0.5}], "student_kd": [{"epoch": 1, "val_accuracy": 0.4}]}
    live = accuracy_figure(history, epochs=2)["layout"]
    bins = [{"confidence": 0.5, "accuracy": 0.5, "count": 3}]
    reliability = reliability_figure({"teacher": {"reliability": bins, "ece": 0.1}}).to_plotly_json()["layout"]
    for layout in (live, reliability):
        legend = layout["legend"]
        assert legend["orientation"] == "h" and legend["yanchor"] == "bottom" and legend["y"] >= 1, legend
        assert layout["margin"]["t"] >= 80  # room for the title and a legend row above the plot


# ---- 10: wording ---------------------------------------------------------------------------------
def test_a_student_the_size_of_its_teacher_is_the_same_size_not_1x_smaller(engine):
    at = page("pages/distill.py", dataset="digits", teacher="cnn_small", student="cnn_small")
    assert ("The student's checkpoint is **the same size** as the teacher's, and it needs **as many FLOPs** as the "
            "teacher.") in texts(at)
    assert "1.0×" not in texts(at)
    at = page("pages/distill.py", dataset="digits", student="derived")
    assert "**Student: derived from the teacher**" in texts(at)
    assert at.selectbox(key="cfg_student").value == "derived"


def test_a_link_says_what_it_dropped_from_extra_and_that_1e400_is_out_of_range():
    from distill_core import RunConfig as Config
    from studio.urlstate import from_params

    config, notes = from_params({"extra": '{"x": 1}', "seed": "1e400"})
    assert config.extra == {} and config.seed == Config().seed
    assert "The link's `extra: x=1` is not an option of the `kd` method and was ignored." in notes
    assert "The link's `seed=1e400` was ignored (out of range); using `0`." in notes
    config, notes = from_params({"method": "dkd", "extra": '{"b": 6}'})
    assert config.extra == {"b": 6.0} and not notes


def test_the_faster_cards_terms_say_nothing_when_nothing_was_timed():
    from studio.compare import speed_terms

    assert speed_terms({"faster_x": 4.2, "threads": 2, "latency_device": "CPU"}) == "2 threads, fp32"
    assert speed_terms({"faster_x": None, "threads": None, "latency_device": "CPU"}) == ""  # a run stopped before timing
