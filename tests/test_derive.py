"""A student derived from its teacher (models/derive.py): which blocks and channels it keeps, that
a teacher-initialised one holds exactly the teacher's slices, and that it is a model like any other."""
import numpy as np
import pytest
import torch

from distill_core.models import MODELS, create_model
from distill_core.models.derive import (DERIVED, derive, derive_problem, derived_model, evenly, family_of,
                                        student_model, teacher_slice)
from distill_core.training.measure import count_flops, count_params

DERIVABLE = [n for n in MODELS.names() if derive_problem(n) is None]
SMALL = ["cnn_large", "mlp", "resnet20", "wrn_16_2", "vgg8", "mobilenetv2"]  # one (or two) of each family


def spaced(n: int, fraction: float) -> list[int]:
    """The test's own evenly spaced indices: numpy's linspace, rounded."""
    k = max(1, int(np.floor(fraction * n + 0.5)))
    return [0] if k == 1 else [int(i) for i in np.round(np.linspace(0, n - 1, k))]


def trained_looking(name: str, channels: int = 3, size: int = 32, seed: int = 0) -> torch.nn.Module:
    """A teacher whose BatchNorm statistics and affine parameters are not the defaults, so that
    forgetting to copy them would show."""
    torch.manual_seed(seed)
    model = create_model(name, channels, 10, size)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return model.eval()


def test_evenly_spaced_indices_keep_the_first_and_the_last():
    assert evenly(12, 0.5) == [0, 2, 4, 7, 9, 11]  # DistilBERT's layers of BERT-base
    assert evenly(9, 1 / 3) == [0, 4, 8]
    assert evenly(16, 0.5) == spaced(16, 0.5)
    assert evenly(3, 0.01) == [0] and evenly(5, 1.0) == [0, 1, 2, 3, 4]


def test_a_resnet_keeps_block_0_and_evenly_spaced_blocks_with_the_teachers_slices():
    teacher = trained_looking("resnet56", 1, 8)
    student = derive(teacher, family_of("resnet56"), depth=1 / 3, width=0.5, init="teacher")
    assert list(student.layer2._modules) == ["0", "4", "8"]  # block 0 holds the stride and the projection
    i16, i32, i64 = spaced(16, 0.5), spaced(32, 0.5), spaced(64, 0.5)
    t, s = teacher.state_dict(), student.state_dict()
    assert torch.equal(s["conv1.weight"], t["conv1.weight"][i16])  # the image's one channel is kept whole
    assert torch.equal(s["layer1.4.conv1.weight"], t["layer1.4.conv1.weight"][i16][:, i16])
    assert torch.equal(s["layer2.0.downsample.0.weight"], t["layer2.0.downsample.0.weight"][i32][:, i16])
    assert torch.equal(s["layer3.8.conv2.weight"], t["layer3.8.conv2.weight"][i64][:, i64])
    for stat in ("weight", "bias", "running_mean", "running_var"):
        assert torch.equal(s[f"layer2.4.bn2.{stat}"], t[f"layer2.4.bn2.{stat}"][i32])
    assert torch.equal(s["fc.weight"], t["fc.weight"][:, i64]) and torch.equal(s["fc.bias"], t["fc.bias"])
    assert "layer1.1.conv1.weight" not in s
    assert student.derivation["stages"][0] == {"path": "layer1", "blocks": 9, "kept": [0, 4, 8]}


def test_a_demo_cnn_head_takes_each_kept_channels_nine_pooled_inputs():
    teacher = trained_looking("cnn_large", 1, 28)
    student = derive(teacher, "demo CNN", depth=0.5, width=0.25)
    t, s = teacher.state_dict(), student.state_dict()
    i64, ihead = spaced(64, 0.25), spaced(1024, 0.25)
    flat = [c * 9 + j for c in i64 for j in range(9)]
    assert torch.equal(s["classifier.1.weight"], t["classifier.1.weight"][ihead][:, flat])
    assert torch.equal(s["classifier.4.weight"], t["classifier.4.weight"][:, ihead])
    # stages [16], [32, 32], [64, 64]: the second conv of each two-block stage goes
    assert [k for k in s if k.endswith("0.weight") and k.startswith("features")] == \
        ["features.0.0.weight", "features.2.0.weight", "features.5.0.weight"]
    assert student.feature_taps == ("features.0", "features.2", "features.5")


def test_mobilenet_depthwise_layers_follow_their_channels():
    teacher = trained_looking("mobilenetv2", 3, 32)
    student = derive(teacher, "MobileNetV2", depth=1.0, width=0.5)
    block = student.features[2].conv  # expand 1x1, depthwise 3x3, project 1x1
    hidden = teacher.features[2].conv[0][0].out_channels
    assert block[1][0].groups == block[1][0].out_channels == len(spaced(hidden, 0.5))
    ih = spaced(hidden, 0.5)
    assert torch.equal(block[1][0].weight, teacher.features[2].conv[1][0].weight[ih])


@pytest.mark.parametrize("name", SMALL)
def test_depth_1_width_1_from_the_teacher_computes_exactly_the_teachers_outputs(name):
    channels, size = (1, 28) if name in ("cnn_large", "mlp") else (3, 32)
    teacher = trained_looking(name, channels, size)
    x = torch.randn(3, channels, size, size)
    same = derive(teacher, family_of(name), 1.0, 1.0, init="teacher").eval()
    with torch.no_grad():
        assert torch.equal(same(x), teacher(x))
        torch.manual_seed(1)
        fresh = derive(teacher, family_of(name), 1.0, 1.0, init="random").eval()
        assert not torch.allclose(fresh(x), teacher(x))  # the check above can fail


@pytest.mark.parametrize("name", DERIVABLE)
def test_every_derivable_teacher_gives_a_smaller_working_student(name):
    teacher = trained_looking(name, 1, 8)
    student = derive(teacher, family_of(name), 0.5, 0.5)
    x = torch.randn(2, 1, 8, 8)
    assert student(x).shape == (2, 10)
    for path in getattr(student, "feature_taps", ()):
        student.get_submodule(path)  # every tap is still there
    assert count_params(student) < count_params(teacher)
    assert count_flops(student, (1, 8, 8)) < count_flops(teacher, (1, 8, 8))


def test_torchvision_teachers_are_refused_with_a_reason():
    assert "torchvision" in derive_problem("resnet18")
    assert derive_problem("resnet56") is None
    with pytest.raises(ValueError, match="torchvision"):
        derived_model("resnet18", 3, 10, 32, 0.5, 0.5)


def test_random_init_follows_the_seed_and_the_architecture_needs_no_weights():
    def build(seed):
        torch.manual_seed(seed)
        return student_model(DERIVED, "resnet20", 3, 10, 32, 0.5, 0.5)

    a, b, c = build(0).state_dict(), build(0).state_dict(), build(1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["layer1.0.conv1.weight"], c["layer1.0.conv1.weight"])
    teacher = trained_looking("resnet20")
    from_teacher = derived_model("resnet20", 3, 10, 32, 0.5, 0.5, source=teacher, init="teacher")
    # a checkpoint of the teacher-initialised student loads into the architecture rebuilt from names alone
    build(2).load_state_dict(from_teacher.state_dict())
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in from_teacher.state_dict().items()}


def test_teacher_slice_is_the_teacher_initialised_students_start():
    teacher = trained_looking("mlp", 1, 8)
    reference = teacher_slice(teacher, "MLP", 0.5, 0.5)
    ih = spaced(128, 0.5)
    assert torch.equal(reference["net.1.weight"], teacher.net[1].weight[ih])
    assert torch.equal(reference["net.3.weight"], teacher.net[3].weight[:, ih])
    assert set(reference) == {"net.1.weight", "net.1.bias", "net.3.weight", "net.3.bias"}
