"""Fidelity to the teacher and calibration, checked against the definitions computed here by hand
(Stanton et al. 2021 for agreement and predictive KL; Guo et al. 2017 for ECE)."""
from __future__ import annotations

import math

import pytest
import torch

from distill_core.training.fidelity import ECE_BINS, agreement_sums, calibration, fidelity


def test_agreement_and_kl_by_the_definition():
    p_t = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    p_s = torch.tensor([[0.5, 0.4, 0.1], [0.6, 0.2, 0.2], [0.2, 0.5, 0.3]])
    # By hand: argmax agrees on images 0 and 2; KL(p_t || p_s) = sum p_t log(p_t / p_s), averaged.
    kl = [sum(t * math.log(t / s) for t, s in zip(rt, rs)) for rt, rs in zip(p_t.tolist(), p_s.tolist())]
    got = fidelity(p_s, p_t)
    assert got["agreement"] == pytest.approx(2 / 3)
    assert got["kl_teacher"] == pytest.approx(sum(kl) / 3, rel=1e-6)
    assert fidelity(p_t, p_s)["kl_teacher"] != pytest.approx(got["kl_teacher"], rel=1e-3)  # the order matters


def log_softmax(z):
    m = max(z)
    log_total = m + math.log(sum(math.exp(v - m) for v in z))
    return [v - log_total for v in z]


def test_the_training_loop_sums_match_the_definition():
    torch.manual_seed(0)
    logits_s, logits_t = torch.randn(64, 10), torch.randn(64, 10) * 3
    sums = sum(agreement_sums(logits_s[i:i + 16], logits_t[i:i + 16].log_softmax(1)) for i in range(0, 64, 16))
    # By hand, image by image: the argmaxes compared; KL(p_t || p_s) = sum_k p_t log(p_t / p_s), at T = 1.
    agree = kl = 0.0
    for zs, zt in zip(logits_s.tolist(), logits_t.tolist()):
        agree += max(range(10), key=zs.__getitem__) == max(range(10), key=zt.__getitem__)
        ls, lt = log_softmax(zs), log_softmax(zt)
        kl += sum(math.exp(b) * (b - a) for a, b in zip(ls, lt))
    assert 0 < agree < 64  # some images agree and some do not: the count is a real check
    assert float(sums[0]) == agree
    assert float(sums[1]) == pytest.approx(kl, rel=1e-5)
    reverse = sum(sum(math.exp(a) * (a - b) for a, b in zip(log_softmax(zs), log_softmax(zt)))
                  for zs, zt in zip(logits_s.tolist(), logits_t.tolist()))
    assert float(sums[1]) != pytest.approx(reverse, rel=1e-2)  # KL(p_s || p_t) is another number
    assert fidelity(logits_t.softmax(1), logits_t.softmax(1)) == pytest.approx({"agreement": 1.0, "kl_teacher": 0.0},
                                                                              abs=1e-6)


def test_ece_by_the_definition():
    torch.manual_seed(1)
    probs = torch.rand(500, 4).softmax(1) ** 3
    probs = probs / probs.sum(1, keepdim=True)
    labels = torch.randint(0, 4, (500,))
    conf, pred = probs.max(1)
    ece = 0.0  # written out from the formula: sum over bins of |bin| / n * |acc(bin) - conf(bin)|
    for i in range(ECE_BINS):
        lo, hi = i / ECE_BINS, (i + 1) / ECE_BINS
        inside = [(c, p == y) for c, p, y in zip(conf.tolist(), pred.tolist(), labels.tolist()) if lo < c <= hi]
        if inside:
            acc = sum(ok for _, ok in inside) / len(inside)
            mean_conf = sum(c for c, _ in inside) / len(inside)
            ece += len(inside) / 500 * abs(acc - mean_conf)
    got = calibration(probs, labels)
    assert got["ece"] == pytest.approx(ece, rel=1e-9)
    assert got["ece_bins"] == ECE_BINS == len(got["reliability"])
    assert sum(b["count"] for b in got["reliability"]) == 500


def test_a_perfectly_calibrated_model_has_no_ece():
    probs = torch.tensor([[1.0, 0.0]] * 10)
    assert calibration(probs, torch.zeros(10, dtype=torch.long))["ece"] == 0.0
    assert calibration(probs, torch.ones(10, dtype=torch.long))["ece"] == pytest.approx(1.0)  # always wrong, always sure
