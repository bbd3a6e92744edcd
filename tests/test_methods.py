"""The distillation methods: each loss against its paper's formula, computed here on its own from
fixed numbers; what every method shares (terms that add up, plain CE without a teacher, the same
scratch student); and one training step of every feature method on every compatible pair."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from distill_core.data.datasets import load_dataset
from distill_core.events import EventLog
from distill_core.methods import METHODS, create_method, method_formula, method_legend
from distill_core.methods.at import at_loss
from distill_core.methods.dkd import dkd_parts
from distill_core.methods.fitnet import regressor
from distill_core.models import MODELS, compatible_pairs, create_model
from distill_core.training.measure import count_params
from distill_core.training.trainer import train_phase

from helpers import tiny_config

S = [[2.0, 0.5, -1.0, 0.3], [0.0, 1.0, 3.0, -0.5], [1.5, 1.4, -2.0, 0.0]]  # student logits
T = [[3.0, 0.0, -2.0, 1.0], [-1.0, 2.0, 2.5, 0.0], [0.2, 2.2, -1.0, 0.4]]  # teacher logits
Y = [0, 2, 1]


# ---- the formulas, by hand -------------------------------------------------------------------------
def softmax(z):
    m = max(z)
    e = [math.exp(v - m) for v in z]
    return [v / sum(e) for v in e]


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q) if a > 0)


def zscore(z):
    mean = sum(z) / len(z)
    std = math.sqrt(sum((v - mean) ** 2 for v in z) / (len(z) - 1))  # unbiased, as Sun et al.
    return [(v - mean) / (std + 1e-7) for v in z]


def ce(z, y):
    return -math.log(softmax(z)[y])


def hand_kd(s, t, y, temp, alpha, standardized=False):
    """alpha * T^2 * mean KL(p_t || p_s) + (1 - alpha) * mean CE: Hinton et al., our convention."""
    soft = hard = 0.0
    for si, ti, yi in zip(s, t, y):
        a, b = (zscore(si), zscore(ti)) if standardized else (si, ti)
        soft += temp * temp * kl(softmax([v / temp for v in b]), softmax([v / temp for v in a]))
        hard += ce(si, yi)
    return alpha * soft / len(s) + (1 - alpha) * hard / len(s)


def hand_dkd(s, t, y, temp):
    """(TCKD, NCKD), Zhao et al. 2022 eq. 1-3: KL of the binary [p_y, 1 - p_y] and KL over the other
    classes renormalised, each times T^2, averaged over the batch."""
    tckd = nckd = 0.0
    for si, ti, yi in zip(s, t, y):
        ps, pt = softmax([v / temp for v in si]), softmax([v / temp for v in ti])
        tckd += kl([pt[yi], 1 - pt[yi]], [ps[yi], 1 - ps[yi]])
        rest_s = softmax([v / temp for i, v in enumerate(si) if i != yi])
        rest_t = softmax([v / temp for i, v in enumerate(ti) if i != yi])
        nckd += kl(rest_t, rest_s)
    return temp * temp * tckd / len(s), temp * temp * nckd / len(s)


class Fixed(torch.nn.Module):
    """A student whose logits are S, whatever its input: the loss is what is tested, not a network."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return torch.tensor(S) + 0 * self.w


def logit_method(name, alpha=0.9, temperature=4.0, **options):
    return create_method(name, Fixed(), torch.nn.Identity(), temperature=temperature, alpha=alpha, **options)


def method_loss(method, y=Y):
    return method.loss(torch.zeros(len(S), 1), torch.tensor(y), torch.tensor(T))[0]


# ---- kd, and logit standardisation --------------------------------------------------------------
@pytest.mark.parametrize("standardized", [False, True])
def test_kd_matches_hintons_formula_with_and_without_standardisation(standardized):
    loss = method_loss(logit_method("kd", alpha=0.7, temperature=2.0, standardize=standardized))
    assert loss.total.item() == pytest.approx(hand_kd(S, T, Y, 2.0, 0.7, standardized), rel=1e-5)
    # the test can fail: the other variant gives another number
    assert loss.total.item() != pytest.approx(hand_kd(S, T, Y, 2.0, 0.7, not standardized), rel=1e-3)


def test_standardisation_ignores_each_rows_scale_and_shift():
    """What logit standardisation is for: a teacher whose logits are 5x larger and shifted teaches the same."""
    plain = method_loss(logit_method("kd", standardize=True))
    method = logit_method("kd", standardize=True)
    scaled = method.loss(torch.zeros(3, 1), torch.tensor(Y), 5 * torch.tensor(T) + 3)[0]
    assert scaled.term("kd").value.item() == pytest.approx(plain.term("kd").value.item(), rel=1e-4)
    unscaled = logit_method("kd").loss(torch.zeros(3, 1), torch.tensor(Y), 5 * torch.tensor(T) + 3)[0]
    assert unscaled.term("kd").value.item() != pytest.approx(plain.term("kd").value.item(), rel=1e-2)


# ---- dkd -----------------------------------------------------------------------------------------
def test_dkd_parts_match_the_papers_formula():
    tckd, nckd = dkd_parts(torch.tensor(S), torch.tensor(T), torch.tensor(Y), 4.0)
    want_t, want_n = hand_dkd(S, T, Y, 4.0)
    assert (tckd.item(), nckd.item()) == (pytest.approx(want_t, rel=1e-5), pytest.approx(want_n, rel=1e-5))
    # The paper's own check of the decomposition (its eq. 3): KD = TCKD + (1 - p^t_y) NCKD, per image.
    for i in range(len(S)):
        t_i, n_i = dkd_parts(torch.tensor(S[i:i + 1]), torch.tensor(T[i:i + 1]), torch.tensor(Y[i:i + 1]), 4.0)
        pt = softmax([v / 4.0 for v in T[i]])[Y[i]]
        assert (t_i + (1 - pt) * n_i).item() == pytest.approx(hand_kd(S[i:i + 1], T[i:i + 1], Y[i:i + 1], 4.0, 1.0),
                                                               rel=1e-5)
    # ...and it can fail: NCKD over all classes (the target not masked) is another number
    unmasked = sum(16 * kl(softmax([v / 4 for v in ti]), softmax([v / 4 for v in si])) for si, ti in zip(S, T)) / 3
    assert nckd.item() != pytest.approx(unmasked, rel=1e-3)


@pytest.mark.parametrize("epoch, ramp", [(1, 0.5), (2, 1.0), (5, 1.0)])
def test_dkd_loss_is_ce_plus_the_warmed_up_parts(epoch, ramp):
    method = logit_method("dkd", a=1.5, b=6.0, warmup=2)
    method.begin_epoch(epoch, 8)
    loss = method_loss(method)
    tckd, nckd = hand_dkd(S, T, Y, 4.0)
    hard = sum(ce(s, y) for s, y in zip(S, Y)) / 3
    assert loss.total.item() == pytest.approx(hard + ramp * (1.5 * tckd + 6.0 * nckd), rel=1e-5)
    assert {t.name: t.weight for t in loss.terms} == {"ce": 1.0, "tckd": 1.5 * ramp, "nckd": 6.0 * ramp}


def test_dkd_with_mixed_labels_takes_the_larger_share_as_the_target_class():
    """Mixed images carry class probabilities: CE is -sum_k y_k log softmax(s)_k, and TCKD and NCKD
    take as target the class with the larger share (here never the class of Y)."""
    mixed = [[0.1, 0.6, 0.3, 0.0], [0.0, 0.3, 0.2, 0.5], [0.45, 0.0, 0.55, 0.0]]
    target = [1, 3, 2]  # the largest share of each row, read off by hand
    method = logit_method("dkd", a=1.5, b=6.0, warmup=0)
    loss = method.loss(torch.zeros(3, 1), torch.tensor(mixed), torch.tensor(T))[0]
    hard = sum(-sum(yk * math.log(pk) for yk, pk in zip(yi, softmax(si))) for si, yi in zip(S, mixed)) / 3
    tckd, nckd = hand_dkd(S, T, target, 4.0)
    assert loss.term("ce").value.item() == pytest.approx(hard, rel=1e-5)
    assert loss.term("tckd").value.item() == pytest.approx(tckd, rel=1e-4)  # fp32 of a small KL
    assert loss.term("nckd").value.item() == pytest.approx(nckd, rel=1e-5)
    assert loss.total.item() == pytest.approx(hard + 1.5 * tckd + 6.0 * nckd, rel=1e-5)
    assert nckd != pytest.approx(hand_dkd(S, T, Y, 4.0)[1], rel=1e-3)  # another target: another NCKD


def test_dkd_standardize_z_scores_both_rows_first():
    loss = method_loss(logit_method("dkd", standardize=True, warmup=0))
    tckd, nckd = hand_dkd([zscore(s) for s in S], [zscore(t) for t in T], Y, 4.0)
    assert loss.term("tckd").value.item() == pytest.approx(tckd, rel=1e-4)  # fp32 of a small KL
    assert loss.term("nckd").value.item() == pytest.approx(nckd, rel=1e-4)
    assert loss.term("nckd").value.item() != pytest.approx(hand_dkd(S, T, Y, 4.0)[1], rel=1e-3)


def log_binary(z, y):
    """(log p_y, log(1 - p_y)) of softmax(z), in float64 without ever forming 1 - p_y: with
    r = sum over k != y of exp(z_k - z_y), p_y = 1 / (1 + r) and 1 - p_y = r / (1 + r)."""
    r = sum(math.exp(v - z[y]) for k, v in enumerate(z) if k != y)
    return -math.log1p(r), math.log(r) - math.log1p(r)


def test_dkd_survives_a_teacher_sure_to_the_last_bit():
    """1 - p_y of a confident teacher rounds to 0 in fp32: computed as log(1 - p_y), it was -inf.
    The parts must still be the formula's values, here computed in log space in float64."""
    s, t, y = [1.0, 0.5, -0.5], [200.0, 3.0, 0.0], 0
    tckd, nckd = dkd_parts(torch.tensor([s]), torch.tensor([t]), torch.tensor([y]), 1.0)
    (lt_y, lt_rest), (ls_y, ls_rest) = log_binary(t, y), log_binary(s, y)
    want_t = math.exp(lt_y) * (lt_y - ls_y) + math.exp(lt_rest) * (lt_rest - ls_rest)
    want_n = kl(softmax(t[1:]), softmax(s[1:]))  # the other classes alone, renormalised
    assert tckd.item() == pytest.approx(want_t, rel=1e-5) and nckd.item() == pytest.approx(want_n, rel=1e-5)
    assert want_t == pytest.approx(-math.log(softmax(s)[0]), rel=1e-9)  # a sure teacher: TCKD is -log p^s_y


# ---- feature methods on fixed tensors --------------------------------------------------------------
def tiny_pair(seed=0):
    torch.manual_seed(seed)
    teacher = create_model("cnn_small", 1, 10, 8).eval().requires_grad_(False)
    student = create_model("cnn_tiny", 1, 10, 8)
    x = torch.randn(4, 1, 8, 8)
    return teacher, student, x, torch.tensor([1, 2, 3, 4])


def stage_map(model, x, stage):
    """The map at a stage, computed without hooks: the demo CNNs' feature layers up to that tap."""
    index = int(model.feature_taps[stage - 1].split(".")[1])
    return model.features[:index + 1](x)


def test_fitnet_hint_is_the_mse_of_the_regressed_student_map():
    teacher, student, x, y = tiny_pair()
    method = create_method("fitnet", student, teacher, input_shape=(1, 8, 8), weight=50.0)
    student.train()
    loss, logits = method.loss(x, y, method.teacher_targets(x))
    conv, bn = method.regressor[0], method.regressor[1]
    with torch.no_grad():
        fs = stage_map(student, x, 2).numpy()  # 16 x 4 x 4, the teacher's size: the regressor is a 1x1 conv
        ft = stage_map(teacher, x, 2).numpy()  # 32 x 4 x 4
        w, b = conv.weight.numpy()[:, :, 0, 0], conv.bias.numpy()
        gamma, beta = bn.weight.numpy(), bn.bias.numpy()
        hard = float(F.cross_entropy(logits, y))
    z = np.einsum("oc,bchw->bohw", w.astype(np.float64), fs) + b[:, None, None]
    # BatchNorm in training mode: each channel standardised by its batch mean and biased variance; then ReLU
    mean, var = z.mean(axis=(0, 2, 3), keepdims=True), z.var(axis=(0, 2, 3), keepdims=True)
    regressed = np.maximum((z - mean) / np.sqrt(var + 1e-5) * gamma[:, None, None] + beta[:, None, None], 0)
    hint = float(((regressed - ft) ** 2).mean())  # Romero et al.'s L2, averaged over every element
    assert loss.term("hint").value.item() == pytest.approx(hint, rel=1e-4)
    assert loss.total.item() == pytest.approx(hard + 50.0 * hint, rel=1e-4)
    per_image = float(((regressed - ft) ** 2).sum()) / len(x)  # the squared error summed per image
    assert loss.term("hint").value.item() != pytest.approx(per_image, rel=1e-3)


# ---- the FitNets regressor, case by case (by hand: the layers' sums written out) ---------------------
def hand_conv(x, w, b, stride, pad):
    """Cross-correlation of x (B, C, H, W) with w (O, C, kh, kw), zero padding, as the sums they are."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    kh, kw = w.shape[2:]
    oh, ow = (xp.shape[2] - kh) // stride + 1, (xp.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.einsum("bckl,ockl->bo", patch, w)
    return out + b[:, None, None]


def hand_conv_transpose(x, w, b, stride, pad):
    """Transposed conv, w (C, O, kh, kw): each input pixel scatters w times itself at stride steps;
    ``pad`` rows and columns are then cut from every side."""
    kh, kw = w.shape[2:]
    h, wd = x.shape[2:]
    full = np.zeros((x.shape[0], w.shape[1], (h - 1) * stride + kh, (wd - 1) * stride + kw))
    for i in range(h):
        for j in range(wd):
            full[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw] += np.einsum("bc,cokl->bokl",
                                                                                          x[:, :, i, j], w)
    return full[:, :, pad:full.shape[2] - pad, pad:full.shape[3] - pad] + b[:, None, None]


def block_mean(x, k):
    """Each k x k block averaged: adaptive average pooling where the sizes divide."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // k, k, w // k, k).mean(axis=(3, 5))


def nearest(x, size):
    """Nearest upsampling: output pixel i reads input pixel floor(i * in / out)."""
    rows = [i * x.shape[2] // size for i in range(size)]
    cols = [j * x.shape[3] // size for j in range(size)]
    return x[:, :, rows][:, :, :, cols]


# (student map, teacher map, the layers before BN and ReLU, the conv's kernel, stride, padding, the map by hand)
REGRESSOR_CASES = {
    "twice as large: 3x3 stride-2 conv": ((2, 8, 8), (3, 4, 4), [torch.nn.Conv2d], (3, 3), 2, 1,
                                          lambda x, w, b: hand_conv(x, w, b, 2, 1)),
    "half as large: transposed conv": ((2, 4, 4), (3, 8, 8), [torch.nn.ConvTranspose2d], (4, 4), 2, 1,
                                       lambda x, w, b: hand_conv_transpose(x, w, b, 2, 1)),
    "larger, less than twice: the kernel absorbs it": ((2, 5, 6), (3, 4, 4), [torch.nn.Conv2d], (2, 3), 1, 0,
                                                       lambda x, w, b: hand_conv(x, w, b, 1, 0)),
    "same size: 1x1 conv": ((2, 4, 4), (3, 4, 4), [torch.nn.Conv2d], (1, 1), 1, 0,
                            lambda x, w, b: hand_conv(x, w, b, 1, 0)),
    "over twice as large: pooled, then 3x3 conv": ((2, 12, 12), (3, 4, 4),
                                                   [torch.nn.AdaptiveAvgPool2d, torch.nn.Conv2d], (3, 3), 1, 1,
                                                   lambda x, w, b: hand_conv(block_mean(x, 3), w, b, 1, 1)),
    "smaller, not half: upsampled, then 3x3 conv": ((2, 3, 3), (3, 8, 8), [torch.nn.Upsample, torch.nn.Conv2d],
                                                    (3, 3), 1, 1, lambda x, w, b: hand_conv(nearest(x, 8), w, b, 1, 1)),
}


@pytest.mark.parametrize("case", list(REGRESSOR_CASES))
def test_the_fitnet_regressor_follows_its_rule_case_by_case(case):
    s_shape, t_shape, layers, kernel, stride, padding, by_hand = REGRESSOR_CASES[case]
    reg = regressor(s_shape, t_shape).eval()  # eval: BN with its fresh statistics, mean 0 and variance 1
    assert [type(m) for m in reg] == [*layers, torch.nn.BatchNorm2d, torch.nn.ReLU]
    conv = reg[len(layers) - 1]
    assert (conv.kernel_size, conv.stride, conv.padding) == (kernel, (stride, stride), (padding, padding))
    rng = np.random.default_rng(3)
    transposed = layers[-1] is torch.nn.ConvTranspose2d
    w = rng.normal(size=(2, 3, *kernel) if transposed else (3, 2, *kernel))
    b = rng.normal(size=3)
    x = rng.normal(size=(2, *s_shape))
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(w))
        conv.bias.copy_(torch.tensor(b))
        got = reg(torch.tensor(x, dtype=torch.float32)).numpy()
    assert got.shape == (2, *t_shape)
    want = np.maximum(by_hand(x, w, b) / math.sqrt(1 + 1e-5), 0)
    assert np.abs(got - want).max() < 1e-4 * max(1.0, np.abs(want).max())
    assert (want > 0).any() and (want == 0).any()  # both sides of the ReLU are exercised


def hand_attention(f):
    """a(f) of the code form: channel mean of f^2, flattened, L2-normalised per image."""
    a = (f ** 2).mean(axis=1).reshape(f.shape[0], -1)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def hand_at(student_maps, teacher_maps):
    """Sum over stages of mean((a(f_s) - a(f_t))^2), the larger map of a pair first averaged down in
    blocks to the smaller one's size (mdistiller's rule; the sizes here divide)."""
    total = 0.0
    for fs, ft in zip(student_maps, teacher_maps):
        if fs.shape[2] > ft.shape[2]:
            fs = block_mean(fs, fs.shape[2] // ft.shape[2])
        elif ft.shape[2] > fs.shape[2]:
            ft = block_mean(ft, ft.shape[2] // fs.shape[2])
        total += float(((hand_attention(fs) - hand_attention(ft)) ** 2).mean())
    return total


def test_attention_transfer_is_the_code_form_and_not_the_papers():
    rng = np.random.default_rng(0)
    fs = [rng.normal(size=(2, 3, 4, 4)), rng.normal(size=(2, 5, 2, 2)), rng.normal(size=(2, 4, 6, 6))]
    ft = [rng.normal(size=(2, 6, 4, 4)), rng.normal(size=(2, 7, 4, 4)), rng.normal(size=(2, 3, 3, 3))]
    # stage 2: the teacher's map is larger, 4x4 averaged down to 2x2; stage 3: the student's, 6x6 down to 3x3
    pooled_t = ft[1].reshape(2, 7, 2, 2, 2, 2).mean(axis=(3, 5))
    pooled_s = fs[2].reshape(2, 4, 3, 2, 3, 2).mean(axis=(3, 5))
    pairs = list(zip([fs[0], fs[1], pooled_s], [ft[0], pooled_t, ft[2]]))
    want = sum(((hand_attention(s) - hand_attention(t)) ** 2).mean() for s, t in pairs)
    got = at_loss([torch.tensor(f, dtype=torch.float32) for f in fs],
                  [torch.tensor(f, dtype=torch.float32) for f in ft])
    assert got.item() == pytest.approx(want, rel=1e-5)
    assert hand_at(fs, ft) == pytest.approx(want, rel=1e-12)  # the helper the next test uses, checked here
    # The student's larger map on its own: the third stage alone.
    third = at_loss([torch.tensor(fs[2], dtype=torch.float32)], [torch.tensor(ft[2], dtype=torch.float32)])
    assert third.item() == pytest.approx(((hand_attention(pooled_s) - hand_attention(ft[2])) ** 2).mean(), rel=1e-5)
    # The paper's eq. 2 (the norm of the difference, not its mean square, halved) is another number.
    paper = sum(np.linalg.norm(hand_attention(s) - hand_attention(t), axis=1).mean() / 2 for s, t in pairs)
    assert got.item() != pytest.approx(paper, rel=1e-3)


def test_attention_transfer_loss_on_models_reads_the_stages_asked():
    teacher, student, x, y = tiny_pair()
    method = create_method("at", student, teacher, input_shape=(1, 8, 8), stages="1,3", weight=10.0)
    loss, logits = method.loss(x, y, method.teacher_targets(x))
    with torch.no_grad():
        maps = {s: (stage_map(student, x, s).numpy(), stage_map(teacher, x, s).numpy()) for s in (1, 2, 3)}
        hard = F.cross_entropy(logits, y).item()
    want = hand_at([maps[1][0], maps[3][0]], [maps[1][1], maps[3][1]])
    wrong = hand_at([maps[1][0], maps[2][0]], [maps[1][1], maps[2][1]])
    assert loss.term("at").value.item() == pytest.approx(want, rel=1e-5)
    assert loss.total.item() == pytest.approx(hard + 10.0 * want, rel=1e-5)
    assert want != pytest.approx(wrong, rel=1e-3)


# ---- what every method shares ----------------------------------------------------------------------
@pytest.mark.parametrize("name", METHODS.names())
def test_every_methods_terms_add_up_to_its_loss_and_without_a_teacher_it_is_plain_ce(name):
    teacher, student, x, y = tiny_pair()
    method = create_method(name, student, teacher, input_shape=(1, 8, 8))
    loss, _ = method.loss(x, y, method.teacher_targets(x))
    assert len(loss.terms) >= 2 and len({t.name for t in loss.terms}) == len(loss.terms)
    assert sum(t.contribution for t in loss.terms).item() == pytest.approx(loss.total.item(), rel=1e-5)
    alone = create_method(name, student, None, input_shape=(1, 8, 8))
    loss, logits = alone.loss(x, y, None)
    assert [t.name for t in loss.terms] == ["ce"] and loss.total.item() == F.cross_entropy(logits, y).item()
    assert alone.extra_parameters() == []  # no regressor without a teacher


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_the_scratch_student_is_the_same_whatever_the_method(digits):
    """The scratch phase runs the run's method without a teacher: bit for bit plain training."""
    config = tiny_config(epochs=1)
    states = {}
    for name in METHODS.names():
        torch.manual_seed(0)
        student = create_model("cnn_tiny", 1, 10, 8)
        method = create_method(name, student, None, input_shape=(1, 8, 8))
        result = train_phase(method, digits, config, epochs=1, phase="student_scratch", emit=EventLog())
        states[name] = result.last_state
    for name, state in states.items():
        assert all(torch.equal(state[k], states["kd"][k]) for k in state), name


def test_a_methods_connectors_leave_the_random_generator_and_the_student_as_they_were():
    teacher, student, x, y = tiny_pair()
    keys, params = list(student.state_dict()), count_params(student)
    before = torch.random.get_rng_state()
    method = create_method("fitnet", student, teacher, input_shape=(1, 8, 8))
    assert torch.equal(torch.random.get_rng_state(), before)  # the distilled student draws as its scratch twin
    assert list(student.state_dict()) == keys and count_params(student) == params  # not in its checkpoint
    assert method.extra_parameters() and all(p.requires_grad for p in method.extra_parameters())


def test_fitnets_two_stages_train_hints_first_then_kd(digits):
    config = tiny_config(epochs=3)
    torch.manual_seed(0)
    teacher = create_model("cnn_small", 1, 10, 8)
    student = create_model("cnn_tiny", 1, 10, 8)
    method = create_method("fitnet", student, teacher, input_shape=(1, 8, 8), hint_epochs=2, temperature=4.0,
                           alpha=0.9)
    head = student.classifier[1].weight.detach().clone()
    still = {}  # epoch -> the classifier still had its initial weights at that epoch's last event
    result = train_phase(method, digits, config, epochs=3, phase="student_kd", emit=lambda e: still.update(
        {e.data["epoch"]: torch.equal(student.classifier[1].weight, head)}))
    stages = [r.get("stage") for r in result.history]
    assert stages == ["hints", "hints", None]
    assert [sorted(t["name"] for t in r["terms"]) for r in result.history] == [["ce", "hint"], ["ce", "hint"],
                                                                                 ["ce", "kd"]]
    assert result.history[0]["terms"][0]["weight"] == 0.0  # CE waits while the hints train
    assert still == {1: True, 2: True, 3: False}  # hints reach the student up to the hint layer only
    scratch = create_method("fitnet", create_model("cnn_tiny", 1, 10, 8), None, hint_epochs=2)
    result = train_phase(scratch, digits, config, epochs=3, phase="student_scratch", emit=lambda e: None)
    assert [r.get("stage") for r in result.history] == [None] * 3  # its twin trains on CE alone: no hints stage


# ---- every feature method, one pair per model family -----------------------------------------------
# Every family's feature taps, as teacher or student (the student-only families with a teacher of
# another family), and the regressor's cases on real maps at stage 2: same size, the student's map
# twice the teacher's, half of it (3x32x32) and upsampled. The regressor's rule itself is checked
# above, case by case.
FAMILY_PAIRS = [("cnn_large", "cnn_tiny"), ("resnet56", "resnet20"), ("wrn_40_2", "wrn_16_1"), ("vgg13", "vgg8"),
                ("resnet18", "resnet8"), ("vgg13", "mobilenetv2"), ("cnn_large", "mobilenet_v3_small")]


def family(name):
    return MODELS.meta(name)["family"]


def test_the_family_pairs_cover_every_family_with_feature_taps():
    pairs = compatible_pairs(features=True)
    assert set(FAMILY_PAIRS) <= set(pairs)
    assert {family(n) for pair in FAMILY_PAIRS for n in pair} == {family(n) for pair in pairs for n in pair}


@pytest.mark.parametrize("shape", [(1, 28), (3, 32)], ids=["1x28x28", "3x32x32"])
@pytest.mark.parametrize("name", [n for n in METHODS.names() if METHODS.get(n).FEATURES])
def test_one_training_step_of_every_feature_method_on_a_pair_of_every_family(name, shape):
    c, size = shape
    x, y = torch.randn(2, c, size, size), torch.tensor([1, 2])
    failed = []
    for t, s in FAMILY_PAIRS:  # a smoke test, not training
        try:
            torch.manual_seed(0)
            student = create_model(s, c, 10, size).train()
            teacher = create_model(t, c, 10, size).eval().requires_grad_(False)
            method = create_method(name, student, teacher, input_shape=(c, size, size))
            optimizer = torch.optim.SGD(list(student.parameters()) + method.extra_parameters(), lr=0.01)
            loss, logits = method.loss(x, y, method.teacher_targets(x))
            optimizer.zero_grad()
            loss.total.backward()
            optimizer.step()
            assert logits.shape == (2, 10) and math.isfinite(loss.total.item())
            feature_term = loss.terms[-1]
            assert feature_term.value.item() > 0, feature_term
            assert all(p.grad is not None for p in method.extra_parameters())
        except Exception as exc:  # noqa: BLE001 - every failing pair is listed at once
            failed.append(f"{t} -> {s}: {type(exc).__name__}: {exc}")
    assert not failed, "\n".join(failed)


# Each symbol a method's formula draws, and the words its legend must use for it.
SYMBOL_WORDS = {"z_s": ("z_s", "logits"), "z_t": ("z_t",), r"\sigma": ("σ: softmax",), "f_s^{(": ("f^(",),
                "r(f": ("r: ",), r"\tfrac{e}{W}": ("e: the epoch", "W: the warmup"), "a(f": ("a(f):",),
                r"j \in S": ("S: ",), "T^2": ("The T²",)}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_says_what_the_symbols_of_its_formula_stand_for(name):
    symbols, _ = method_formula(name, 4.0, 0.9, {})
    legend = method_legend(name)
    drawn = [symbol for symbol in SYMBOL_WORDS if symbol in symbols]
    assert drawn and METHODS.get(name).LEGEND
    for symbol in drawn:
        assert all(word in legend for word in SYMBOL_WORDS[symbol]), (name, symbol)
    assert legend.endswith("The scratch student is trained with CE alone: the same recipe, no teacher.")
