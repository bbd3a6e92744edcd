"""Compression rows: fp16, int8 (ONNX Runtime static quantisation) and magnitude pruning."""
from pathlib import Path

import pytest
import torch
from torch import nn

from distill_core.tools import compress
from distill_core.cli import main
from distill_core.errors import DistillError
from distill_core.tools.export import load_data, open_run
from distill_core.tools.onnx_graph import INPUT_NAME, OUTPUT_NAME, ort_session
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
        # Every row ran, fp16 included: the pinned torch has float16 CPU kernels for these models (on a
        # device without them the row says "does not run"; test_fp16_that_cannot_run_says_why covers that).
        assert r["size_bytes"] > 0 and r["notes"] and "does not run" not in r["notes"]
        assert 0.0 <= r["accuracy"] <= 1.0
        assert {"batch_1", "batch_8"} <= set(r["latency_ms"]) and r["latency_ms"]["batch_1"]["median"] > 0
    for model in ("teacher", "student_kd"):
        # a model's torch variants are timed together, in turn; ONNX Runtime on its own
        timed = [r for r in found if r["model"] == model and r["engine"] == "torch" and r["latency_ms"]]
        assert len(timed) == 3 and all(r["latency_ms"]["in_turn"] == 3 for r in timed)
        assert all("in_turn" not in r["latency_ms"] for r in found if r["engine"] == "onnxruntime" and r["latency_ms"])
        fp32 = pick(found, model, "fp32", "torch")
        assert fp32["accuracy"] == pytest.approx(results[model]["accuracy"])
        assert fp32["delta_points"] == 0.0
        assert pick(found, model, "fp32", "onnxruntime")["accuracy"] == pytest.approx(fp32["accuracy"])


def agreement(path_a, path_b, data) -> float:
    """How often two ONNX models give the same top-1 class on the validation images."""
    x = data.normalize(data.val_x).numpy().astype("float32")
    a, b = (ort_session(p, 1).run([OUTPUT_NAME], {INPUT_NAME: x})[0].argmax(1) for p in (path_a, path_b))
    return float((a == b).mean())


def test_int8_is_smaller_and_its_accuracy_is_reported(rows):
    found, _, run_dir = rows
    data = load_data(open_run(run_dir))
    for model in ("teacher", "student_kd"):
        fp32, int8 = pick(found, model, "fp32", "onnxruntime"), pick(found, model, "int8", "onnxruntime")
        assert int8["size_bytes"] < fp32["size_bytes"]
        assert int8["size_vs_fp32"] == pytest.approx(int8["size_bytes"] / fp32["size_bytes"])
        assert int8["accuracy"] is not None and int8["delta_points"] is not None
        # Calibrated int8 predicts what fp32 predicts: compared image by image, since the tiny run's
        # student is too weak (about 20 %) for its accuracy alone to show a broken quantisation.
        assert agreement(fp32["path"], int8["path"], data) > 0.9
        assert Path(int8["path"]).is_file() and int8["quantization"]["calibration_images"] == 128
    teacher_int8 = pick(found, "teacher", "int8", "onnxruntime")
    assert teacher_int8["size_vs_fp32"] < 0.5  # weights dominate: about 4x fewer bytes per weight


def test_fp16_halves_the_weights(rows):
    found, _, _ = rows
    ratio = {m: pick(found, m, "fp16", "torch")["size_bytes"] / pick(found, m, "fp32", "torch")["size_bytes"]
             for m in ("teacher", "student_kd")}
    # The teacher's file is mostly weights, so it halves; the tiny student's a few kB of weights sit
    # beside a few kB of file structure that stay the same size.
    assert 0.45 < ratio["teacher"] < 0.56 and ratio["student_kd"] < 0.8


def test_fp16_that_cannot_run_says_why(rows, monkeypatch):
    """A device without float16 kernels: the fp16 row keeps its size, says why it has no numbers,
    and fp32 is still measured."""
    _, _, run_dir = rows
    real = compress.evaluate

    def no_half(model, *args, **kwargs):
        if next(model.parameters()).dtype == torch.float16:
            raise RuntimeError('"addmm_impl_cpu_" not implemented for \'Half\'\nmore lines')
        return real(model, *args, **kwargs)

    monkeypatch.setattr(compress, "evaluate", no_half)
    found = compress.compression_rows(run_dir, roles=("student_kd",), variants=("fp32", "fp16"), repeats=5,
                                      num_threads=1, save=False)
    fp32, fp16 = pick(found, "student_kd", "fp32", "torch"), pick(found, "student_kd", "fp16", "torch")
    assert fp16["accuracy"] is None and fp16["latency_ms"] is None and 0 < fp16["size_bytes"] < fp32["size_bytes"]
    assert fp16["notes"] == "float16 does not run on cpu here: \"addmm_impl_cpu_\" not implemented for 'Half'"
    assert fp32["accuracy"] is not None and fp32["latency_ms"]["in_turn"] == 1


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


def test_a_deleted_run_is_not_written_back(rows, tmp_path):
    _, results, _ = rows
    gone = {**results, "artifacts": {**results["artifacts"], "dir": str(tmp_path / "deleted")}}
    with pytest.raises(DistillError, match="no folder any more"):
        compress.compression_rows(gone, repeats=5)
    assert not (tmp_path / "deleted").exists()


def test_torch_rows_are_timed_as_the_run_timed_its_models(rows, monkeypatch):
    """channels_last, the run's default: an fp32 row timed in another layout would differ from
    the run's own table for a reason that is not the machine's load."""
    _, results, run_dir = rows
    assert results["config"]["channels_last"]
    seen = {}

    def capture(models, *args, **kwargs):
        seen.update({name: any(p.dim() == 4 and not p.is_contiguous() for p in m.parameters())
                     for name, m in models.items()})
        return {}

    monkeypatch.setattr(compress, "measure_latencies", capture)
    compress.compression_rows(run_dir, roles=("student_kd",), variants=("fp32", "pruned"), repeats=5, save=False)
    assert seen and all(seen.values()), seen
