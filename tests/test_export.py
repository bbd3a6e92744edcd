"""Exports: metrics CSV, config JSON, state_dict (.pt, .safetensors), ONNX checked with onnxruntime."""
import csv
import io
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from distill_core import RunConfig, create_model
from distill_core.tools import export, onnx_graph
from distill_core.cli import main
from distill_core.errors import DistillError
from distill_core.runs.store import RunStore
from tiny_runs import fake_run, real_run

CSV_COLUMNS = ["run_id", "model", "epoch", "train_loss", "train_ce", "train_kd", "train_accuracy", "val_loss",
               "val_accuracy", "lr", "images_per_s", "seconds", "val_agreement", "val_kl_teacher", "ece",
               "train_agreement", "train_kl_teacher"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    store, results = real_run(tmp_path_factory)
    return store, results, Path(results["artifacts"]["dir"])


def test_metrics_csv_columns_and_rows(tiny):
    store, results, run_dir = tiny
    text = export.metrics_csv(export.open_run("tiny", store))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0].split(",") == CSV_COLUMNS
    assert [(r["model"], r["epoch"]) for r in rows] == [("teacher", "1"), ("student_scratch", "1"),
                                                        ("student_kd", "1")]
    kd = rows[-1]
    assert kd["run_id"] == "tiny"
    assert float(kd["val_accuracy"]) == pytest.approx(results["student_kd"]["history"][0]["val_accuracy"])
    # only the distilled student has a KD term: without a teacher the loss is CE alone
    assert float(kd["train_kd"]) > 0 and rows[1]["train_kd"] == "" and float(rows[1]["train_ce"]) > 0


def test_metrics_csv_of_an_interrupted_run(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    store.create_run("cut", RunConfig(dataset="digits", out=str(tmp_path / "cut")), status="running", pid=999999999)
    for e in (1, 2):
        store.add_epoch("cut", "teacher", {"epoch": e, "val_accuracy": 0.5 + e / 10})
    store = RunStore(tmp_path / "runs.db")  # reopened: interrupted
    rows = list(csv.DictReader(io.StringIO(export.metrics_csv(export.open_run("cut", store)))))
    assert [(r["model"], r["epoch"], r["val_accuracy"]) for r in rows] == [("teacher", "1", "0.6"),
                                                                          ("teacher", "2", "0.7")]
    assert rows[0]["train_loss"] == ""


def test_config_json_round_trips(tiny):
    _, results, run_dir = tiny
    assert RunConfig.from_dict(json.loads(export.config_json(run_dir))) == RunConfig.from_dict(results["config"])


def test_state_dicts_load_into_a_fresh_student(tiny, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    _, results, run_dir = tiny
    pt = export.save_pt(run_dir, tmp_path / "s.pt")
    st = export.save_safetensors(run_dir, tmp_path / "s.safetensors")
    original = torch.load(results["artifacts"]["student_kd_last"], weights_only=True)
    for state in (torch.load(pt, weights_only=True), load_file(str(st))):
        model = create_model("cnn_tiny", 1, 10, 8)
        model.load_state_dict(state)
        assert all(torch.equal(state[k], original[k]) for k in original)
    with safe_open(str(st), "pt") as f:
        meta = f.metadata()
    assert meta["arch"] == "cnn_tiny" and meta["distill_studio.role"] == "student_kd" and meta["num_classes"] == "10"


def test_onnx_parity_and_no_teacher_inside(tiny, tmp_path):
    _, results, run_dir = tiny
    report = export.export_onnx(run_dir, tmp_path / "student.onnx")
    p = report["parity"]
    assert p["ok"] and p["images"] == 360 and p["top1_mismatches"] == 0
    assert p["top1_agreement"] == 1.0 and p["max_abs_logit_diff"] < 1e-4
    assert p["accuracy_onnx"] == p["accuracy_torch"] == pytest.approx(results["student_kd"]["accuracy"])
    proto = onnx.load(str(tmp_path / "student.onnx"))
    weights = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    student = sum(v.numel() for v in create_model("cnn_tiny", 1, 10, 8).state_dict().values())
    assert weights <= student < results["teacher"]["params"]  # the student's weights, and nothing of the teacher
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["arch"] == "cnn_tiny" and props["distill_studio.role"] == "student_kd"
    assert json.loads(props["mean"]) and json.loads(props["std"])
    session = onnx_graph.ort_session(tmp_path / "student.onnx")
    for batch in (1, 7):  # dynamic batch axis
        out = session.run(None, {"input": np.zeros((batch, 1, 8, 8), np.float32)})[0]
        assert out.shape == (batch, 10)


def test_onnx_parity_catches_a_wrong_model(tiny, tmp_path):
    _, _, run_dir = tiny
    run = export.open_run(run_dir)
    export.export_onnx(run, tmp_path / "student.onnx", verify=False)
    torch.manual_seed(123)
    other = create_model("cnn_tiny", 1, 10, 8).eval()
    report = onnx_graph.onnx_parity(tmp_path / "student.onnx", other, export.load_data(run))
    assert not report["ok"] and report["max_abs_logit_diff"] > 1e-3


def test_cli_export_all_formats(tiny, tmp_path, capsys):
    store, _, run_dir = tiny
    assert main(["export", str(run_dir), "--format", "all", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(["metrics_tiny.csv", "config_tiny.json", "cnn_tiny_tiny_student_kd_last.pt",
                            "cnn_tiny_tiny_student_kd_last.safetensors", "cnn_tiny_tiny_student_kd_last.onnx",
                            "cnn_tiny_tiny_student_kd_last.parity.json"])
    assert "top-1 agreement 100.00%" in out
    assert main(["export", "no-such-run", "--format", "csv"]) == 2


def test_cli_export_of_the_teacher_writes_the_teachers_weights(tiny, tmp_path, capsys):
    """A teacher export is possible, but only when asked for: the file then holds the run's teacher."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    _, results, run_dir = tiny
    for fmt in ("pt", "safetensors"):
        assert main(["export", str(run_dir), "--format", fmt, "--out", str(tmp_path / f"t.{fmt}"), "--model",
                     "teacher"]) == 0
    capsys.readouterr()
    teacher = torch.load(results["artifacts"]["teacher"], weights_only=True)
    student = torch.load(results["artifacts"]["student_kd_last"], weights_only=True)
    assert (tmp_path / "t.pt").read_bytes() == Path(results["artifacts"]["teacher"]).read_bytes()
    for state in (torch.load(tmp_path / "t.pt", weights_only=True), load_file(str(tmp_path / "t.safetensors"))):
        assert set(state) == set(teacher) and all(torch.equal(state[k], teacher[k]) for k in teacher)
        assert any(k not in state or state[k].shape != v.shape or not torch.equal(state[k], v)
                   for k, v in student.items())  # not the student's weights
    with safe_open(str(tmp_path / "t.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["arch"] == "cnn_small" and meta["distill_studio.role"] == "teacher"


def test_cli_export_which_best_writes_the_best_epochs_checkpoint(studio_home, tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.torch import load_file

    from distill_core import paths
    from distill_core.checkpoints import save_state_dict

    fake_run(RunStore(), "twoepochs", paths.runs_dir())
    run_dir = paths.runs_dir() / "twoepochs"
    torch.manual_seed(7)  # the best epoch's weights differ from the last's, so the flag can be seen
    save_state_dict(create_model("cnn_tiny", 1, 10, 8).state_dict(), run_dir / "student_kd_best.pt")
    best = torch.load(run_dir / "student_kd_best.pt", weights_only=True)
    last = torch.load(run_dir / "student_kd_last.pt", weights_only=True)
    assert not all(torch.equal(best[k], last[k]) for k in best)
    for which, want in (("best", best), ("last", last)):
        for fmt in ("pt", "safetensors"):
            out = tmp_path / f"{which}.{fmt}"
            assert main(["export", "twoepochs", "--format", fmt, "--which", which, "--out", str(out)]) == 0
        capsys.readouterr()
        assert (tmp_path / f"{which}.pt").read_bytes() == (run_dir / f"student_kd_{which}.pt").read_bytes()
        state = load_file(str(tmp_path / f"{which}.safetensors"))
        assert set(state) == set(want) and all(torch.equal(state[k], want[k]) for k in want)
        with safe_open(str(tmp_path / f"{which}.safetensors"), "pt") as f:
            assert f.metadata()["distill_studio.checkpoint"] == which


def test_cli_export_keeps_a_file_it_was_not_asked_to_replace(tiny, tmp_path, capsys):
    _, _, run_dir = tiny
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"my own checkpoint")
    assert main(["export", str(run_dir), "--format", "safetensors", "--out", str(mine)]) == 2
    assert "already exists" in capsys.readouterr().err and mine.read_bytes() == b"my own checkpoint"
    assert main(["export", str(run_dir), "--format", "safetensors", "--out", str(mine), "--overwrite"]) == 0
    assert mine.read_bytes() != b"my own checkpoint"
    # the run's own exports/ folder is the tool's: an export there is simply replaced
    assert main(["export", str(run_dir), "--format", "csv"]) == 0
    assert main(["export", str(run_dir), "--format", "csv"]) == 0
    capsys.readouterr()
    assert main(["export", str(run_dir), "--format", "csv", "--out", str(mine / "x.csv")]) == 2  # under a file
    err = capsys.readouterr().err
    assert err.startswith("error: cannot create the folder") and len(err.strip().splitlines()) == 1


def test_export_of_a_store_run_by_id_is_recorded(studio_home):
    from distill_core import paths

    store = RunStore()
    fake_run(store, "byid", paths.runs_dir())
    report = export.export_run("byid", "safetensors")
    assert Path(report["path"]).parent == paths.runs_dir() / "byid" / "exports"
    assert store.get_run("byid")["artifacts"]["export_safetensors"] == report["path"]
    data, name, mime = export.export_bytes("byid", "onnx")
    assert data[:2] and name.endswith(".onnx") and export.onnx_report("byid")["parity"]["ok"]
    with pytest.raises(DistillError, match="unknown export format"):
        export.export_run("byid", "tflite")


def test_uneven_adaptive_pooling_exports_exactly(tmp_path):
    """cnn_large pools 7x7 (28x28 input) or 2x2 (8x8) to 3x3, which the exporter cannot express as is."""
    torch.manual_seed(0)
    model = create_model("cnn_large", 1, 10, 28).eval()
    path = onnx_graph.model_to_onnx(model, tmp_path / "large.onnx", (1, 28, 28))
    x = torch.randn(4, 1, 28, 28)
    got = onnx_graph.ort_session(path).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        assert np.abs(got - model(x).numpy()).max() < 1e-4
    assert isinstance(model.pool, torch.nn.AdaptiveAvgPool2d)  # the model itself is left as it was


def test_a_missing_optional_package_is_one_line_not_a_traceback(tiny, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "safetensors.torch", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "onnx", None)
    run_dir = tiny[2]
    with pytest.raises(DistillError, match="safetensors export needs the safetensors package"):
        export.save_safetensors(run_dir, tmp_path / "s.safetensors")
    with pytest.raises(DistillError, match="ONNX export needs the onnx package"):
        export.export_onnx(run_dir, tmp_path / "s.onnx")
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(tmp_path / "c.onnx")]) == 2


def test_an_onnx_export_that_fails_its_check_is_not_left_to_download(tiny, tmp_path, monkeypatch):
    _, _, run_dir = tiny
    monkeypatch.setattr(export, "onnx_parity", lambda *a, **k: {"ok": False, "max_abs_logit_diff": 1.0,
                                                                 "top1_mismatches": 7, "images": 360})
    with pytest.raises(DistillError, match="does not match PyTorch"):
        export.export_onnx(run_dir, tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists() and (tmp_path / "bad.parity.json").is_file()
