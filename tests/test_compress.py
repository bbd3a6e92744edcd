"""Compression rows: fp16, int8 (ONNX Runtime static quantisation) and magnitude pruning."""
from pathlib import Path

import pytest
import torch
from torch import nn

from distill_core import compress
from distill_core.cli import main
from distill_core.errors import DistillError
from tiny_runs import real_run


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    store, results = real_run(tmp_path_factory)
    run_dir = Path(results["artifacts"]["dir"])
    before = torch.get_num_threads()
    try:
        found = compress.compression_rows(run_dir, sparsity=0.5, calibration_images=128, repeats=5, store=store)
    finally:
        torch.set_num_threads(before)
    return found, results, run_dir


def pick(rows, model, variant, engine):
    (row,) = [r for r in rows if r["model"] == model and r["variant"] == variant and r["engine"] == engine]
    return row


def test_every_variant_has_size_accuracy_and_latency(rows):
    found, results, _ = rows
    assert [(r["model"], r["variant"], r["engine"]) for r in found] == [
        (m, v, e) for m in ("teacher", "student_kd") for v, e in (
            ("fp32", "torch"), ("fp16", "torch"), ("pruned-50%", "torch"), ("fp32", "onnxruntime"),
            ("int8", "onnxruntime"))]
    for r in found:
        assert r["size_bytes"] > 0 and r["notes"]
        if r["accuracy"] is not None:  # fp16 may not run on some devices; then it says so in the notes
            assert 0.0 <= r["accuracy"] <= 1.0
            assert {"batch_1", "batch_8"} <= set(r["latency_ms"]) and r["latency_ms"]["batch_1"]["median"] > 0
    for model in ("teacher", "student_kd"):
        # a model's torch variants are timed together, in turn; ONNX Runtime on its own
        timed = [r for r in found if r["model"] == model and r["engine"] == "torch" and r["latency_ms"]]
        assert len(timed) >= 2 and all(r["latency_ms"]["in_turn"] == len(timed) for r in timed)
        assert all("in_turn" not in r["latency_ms"] for r in found if r["engine"] == "onnxruntime" and r["latency_ms"])
        fp32 = pick(found, model, "fp32", "torch")
        assert fp32["accuracy"] == pytest.approx(results[model]["accuracy"])
        assert fp32["delta_points"] == 0.0
        assert pick(found, model, "fp32", "onnxruntime")["accuracy"] == pytest.approx(fp32["accuracy"])


def test_int8_is_smaller_and_its_accuracy_is_reported(rows):
    found, _, _ = rows
    for model in ("teacher", "student_kd"):
        fp32, int8 = pick(found, model, "fp32", "onnxruntime"), pick(found, model, "int8", "onnxruntime")
        assert int8["size_bytes"] < fp32["size_bytes"]
        assert int8["size_vs_fp32"] == pytest.approx(int8["size_bytes"] / fp32["size_bytes"])
        assert int8["accuracy"] is not None and int8["delta_points"] is not None
        assert abs(int8["delta_points"]) < 15  # calibrated int8 stays close to fp32
        assert Path(int8["path"]).is_file() and int8["quantization"]["calibration_images"] == 128
    teacher_int8 = pick(found, "teacher", "int8", "onnxruntime")
    assert teacher_int8["size_vs_fp32"] < 0.5  # weights dominate: about 4x fewer bytes per weight


def test_fp16_halves_the_weights(rows):
    found, _, _ = rows
    for model in ("teacher", "student_kd"):
        assert pick(found, model, "fp16", "torch")["size_bytes"] < pick(found, model, "fp32", "torch")["size_bytes"]


def test_pruned_rows_report_sparsity_and_both_sizes(rows):
    found, _, _ = rows
    for model in ("teacher", "student_kd"):
        row = pick(found, model, "pruned-50%", "torch")
        assert row["sparsity"] == pytest.approx(0.5, abs=0.01)
        assert row["size_kind"] == "dense file" and row["size_sparse_bytes"] < row["size_bytes"]


def test_rows_are_saved_beside_the_run(rows):
    found, _, run_dir = rows
    saved = compress.load_rows(run_dir)
    assert saved["sparsity"] == 0.5 and len(saved["rows"]) == len(found)
    assert "int8" in compress.format_rows(found)


def test_prune_model_exact_sparsity():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    pruned, stats = compress.prune_model(model, 0.75)
    weights = torch.cat([pruned[0].weight.flatten(), pruned[3].weight.flatten()])
    assert stats["sparsity"] == pytest.approx(0.75, abs=1e-3)
    assert float((weights == 0).float().mean()) == pytest.approx(0.75, abs=1e-3)
    assert not any(hasattr(m, "weight_mask") for m in pruned.modules())  # prune.remove baked it in
    assert float((model[0].weight == 0).float().mean()) == 0.0  # the original is untouched
    with pytest.raises(DistillError):
        compress.prune_model(model, 1.0)


def test_cli_compress(rows, capsys):
    _, _, run_dir = rows
    assert main(["compress", str(run_dir), "--models", "student_kd", "--sparsity", "0.3",
                 "--calibration-images", "64", "--latency-repeats", "5"]) == 0
    out = capsys.readouterr().out
    assert "pruned-30%" in out and "int8" in out and "onnxruntime" in out
