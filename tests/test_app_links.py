"""What a link can make the app do: read a folder only once the person at the page confirms it,
never outside the data roots on a server others reach, and show everything it says as text.

A link is anyone's to write and send; on a workshop network, anyone can open the app. Pages run
through app.py (AppTest), with test_app_pages.py's helpers.
"""
import re

import pytest
from streamlit import config as st_config

import studio.folders
from test_app_pages import engine, navigation_mode, page, start_button, write_image_folder  # noqa: F401

EVIL = "evil.example"
PAYLOAD = (f"[continue here](http://{EVIL}/x) ![pic](http://{EVIL}/p.png) <img src=http://{EVIL}/i.png> "
           f"www.{EVIL} <http://{EVIL}> :material/home: $\\href{{http://{EVIL}}}{{x}}$ **bold**")


@pytest.fixture
def listed(monkeypatch):
    """Every folder the page lists."""
    calls = []
    real = studio.folders.scan_folder
    monkeypatch.setattr(studio.folders, "scan_folder", lambda root: calls.append(str(root)) or real(root))
    studio.folders.folder_listing.clear()
    return calls


@pytest.fixture
def lan(monkeypatch):
    """A server listening on every interface, as for a workshop (streamlit run --server.address 0.0.0.0)."""
    before = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    yield
    st_config.set_option("server.address", before)


def folder_errors(at) -> str:
    return "\n".join(e.value for e in at.error)


def test_a_folder_from_a_link_is_shown_but_read_only_once_confirmed(engine, tmp_path, listed):
    write_image_folder(tmp_path / "imgs", ("ants", "bees"))
    at = page("pages/distill.py", dataset="imagefolder", data_dir=str(tmp_path / "imgs"))
    assert at.text_input(key="cfg_data_dir").value == str(tmp_path / "imgs")
    assert listed == [] and start_button(at).disabled
    assert f"The link names the image folder `{tmp_path / 'imgs'}` on this server" in folder_errors(at)
    assert not any("ants (3)" in c.value for c in at.caption)
    at.button(key="data_dir_confirm").click().run()
    assert listed and not start_button(at).disabled
    assert any("2 classes, 6 images: ants (3), bees (3)." in c.value for c in at.caption)


def test_a_link_to_the_root_of_the_disk_reads_nothing(engine, listed):
    at = page("pages/distill.py", dataset="imagefolder", data_dir="/")
    assert listed == [] and start_button(at).disabled and at.button(key="data_dir_confirm")


@pytest.mark.parametrize("path,said", [
    ("/" + "x" * 20_000, "That path is 20,001 characters long"),
    ("../../", "Give the folder's full path, starting with /"),
    ("imgs", "Give the folder's full path, starting with /"),
    ("/tmp/a\nb", "a line break or a control character"),
])
def test_paths_that_name_no_readable_folder_are_refused_before_anything_is_read(engine, listed, path, said):
    at = page("pages/distill.py", dataset="imagefolder")
    at.text_input(key="cfg_data_dir").input(path).run()  # typed: no confirming, the same refusal
    assert said in folder_errors(at) and start_button(at).disabled and listed == []


def test_a_long_path_in_a_link_keeps_the_page_up(engine, listed):
    at = page("pages/distill.py", dataset="imagefolder", data_dir="/" + "y" * 20_000)
    assert "That path is 20,001 characters long" in folder_errors(at) and listed == []


def test_on_a_server_others_reach_only_the_data_roots_are_read(engine, tmp_path, listed, lan, monkeypatch):
    write_image_folder(tmp_path / "mine", ("ants", "bees"))
    at = page("pages/distill.py", dataset="imagefolder")
    at.text_input(key="cfg_data_dir").input(str(tmp_path / "mine")).run()
    assert "reads image folders only under" in folder_errors(at) and "DISTILL_STUDIO_DATA_ROOTS" in folder_errors(at)
    assert listed == [] and start_button(at).disabled
    # a link inside a data root to a folder outside it is judged by where it leads
    from distill_core import paths
    paths.data_dir().mkdir(parents=True)
    (paths.data_dir() / "shortcut").symlink_to(tmp_path / "mine")
    at.text_input(key="cfg_data_dir").input(str(paths.data_dir() / "shortcut")).run()
    assert "reads image folders only under" in folder_errors(at) and listed == []
    # the operator names the folder: it is read
    monkeypatch.setenv("DISTILL_STUDIO_DATA_ROOTS", str(tmp_path))
    at.text_input(key="cfg_data_dir").input(str(tmp_path / "mine")).run()
    assert listed and not start_button(at).disabled, folder_errors(at)


# ---- markdown and HTML in every key of a link ---------------------------------------------------
def rendered_markdown(at) -> list[str]:
    """Every text the page hands to Streamlit's markdown: bodies, captions, alerts, labels, help."""
    found = []

    def walk(node):
        for child in getattr(node, "children", {}).values() if isinstance(getattr(node, "children", None), dict) \
                else getattr(node, "children", []) or []:
            walk(child)
        kind = getattr(node, "type", "")
        if kind in ("markdown", "caption", "error", "warning", "info", "success", "toast", "exception"):
            found.append(str(node.value))
        for attr in ("label", "help", "placeholder"):
            value = getattr(node, attr, None)
            if isinstance(value, str):
                found.append(value)

    walk(at._tree)
    return found


CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)


def outside_code(markdown: str) -> str:
    return CODE_SPAN.sub("", markdown)


@pytest.mark.parametrize("path,query", [
    ("pages/distill.py", {"dataset": "imagefolder", "data_dir": "/srv/" + PAYLOAD}),
    ("pages/distill.py", {PAYLOAD: "1", "epochs": PAYLOAD, "dataset": PAYLOAD, "teacher": PAYLOAD}),
    ("pages/distill.py", {"T": PAYLOAD, "teacher_source": "checkpoint", "teacher_checkpoint": PAYLOAD}),
    ("pages/distill.py", {"method": "at", "opt.stages": PAYLOAD, "opt.weight": PAYLOAD, f"opt.{PAYLOAD}": "1"}),
    ("pages/distill.py", {"method": "at", "extra": '{"stages": "%s"}' % PAYLOAD.replace('"', "'")}),
    ("pages/compare.py", {"run": PAYLOAD}),
    ("pages/live.py", {"job": PAYLOAD}),
    ("pages/learn.py", {"run": PAYLOAD, "image": PAYLOAD}),
    ("pages/sweep.py", {"sweep": PAYLOAD, "teacher": PAYLOAD, "temperature": PAYLOAD + ",2", "seeds": PAYLOAD}),
])
def test_markdown_and_html_in_a_link_are_shown_as_text(engine, path, query):
    from tiny_runs import fake_run
    from distill_core import RunStore, paths

    fake_run(RunStore(), "20260101-090000-aaaa", paths.runs_dir())  # so Compare has a run to fall back on
    at = page(path, **query)
    texts = rendered_markdown(at)
    assert any(EVIL in t for t in texts), texts  # the link's text is on the page...
    for text in texts:
        assert EVIL not in outside_code(text), text  # ...as text only


# ---- values a link sets beyond a field's range ----------------------------------------------------
def test_a_link_beyond_the_image_fields_ranges_gets_a_note(engine):
    at = page("pages/distill.py", dataset="imagefolder", image_size=100000, val_fraction=5)
    notes = "\n".join(w.value for w in at.warning)
    assert "image_size = 100000 is outside the field's range [8, 256]; showing 256." in notes
    assert "val_fraction = 5 is outside the field's range [0.05, 0.5]; showing 0.5." in notes
    assert at.number_input(key="cfg_image_size").value == 256 and at.number_input(key="cfg_val_fraction").value == 0.5
    at = page("pages/distill.py", dataset="digits", image_size=16)
    assert any("image_size = `16` applies to image folders only" in w.value for w in at.warning)


def test_latency_repeats_below_the_floor_is_one_message(engine):
    from distill_core import RunConfig, problems

    assert [p.message for p in problems(RunConfig(latency_repeats=0))] == [
        "latency_repeats must be at least 5: a median of fewer timings is noise"]
    at = page("pages/distill.py", latency_repeats=0)
    assert [e.value for e in at.error] == ["Latency repeats must be at least 5: a median of fewer timings is noise."]
    assert start_button(at).disabled


def test_a_run_id_from_a_link_names_no_folder_outside_the_runs_folder(engine, studio_home):
    import json

    from distill_core import load_results, paths

    elsewhere = paths.home() / "elsewhere"
    elsewhere.mkdir(parents=True)
    (elsewhere / "results.json").write_text(json.dumps({"run_id": "x", "status": "done", "config": {}}))
    paths.runs_dir().mkdir(parents=True)
    assert load_results("../elsewhere") is None and load_results(str(elsewhere)) is None
    at = page("pages/compare.py", run="../elsewhere")
    assert not at.table
