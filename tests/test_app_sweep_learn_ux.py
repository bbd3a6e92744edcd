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
    method = [e.value for e in box_column(at, "sw_method").error]
    assert len(method) == 1 and "Method 'foo' in the list: unknown method 'foo'" in method[0]
    assert at.expander[0].proto.expanded  # the box with the problem is shown
    at.text_input(key="sw_seeds").set_value("").run()
    assert [e.value for e in box_column(at, "sw_seeds").error] == ["Seeds: give at least one, such as 0,1"]
    assert len(box_column(at, "sw_method").error) == 1  # both at once
    at.text_input(key="sw_alpha").set_value("0.5,x").run()
    assert [e.value for e in box_column(at, "sw_alpha").error] == ["α: not a number: 'x'"]
    assert len(at.error) == 3 and not [b for b in at.button if b.key == "sw_start"]
