"""Every page through Streamlit's AppTest: widgets, messages, Start, live view, comparison.

Pages share one JobManager per process (st.cache_resource); each test gets a fresh one, with a
fake engine where the real one would only make the test slow. The Compare tests read the
results of one real tiny run.
"""
import json
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

import studio.learn_view
import studio.manager
from studio import fmt, live_view
from distill_core import RunConfig, method_legend, paths, run_experiment
from distill_core import repeat_command
from distill_core.errors import ConfigError
from distill_core.events import EPOCH, PHASE, STEP, Event
from distill_core.runs.jobs import JobManager

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TINY = dict(dataset="digits", teacher="cnn_small", student="cnn_tiny", epochs=1, teacher_epochs=1,
            latency_repeats=5)
TIMEOUT = 60  # seconds per script run: the first FLOPs count of a model and a busy CI box take a while


class FakeEngine:
    """Stands in for run_experiment: reports one teacher epoch, then waits to be let go or stopped."""

    def __init__(self):
        self.release = threading.Event()
        self.started = threading.Event()
        self.configs = []

    def __call__(self, config, on_event=None, stop=None, run_id=None):
        self.configs.append(config)
        if config.seed == 13:
            raise ConfigError("checkpoint teacher.pt is for 100 classes, but this dataset has 10")
        on_event(Event(PHASE, "teacher", {"phase": "teacher", "index": 0, "total": 3, "epochs": 2, "source": "train"}))
        for i in range(1, 4):
            on_event(Event(STEP, "teacher", {"epoch": 1, "step": i, "steps": 4, "loss": 2.0 / i,
                                             "images_per_s": 500.0, "progress": 0.05 * i}))
        on_event(Event(EPOCH, "teacher", {"epoch": 1, "train_loss": 0.7, "train_ce": 0.7, "train_kd": 0.0,
                                          "train_accuracy": 0.7, "val_accuracy": 0.75, "epochs": 2,
                                          "progress": 0.2}))
        self.started.set()
        while not self.release.wait(0.01):
            if stop.is_set():
                return {"run_id": run_id, "status": "cancelled", "config": config.to_dict()}
        return {"run_id": run_id, "status": "done", "config": config.to_dict()}


@pytest.fixture(autouse=True)
def navigation_mode(monkeypatch):
    """Run pages through app.py's st.navigation, as a server does after its first request.

    AppTest starts every run as a fresh server would: in Streamlit's old pages/-folder mode,
    where a page runs without app.py (see studio/nav.py). That first-request case is covered
    by the browser test.
    """
    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


@pytest.fixture
def engine(monkeypatch):
    """A fresh JobManager for the app, driving the fake engine."""
    fake = FakeEngine()
    managers = []

    def make(**kwargs):
        managers.append(JobManager(runner=fake, **kwargs))
        return managers[-1]

    monkeypatch.setattr(studio.manager, "JobManager", make)
    studio.manager.get_manager.clear()
    yield fake
    fake.release.set()
    for m in managers:
        m.shutdown()
    studio.manager.get_manager.clear()


@pytest.fixture
def real_manager():
    studio.manager.get_manager.clear()
    yield
    studio.manager.get_manager().shutdown()
    studio.manager.get_manager.clear()


def manager() -> JobManager:
    return studio.manager.get_manager()


def page(path: str, **query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in query.items():
        at.query_params[key] = str(value)
    at.run()
    if path != "pages/home.py":
        at.switch_page(path).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [w.value for w in at.warning] + [i.value for i in at.info] + [s.value for s in at.success]
    return "\n".join(str(p) for p in parts)


def start_button(at: AppTest):
    return at.button(key="start")


# ---- the menu ------------------------------------------------------------------------------------
def test_the_menu_is_app_py_s_own_page_links_from_the_first_load():
    """Streamlit's own menu is off: on a fresh server it lists pages/ by file name until a script
    has called st.navigation. app.py's links name every page, in its order, on every page."""
    import tomllib

    config = tomllib.loads((Path(APP).parent / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showSidebarNavigation"] is False
    files = sorted(p.name for p in (Path(APP).parent / "pages").glob("*.py"))
    for path in ("pages/home.py", "pages/compare.py"):
        at = page(path)
        links = [(link.label, link.proto.page) for link in at.sidebar.get("page_link")]
        assert links == [("Home", ""), ("Distill", "distill"), ("Live run", "live"), ("Compare", "compare"),
                         ("Runs", "runs"), ("Sweep", "sweep"), ("Learn", "learn")]
        assert len(links) == len(files)  # every file in pages/ is in the menu


# ---- Home ----------------------------------------------------------------------------------------
def test_the_demo_takes_one_figure_everywhere(engine):
    from studio.form import DEMO_SECONDS, PRESETS

    assert PRESETS["demo"].label == f"{DEMO_SECONDS}-second CPU demo (offline)"
    home = page("pages/home.py")
    assert home.button(key="home_demo").label == f"Run the {PRESETS['demo'].label}"
    assert f"About {DEMO_SECONDS} s on a 2-core laptop." in texts(home)
    assert f"about {DEMO_SECONDS} s on a 2-core laptop" in texts(page("pages/learn.py"))
    docs = {name: (Path(APP).parent / name).read_text() for name in ("README.md", "docs/app.md", "docs/cli.md", "docs/workshop.md")}
    for name, text in docs.items():  # the docs give the same figure, and name the button as it reads
        assert "1-minute" not in text and "one-minute" not in text and "about a minute" not in text, name
        assert "half a minute" not in text, name
    assert f"Run the {PRESETS['demo'].label}" in docs["README.md"] and PRESETS["demo"].label in docs["docs/app.md"]


def test_home_explains_and_launches_the_demo(engine):
    at = page("pages/home.py")
    assert at.title[0].value == "Distill Studio"
    assert "soft targets" in texts(at)
    when = at.table[0].value  # "which method when", in plain words: every registered method has its row
    from distill_core import METHODS
    assert set(METHODS.names()) <= {m.split()[0] for m in when["method"]} and when["when to pick it"].str.len().min() > 40
    at.button(key="home_demo").click().run()
    jobs = manager().jobs()
    assert len(jobs) == 1 and jobs[0].config == RunConfig()
    assert at.session_state["job_id"] == jobs[0].id
    # a second click joins the same run instead of starting another
    page("pages/home.py").button(key="home_demo").click().run()
    assert len(manager().jobs()) == 1


def test_the_demo_preset_says_what_its_models_are():
    """Its help promises "a student over 100x smaller": true of the preset's two models."""
    from studio.form import PRESETS
    from studio.model_info import input_spec, model_card

    demo = PRESETS["demo"]
    assert "over 100x smaller" in demo.help
    channels, size, classes, _ = input_spec(demo.config.dataset)
    teacher, student = (model_card.__wrapped__(m, channels, size, classes)
                        for m in (demo.config.teacher, demo.config.student))
    assert teacher["size_bytes"] / student["size_bytes"] > 100


# ---- Distill -------------------------------------------------------------------------------------
def test_distill_has_every_widget_and_model_cards(engine):
    at = page("pages/distill.py")
    for key in ("dataset", "teacher", "student"):
        assert at.selectbox(key="cfg_" + key).value == getattr(RunConfig(), key)
    assert at.radio(key="cfg_teacher_mode").value == "train"
    assert at.slider(key="cfg_temperature").value == 4.0
    assert at.slider(key="cfg_alpha").value == 0.9
    for key in ("epochs", "teacher_epochs", "batch_size", "lr", "seed"):
        assert at.number_input(key="cfg_" + key).value == getattr(RunConfig(), key)
    for key in ("optimizer", "schedule", "distill_data"):
        assert at.selectbox(key="cfg_" + key).value == getattr(RunConfig(), key)
    assert at.radio(key="cfg_device").value == "auto"
    assert at.button(key="preset_demo") and at.button(key="preset_cifar10_gpu")
    assert not start_button(at).disabled
    labels = [m.label for m in at.metric]
    assert labels.count("Parameters") == 2 and labels.count("FLOPs per image") == 2
    assert all(m.value not in ("", "—") for m in at.metric)
    assert any("0.90" in l.value and "4^2" in l.value for l in at.latex)  # the formula with the current values
    assert not at.error


@pytest.mark.parametrize("key,value,message", [
    ("cfg_temperature", 0.0, "Temperature T must be > 0"),  # the widgets' names, not the config's
    ("cfg_epochs", 0, "Student epochs must be at least 1"),
    ("cfg_teacher_epochs", 0, "Teacher epochs must be at least 1"),
    ("cfg_batch_size", 0, "Batch size must be at least 1"),
    ("cfg_lr", -0.1, "Learning rate must be > 0"),
])
def test_distill_bad_values_explain_and_disable_start(engine, key, value, message):
    at = page("pages/distill.py")
    widget = at.slider(key=key) if key == "cfg_temperature" else at.number_input(key=key)
    widget.set_value(value).run()
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert start_button(at).disabled
    widget.set_value(RunConfig().to_dict()[key[4:]]).run()  # fixed: the message goes, Start comes back
    assert not at.error and not start_button(at).disabled


def test_distill_takes_the_loss_sliders_ranges_and_the_data_modes_from_their_declarations(engine, monkeypatch):
    import studio.form
    from distill_core import DISTILL_DATA

    monkeypatch.setattr(studio.form, "T_RANGE", (0.0, 12.0))
    at = page("pages/distill.py")
    t, a = at.slider(key="cfg_temperature"), at.slider(key="cfg_alpha")
    assert (t.min, t.max) == (0.0, 12.0) and (a.min, a.max) == studio.form.ALPHA_RANGE
    modes = at.selectbox(key="cfg_distill_data")
    assert modes.options == list(DISTILL_DATA)
    assert all(f"- **{name}**: {what}" in modes.help for name, what in DISTILL_DATA.items())


def test_distill_explains_an_image_folder_that_cannot_train_before_start(engine, tmp_path):
    from PIL import Image

    (tmp_path / "empty").mkdir()
    (tmp_path / "one" / "cats").mkdir(parents=True)
    Image.new("L", (8, 8)).save(tmp_path / "one" / "cats" / "0.png")
    at = page("pages/distill.py")
    at.selectbox(key="cfg_dataset").set_value("imagefolder").run()
    # No path yet: asked for in the page's words, not the config field's name
    assert any(e.value.startswith("Type the path of an image folder") for e in at.error)
    assert not any("data_dir" in e.value for e in at.error) and start_button(at).disabled
    for folder, message in ((tmp_path / "empty", "holds no images"), (tmp_path / "one", "only one class")):
        at.text_input(key="cfg_data_dir").input(str(folder)).run()
        assert any(message in e.value for e in at.error), [e.value for e in at.error]
        assert start_button(at).disabled
    (tmp_path / "one" / "dogs").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "one" / "dogs" / "0.png")
    at.run()
    # Two classes of one image: nothing to validate on; the run refused it only after Start.
    assert not any("one class" in e.value for e in at.error)
    assert any("too small to split: every class needs at least 2 images" in e.value for e in at.error)
    assert start_button(at).disabled
    for name in ("cats", "dogs"):
        for i in (1, 2):
            Image.new("L", (8, 8)).save(tmp_path / "one" / name / f"{i}.png")
    (tmp_path / "one" / "birds").mkdir()  # a class folder with nothing in it: left out, and said so
    at.run()
    assert not at.error and not start_button(at).disabled
    assert "2 classes, 6 images: cats (3), dogs (3). Left out, with no images: birds." in texts(at)


def write_image_folder(root, classes, per_class: int = 3, mode: str = "L") -> None:
    from PIL import Image

    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new(mode, (8, 8)).save(root / name / f"{i}.png")


def distill_on_folder(folder) -> AppTest:
    at = page("pages/distill.py")
    at.selectbox(key="cfg_dataset").set_value("imagefolder").run()
    at.text_input(key="cfg_data_dir").input(str(folder)).run()
    return at


def test_distill_sets_an_image_folders_size_and_validation_share(engine, tmp_path):
    write_image_folder(tmp_path, ("ants", "bees", "cats"), mode="RGB")
    at = distill_on_folder(tmp_path)
    assert at.number_input(key="cfg_image_size").value == 32
    assert any("For 3×32×32 images and 3 classes" in c.value for c in at.caption)  # the folder's classes
    at.number_input(key="cfg_image_size").set_value(16).run()
    at.number_input(key="cfg_val_fraction").set_value(0.3).run()
    assert any("For 3×16×16 images and 3 classes" in c.value for c in at.caption)
    assert any("larger than the 6 training images" in w.value for w in at.warning)  # 9, less 3 held out
    assert at.query_params["image_size"] == "16" and at.query_params["val_fraction"] == "0.3"
    assert not start_button(at).disabled
    start_button(at).click().run()
    cfg = manager().jobs()[0].config
    assert (cfg.image_size, cfg.val_fraction, cfg.data_dir) == (16, 0.3, str(tmp_path))
    at.switch_page("pages/distill.py").run()
    at.selectbox(key="cfg_dataset").set_value("digits").run()  # options digits ignores leave its link
    assert "image_size" not in at.query_params and "val_fraction" not in at.query_params


def test_distill_warns_of_a_batch_larger_than_the_training_set(engine):
    at = page("pages/distill.py", dataset="digits", batch_size=100000)
    assert any("Batch size 100,000 is larger than the 1,437 training images" in w.value for w in at.warning)
    assert not start_button(at).disabled  # a warning: it trains, one step an epoch
    at.number_input(key="cfg_batch_size").set_value(128).run()
    assert not any("Batch size" in w.value for w in at.warning)


def test_distill_lists_an_image_folder_again_only_when_it_changes(engine, tmp_path, monkeypatch):
    from PIL import Image

    import studio.folders as folders

    listed, real = [], folders.scan_folder
    monkeypatch.setattr(folders, "scan_folder", lambda root: listed.append(root) or real(root))
    write_image_folder(tmp_path, ("cats", "dogs"))
    at = distill_on_folder(tmp_path)
    assert listed and not start_button(at).disabled
    before = len(listed)
    at.slider(key="cfg_temperature").set_value(6.0).run()  # another widget: the same folder, not listed again
    assert len(listed) == before
    Image.new("L", (8, 8)).save(tmp_path / "cats" / "3.png")
    at.run()
    assert len(listed) == before + 1


def test_distill_no_gpu_here(engine, monkeypatch):
    monkeypatch.setattr("studio.form.available_devices", lambda: ["cpu"])
    at = page("pages/distill.py")
    at.button(key="preset_cifar10_gpu").click().run()
    assert at.selectbox(key="cfg_dataset").value == "cifar10"
    assert at.selectbox(key="cfg_teacher").value == "resnet56"
    assert at.radio(key="cfg_device").value == "cuda"
    assert any("no CUDA GPU" in e.value for e in at.error)
    assert start_button(at).disabled
    at.radio(key="cfg_device").set_value("auto").run()
    assert not start_button(at).disabled
    at.button(key="preset_demo").click().run()
    assert at.selectbox(key="cfg_dataset").value == "mnist5k"


def test_distill_precision_says_what_auto_picks_and_refuses_bf16_where_unsupported(engine, monkeypatch):
    from distill_core import precision

    monkeypatch.setattr(precision, "cpu_bf16_features",
                        lambda: {"amx_bf16": False, "avx512_bf16": False, "source": "mock"})
    at = page("pages/distill.py", device="cpu")
    box = at.selectbox(key="cfg_precision")
    assert box.value == "auto" and "Here: trains in fp32, the teacher labels in fp32." in texts(at)  # mocked: no bf16
    assert at.toggle(key="cfg_compile").value is False
    box.set_value("bf16").run()
    assert any("Precision bf16 is not supported here" in e.value for e in at.error), [e.value for e in at.error]
    assert start_button(at).disabled and at.query_params["precision"] == "bf16"
    assert "Here: bf16 is not supported (see under Start)." in texts(at)
    at.selectbox(key="cfg_precision").set_value("auto").run()
    assert not at.error and not start_button(at).disabled
    monkeypatch.setattr(precision, "cpu_bf16_features",
                        lambda: {"amx_bf16": True, "avx512_bf16": True, "source": "mock"})
    at = page("pages/distill.py", device="cpu")
    assert "Here: trains in bf16, the teacher labels in bf16." in texts(at)


def test_distill_config_lives_in_the_url(engine):
    at = page("pages/distill.py", epochs=3, dataset="digits", temperature=2.5)
    assert at.number_input(key="cfg_epochs").value == 3
    assert at.selectbox(key="cfg_dataset").value == "digits"
    assert at.slider(key="cfg_temperature").value == 2.5
    at.slider(key="cfg_alpha").set_value(0.5).run()
    params = at.query_params
    assert params["alpha"] == "0.5" and params["epochs"] == "3" and params["dataset"] == "digits"
    assert "student" not in params  # defaults stay out of the link


def test_distill_config_download_names_the_command_that_repeats_it(engine):
    at = page("pages/distill.py", epochs=3, dataset="digits")
    (button,) = [b for b in at.get("download_button") if b.proto.label == "config.json"]
    assert repeat_command("config.json") in button.proto.help  # the command test_cli runs word for word


def test_distill_bad_link_values_are_explained(engine):
    at = page("pages/distill.py", alpha=1.5, lr="abc", epochs=0, temprature=9, job="x", T=2)
    notes = "\n".join(w.value for w in at.warning)
    # what the link said in code spans: shown as text, whatever it holds
    assert "`T=2` is not a setting and was ignored (did you mean temperature?)" in notes  # the formula's name
    assert "alpha = 1.5 is outside" in notes and "`lr=abc` was ignored" in notes
    assert "`temprature=9` is not a setting and was ignored (did you mean temperature?)" in notes
    assert "job=" not in notes  # another page's parameter, not a mistake
    assert any("epochs must be at least 1" in e.value for e in at.error)
    assert start_button(at).disabled


def test_distill_chooses_a_method_explains_it_and_builds_its_options_from_their_declarations(engine):
    at = page("pages/distill.py")
    assert at.selectbox(key="cfg_method").value == "kd" and at.selectbox(key="cfg_method").options[:4] == [
        "kd  ·  Hinton KD (2015)", "fitnet  ·  FitNets hints (2015)", "at  ·  Attention transfer (2017)",
        "dkd  ·  Decoupled KD (2022)"]
    assert at.toggle(key="cfg_opt_kd_standardize").value is False
    at.selectbox(key="cfg_method").set_value("dkd").run()
    assert "Transfers** the teacher's class probabilities, split" in texts(at) and "Decoupled Knowledge" in texts(at)
    assert [at.number_input(key=f"cfg_opt_dkd_{o}").value for o in ("a", "b", "warmup")] == [1.0, 8.0, 2]
    assert at.number_input(key="cfg_opt_dkd_b").proto.help.startswith("weight of NCKD")
    assert at.slider(key="cfg_alpha").disabled and not at.slider(key="cfg_temperature").disabled  # DKD has no alpha
    at.number_input(key="cfg_opt_dkd_b").set_value(6.0).run()
    assert any(r"6\,\mathrm{NCKD}" in l.value for l in at.latex)  # the formula with the page's values
    assert at.query_params["method"] == "dkd" and at.query_params["opt.b"] == "6"  # a link restores it
    assert "opt.a" not in at.query_params  # defaults stay out of the link
    assert not start_button(at).disabled
    at.number_input(key="cfg_opt_dkd_b").set_value(150.0).run()  # out of range: said beside it, Start disabled
    assert any("Option b of 'dkd' must be in [0, 100], got 150" in e.value for e in at.error)
    assert start_button(at).disabled


def test_distill_restores_a_method_and_its_options_from_a_link(engine):
    at = page("pages/distill.py", method="dkd", **{"opt.b": "6", "opt.standardize": "true", "opt.nope": "1"})
    assert at.selectbox(key="cfg_method").value == "dkd"
    assert at.number_input(key="cfg_opt_dkd_b").value == 6.0 and at.toggle(key="cfg_opt_dkd_standardize").value
    assert any("`opt.nope=1` is not an option of the `dkd` method" in w.value for w in at.warning)  # as text
    assert any(r"\tilde z" in l.value for l in at.latex)  # standardised logits in the formula
    assert method_legend("dkd") in texts(at)  # what its symbols stand for, under it


def test_distill_refuses_a_feature_method_on_the_mlp_beside_the_method(engine):
    at = page("pages/distill.py", method="at", student="mlp")
    assert any("The 'at' method matches feature maps, and the student 'mlp' has none" in e.value for e in at.error)
    assert start_button(at).disabled
    at.selectbox(key="cfg_method").set_value("kd").run()
    assert not at.error and not start_button(at).disabled


def test_distill_link_cannot_name_arbitrary_server_files(engine):
    at = page("pages/distill.py", teacher_source="checkpoint", teacher_checkpoint="/etc/passwd")
    assert any("not uploaded to this server" in w.value for w in at.warning)
    assert at.radio(key="cfg_teacher_mode").value == "upload"
    assert any("Upload the teacher's state_dict" in e.value for e in at.error)
    assert start_button(at).disabled


def test_distill_refuses_a_cached_teacher_trained_on_another_split(engine, tmp_path):
    """An image-folder teacher cached with seed 0 (which split the folder) offered to a run with
    seed 1: some of that run's validation images trained the teacher."""
    from distill_core.runs import teacher_cache
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / "imgs" / c / f"{i}.png")
    seed0 = RunConfig(dataset="imagefolder", data_dir=str(tmp_path / "imgs"))
    path = teacher_cache.store(seed0, {"w": torch.ones(1)}, {"accuracy": 0.9, "teacher": seed0.teacher,
                                                              "dataset": "imagefolder"})
    at = page("pages/distill.py", dataset="imagefolder", data_dir=str(tmp_path / "imgs"), seed=1,
              teacher=seed0.teacher, teacher_source="checkpoint", teacher_checkpoint=str(path))
    at.button(key="data_dir_confirm").click().run()  # the link's folder is read once confirmed
    assert at.radio(key="cfg_teacher_mode").value == "cached"
    assert any("trained on other data than this run's (seed 0 there, 1 here)" in e.value for e in at.error)
    assert start_button(at).disabled
    at.number_input(key="cfg_seed").set_value(0).run()
    assert not any("other data" in e.value for e in at.error) and not start_button(at).disabled
    # Another folder: its teachers are not offered (one of this folder's would have been).
    (tmp_path / "other" / "x").mkdir(parents=True)
    shutil.copytree(tmp_path / "imgs" / "a", tmp_path / "other" / "y")
    shutil.copytree(tmp_path / "imgs" / "b", tmp_path / "other" / "x", dirs_exist_ok=True)
    at.text_input(key="cfg_data_dir").set_value(str(tmp_path / "other")).run()
    assert at.radio(key="cfg_teacher_mode").value == "cached"
    assert any("There is no cached teacher for this image folder yet" in e.value for e in at.error)
    assert start_button(at).disabled


def test_distill_cached_teacher_choice(engine):
    at = page("pages/distill.py")
    at.radio(key="cfg_teacher_mode").set_value("cached").run()
    assert any("There is no cached teacher for mnist5k yet" in e.value for e in at.error)
    assert not at.info  # said once, where Start's problems are
    assert not any("teacher_checkpoint" in e.value for e in at.error)  # the engine's words, not the page's
    assert start_button(at).disabled


def test_distill_start_creates_a_job_and_a_double_start_joins_it(engine):
    at = page("pages/distill.py", **{k: v for k, v in TINY.items() if k in ("dataset", "teacher", "epochs")})
    start_button(at).click().run()
    assert not at.exception
    jobs = manager().jobs()
    assert len(jobs) == 1
    cfg = jobs[0].config
    assert (cfg.dataset, cfg.teacher, cfg.epochs) == ("digits", "cnn_small", 1)
    assert at.session_state["job_id"] == jobs[0].id
    again = page("pages/distill.py", **{k: v for k, v in TINY.items() if k in ("dataset", "teacher", "epochs")})
    # said before the click: the fake engine holds the first run until the test ends
    assert f"This exact setup is already {manager().jobs()[0].status} (run {jobs[0].id})" in texts(again)
    start_button(again).click().run()
    assert len(manager().jobs()) == 1  # a second tab pressing Start joins the run


def test_a_loss_setting_the_method_does_not_read_is_not_part_of_its_run(engine):
    """DKD reads T, not alpha: whatever its disabled alpha slider holds (a browser reported 0.0 on a
    double click), the run records the default and a second Start joins the first run."""
    setup = {k: v for k, v in TINY.items() if k in ("dataset", "teacher", "epochs")}
    at = page("pages/distill.py", method="dkd", **setup)
    assert at.slider(key="cfg_alpha").disabled
    start_button(at).click().run()
    again = page("pages/distill.py", method="dkd", **setup)
    again.session_state["cfg_alpha"] = 0.0  # as the browser sent it (a disabled slider cannot be moved)
    again.run()
    assert again.slider(key="cfg_alpha").value == 0.0
    assert "alpha" not in again.query_params
    start_button(again).click().run()
    jobs = manager().jobs()
    assert len(jobs) == 1 and jobs[0].config.alpha == RunConfig.alpha and jobs[0].config.method == "dkd"


def test_upload_check_reports_a_wrong_checkpoint(tmp_path):
    import torch

    from distill_core.models import create_model
    from studio.uploads import check_teacher_file, save_upload

    good = create_model("cnn_small", 1, 10, 8).state_dict()
    wrong = create_model("cnn_small", 1, 100, 8).state_dict()
    for name, state in (("good.pt", good), ("wrong.pt", wrong)):
        torch.save(state, tmp_path / name)
    good_path = save_upload("good.pt", (tmp_path / "good.pt").read_bytes())
    assert good_path.parent == paths.home() / "uploads"
    assert check_teacher_file(good_path, "cnn_small", "digits") is None
    wrong_path = save_upload("wrong.pt", (tmp_path / "wrong.pt").read_bytes())
    assert "100 classes" in check_teacher_file(wrong_path, "cnn_small", "digits")
    assert "not a state_dict" in check_teacher_file(good_path, "cnn_large", "digits")
    junk = save_upload("junk.pt", b"not a checkpoint")
    said = check_teacher_file(junk, "cnn_small", "digits")
    assert said.startswith("Checkpoint ") and "junk.pt is not a PyTorch file" in said and said.endswith(".")
    # an image folder of 3 classes (its listing says so); grey or colour is known only at the run
    for name, state in (("rgb10.pt", create_model("cnn_small", 3, 10, 32).state_dict()),
                        ("grey3.pt", create_model("cnn_small", 1, 3, 32).state_dict())):
        torch.save(state, tmp_path / name)
    rgb10 = save_upload("rgb10.pt", (tmp_path / "rgb10.pt").read_bytes())
    assert "is for 10 classes, but this dataset has 3" in check_teacher_file(rgb10, "cnn_small", "imagefolder",
                                                                             classes=3)
    grey3 = save_upload("grey3.pt", (tmp_path / "grey3.pt").read_bytes())
    assert check_teacher_file(grey3, "cnn_small", "imagefolder", classes=3) is None


def test_an_upload_stays_chosen_until_forgotten(engine, tmp_path):
    import torch

    from distill_core.models import create_model
    from studio.uploads import save_upload

    torch.save(create_model("cnn_large", 1, 10, 8).state_dict(), tmp_path / "mine.pt")
    at = page("pages/distill.py", dataset="digits")
    at.session_state["uploaded_path"] = str(save_upload("mine.pt", (tmp_path / "mine.pt").read_bytes()))
    at.session_state["uploaded_name"] = "mine.pt"
    at.radio(key="cfg_teacher_mode").set_value("upload").run()
    assert any("`mine.pt` fits cnn_large on digits" in m.value for m in at.success)
    at.radio(key="cfg_teacher_mode").set_value("train").run()  # the uploader leaves the page...
    at.radio(key="cfg_teacher_mode").set_value("upload").run()  # ...and comes back empty
    assert any("`mine.pt` fits" in m.value for m in at.success) and not start_button(at).disabled
    assert "Using `mine.pt`, uploaded earlier" in texts(at)
    at.button(key="forget_upload").click().run()
    assert any("Upload the teacher's state_dict" in e.value for e in at.error) and start_button(at).disabled


def test_a_refused_upload_is_said_once_where_the_file_is_asked_for(engine):
    """A refused file's reason replaces the field's request for a file (one message, not two), and
    Start stays disabled."""
    refused = "Checkpoint `junk.pt` is not a PyTorch file, or it is damaged."
    at = page("pages/distill.py", dataset="digits")
    at.session_state["teacher_note"] = ("error", refused)
    at.radio(key="cfg_teacher_mode").set_value("upload").run()
    errors = [e.value for e in at.error]
    assert errors == [refused] and start_button(at).disabled
    at = page("pages/distill.py", dataset="imagefolder")
    at.session_state["zip_note"] = ("error", "`pets.zip` was refused: it holds no images.")
    at.run()
    assert [e.value for e in at.error] == ["`pets.zip` was refused: it holds no images."] and start_button(at).disabled


# ---- Live ----------------------------------------------------------------------------------------
def live_frame(at) -> dict:
    """The arguments of the Live page's frame (studio.live_view)."""
    [frame] = at.get("component_instance")
    return json.loads(frame.proto.json_args)


def fetched(at, until, timeout: float = 10) -> dict:
    """The feed the Live page's frame fetches, read from where the frame reads it, once ``until`` holds."""
    path = live_view.assets_folder(paths.home()) / live_frame(at)["feed"]
    deadline = time.time() + timeout
    while True:
        feed = json.loads(path.read_text()) if path.exists() else None
        if feed and until(feed) or time.time() > deadline:
            assert feed and until(feed), feed
            return feed
        time.sleep(0.05)


def test_a_server_that_stops_stops_its_runs_first(engine, monkeypatch):
    """Ctrl-C or SIGTERM during a run aborted the process ("terminate called without an active
    exception": the job's thread was inside torch), and the run kept no results. The manager is
    shut down at exit instead: the run is cancelled, as by Stop, and what finished is written."""
    import atexit

    registered = []
    monkeypatch.setattr(atexit, "register", lambda fn, *args: registered.append((fn, args)))
    studio.manager.get_manager.clear()
    manager = studio.manager.get_manager()
    job = manager.submit(RunConfig(**TINY))
    assert engine.started.wait(10)
    mine = [(fn, args) for fn, args in registered if getattr(fn, "__self__", None) is manager]
    assert len(mine) == 1
    fn, args = mine[0]
    fn(*args)  # what the interpreter does at exit
    assert manager.snapshot(job).status == "cancelled"


def test_live_without_a_job(engine):
    at = page("pages/live.py")
    assert any("Nothing is running yet" in i.value for i in at.info)


def test_live_shows_a_running_job_and_stop_cancels_it(engine):
    job = manager().submit(RunConfig(**TINY))
    assert engine.started.wait(10)
    at = page("pages/live.py", job=job)
    args = live_frame(at)
    assert args["stage"] == "running|None" and args["smoothing"] == 0.6 and args["log_scale"] is False
    assert "· 1 student epoch ·" in texts(at)  # not "1 student epochs"
    at.toggle(key="log_loss").set_value(True).run()
    assert live_frame(at)["log_scale"] is True  # the viewer's choice reaches the frame
    feed = fetched(at, lambda f: f["stage"] == args["stage"])  # the manager publishes it
    assert feed["label"] == "Phase 1 of 3: teacher · epoch 2 of 2"
    metrics = dict(feed["metrics"])
    assert metrics["Progress"] == "20 %" and metrics["Speed"] == "500 img/s"
    assert sum(len(t["x"]) for t in feed["loss"]["data"]) == 3  # the fake engine's three steps
    assert feed["accuracy"]["data"][0]["y"] == [75.0]
    assert feed["caption"].startswith("3 loss points · 1 epoch logged")
    stop = at.button(key="stop")
    assert not stop.disabled
    stop.click().run()
    snap = manager().wait(job, timeout=10)
    assert snap.status == "cancelled"
    feed = fetched(at, lambda f: f["finished"])  # a new stage: the frame would ask for this rerun
    assert feed["label"].startswith("Stopped after ") and feed["stage"] != args["stage"]
    at.run()
    # The fake engine was stopped inside the teacher's phase: nothing finished, and the page says so,
    # once: the badge says "cancelled", the frame's label when, this line what was kept.
    assert [i.value for i in at.info] == ["No model of this run finished before the stop, so there is nothing new "
                                          "to compare."] and not at.warning
    assert live_frame(at)["stage"] == feed["stage"] and at.button(key="stop").disabled


def test_live_stop_asks_first_when_others_started_the_same_run(engine):
    job = manager().submit(RunConfig(**TINY))
    assert engine.started.wait(10)
    at = page("pages/live.py", job=job)
    assert live_frame(at)["stage"] == "running|None"
    assert manager().submit(RunConfig(**TINY)) == job  # a second student presses Start: joins it
    feed = fetched(at, lambda f: f["stage"] == "running|None|shared")  # the frame would ask for a rerun
    at.run()
    assert "started 2 times" in texts(at) and "stops it for everyone" in texts(at)
    at.button(key="stop").click().run()
    assert manager().wait(job, timeout=10).status == "cancelled" and feed


def test_live_reattaches_without_a_job_id(engine):
    job = manager().submit(RunConfig(**TINY))
    assert engine.started.wait(10)
    at = page("pages/live.py")  # a second tab, or a refresh that lost the session
    assert at.session_state["job_id"] == job
    assert at.query_params["job"] == job


def test_live_shows_queue_place_and_failures(engine):
    first = manager().submit(RunConfig(**TINY))
    assert engine.started.wait(10)
    second = manager().submit(RunConfig(**TINY).replace(seed=1))
    at = page("pages/live.py", job=second)
    assert not at.info  # the frame's label says the place, once
    assert "place 1 in the queue" in fetched(at, lambda f: f["stage"] == "queued|1")["label"]
    manager().cancel(first)
    manager().cancel(second)
    failing = manager().submit(RunConfig(**TINY).replace(seed=13))
    assert manager().wait(failing, 10).status == "failed"
    at = page("pages/live.py", job=failing)
    assert any("100 classes" in e.value for e in at.error)
    feed = fetched(at, lambda f: f["finished"])  # failed before any step: the charts say so, not "waiting"
    for chart in ("loss", "accuracy"):
        assert feed[chart]["layout"]["annotations"][0]["text"] == "the run ended before any was logged"


# ---- Compare -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One real tiny run, shared by the Compare tests."""
    root = tmp_path_factory.mktemp("finished")
    cfg = RunConfig(**TINY, out=str(root / "run"), cache_dir=str(root / "teachers"))
    results = run_experiment(cfg, run_id="20250101-000000-test")
    assert results["status"] == "done"
    return root / "run", results


def test_compare_without_runs(real_manager):
    at = page("pages/compare.py")
    assert any("No finished run yet" in i.value for i in at.info)


def test_compare_renders_a_finished_runs_numbers(real_manager, finished_run):
    folder, results = finished_run
    shutil.copytree(folder, paths.runs_dir() / results["run_id"])
    at = page("pages/compare.py", run=results["run_id"])
    assert at.selectbox(key="compare_run").value == results["run_id"]
    scores, costs = at.table[0].value, at.table[1].value  # two tables, each whole at 1024 px
    assert "val accuracy (last epoch)" in scores.columns and "params" not in scores.columns
    assert list(costs.columns) == ["model", "params", "size (fp32)", "FLOPs", "latency b1, CPU", "latency b64, CPU"]
    table = scores.merge(costs, on="model")
    assert list(table["model"]) == ["teacher", "scratch student", "distilled student"]
    assert "the three models timed in turn" in texts(at) and "No GPU numbers" in texts(at)
    threads = results["teacher"]["latency_ms"]["threads"]
    assert f"after warm-up with {threads} CPU thread" in texts(at)
    for row, role in zip(table.to_dict("records"), ("teacher", "student_scratch", "student_kd")):
        assert row["val accuracy (last epoch)"] == f"{100 * results[role]['accuracy']:.1f} %"
        assert row["architecture"] == results[role]["model"]
    assert "test accuracy (last epoch)" not in table.columns  # digits has no test set
    cfg = results["config"]  # which epoch "last" is, for each: the teacher's differs from the students'
    assert list(table["epochs"]) == [str(cfg["teacher_epochs"]), str(cfg["epochs"]), str(cfg["epochs"])]
    best = results["student_kd"]
    assert table.iloc[2]["val accuracy (best epoch)"] == f"{100 * best['best_accuracy']:.1f} % (epoch {best['best_epoch']})"
    from studio.compare import comparison_table
    uploaded = {**results, "teacher": {**results["teacher"], "source": "checkpoint", "history": []}}
    assert comparison_table(uploaded).iloc[0]["epochs"] == "—"  # not the config's teacher_epochs: unknown
    cards = {m.label: m.value for m in at.metric}
    kd = results["comparison"]["kd_vs_teacher"]
    assert cards["Smaller file"].startswith(f"{kd['smaller_x']:.1f}")
    assert "smaller** (its checkpoint file)" in texts(at)  # 124x is the file; the params ratio differs
    assert "· teacher trained in this run" in texts(at)  # or from the cache, or a given checkpoint
    trained = results["precision"]["train"]
    assert f"Precision: trained in {trained}" in texts(at) and "accuracy and latency in fp32" in texts(at)
    assert "Distilled student (last epoch, state_dict)" in [b.label for b in at.get("download_button")]
    assert cards["KD gain over scratch"] == f"{results['comparison']['kd_gain_points']:+.1f} pts"
    # The table's digits reproduce the headline's ratios (0.02 MB for a student would not).
    unit = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "ms": 1}
    teacher, student = (table.iloc[i] for i in (0, 2))
    size, first_ms = (lambda cell: float(cell.split()[0]) * unit[cell.split()[1]]), (lambda c: float(c.split()[0]))
    assert size(teacher["size (fp32)"]) / size(student["size (fp32)"]) == pytest.approx(kd["smaller_x"], rel=0.02)
    assert "latency b1, CPU · GPU" not in table.columns  # a CPU run: no column of dashes
    assert first_ms(teacher["latency b1, CPU"]) / first_ms(student["latency b1, CPU"]) == \
        pytest.approx(kd["faster_x_batch_1"], rel=0.02)
    assert f"{fmt.above_below(kd['delta_points'])}** it in validation accuracy" in texts(at)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    titles = [c["layout"]["title"]["text"] for c in charts]
    bar_titles = [c["layout"]["title"]["text"] for c in charts if c["data"][0]["type"] == "bar"]
    assert bar_titles[:5] == ["val accuracy (last epoch)", "parameters", "size (MB, fp32)", "MFLOPs / image",
                              "latency b1 (ms, CPU)"]  # a small chart each, so that they can wrap
    assert sum(c["data"][0]["type"] == "heatmap" for c in charts) == 3  # three confusion matrices
    # Fidelity and calibration: a reliability diagram of the three models, the KD gain per class.
    reliability = next(c for c in charts if c["layout"]["title"]["text"].startswith("Reliability"))
    assert [d["name"].split(" (ECE")[0] for d in reliability["data"][1:]] == ["teacher", "scratch student",
                                                                              "distilled student"]
    gain = next(c for c in charts if c["layout"]["title"]["text"].startswith("KD gain per class"))
    assert gain["data"][0]["y"] == pytest.approx(results["comparison"]["per_class_gain_points"])
    assert f"{100 * results['student_kd']['val_agreement']:.1f} %" == cards["Distilled: agreement"]
    assert len(titles) == 5 + 3 + 2 + ("weak_teacher" in results["comparison"])
    assert len(at.get("image")) == min(18, len(results["disagreements"]))  # the gallery


def test_compare_measures_compression_beside_the_fp32_rows(real_manager, finished_run):
    folder, results = finished_run
    shutil.copytree(folder, paths.runs_dir() / results["run_id"])
    at = page("pages/compare.py", run=results["run_id"])
    assert not at.get("arrow_data_frame") or "variant" not in at.dataframe[0].value
    at.button(key="compare_compress_run").click().run(timeout=120)
    assert not at.error
    rows = at.dataframe[-1].value
    variants = set(rows["variant"])
    assert {"fp32", "fp16", "int8"} <= variants and any(v.startswith("pruned") for v in variants), variants


def test_compare_shows_a_cancelled_run_partially(real_manager, finished_run):
    folder, results = finished_run
    partial = {k: v for k, v in results.items() if k not in ("student_kd", "comparison", "disagreements")}
    partial.update(status="cancelled", run_id="20250101-000001-part")
    target = paths.runs_dir() / partial["run_id"]
    target.mkdir(parents=True)
    (target / "results.json").write_text(json.dumps(partial))
    at = page("pages/compare.py", run=partial["run_id"])
    assert any("cancelled" in w.value for w in at.warning)
    assert list(at.table[0].value["model"]) == ["teacher", "scratch student"]
    assert {m.label: m.value for m in at.metric}["KD gain over scratch"] == "—"


def test_compare_explains_a_run_cancelled_before_any_model_finished(real_manager, finished_run):
    _, results = finished_run
    nothing = {"status": "cancelled", "run_id": "20250101-000004-none", "config": results["config"],
               "dataset": results["dataset"], "device": "cpu", "seconds": 11.0}
    target = paths.runs_dir() / nothing["run_id"]
    target.mkdir(parents=True)
    (target / "results.json").write_text(json.dumps(nothing))
    at = page("pages/compare.py", run=nothing["run_id"])  # page() asserts the page raised nothing
    assert any("before any model finished" in w.value for w in at.warning)
    assert not at.table and not at.get("plotly_chart")


def test_the_headline_sentence_reads_without_the_latencies():
    """A run cancelled before the timing has sizes and accuracies but no speed-up: the sentence
    began "**3.1 points below** it ...", with nothing for "it" to refer to."""
    from studio.compare import headline

    results = {"comparison": {"kd_vs_teacher": {"smaller_x": 124.0, "delta_points": -3.1}, "kd_gain_points": 8.3},
               "config": {}, "teacher": {}}
    assert headline(results)["sentence"] == (
        "The student distilled with kd (Hinton KD) is **124× smaller** (its checkpoint file) than its teacher, "
        "**3.1 points below** it in validation accuracy at the last epoch, and **8.3 points better** than the same student trained "
        "without a teacher.")
    del results["comparison"]["kd_vs_teacher"]["smaller_x"]
    assert headline(results)["sentence"].startswith("The student distilled with kd (Hinton KD) is **3.1 points below** "
                                                    "its teacher")
    # the method and the options that differ from its defaults: what distillation bought is theirs
    results["config"] = {"method": "dkd", "extra": {"b": 6.0}}
    assert headline(results)["sentence"].startswith("The student distilled with dkd (Decoupled KD, b = 6) is ")


def test_compare_shows_what_finished_of_a_run_interrupted_by_a_restart(real_manager, finished_run):
    """The server stopped during the distilled student: no results.json, but the store kept the
    teacher and the scratch student. Compare showed another run's numbers instead."""
    from distill_core.runs.store import RunStore

    _, results = finished_run
    store = RunStore()
    config = RunConfig.from_dict(results["config"]).replace(out=None)  # its folder never got a results.json
    for run_id, roles in (("20250101-000006-intr", ("teacher", "student_scratch")), ("20250101-000007-none", ())):
        store.create_run(run_id, config, status="running", source="app")
        for role in roles:
            store.set_model(run_id, role, {k: v for k, v in results[role].items() if k != "history"})
        store.set_status(run_id, "interrupted", message="its process ended")
    at = page("pages/compare.py", run="20250101-000006-intr")
    assert at.selectbox(key="compare_run").value == "20250101-000006-intr"
    assert list(at.table[0].value["model"]) == ["teacher", "scratch student"]
    assert any("interrupted (its server stopped while it ran)" in w.value for w in at.warning)
    assert not any("has no results on this server" in w.value for w in at.warning)
    at = page("pages/compare.py", run="20250101-000007-none")
    assert any("is interrupted and no model of it finished" in w.value for w in at.warning)
    assert not at.table
    at = page("pages/live.py", job="20250101-000006-intr")  # a Live tab left open across the restart
    assert any("was interrupted: its server stopped while it ran" in w.value for w in at.warning)
    store.set_status("20250101-000006-intr", "cancelled")  # stopped with the server (Ctrl-C)
    at = page("pages/live.py", job="20250101-000006-intr")
    assert any("Run `20250101-000006-intr` was cancelled. What it finished is on the Compare page." in w.value
               for w in at.warning)


def test_compare_says_when_nothing_was_measured_and_draws_no_empty_bars(real_manager, finished_run):
    _, results = finished_run
    unmeasured = ("params", "size_bytes", "flops", "flops_unit", "latency_ms")
    partial = {"status": "cancelled", "run_id": "20250101-000002-part", "config": results["config"],
               "dataset": results["dataset"], "device": "cpu", "seconds": 3.0,
               "teacher": {k: v for k, v in results["teacher"].items() if k not in unmeasured}}
    target = paths.runs_dir() / partial["run_id"]
    target.mkdir(parents=True)
    (target / "results.json").write_text(json.dumps(partial))
    at = page("pages/compare.py", run=partial["run_id"])
    assert "timed once all three models have trained" in texts(at) and "timed in turn" not in texts(at)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert [c["layout"]["title"]["text"] for c in charts if c["data"][0]["type"] == "bar"] == \
        ["val accuracy (last epoch)"]


@pytest.mark.parametrize("gain, value, verdict", [(-12.0, "-12.0 pts", "distillation hurt"),
                                                  (0.7, "+0.7 pts", "no clear gain"),  # noise, either way
                                                  (-0.4, "-0.4 pts", "no clear gain"),
                                                  (3.0, "+3.0 pts", "distillation helped")])
def test_kd_gain_card_gives_a_verdict_only_outside_the_noise(real_manager, finished_run, gain, value, verdict):
    folder, results = finished_run
    other = json.loads(json.dumps(results))
    other["run_id"] = "20250101-000003-bad"
    other["comparison"]["kd_gain_points"] = gain
    target = paths.runs_dir() / other["run_id"]
    shutil.copytree(folder, target)
    (target / "results.json").write_text(json.dumps(other))
    at = page("pages/compare.py", run=other["run_id"])
    card = next(m for m in at.metric if m.label == "KD gain over scratch")
    assert card.value == value and card.proto.delta == verdict


def test_distill_reuses_a_cached_teacher_listed_with_its_accuracy(engine, finished_run):
    folder, results = finished_run
    shutil.copytree(folder.parent / "teachers", paths.teacher_cache_dir())
    # "Train now" with the recipe of the cached teacher says, before Start, that it is reused
    at = page("pages/distill.py", dataset="digits", teacher="cnn_small", teacher_epochs=TINY["teacher_epochs"])
    assert f"A cnn_small trained with this recipe is cached ({100 * results['teacher']['accuracy']:.1f} % val)" \
        in texts(at)
    at.number_input(key="cfg_teacher_epochs").set_value(TINY["teacher_epochs"] + 1).run()
    assert "is cached" not in texts(at)  # another recipe: this teacher trains
    at.number_input(key="cfg_teacher_epochs").set_value(0).run()  # then the field is disabled below
    at.radio(key="cfg_teacher_mode").set_value("cached").run()
    choice = at.selectbox(key="cfg_cached")
    label = choice.options[0]  # as the user reads it
    assert "cnn_small" in label and f"{100 * results['teacher']['accuracy']:.1f} %" in label
    assert not at.error and not start_button(at).disabled
    start_button(at).click().run()
    cfg = manager().jobs()[0].config
    assert cfg.teacher_source == "checkpoint" and cfg.teacher == "cnn_small"
    assert Path(cfg.teacher_checkpoint).is_relative_to(paths.teacher_cache_dir())
    assert cfg.teacher_epochs == TINY["teacher_epochs"]  # the reused teacher's, not the disabled field's 0


def test_compare_shows_the_test_set_beside_validation_where_there_is_one(real_manager, finished_run):
    folder, results = finished_run
    tested = json.loads(json.dumps(results))
    tested["run_id"] = "20250101-000005-test"
    for i, role in enumerate(("teacher", "student_scratch", "student_kd")):
        tested[role].update(test_accuracy=0.9 + i / 100, test_images=10000)
    target = paths.runs_dir() / tested["run_id"]
    target.mkdir(parents=True)
    (target / "results.json").write_text(json.dumps(tested))
    at = page("pages/compare.py", run=tested["run_id"])
    assert list(at.table[0].value["test accuracy (last epoch)"]) == ["90.0 %", "91.0 %", "92.0 %"]


def test_compare_says_when_a_scratch_student_was_reused_from_or_refused_for_another_teacher(real_manager, finished_run):
    folder, results = finished_run
    reused = json.loads(json.dumps(results))
    reused["run_id"] = "20250101-000006-reus"
    note = "reused from run 20250101-000001-abcd, which had another teacher: its agreement with this run's " \
           "teacher is measured at the last epoch only"
    reused["student_scratch"]["fidelity_note"] = note
    target = paths.runs_dir() / reused["run_id"]
    target.mkdir(parents=True)
    (target / "results.json").write_text(json.dumps(reused))
    assert f"Scratch student: {note}." in texts(page("pages/compare.py", run=reused["run_id"]))
    retrained = json.loads(json.dumps(results))
    retrained["run_id"] = "20250101-000007-retr"
    retrained["student_scratch"]["not_reused"] = "not reused from run 20250101-000002-efgh: it was cut from another " \
                                                 "teacher's weights, so this run trains its own"
    (paths.runs_dir() / retrained["run_id"]).mkdir(parents=True)
    (paths.runs_dir() / retrained["run_id"] / "results.json").write_text(json.dumps(retrained))
    assert f"Scratch student: {retrained['student_scratch']['not_reused']}." in \
        texts(page("pages/compare.py", run=retrained["run_id"]))
    shutil.copytree(folder, paths.runs_dir() / results["run_id"])
    assert "which had another teacher" not in texts(page("pages/compare.py", run=results["run_id"]))


def test_compare_a_gpu_run_fills_gpu_and_cpu_latency(real_manager, finished_run):
    folder, results = finished_run
    gpu = json.loads(json.dumps(results))
    gpu.update(run_id="20250101-000002-gpu", device="cuda")
    for role in ("teacher", "student_scratch", "student_kd"):
        gpu[role]["latency_ms_cpu"] = dict(gpu[role]["latency_ms"])
        gpu[role]["latency_ms_cpu"]["threads"] = 3
        gpu[role]["latency_ms"] = {"batch_1": {"median": 0.5, "p90": 0.6}, "batch_64": {"median": 0.9, "p90": 1.0},
                                   "device": "cuda:0", "threads": 2}
    target = paths.runs_dir() / gpu["run_id"]
    target.mkdir(parents=True)
    (target / "results.json").write_text(json.dumps(gpu))
    at = page("pages/compare.py", run=gpu["run_id"])
    row = at.table[1].value.to_dict("records")[0]  # the costs' table
    cpu_ms = results["teacher"]["latency_ms"]["batch_1"]["median"]
    assert row["latency b1, CPU · GPU"] == f"{fmt.ms(cpu_ms)} · 0.500 ms"
    assert "Faster, batch 1 (GPU)" in [m.label for m in at.metric]
    # latencies without "in_turn", as runs recorded before the models were timed in turn: said so
    assert "each model timed on its own, one after the other" in texts(at)
    assert "with 3 CPU threads" in texts(at)  # the CPU timings' threads, not the GPU measurement's


def test_compare_waits_to_measure_while_a_run_trains(engine, finished_run):
    """Compression runs in the page's thread, beside the job queue: while a run trains, its
    timings would measure the training, so the button waits."""
    folder, results = finished_run
    shutil.copytree(folder, paths.runs_dir() / results["run_id"])
    at = page("pages/compare.py", run=results["run_id"])
    assert not at.button(key="compare_compress_run").disabled
    job = manager().submit(RunConfig(**TINY))
    assert engine.started.wait(10)
    at = page("pages/compare.py", run=results["run_id"])
    button = at.button(key="compare_compress_run")
    assert button.disabled and f"Run {job} is training on this server" in button.proto.help
    engine.release.set()
    manager().wait(job, timeout=10)
    at.run()
    assert not at.button(key="compare_compress_run").disabled


def test_a_run_deleted_while_the_runs_are_listed_is_left_out(engine, monkeypatch):
    import studio.runs

    gone = paths.runs_dir() / "20250101-000009-gone" / "results.json"  # found, then deleted by another process
    monkeypatch.setattr(studio.runs, "find_results", lambda: {"20250101-000009-gone": gone})
    assert studio.runs.list_runs() == [] and studio.runs.load_results("20250101-000009-gone") is None


def test_compare_warns_of_a_teacher_at_chance_level(real_manager, finished_run):
    """An untrained or mismatched uploaded teacher: its run is no evidence for distillation."""
    folder, results = finished_run
    untrained = json.loads(json.dumps(results))
    untrained["run_id"] = "20250101-000007-chance"
    untrained["teacher"].update(accuracy=0.1, source="checkpoint")
    target = paths.runs_dir() / untrained["run_id"]
    shutil.copytree(folder, target)
    (target / "results.json").write_text(json.dumps(untrained))
    at = page("pages/compare.py", run=untrained["run_id"])
    assert any("The teacher is at chance level (10.0% on 10 classes)" in w.value for w in at.warning)
    assert "teacher a given checkpoint" in texts(at)
    shutil.copytree(folder, paths.runs_dir() / results["run_id"])
    at = page("pages/compare.py", run=results["run_id"])
    assert not any("chance level" in w.value for w in at.warning)


# ---- Learn ---------------------------------------------------------------------------------------
@pytest.fixture
def learnable_run(finished_run):
    folder, results = finished_run
    shutil.copytree(folder, paths.runs_dir() / results["run_id"])
    yield results
    learn_cache_clear()


def learn_cache_clear():
    """Forget the Learn page's lessons: a test changes the files under them."""
    studio.learn_view.lesson_of.clear()


def chart(at: AppTest, title_start: str) -> dict:
    """The page's plotly chart whose title starts with ``title_start``."""
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return next(s for s in specs if s["layout"]["title"]["text"].startswith(title_start))


def test_learn_offers_to_train_the_demo_teacher_when_there_is_none(engine):
    at = page("pages/learn.py")
    assert any("no teacher to learn from yet" in i.value for i in at.info)
    at.button[0].click().run()
    assert engine.started.wait(10) and engine.configs[-1] == RunConfig()  # the offline demo


def test_learn_shows_a_real_teachers_soft_targets_and_the_temperature_moves_them(real_manager, learnable_run):
    results = learnable_run
    at = page("pages/learn.py", run=results["run_id"], image=3)
    assert at.selectbox(key="learn_run").value == results["run_id"]
    bars = chart(at, "Soft")
    assert len(bars["data"][0]["y"]) == 10 and sum(bars["data"][0]["y"]) == pytest.approx(1.0)
    assert bars["data"][1]["name"] == "distilled student"  # overlaid: the run's student finished
    assert {"True class", "Entropy", "Dark knowledge", "KL divergence"} <= {m.label for m in at.metric}
    at.select_slider(key="learn_T").set_value(0.5).run()
    cold = chart(at, "Soft")["data"][0]["y"]
    entropy_cold = float({m.label: m.value for m in at.metric}["Entropy"].split()[0])
    at.select_slider(key="learn_T").set_value(20).run()
    hot = chart(at, "Soft")["data"][0]["y"]
    assert max(hot) < max(cold)  # a higher T spreads the teacher's belief
    assert float({m.label: m.value for m in at.metric}["Entropy"].split()[0]) > entropy_cold
    assert at.query_params["image"] == "3"
    shown = at.get("image")  # the image itself, beside its soft targets
    assert len(shown) == 1 and shown[0].proto.imgs[0].caption == "validation image 3"


def test_learn_sections_two_to_four_draw_from_the_teacher(real_manager, learnable_run):
    at = page("pages/learn.py", run=learnable_run["run_id"])
    similarity = chart(at, "Where")
    assert len(similarity["data"][0]["z"]) == 10
    assert "The teacher finds these most alike: **" in texts(at)
    gradient = chart(at, "Size")
    plain, scaled = gradient["data"][0]["y"], gradient["data"][1]["y"]
    assert plain[0] > 10 * plain[-1]  # without T^2 the soft term's gradient fades as T rises
    assert max(scaled) / min(scaled) < max(plain) / min(plain) / 10  # with it, it stays about level
    assert "the teacher is **cnn_small** and the student **cnn_tiny**" in texts(at)


def test_learn_exercises_queue_their_runs(engine, learnable_run):
    at = page("pages/learn.py", run=learnable_run["run_id"])
    at.button(key="exercise_start_temperature").click().run()
    assert engine.started.wait(10)
    queued = manager().jobs()
    assert sorted(j.config.temperature for j in queued) == [1.0, 4.0, 16.0]
    assert at.dataframe[0].value["run"].tolist() == ["T = 1", "T = 4", "T = 16"]
    assert "watch them on the Live page" in texts(at)


def test_learn_exercises_wait_while_no_run_can_start(engine, learnable_run, monkeypatch):
    import studio.health

    monkeypatch.setattr(studio.health, "start_blocker", lambda: "The run store is damaged: rebuild it.")
    at = page("pages/learn.py", run=learnable_run["run_id"])
    buttons = [b for b in at.button if b.key and b.key.startswith("exercise_start_")]
    assert buttons and all(b.disabled and b.help == "The run store is damaged: rebuild it." for b in buttons)


def test_learn_says_when_weights_can_be_subtracted():
    from studio.learn_view import weights_words

    apart = weights_words(RunConfig(teacher="cnn_large", student="cnn_tiny"))
    assert "the teacher is **cnn_large** and the student **cnn_tiny**: their weights cannot be subtracted" in apart
    derived = weights_words(RunConfig(teacher="resnet56", student="derived", derive_width=0.25, weight_anchor=0.01))
    assert "cannot be subtracted" not in derived and "derived (depth 0.5, width 0.25, teacher init)" in derived
    assert "μ·‖w_s − P(w_t)‖² (here μ = 0.01)" in derived and "**derived**" not in derived
    assert "each of its weights started as a slice" in derived
    fresh = weights_words(RunConfig(teacher="resnet56", student="derived", student_init="random"))
    assert "started as a slice" not in fresh and "random values" in fresh and "can be subtracted" in fresh
    same = weights_words(RunConfig(teacher="resnet20", student="resnet20"))
    assert "both **resnet20**" in same and "cannot be subtracted" not in same


def test_learn_says_what_is_wrong_with_a_link_or_a_missing_teacher(real_manager, learnable_run):
    at = page("pages/learn.py", run=learnable_run["run_id"], image=99999)
    assert any("there is no validation image 99999" in e.value for e in at.error)
    at = page("pages/learn.py", run="no-such-run")
    assert any("no finished run `no-such-run`" in w.value for w in at.warning)
    learn_cache_clear()
    Path(learnable_run["artifacts"]["teacher"]).rename(Path(learnable_run["artifacts"]["teacher"]).with_suffix(".gone"))
    try:
        at = page("pages/learn.py", run=learnable_run["run_id"])
        assert any("teacher cannot be loaded" in e.value for e in at.error)
    finally:
        Path(learnable_run["artifacts"]["teacher"]).with_suffix(".gone").rename(learnable_run["artifacts"]["teacher"])


def test_compare_says_why_a_weak_teacher_made_distillation_hurt(real_manager, finished_run):
    folder, results = finished_run
    run_dir = paths.runs_dir() / results["run_id"]
    shutil.copytree(folder, run_dir)
    weak = json.loads((run_dir / "results.json").read_text())
    weak["teacher"]["accuracy"], weak["student_scratch"]["accuracy"] = 0.4, 0.9
    (run_dir / "results.json").write_text(json.dumps(weak))
    at = page("pages/compare.py", run=results["run_id"])
    assert any("The teacher (40.0%" in w.value and "weaker than the student trained alone (90.0%)" in w.value
               for w in at.warning)
    assert chart(at, "Accuracy")["data"]  # the evidence: the teacher's curve beside the scratch student's


def cache_demo_teacher() -> None:
    from distill_core import create_model
    from distill_core.runs import teacher_cache

    config = RunConfig()
    torch.manual_seed(0)
    teacher = create_model(config.teacher, 1, 10, 28)
    teacher_cache.store(config, teacher.state_dict(), {"teacher": config.teacher, "dataset": config.dataset,
                                                       "history": [], "accuracy": 0.1})
    learn_cache_clear()


def test_learn_opens_on_the_newest_run_before_the_demo_teacher(real_manager, learnable_run):
    cache_demo_teacher()
    at = page("pages/learn.py")
    assert "the cached demo teacher" in at.selectbox(key="learn_run").options  # offered, second
    assert at.query_params["run"] == learnable_run["run_id"]
    assert len(chart(at, "Soft")["data"]) == 2  # with its student's answers overlaid


def test_learn_works_with_the_cached_demo_teacher_alone(real_manager):
    """A fresh home after the demo: no run on this server, but the demo teacher is in the cache."""
    cache_demo_teacher()
    at = page("pages/learn.py")
    assert at.selectbox(key="learn_run").value is None  # the demo teacher
    assert len(chart(at, "Soft")["data"]) == 1  # no student to overlay
    assert "KL divergence" not in {m.label for m in at.metric}
    assert "a student that has learnt nothing yet" in texts(at)
    learn_cache_clear()
