"""The Learn page's maths (distill_core/tools/lesson.py), each against its definition computed here by
hand on a few fixed numbers: entropy in bits, the dark knowledge, the per-class terms of
KL(p_t || p_s), the teacher's class-similarity matrix and its most confused pairs, and the soft
term's gradient with and without T^2."""
import math

import pytest
import torch

from distill_core.tools.lesson import (class_similarity, dark_knowledge, entropy_bits, kl_shares,
                                       soft_gradient_norms, soft_targets)


def d(values):
    """Float64, as the page hands these functions (soft_targets is float64): exact hand values."""
    return torch.tensor(values, dtype=torch.float64)


def softmax(z):
    m = max(z)
    e = [math.exp(v - m) for v in z]
    return [v / sum(e) for v in e]


def test_soft_targets_are_the_softmax_at_temperature():
    z = [2.0, -1.0, 0.5]
    got = soft_targets(d([z]), 4.0)[0].tolist()
    assert got == pytest.approx(softmax([v / 4.0 for v in z]), rel=1e-12)
    assert got != pytest.approx(softmax(z), rel=1e-3)


@pytest.mark.parametrize("p, bits", [
    ([0.25, 0.25, 0.25, 0.25], 2.0),  # uniform over 4: log2(4)
    ([0.5, 0.25, 0.25], 1.5),  # 0.5 * 1 + 2 * 0.25 * 2
    ([1.0, 0.0, 0.0], 0.0),  # one-hot: no spread, and 0 log 0 counted as 0
    ([0.7, 0.2, 0.1], -(0.7 * math.log2(0.7) + 0.2 * math.log2(0.2) + 0.1 * math.log2(0.1))),
])
def test_entropy_is_in_bits(p, bits):
    got = entropy_bits(d(p))
    assert got == pytest.approx(bits, rel=1e-9, abs=1e-12)
    if bits:  # in nats it would be ln 2 times as much: the unit is checked
        assert got != pytest.approx(bits * math.log(2), rel=1e-3)


def test_dark_knowledge_is_the_probability_on_the_wrong_classes():
    p = d([0.7, 0.2, 0.1])
    assert dark_knowledge(p, 0) == pytest.approx(0.3, rel=1e-9)
    assert dark_knowledge(p, 1) == pytest.approx(0.8, rel=1e-9)
    assert dark_knowledge(d([0.0, 1.0, 0.0]), 1) == 0.0  # a one-hot answer teaches nothing more


def test_kl_shares_are_the_terms_of_kl_teacher_to_student():
    p_t, p_s = [0.6, 0.3, 0.1], [0.1, 0.6, 0.3]
    shares = kl_shares(d(p_t), d(p_s))
    # sum_k p_t[k] log(p_t[k] / p_s[k]), term by term, in nats
    assert shares == pytest.approx([0.6 * math.log(6), 0.3 * math.log(0.5), 0.1 * math.log(1 / 3)], rel=1e-6)
    assert shares[1] < 0  # a term can be negative...
    forward = sum(t * math.log(t / s) for t, s in zip(p_t, p_s))
    backward = sum(s * math.log(s / t) for t, s in zip(p_t, p_s))
    assert sum(shares) == pytest.approx(forward, rel=1e-6) and sum(shares) > 0  # ...their sum, KL(p_t || p_s), not
    # The other direction, KL(p_s || p_t), is another number here: a swapped kl_shares would fail above.
    assert forward != pytest.approx(backward, rel=1e-2)
    assert sum(kl_shares(d(p_s), d(p_t))) == pytest.approx(backward, rel=1e-6)


def test_kl_shares_of_a_class_the_teacher_rules_out_is_zero():
    shares = kl_shares(d([0.5, 0.5, 0.0]), d([0.25, 0.25, 0.5]))
    assert shares == pytest.approx([0.5 * math.log(2), 0.5 * math.log(2), 0.0], rel=1e-9, abs=1e-300)


def test_class_similarity_is_the_mean_soft_probability_per_true_class():
    logits = [[3.0, 1.0, 0.0, -1.0], [2.0, 2.5, 0.0, 0.0], [0.5, 3.0, 1.0, -2.0],
              [0.0, 1.5, 2.0, 0.5], [-1.0, 0.0, 3.0, 1.5]]
    labels = [0, 0, 1, 2, 2]  # no image of class 3: its row stays zeros
    temp = 2.0
    matrix, pairs = class_similarity(d(logits), torch.tensor(labels), temp, pairs=3)
    p = [softmax([v / temp for v in z]) for z in logits]
    want = [[0.0] * 4 for _ in range(4)]
    for c in range(4):
        rows = [p[i] for i, y in enumerate(labels) if y == c]
        if rows:
            want[c] = [sum(r[k] for r in rows) / len(rows) for k in range(4)]
    for got_row, want_row in zip(matrix, want):  # row: the true class; column: where its probability goes
        assert got_row == pytest.approx(want_row, rel=1e-9, abs=1e-15)
    mutual = {(a, b): (want[a][b] + want[b][a]) / 2 for a in range(4) for b in range(a + 1, 4)}
    best = sorted(mutual, key=mutual.get, reverse=True)[:3]
    assert [(a, b) for a, b, _ in pairs] == best
    assert [share for _, _, share in pairs] == pytest.approx([mutual[k] for k in best], rel=1e-9)
    # It can fail: at T = 1 (the temperature ignored) the matrix is another one.
    at_one = class_similarity(d(logits), torch.tensor(labels), 1.0)[0]
    assert at_one[0] != pytest.approx(want[0], rel=1e-3)


def test_soft_gradient_norms_with_and_without_t_squared():
    """d KL(p_t || p_s) / d z_s = (p_s - p_t) / T for one image: the mean of its norm, then times T^2."""
    teacher = [[3.0, 0.0, -1.0], [0.5, 2.0, 1.0]]
    student = [[1.0, 1.0, 0.0], [0.0, 0.0, 2.0]]
    rows = soft_gradient_norms(d(teacher), d(student), [1.0, 4.0])
    for row, temp in zip(rows, (1.0, 4.0)):
        norms = []
        for zt, zs in zip(teacher, student):
            pt, ps = softmax([v / temp for v in zt]), softmax([v / temp for v in zs])
            norms.append(math.sqrt(sum((a - b) ** 2 for a, b in zip(ps, pt))) / temp)
        plain = sum(norms) / len(norms)
        assert row["temperature"] == temp
        assert row["without_t2"] == pytest.approx(plain, rel=1e-9)
        assert row["with_t2"] == pytest.approx(plain * temp * temp, rel=1e-9)
