"""The Sweep and Learn pages as a user walks through them: the recipe the Sweep page shows and runs,
its problems beside their boxes; the image, mode and teacher the Learn page shows, after a link and
after another page was shown; the Learn charts' words and scales."""
import pytest

from test_app_pages import navigation_mode  # noqa: F401 - the pages run through app.py's navigation
from test_app_sweep import RECIPE, sidebar, sweep_page, sweeps, texts  # noqa: F401 - sweeps: a fixture


# ---- Sweep ------------------------------------------------------------------------------------------
def test_sweep_shows_and_runs_the_recipe_as_it_now_stands_on_distill(sweeps):
    at = sweep_page()
    assert "8 student epochs" in texts(at) and at.text_input(key="sw_method").value == "kd"
    at.text_input(key="sw_temperature").set_value("1,4").run()  # a list typed here stays
    sidebar(at, "pages/distill.py")
    at.session_state["cfg_method"] = "dkd"  # its label is not its value: AppTest cannot pick it
    at.number_input(key="cfg_epochs").set_value(3).run()
    sidebar(at, "pages/sweep.py")
    said = texts(at)
    assert "3 student epochs" in said and "method `dkd`" in said and "8 student epochs" not in said
    assert at.text_input(key="sw_method").value == "dkd" and at.text_input(key="sw_epochs").value == "3"
    assert at.text_input(key="sw_temperature").value == "1,4"
    at.button(key="sw_start").click().run()
    spec, _ = sweeps[0]
    assert (spec.base.method, spec.base.epochs, spec.grid) == ("dkd", 3, {"temperature": [1.0, 4.0]})


def test_a_sweep_links_recipe_is_the_one_the_distill_page_shows(sweeps):
    at = sweep_page(**RECIPE, temperature="1,4", seeds="0")
    assert "`cnn_small` teaches `cnn_tiny`" in texts(at)
    sidebar(at, "pages/distill.py")
    assert at.selectbox(key="cfg_dataset").value == "digits" and at.number_input(key="cfg_epochs").value == 1
    at.number_input(key="cfg_epochs").set_value(2).run()
    sidebar(at, "pages/sweep.py")
    assert "2 student epochs" in texts(at) and at.text_input(key="sw_temperature").value == "1,4"


def test_a_sweep_links_recipe_gets_the_distill_pages_own_notes(sweeps):
    """A recipe from a Sweep link is the Distill page's draft, with the notes that page gives a value
    no widget of its can show (image_size is for image folders only)."""
    at = sweep_page(**RECIPE, temperature="1,4", seeds="0", image_size="64")
    sidebar(at, "pages/distill.py")
    assert "image_size = `64` applies to image folders only" in "\n".join(w.value for w in at.warning)


def test_the_recipe_line_says_what_the_trials_run(sweeps):
    at = sweep_page(**RECIPE, temperature="1,4", seeds="0")
    at.text_input(key="sw_epochs").set_value("2").run()
    said = texts(at)
    assert "2 student epochs (set here; Distill: `1`)" in said and "1 student epoch ·" not in said
    assert "2 trials: 2 T × 1 seed · set here: epochs = 2" in said
    at.text_input(key="sw_epochs").set_value("1,2").run()
    said = texts(at)
    assert "student epochs: `1`, `2` (swept)" in said and "4 trials: 2 T × 2 epochs × 1 seed" in said
    at.button(key="sw_start").click().run()
    assert sweeps[0][0].grid["epochs"] == [1, 2]


def box_column(at, key):
    """The column a box is drawn in, with what is said under it."""
    return next(c for c in at.columns if any(box.key == key for box in c.text_input))


def test_every_problem_is_said_once_beside_its_box(sweeps):
    at = sweep_page(**RECIPE, temperature="1,4", method="kd,foo", seeds="0")
    method = [e.value for e in at.expander[0].error]  # under the row of its box: a fifth of the page is too narrow
    assert len(method) == 1 and "Method 'foo' in the list: unknown method 'foo'" in method[0]
    assert at.expander[0].proto.expanded  # the box with the problem is shown
    at.text_input(key="sw_seeds").set_value("").run()
    assert [e.value for e in box_column(at, "sw_seeds").error] == ["Seeds: give at least one, such as 0,1"]
    assert len(at.expander[0].error) == 1  # both at once
    at.text_input(key="sw_alpha").set_value("0.5,x").run()
    assert [e.value for e in box_column(at, "sw_alpha").error] == ["α: not a number: 'x'"]
    assert len(at.error) == 3 and not [b for b in at.button if b.key == "sw_start"]


# ---- Learn ------------------------------------------------------------------------------------------
import json  # noqa: E402 - the Learn tests' own
import shutil  # noqa: E402

from distill_core import RunConfig, RunStore, paths  # noqa: E402
from studio import learn_view  # noqa: E402
from test_app_pages import TINY, cache_demo_teacher, chart, finished_run, learnable_run, page, real_manager  # noqa: E402,F401


def shown_image(at) -> str:
    return at.get("image")[0].proto.imgs[0].caption


@pytest.mark.parametrize("pick", [None, "random", "disagree"])
def test_learn_shows_a_links_image_in_the_links_way_of_picking(real_manager, learnable_run, pick):
    run_id = learnable_run["run_id"]
    lesson = learn_view.lesson_of(run_id)
    clashes = (lesson.teacher_logits.argmax(1) != lesson.student_logits.argmax(1)).nonzero().flatten().tolist()
    labels = lesson.labels.tolist()
    # not the first image of its class, which the "by class" way used to show instead
    image = clashes[-1] if pick == "disagree" else next(i for i in range(1, len(labels)) if labels[i] in labels[:i])
    at = page("pages/learn.py", run=run_id, image=image, **({"pick": pick} if pick else {}))
    assert shown_image(at) == f"validation image {image}" and at.query_params["image"] == str(image)
    assert at.radio(key="learn_way").value == {None: "by class", "random": "at random",
                                               "disagree": "where teacher and student disagree"}[pick]
    assert at.query_params.get("pick") == pick
    if pick is None:
        assert at.selectbox(key="learn_class").value == lesson.classes[labels[image]]
        other = next(c for c in lesson.classes if c != lesson.classes[labels[image]])
        at.selectbox(key="learn_class").set_value(other).run()  # a class picked: its first image
        assert shown_image(at) == f"validation image {labels.index(lesson.classes.index(other))}"


def test_learn_is_as_it_was_left_after_another_page(real_manager, learnable_run):
    at = page("pages/learn.py", run=learnable_run["run_id"])
    at.radio(key="learn_way").set_value("at random").run()
    at.button[0].click().run()  # Another image
    at.select_slider(key="learn_T").set_value(8).run()
    image = shown_image(at)
    sidebar(at, "pages/compare.py")
    sidebar(at, "pages/learn.py")
    assert at.radio(key="learn_way").value == "at random" and shown_image(at) == image
    assert at.select_slider(key="learn_T").value == 8 and at.query_params["pick"] == "random"


@pytest.mark.parametrize("demo_cached", [False, True], ids=["no demo teacher", "demo teacher cached"])
def test_learn_opens_on_the_newest_run_that_is_no_sweep_trial(real_manager, learnable_run, demo_cached):
    if demo_cached:  # the picker then ends with the demo teacher (None): the first visit is no different
        cache_demo_teacher()
    trial = "20260101-000000-trial"  # newer than the demo-like run
    folder = paths.runs_dir() / trial
    shutil.copytree(paths.runs_dir() / learnable_run["run_id"], folder)
    results = json.loads((folder / "results.json").read_text())
    results.update(run_id=trial, started_at=results["started_at"] + 1000)
    (folder / "results.json").write_text(json.dumps(results))
    store = RunStore()
    store.create_run(trial, RunConfig(**TINY), artifacts_dir=folder, sweep_id="20260101-000000-sweep")
    store.set_results(trial, results)
    at = page("pages/learn.py")
    picker = at.selectbox(key="learn_run")
    assert picker.options[0].endswith("· sweep trial") and trial in picker.options[0]  # listed, newest
    assert picker.value == learnable_run["run_id"] and at.query_params["run"] == learnable_run["run_id"]
    assert page("pages/learn.py", run=trial).selectbox(key="learn_run").value == trial  # a link still opens it


def test_the_demo_teachers_link_says_run_demo(real_manager):
    """The demo teacher is no run: its link says run=demo (an empty run would open the newest run)."""
    cache_demo_teacher()
    at = page("pages/learn.py")
    assert at.selectbox(key="learn_run").value is None and at.query_params["run"] == "demo"


def test_a_link_to_the_demo_teacher_opens_it_with_the_links_image(real_manager, learnable_run):
    cache_demo_teacher()
    at = page("pages/learn.py", run="demo", image="7")
    assert at.selectbox(key="learn_run").value is None and at.query_params["image"] == "7"
    assert "Validation image 7 of" in texts(at)


def test_the_t_squared_chart_says_what_its_curves_do(real_manager, learnable_run):
    at = page("pages/learn.py", run=learnable_run["run_id"])
    gradient = chart(at, "Size")
    ts, scaled = gradient["data"][1]["x"], gradient["data"][1]["y"]
    name = gradient["data"][1]["name"]
    level = float(name.split("from T = ")[1].split(",")[0])
    assert "level (± 20 %)" in name
    assert all(abs(y / scaled[-1] - 1) <= 0.2 for t, y in zip(ts, scaled) if t >= level)  # level where it says
    if level > ts[0]:  # and not below (this tiny run's teacher is unsure: its curve is level throughout)
        assert abs(scaled[ts.index(level) - 1] / scaled[-1] - 1) > 0.2
        assert f"{scaled[-1] / scaled[0]:.0f}× lower at T = 0.5" in name
    assert gradient["layout"]["xaxis"]["tickvals"] == [0.5, 1, 2, 5, 10, 20]
    y_ticks = gradient["layout"]["yaxis"]["tickvals"]
    assert {f"{t:.0e}"[0] for t in y_ticks} <= {"1", "2", "5"} and len(y_ticks) <= 12  # no "4 5 6 7 8 9 1 2"
    similarity = chart(at, "Where")["data"][0]
    assert similarity["zmin"] == 0 and "colorbar" in similarity  # a scale from 0, shown
    assert similarity["zmax"] == max(v for row in similarity["z"] for v in row if v is not None)


def test_the_legend_follows_the_numbers():
    rising = [{"temperature": t, "with_t2": w, "without_t2": w / t / t}
              for t, w in ((0.5, 0.05), (1, 0.4), (2, 0.9), (4, 1.0), (8, 1.0))]
    assert learn_view.gradient_words(rising) == ("KL alone: fades as 1/T² from T = 2",
                                                 "T² · KL: level (± 20 %) from T = 2, 20× lower at T = 0.5")
    flat = [dict(r, with_t2=1.0) for r in rising]
    assert learn_view.gradient_words(flat)[1] == "T² · KL: level (± 20 %) from T = 0.5"
    above = [dict(r, with_t2=1.5 if r["temperature"] == 0.5 else 1.0) for r in rising]  # an unsure teacher
    assert learn_view.gradient_words(above)[1] == "T² · KL: level (± 20 %) from T = 1, 1.5× higher at T = 0.5"
    climbing = [dict(r, with_t2=r["temperature"]) for r in rising]
    assert learn_view.gradient_words(climbing)[1] == "T² · KL: not level up to T = 8"


def test_log_ticks_are_1_2_5_over_two_decades_powers_of_ten_over_more_and_none_for_zeros():
    assert learn_view.log_ticks([0.5, 20]) == [0.5, 1, 2, 5, 10, 20]
    assert learn_view.log_ticks([0.001, 3.0]) == [0.001, 0.01, 0.1, 1]
    assert learn_view.log_ticks([0.0, 0.0]) == []  # a student that is its teacher: plotly's own ticks
