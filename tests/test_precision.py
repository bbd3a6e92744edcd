"""Training precision: bf16 autocast where the hardware has it, fp32 elsewhere, always said.

The bf16 runs need a CPU with bf16 instructions (AMX or AVX512-BF16, as the development machine
has); elsewhere they are skipped with the reason. What depends on the hardware (auto, refusals)
is tested with the detected capabilities replaced, both ways.
"""
import json
from pathlib import Path

import pytest
import torch

from distill_core import RunConfig, problems, resolve_precision, run_experiment
from distill_core import precision as prec
from distill_core.cli import main
from distill_core.data.datasets import load_dataset
from distill_core.errors import ConfigError
from distill_core.events import EventLog
from distill_core.methods import create_method
from distill_core.models import create_model
from distill_core.runs import teacher_cache
from distill_core.tools import export
from distill_core.training.trainer import train_phase

from helpers import tiny_config

CPU = torch.device("cpu")
HAS_BF16 = prec.bf16_support(CPU)[0]
needs_bf16 = pytest.mark.skipif(not HAS_BF16, reason="this CPU has neither avx512_bf16 nor amx_bf16: "
                                                     "bf16 training is refused here (tested below with a mock)")

AMX = {"amx_bf16": True, "avx512_bf16": True, "source": "mock"}
AVX512_BF16 = {"amx_bf16": False, "avx512_bf16": True, "source": "mock"}
NONE = {"amx_bf16": False, "avx512_bf16": False, "source": "mock"}


@pytest.fixture
def cpu_has(monkeypatch):
    """Replace the CPU's detected bf16 features for one test."""
    def set_features(features):
        monkeypatch.setattr(prec, "cpu_bf16_features", lambda: dict(features))
    return set_features


# ---- resolving -------------------------------------------------------------------------------------
def test_auto_is_bf16_on_a_cpu_with_amx_and_fp32_without(cpu_has):
    cpu_has(AMX)
    p = resolve_precision("auto", CPU)
    assert (p.train, p.teacher_labels, p.timed, p.evaluated) == ("bf16", "bf16", "fp32", "fp32")
    assert "amx_bf16" in p.reason and p.reason.startswith("auto: bf16")
    cpu_has(AVX512_BF16)  # bf16 runs, but nothing here measured it fast: auto stays fp32
    p = resolve_precision("auto", CPU)
    assert (p.train, p.teacher_labels) == ("fp32", "fp32") and p.reason.startswith("auto: fp32")
    assert resolve_precision("bf16", CPU).train == "bf16"  # asked for, it is allowed
    cpu_has(NONE)
    p = resolve_precision("auto", CPU)
    assert (p.train, p.teacher_labels) == ("fp32", "fp32") and "neither amx_bf16 nor avx512_bf16" in p.reason


def test_fp32_trains_in_fp32_and_labels_in_bf16_only_where_that_is_fast(cpu_has):
    cpu_has(AMX)
    p = resolve_precision("fp32", CPU)
    assert (p.train, p.teacher_labels) == ("fp32", "bf16") and "teacher labels in bf16" in p.reason
    cpu_has(NONE)
    assert (resolve_precision("fp32", CPU).train, resolve_precision("fp32", CPU).teacher_labels) == ("fp32", "fp32")


def test_auto_on_a_gpu_follows_its_native_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Some GPU")
    cuda = torch.device("cuda")
    monkeypatch.setattr(prec, "cuda_native_bf16", lambda: True)
    assert resolve_precision("auto", cuda).train == "bf16"
    monkeypatch.setattr(prec, "cuda_native_bf16", lambda: False)
    assert resolve_precision("auto", cuda).train == "fp32"
    with pytest.raises(ConfigError, match="no native bf16"):
        resolve_precision("bf16", cuda)


def test_bf16_is_refused_before_the_run_where_unsupported(cpu_has, capsys):
    cpu_has(NONE)
    found = problems(RunConfig(precision="bf16", device="cpu"))
    assert any(p.startswith("precision bf16 is not supported here") and "neither" in p for p in map(str, found))
    assert not problems(RunConfig(precision="auto", device="cpu"))  # auto falls back instead
    with pytest.raises(ConfigError, match="not supported"):
        resolve_precision("bf16", CPU)
    with pytest.raises(ConfigError, match="not supported on mps"):
        resolve_precision("bf16", torch.device("mps"))
    assert main(["run", "--dataset", "digits", "--precision", "bf16", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "precision bf16 is not supported here" in err
    cpu_has(AMX)
    assert not problems(RunConfig(precision="bf16", device="cpu"))


def test_an_unknown_precision_is_a_problem():
    assert any("precision must be one of fp32, bf16, auto" in str(p) for p in problems(RunConfig(precision="fp16")))


def test_auto_falls_back_to_fp32_and_says_so(cpu_has, tmp_path):
    cpu_has(NONE)
    results = run_experiment(tiny_config(epochs=1, teacher_epochs=1, precision="auto", out=str(tmp_path / "r")))
    assert results["precision"]["asked"] == "auto" and results["precision"]["train"] == "fp32"
    assert "auto: fp32" in results["precision"]["reason"] and "neither" in results["precision"]["reason"]
    assert results["student_kd"]["precision"] == {"train": "fp32", "teacher_labels": "fp32", "evaluated": "fp32",
                                                  "timed": "fp32"}


def test_a_bf16_teacher_is_cached_apart_from_an_fp32_one(cpu_has):
    cpu_has(AMX)
    fp32, bf16, auto = (teacher_cache.teacher_key_fields(RunConfig(precision=p, device="cpu"))
                        for p in ("fp32", "bf16", "auto"))
    assert "precision" not in fp32  # the keys of teachers cached before bf16 are unchanged
    assert bf16["precision"] == auto["precision"] == "bf16"
    cpu_has(NONE)
    assert "precision" not in teacher_cache.teacher_key_fields(RunConfig(precision="auto", device="cpu"))


# ---- what bf16 does in training --------------------------------------------------------------------
class Recorder:
    """Forward hooks on the first convolution of the student and the teacher: the dtypes each
    computed in (the student's while it trains; its validation passes are fp32 by design)."""

    def __init__(self, student, teacher):
        self.seen = {"student": set(), "teacher": set()}
        for name, model in (("student", student), ("teacher", teacher)):
            conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
            conv.register_forward_hook(self.hook(name))

    def hook(self, name):
        def record(module, inputs, output):
            if name == "teacher" or module.training:
                self.seen[name].add(output.dtype)
        return record


@needs_bf16
@pytest.mark.parametrize("asked,student_dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_bf16_autocasts_the_forward_passes_only(asked, student_dtype):
    data = load_dataset("digits")
    torch.manual_seed(0)
    student = create_model("cnn_tiny", 1, 10, 8)
    teacher = create_model("cnn_small", 1, 10, 8).eval()
    recorder = Recorder(student, teacher)
    method = create_method("kd", student, teacher, temperature=4.0, alpha=0.9)
    losses = []
    loss = method.loss

    def recorded(*args):
        parts, logits = loss(*args)
        losses.append(parts.total.dtype)
        return parts, logits

    method.loss = recorded
    config = tiny_config(epochs=1, precision=asked)
    train_phase(method, data, config, epochs=1, phase="p", emit=EventLog(),
                precision=resolve_precision(asked, CPU))
    assert recorder.seen["student"] == {student_dtype}
    assert recorder.seen["teacher"] == {torch.bfloat16}  # labels in bf16 on this (fast-bf16) CPU either way
    assert set(losses) == {torch.float32}  # CE and KL computed in fp32
    assert all(p.dtype == torch.float32 for p in student.parameters())  # the weights stay fp32
    assert all(v.dtype == torch.float32 for v in student.state_dict().values() if v.is_floating_point())


def test_compile_wraps_the_models_only_while_training():
    student, teacher = create_model("cnn_tiny", 1, 10, 8), create_model("cnn_small", 1, 10, 8)
    method = create_method("kd", student, teacher)
    with method.compiled(True):  # torch.compile is lazy: nothing compiles until a call
        assert method.student is not student and method.teacher is not teacher
        assert list(method.student.parameters())[0] is list(student.parameters())[0]
    assert method.student is student and method.teacher is teacher
    assert all(not k.startswith("_orig_mod") for k in method.state_dict())


# ---- a whole bf16 run: results.json, checkpoints, ONNX export ------------------------------------
@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory):
    if not HAS_BF16:
        pytest.skip("this CPU has neither avx512_bf16 nor amx_bf16: bf16 training is refused here")
    root = tmp_path_factory.mktemp("bf16_run")
    config = tiny_config(epochs=2, teacher_epochs=2, precision="bf16", device="cpu", out=str(root / "run"),
                         cache_dir=str(root / "teachers"))
    return run_experiment(config)


def test_a_bf16_run_records_its_precision(bf16_run):
    written = json.loads((Path(bf16_run["artifacts"]["dir"]) / "results.json").read_text())
    assert written["precision"]["asked"] == "bf16" and written["precision"]["train"] == "bf16"
    assert written["precision"]["timed"] == "fp32" and written["precision"]["reason"]
    for role in ("teacher", "student_scratch", "student_kd"):
        assert written[role]["precision"]["train"] == "bf16"
        assert written[role]["precision"]["timed"] == "fp32"
    assert written["student_kd"]["precision"]["teacher_labels"] == "bf16"
    assert all(0 <= written[r]["accuracy"] <= 1 for r in ("teacher", "student_scratch", "student_kd"))
    state = torch.load(written["artifacts"]["student_kd_last"], weights_only=True)
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())  # saved in fp32


def test_a_bf16_trained_student_exports_to_onnx_and_passes_its_check(bf16_run, tmp_path):
    report = export.export_onnx(bf16_run["artifacts"]["dir"], tmp_path / "student.onnx")
    p = report["parity"]
    assert p["ok"] and p["top1_mismatches"] == 0 and p["max_abs_logit_diff"] < 1e-4
    assert p["accuracy_onnx"] == pytest.approx(bf16_run["student_kd"]["accuracy"])  # evaluated in fp32 too


def test_a_cached_bf16_teacher_is_reused_only_by_bf16_runs(bf16_run, tmp_path):
    config = RunConfig.from_dict(bf16_run["config"])
    again = run_experiment(config.replace(out=str(tmp_path / "again"), epochs=1))
    assert again["teacher"]["source"] == "cache" and again["teacher"]["precision"]["train"] == "bf16"
    other = run_experiment(config.replace(out=str(tmp_path / "fp32"), epochs=1, precision="fp32"))
    assert other["teacher"]["source"] == "train" and other["teacher"]["precision"]["train"] == "fp32"
