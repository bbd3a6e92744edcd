"""The GPU path, where there is a CUDA GPU; elsewhere these tests are skipped with the reason.

The rest of the suite trains on the CPU (``tests/helpers.py``). These ask for ``cuda`` by name and
check what only a GPU can show: the run trains there with its data kept on the device, bf16 where
the GPU has it natively, and its checkpoints come back as fp32 CPU tensors that export to ONNX.
``benchmarks/gpu.py`` measures the same path; ``docs/benchmarks.md`` has its figures.
"""
import json
from pathlib import Path

import pytest
import torch

from distill_core import resolve_precision, run_experiment
from distill_core.data.datasets import load_dataset
from distill_core.events import EventLog
from distill_core.methods import create_method
from distill_core.models import create_model
from distill_core.precision import cuda_native_bf16
from distill_core.tools import export
from distill_core.training.trainer import train_phase

from helpers import tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
ROLES = ("teacher", "student_scratch", "student_kd")


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("gpu_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISTILL_STUDIO_HOME", str(home))
        yield run_experiment(tiny_config(device="cuda", precision="auto", epochs=3, out=str(home / "run")))


def test_a_run_trains_on_the_gpu_and_says_so(gpu_run):
    written = json.loads((Path(gpu_run["artifacts"]["dir"]) / "results.json").read_text())
    assert written["device"].startswith("cuda")
    expected = "bf16" if cuda_native_bf16() else "fp32"
    assert written["precision"]["train"] == expected and written["precision"]["timed"] == "fp32"
    for role in ROLES:
        assert 0.3 < written[role]["accuracy"] <= 1  # digits: 10 classes, chance is 0.1
    for role in ROLES[1:]:
        state = torch.load(written["artifacts"][f"{role}_last"], weights_only=True)
        assert all(v.device.type == "cpu" for v in state.values())  # a checkpoint loads anywhere
        assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())


def test_a_gpu_trained_student_exports_to_onnx_and_passes_its_check(gpu_run, tmp_path):
    report = export.export_onnx(gpu_run["artifacts"]["dir"], tmp_path / "student.onnx")
    assert report["parity"]["ok"] and report["parity"]["top1_mismatches"] == 0


def test_the_step_loop_takes_its_batches_from_the_device(tmp_path):
    """Data kept on the GPU: every batch the student sees is already there, augmented there, and in
    channels_last; the teacher labels in bf16 where the GPU has it."""
    cuda = torch.device("cuda")
    config = tiny_config(device="cuda", precision="auto", epochs=1)
    data = load_dataset(config.dataset).to(cuda)
    student = create_model("cnn_tiny", data.in_channels, data.num_classes, data.image_size).to(cuda)
    teacher = create_model("cnn_small", data.in_channels, data.num_classes, data.image_size).to(cuda).eval()
    student, teacher = (m.to(memory_format=torch.channels_last) for m in (student, teacher))
    method = create_method("kd", student, teacher, temperature=4.0, alpha=0.9)
    seen = []
    loss = method.loss

    def watched(x, y, targets):
        seen.append((x.device.type, y.device.type, x.is_contiguous(memory_format=torch.channels_last)))
        return loss(x, y, targets)

    method.loss = watched
    result = train_phase(method, data, config, epochs=1, phase="p", emit=EventLog(),
                         precision=resolve_precision("auto", cuda))
    assert seen and set(seen) == {("cuda", "cuda", True)}
    assert result.history[0]["val_accuracy"] > 0.1
