"""The app's derived student (issue 19) through AppTest: Distill's "derived from the teacher" with its
sliders, initialisation and weight anchor, the preview beside the teacher, and Compare saying how the
student was made."""
import shutil

import pytest

from distill_core import RunConfig, paths, run_experiment
from test_app_pages import engine, manager, navigation_mode, page, real_manager, start_button, texts  # noqa: F401


def derive_from_the_teacher(at):
    at.selectbox(key="cfg_student").set_value("derived").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_distill_derives_a_student_shows_it_beside_the_teacher_and_starts_it(engine):
    at = page("pages/distill.py", dataset="digits", teacher="resnet20")
    assert "derived from the teacher" in at.selectbox(key="cfg_student").options
    derive_from_the_teacher(at)
    assert at.slider(key="cfg_derive_depth").value == 0.5 and at.slider(key="cfg_derive_width").value == 0.5
    assert at.radio(key="cfg_student_init").value == "teacher"  # the default for a derived student
    assert at.number_input(key="cfg_weight_anchor").value == 0.0
    params = {m.label: [] for m in at.metric}
    for m in at.metric:
        params[m.label].append(m.value)
    assert len(params["Parameters"]) == 2 and params["Parameters"][0] != params["Parameters"][1]
    shown = texts(at)
    assert "cut from resnet20" in shown and "stage 1: ■□■ (2 of 3)" in shown  # blocks 0 and 2 of each stage
    assert "```" not in shown  # lines that wrap in a narrow card, not a code block that scrolls sideways
    at.slider(key="cfg_derive_width").set_value(0.25).run()
    at.number_input(key="cfg_weight_anchor").set_value(0.01).run()
    assert not at.error and not start_button(at).disabled
    assert at.query_params["student"] == "derived" and at.query_params["derive_width"] == "0.25"
    start_button(at).click().run()
    config = manager().jobs()[0].config
    assert (config.student, config.derive_width, config.student_init, config.weight_anchor) == \
        ("derived", 0.25, "teacher", 0.01)


def test_distill_refuses_the_anchor_for_random_weights_and_a_torchvision_teacher(engine):
    at = derive_from_the_teacher(page("pages/distill.py", dataset="digits", teacher="resnet20"))
    at.number_input(key="cfg_weight_anchor").set_value(0.1).run()
    at.radio(key="cfg_student_init").set_value("random").run()  # the anchor now has no P(w_t) to pull towards
    errors = [e.value for e in at.error]
    assert any(e.startswith("Weight anchor μ pulls the student towards") for e in errors), errors
    assert start_button(at).disabled
    at.number_input(key="cfg_weight_anchor").set_value(0.0).run()
    assert not at.error and not start_button(at).disabled, [e.value for e in at.error]
    at.selectbox(key="cfg_teacher").set_value("resnet18").run()
    assert any("torchvision" in e.value for e in at.error) and start_button(at).disabled


def test_a_registered_student_leaves_the_derived_settings_out(engine):
    at = derive_from_the_teacher(page("pages/distill.py", dataset="digits", teacher="resnet20"))
    at.slider(key="cfg_derive_depth").set_value(0.3).run()
    at.selectbox(key="cfg_student").set_value("cnn_tiny").run()
    assert not at.error and not start_button(at).disabled
    assert "derive_depth" not in at.query_params and "student_init" not in at.query_params


def test_a_link_restores_a_derived_student(engine):
    at = page("pages/distill.py", dataset="digits", teacher="wrn_16_2", student="derived", derive_depth=1,
              derive_width=0.25, student_init="random")
    assert at.selectbox(key="cfg_student").value == "derived"
    assert at.slider(key="cfg_derive_width").value == 0.25 and at.radio(key="cfg_student_init").value == "random"
    assert "random init" in at.query_params.get("student", "") or at.query_params["student_init"] == "random"


@pytest.fixture(scope="module")
def derived_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("derived_app")
    cfg = RunConfig(dataset="digits", teacher="resnet8", student="derived", derive_width=0.5, weight_anchor=0.01,
                    epochs=1, teacher_epochs=1, latency_repeats=5, latency_batch=8, device="cpu",
                    out=str(root / "run"), cache_dir=str(root / "teachers"))
    results = run_experiment(cfg, run_id="20250101-000000-derv")
    assert results["status"] == "done"
    return root / "run", results


def test_compare_says_how_the_student_was_made(real_manager, derived_run):
    folder, results = derived_run
    shutil.copytree(folder, paths.runs_dir() / results["run_id"])
    at = page("pages/compare.py", run=results["run_id"])
    shown = texts(at)
    assert "Students: derived from resnet8 (blocks kept per stage 0.5, channels kept 0.5), initialised from the " \
           "teacher's weights, weight anchor μ = 0.01" in shown
    assert list(at.table[0].value["architecture"])[1:] == ["derived from resnet8"] * 2
    assert "μ·‖w_s − P(w_t)‖² (weight anchor)" in shown  # the distilled student's loss terms


def test_compare_states_a_zoo_students_random_start():
    from studio.compare import student_made

    said = student_made({"config": {"student": "cnn_tiny"}})
    assert said.startswith("Students: `cnn_tiny`, initialised from random weights")
    stopped = student_made({"config": RunConfig(student="derived", teacher="resnet20").to_dict()})  # no students yet
    assert stopped.startswith("Students: derived from resnet20 (blocks kept per stage 0.5, channels kept 0.5), "
                              "initialised from the teacher's weights.")


def test_runs_name_a_derived_student_with_its_initialisation_so_the_overlay_tells_them_apart(studio_home):
    from distill_core.runs.store import RunStore
    from studio.runs_view import legend_label

    store = RunStore()
    for run_id, init in (("a-teacher", "teacher"), ("b-random", "random")):
        store.create_run(run_id, RunConfig(teacher="resnet20", student="derived", derive_width=0.25,
                                           student_init=init).to_dict())
    students = {r["run_id"]: r["student"] for r in store.list_runs()}
    assert students == {"a-teacher": "derived (depth 0.5, width 0.25, teacher init)",
                        "b-random": "derived (depth 0.5, width 0.25, random init)"}
    row = {"run_id": "b-random", "student": students["b-random"], "T": 4.0, "alpha": 0.9, "method": "kd"}
    assert "random init" in legend_label(row, with_student=True) and "init" not in legend_label(row)
