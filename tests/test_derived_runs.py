"""A run whose student is derived from its teacher: the weight anchor as its own loss term, the CLI's
refusals, and a derived student that is a model like any other (measured, reloaded from its config
alone, exported to ONNX, repeated by --config)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from distill_core import RunConfig, problems
from distill_core.cli import main
from distill_core.methods import ANCHOR_LABEL, WeightAnchor, create_method
from distill_core.models import create_model
from distill_core.models.derive import derive
from distill_core.tools import export
from distill_core.vocab import DISTILLED, SCRATCH

RUN = ["--dataset", "digits", "--teacher", "resnet14", "--student", "derived", "--derive-depth", "0.5",
       "--derive-width", "0.5", "--weight-anchor", "0.01", "--epochs", "2", "--teacher-epochs", "1",
       "--batch-size", "64", "--latency-repeats", "5", "--latency-batch", "8", "--device", "cpu",
       "--num-threads", "1"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def derived_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("derived")
    mp = pytest.MonkeyPatch()
    mp.setenv("DISTILL_STUDIO_HOME", str(root / "home"))
    before = torch.get_num_threads()
    try:
        assert main(["run", *RUN, "--out", str(root / "first"), "--quiet"]) == 0
        assert main(["run", "--config", str(root / "first" / "config.json"), "--out", str(root / "again"),
                     "--quiet"]) == 0
    finally:
        torch.set_num_threads(before)
        mp.undo()
    return [json.loads((root / name / "results.json").read_text()) for name in ("first", "again")]


def test_the_anchor_is_its_formula_computed_here():
    torch.manual_seed(0)
    teacher = create_model("mlp", 1, 10, 8).eval()
    student = derive(teacher, "MLP", 1.0, 0.5, init="teacher")
    hidden = [int(i) for i in np.round(np.linspace(0, 127, 64))]
    reference = {"net.1.weight": teacher.net[1].weight[hidden], "net.1.bias": teacher.net[1].bias[hidden],
                 "net.3.weight": teacher.net[3].weight[:, hidden], "net.3.bias": teacher.net[3].bias}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.01 * torch.randn_like(p))
    expected = sum(((dict(student.named_parameters())[k] - v) ** 2).sum() for k, v in reference.items())
    method = create_method("kd", student, teacher, temperature=4.0, alpha=0.9)
    method.anchor = WeightAnchor(0.5, reference)
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 10, (6,))
    loss, logits = method.loss(x, y, teacher(x).detach())
    anchor = loss.term("anchor")
    assert anchor.label == ANCHOR_LABEL and anchor.weight == 0.5
    assert float(anchor.value.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    assert float(loss.total.detach()) == pytest.approx(float(sum(t.contribution.detach() for t in loss.terms)),
                                                       rel=1e-6)
    loss.total.backward()
    with_anchor = {k: p.grad.clone() for k, p in student.named_parameters()}
    student.zero_grad()
    method.anchor = None
    method.loss(x, y, teacher(x).detach())[0].total.backward()
    method.anchor = WeightAnchor(0.5, reference)
    # the anchor's gradient is 2 mu (w - P(w_t)) on top of the others', parameter by parameter
    for k, p in student.named_parameters():
        added = with_anchor[k] - p.grad
        want = 2 * 0.5 * (p.detach() - reference[k].detach())
        assert torch.allclose(added, want, rtol=1e-4, atol=1e-6), k
        assert want.abs().max() > 1e-3  # the student was moved off its slice: a gradient to see
    # under --compile the trainer holds torch.compile's wrapper, whose parameter names are prefixed
    assert torch.equal(method.anchor.value(torch.compile(student)), method.anchor.value(student))


@pytest.mark.parametrize("argv, words", [
    (["--weight-anchor", "0.1"], "weight_anchor pulls the student towards"),
    (["--student", "derived", "--student-init", "random", "--weight-anchor", "0.1"], "starts from random weights"),
    (["--weight-anchor", "-1", "--student", "derived"], "weight_anchor must be >= 0"),
    (["--student", "derived", "--derive-depth", "0"], "derive_depth must be in (0, 1] (the share of each stage's blocks kept)"),
    (["--student", "derived", "--derive-width", "1.5"], "derive_width must be in (0, 1] (the share of each layer's channels kept)"),
    (["--student", "derived", "--teacher", "resnet18"], "torchvision"),
    (["--derive-width", "0.3"], "derive_width applies to a derived student only"),
    (["--derive-depth", "0.5"], "derive_depth applies to a derived student only"),  # the default, given
    (["--student-init", "teacher"], "student_init 'teacher' needs a student derived from the teacher"),
    (["--student-init", "copy", "--student", "derived"], "student_init must be one of auto, teacher, random"),
])
def test_misuse_exits_2_with_one_error_line(capsys, argv, words):
    code, out, err = run_cli(capsys, "run", "--dataset", "digits", *argv)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and words in err, err
    assert out == ""


def test_feature_methods_read_the_teachers_family_for_a_derived_student():
    assert not problems(RunConfig(teacher="resnet20", student="derived", method="fitnet"))
    assert any("feature maps" in p.message for p in problems(RunConfig(teacher="mlp", student="derived",
                                                                       method="fitnet")))


def test_a_derived_run_trains_measures_and_records_how_the_student_was_made(derived_run):
    results = derived_run[0]
    origin = results["student_origin"]
    assert origin["arch"] == "derived" and origin["init"] == "teacher" and origin["derived_from"] == "resnet14"
    assert [s["kept"] for s in origin["derivation"]["stages"]] == [[0], [0], [0]]
    for role in (SCRATCH, DISTILLED):  # both students carry the anchor, as its own term
        last = results[role]["history"][-1]
        assert last["train_anchor"] > 0
        assert {"name": "anchor", "label": ANCHOR_LABEL} .items() <= next(
            t for t in last["terms"] if t["name"] == "anchor").items()
        entry = results[role]
        assert 0 < entry["params"] < results["teacher"]["params"]
        assert 0 < entry["flops"] < results["teacher"]["flops"] and entry["size_bytes"] > 0
        assert entry["latency_ms"]["batch_1"]["median"] > 0


def test_config_repeats_the_run_exactly(derived_run):
    first, again = derived_run
    assert again["config"] | {"out": None} == first["config"] | {"out": None}
    assert again["student_origin"] == first["student_origin"]
    for role in (SCRATCH, DISTILLED):
        assert [h["train_loss"] for h in again[role]["history"]] == [h["train_loss"] for h in first[role]["history"]]
        a = torch.load(again["artifacts"][f"{role}_last"], weights_only=True)
        b = torch.load(first["artifacts"][f"{role}_last"], weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_checkpoint_loads_from_the_saved_config_alone_and_exports_to_onnx(derived_run, tmp_path):
    results = derived_run[0]
    run_dir = Path(results["artifacts"]["dir"])
    run = export.open_run(run_dir)
    model = export.build_model(run, DISTILLED)  # rebuilt from config.json: no teacher weights needed
    state = torch.load(results["artifacts"]["student_kd_last"], weights_only=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    report = export.export_run(run, "onnx", str(tmp_path / "student.onnx"))
    assert report["parity"]["top1_agreement"] == 1.0
    assert json.loads(export.model_metadata(run, DISTILLED, "last")["derived_from"])["derived_from"] == "resnet14"
