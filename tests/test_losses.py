"""The loss convention: alpha * T^2 * KL(teacher || student) + (1 - alpha) * CE, reported as the
terms ``ce`` (weight 1 - alpha) and ``kd`` (weight alpha), unweighted."""
import math

import pytest
import torch
import torch.nn.functional as F

from distill_core.methods.losses import kd_loss, soft_kl


def softmax(z):
    m = max(z)
    e = [math.exp(v - m) for v in z]
    return [v / sum(e) for v in e]


def test_kd_loss_matches_a_hand_computed_value():
    s = [[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]]
    t = [[3.0, 0.0, -2.0], [-1.0, 2.0, 2.5]]
    y = [0, 2]
    T, alpha = 2.0, 0.7
    kl = ce = 0.0
    for si, ti, yi in zip(s, t, y):
        ps, pt = softmax([v / T for v in si]), softmax([v / T for v in ti])
        kl += sum(p * math.log(p / q) for p, q in zip(pt, ps))
        ce += -math.log(softmax(si)[yi])
    expected_kd = T * T * kl / 2  # batchmean: per sample, not per class
    expected = alpha * expected_kd + (1 - alpha) * ce / 2
    loss = kd_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), T, alpha)
    assert loss.term("kd").value.item() == pytest.approx(expected_kd, rel=1e-5)
    assert loss.term("ce").value.item() == pytest.approx(ce / 2, rel=1e-5)
    assert loss.total.item() == pytest.approx(expected, rel=1e-5)
    # each term's weight and contribution, as the Live chart draws them
    assert (loss.term("kd").weight, loss.term("ce").weight) == (alpha, pytest.approx(1 - alpha))
    assert sum(t.contribution for t in loss.terms).item() == pytest.approx(expected, rel=1e-5)


def test_alpha_zero_is_plain_cross_entropy_with_identical_gradients():
    torch.manual_seed(0)
    s = torch.randn(8, 10, requires_grad=True)
    t, y = torch.randn(8, 10), torch.randint(0, 10, (8,))
    loss = kd_loss(s, t, y, temperature=4.0, alpha=0.0)
    loss.total.backward()
    grad_kd = s.grad.clone()
    s.grad = None
    F.cross_entropy(s, y).backward()
    assert loss.total.item() == F.cross_entropy(s, y).item()
    assert torch.equal(grad_kd, s.grad)


def test_alpha_one_is_pure_distillation():
    s = [[0.3, -1.2, 2.0, 0.1, 0.0], [1.5, 1.0, -0.5, 0.2, -2.0]]
    t = [[1.0, -0.5, 2.5, -1.0, 0.4], [0.0, 2.0, -1.0, 0.5, 0.3]]
    T = 3.0
    kl = sum(sum(p * math.log(p / q) for p, q in zip(softmax([v / T for v in ti]), softmax([v / T for v in si])))
             for si, ti in zip(s, t))
    loss = kd_loss(torch.tensor(s), torch.tensor(t), torch.tensor([0, 1]), temperature=T, alpha=1.0)
    assert loss.term("kd").value.item() == pytest.approx(T * T * kl / 2, rel=1e-5)  # T^2 KL, per image
    assert loss.total.item() == pytest.approx(T * T * kl / 2, rel=1e-5)  # and nothing of the CE


def test_kl_is_zero_when_student_matches_teacher_and_positive_otherwise():
    z = torch.randn(6, 7)
    assert soft_kl(z, z, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_kl(z, z.flip(1), 4.0).item() > 0.01


def test_soft_term_gradient_scale_is_roughly_independent_of_temperature():
    """The T^2 factor cancels the 1/T^2 shrinkage of soft-target gradients (Hinton et al.)."""
    torch.manual_seed(0)
    t = torch.randn(32, 10) * 3
    s0 = torch.randn(32, 10) * 3
    norms = {}
    for T in (4.0, 8.0, 16.0, 32.0):
        s = s0.clone().requires_grad_(True)
        soft_kl(s, t, T).backward()
        norms[T] = s.grad.norm().item()
    assert max(norms.values()) / min(norms.values()) < 1.5, norms
    # The check has teeth: the same KL without T^2, computed here on its own, shrinks its
    # gradients about 64x from T=4 to T=32, so a soft_kl that forgot T^2 would fail above.
    plain = {}
    for T in (4.0, 32.0):
        s = s0.clone().requires_grad_(True)
        F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="batchmean").backward()
        plain[T] = s.grad.norm().item()
    assert plain[4.0] / plain[32.0] > 30, plain


def test_soft_targets_accept_mixed_labels():
    s = torch.randn(3, 4)
    probs = torch.tensor([[0.7, 0.3, 0, 0], [0, 1.0, 0, 0], [0.5, 0, 0, 0.5]])
    loss = kd_loss(s, None, probs, 2.0, 0.5)
    assert loss.total.item() == pytest.approx(F.cross_entropy(s, probs).item())
    assert [t.name for t in loss.terms] == ["ce"]  # without a teacher: CE alone, whatever the method


def test_kd_with_mixed_labels_and_a_teacher_matches_the_hand_formula():
    """Mixed images (distill_data replace or mixup) carry class probabilities: the CE term is then
    -sum_k y_k log softmax(s)_k, averaged over the batch; the soft term does not read the labels."""
    s = [[2.0, 0.5, -1.0, 0.3], [0.0, 1.0, 3.0, -0.5], [1.5, 1.4, -2.0, 0.0]]
    t = [[3.0, 0.0, -2.0, 1.0], [-1.0, 2.0, 2.5, 0.0], [0.2, 2.2, -1.0, 0.4]]
    y = [[0.7, 0.3, 0.0, 0.0], [0.0, 0.25, 0.0, 0.75], [0.4, 0.0, 0.6, 0.0]]
    T, alpha = 2.0, 0.6
    ce = sum(-sum(yk * math.log(pk) for yk, pk in zip(yi, softmax(si))) for si, yi in zip(s, y)) / 3
    kl = sum(sum(p * math.log(p / q) for p, q in zip(softmax([v / T for v in ti]), softmax([v / T for v in si])))
             for si, ti in zip(s, t)) / 3
    loss = kd_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), T, alpha)
    assert loss.term("ce").value.item() == pytest.approx(ce, rel=1e-5)
    assert loss.term("kd").value.item() == pytest.approx(T * T * kl, rel=1e-5)
    assert loss.total.item() == pytest.approx(alpha * T * T * kl + (1 - alpha) * ce, rel=1e-5)
    hard = sum(-math.log(softmax(si)[max(range(4), key=yi.__getitem__)]) for si, yi in zip(s, y)) / 3
    assert ce != pytest.approx(hard, rel=1e-3)  # the labels' largest share alone is another number
