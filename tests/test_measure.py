import pytest
import torch
import torch.nn.functional as F
from torch import nn

from distill_core.training import measure
from distill_core.data.datasets import ImageData


# ---- FLOPs, params, size ----------------------------------------------------------------------
def small_net(bias: bool = False) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=bias), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 10, bias=bias))


def test_count_flops_matches_analytic_count_and_restores_mode():
    net = small_net().train()
    # conv: 4 output channels x 8x8 positions x 3x3x1 MACs; linear: 256 x 10 MACs; 2 FLOPs per MAC
    expected = 2 * (4 * 8 * 8 * 9) + 2 * (256 * 10)
    assert measure.count_flops(net, (1, 8, 8)) == expected
    assert net.training and all(m.training for m in net.modules())
    assert measure.FLOPS_UNIT == "FLOPs"


def test_count_flops_ignores_bias_adds():
    # Documented convention: FlopCounterMode counts multiply-adds only, so biases add nothing.
    assert measure.count_flops(small_net(bias=True), (1, 8, 8)) == 2 * (4 * 8 * 8 * 9 + 256 * 10)


def test_count_flops_is_per_image_and_in_eval_mode():
    seen = []
    net = small_net()
    net[0].register_forward_hook(lambda m, i, o: seen.append((i[0].shape[0], m.training,
                                                              torch.is_grad_enabled())))
    measure.count_flops(net, (1, 8, 8))
    assert seen == [(1, False, False)]


def test_count_params():
    net = small_net(bias=True)
    assert measure.count_params(net) == (4 * 9 + 4) + (256 * 10 + 10)
    net[0].weight.requires_grad_(False)  # frozen parameters still count
    assert measure.count_params(net) == (4 * 9 + 4) + (256 * 10 + 10)


def test_state_dict_bytes_is_file_size_of_fp32_weights():
    net = small_net(bias=True)
    params = measure.count_params(net)
    size = measure.state_dict_bytes(net)
    assert 4 * params <= size <= 4 * params + 4096
    # half-precision weights are still reported at fp32 size
    assert measure.state_dict_bytes(small_net(bias=True).half()) == size


def test_state_dict_bytes_counts_batchnorm_buffers():
    bn = nn.BatchNorm1d(4096)  # 8,192 parameters and 8,192 running-stat floats
    params = measure.count_params(bn)
    assert params == 8192
    size = measure.state_dict_bytes(bn)
    assert size >= 4 * (params + 8192) + 8
    assert size <= 4 * (params + 8192) + 8 + 8192


# ---- latency ----------------------------------------------------------------------------------
class Counted(nn.Module):
    """Counts forwards and records the batch size, mode and inference-mode flag of each. Given a
    fake clock (``fake_clock``), each forward advances it by ``delay`` seconds."""

    def __init__(self, delay: float = 0.0, clock: list | None = None):
        super().__init__()
        self.fc = nn.Linear(16, 3)
        self.delay, self.clock = delay, clock
        self.calls = []

    def forward(self, x):
        self.calls.append((x.shape[0], self.training, torch.is_inference_mode_enabled()))
        if self.clock is not None:
            self.clock[0] += self.delay
        return self.fc(x.flatten(1))


def fake_clock(monkeypatch) -> list:
    """measure's perf_counter reads [seconds], which only the models' forwards advance."""
    now = [0.0]
    monkeypatch.setattr(measure.time, "perf_counter", lambda: now[0])
    return now


def test_measure_latency_keys_counts_and_mode():
    net = Counted().train()
    out = measure.measure_latency(net, (1, 4, 4), "cpu", batch_sizes=(1, 8), repeats=7, warmup=2)
    assert set(out) == {"batch_1", "batch_8", "device", "threads", "in_turn"}
    assert out["in_turn"] == 1  # timed alone
    assert out["device"] == "cpu"
    assert out["threads"] == torch.get_num_threads()
    for key in ("batch_1", "batch_8"):
        row = out[key]
        assert row["median"] > 0
        assert row["p90"] >= row["median"]
        assert row["repeats"] == 7
    assert [c[0] for c in net.calls] == [1] * 9 + [8] * 9  # warmup + repeats per batch size
    assert all(not training and inference for _, training, inference in net.calls)
    assert net.training  # a training model is left training


def test_measure_latency_defaults_and_eval_model_stays_eval():
    net = Counted().eval()
    out = measure.measure_latency(net, (1, 4, 4), "cpu")
    assert set(out) == {"batch_1", "batch_64", "device", "threads", "in_turn"}
    assert out["batch_1"]["repeats"] == 30 and out["batch_64"]["repeats"] == 30
    assert len(net.calls) == 2 * (5 + 30)
    assert not net.training


def test_measure_latency_stops_early_on_slow_models_but_times_at_least_five(monkeypatch):
    # Each forward takes 10 ms by the fake clock: the budget of 20 ms is spent after two timed
    # runs (and the warm-up's half of it after one), whatever this machine is doing.
    net = Counted(delay=0.010, clock=fake_clock(monkeypatch))
    out = measure.measure_latency(net, (1, 4, 4), "cpu", batch_sizes=(4,), repeats=100, warmup=3,
                                  budget_s=0.02)
    row = out["batch_4"]
    assert row["repeats"] == 5  # the budget is spent after two runs, but five are always timed
    assert row["median"] == pytest.approx(10) and row["p90"] == pytest.approx(10)
    assert row["warmup"] == 2  # stops once half the budget (10 ms) has passed: after its second run
    assert len(net.calls) == row["warmup"] + 5


def test_measure_latency_median_and_p90_of_individual_runs(monkeypatch):
    # A fake clock that each forward advances by a known time: the statistics are then exact.
    now = fake_clock(monkeypatch)
    durations = iter([0.5] * 2 + [k / 1000 for k in (3, 1, 10, 2, 5, 4, 9, 6, 8, 7)])

    class Ticking(nn.Module):
        def forward(self, x):
            now[0] += next(durations)
            return x

    out = measure.measure_latency(Ticking(), (1, 2, 2), "cpu", batch_sizes=(1,), repeats=10,
                                  warmup=2, budget_s=100)
    row = out["batch_1"]
    assert row["repeats"] == 10 and row["warmup"] == 2  # warm-up times are not in the stats
    assert row["median"] == pytest.approx(5.5)
    assert row["p90"] == pytest.approx(9.1)  # linear interpolation between 9 and 10 ms


def test_measure_latency_never_fewer_than_five_runs():
    net = Counted()
    out = measure.measure_latency(net, (1, 4, 4), "cpu", batch_sizes=(1,), repeats=2, warmup=0)
    assert out["batch_1"]["repeats"] == 5 and len(net.calls) == 5


def test_measure_latency_num_threads_is_reported_and_restored():
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # not the count it measures with, or the check could not fail (the tests run on 1)
    try:
        out = measure.measure_latency(Counted(), (1, 4, 4), "cpu", batch_sizes=(1,), repeats=5,
                                      warmup=0, num_threads=1)
        assert out["threads"] == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


class Logged(Counted):
    """A Counted model that also writes its name to a log shared with the other models."""

    def __init__(self, name: str, log: list, delay: float = 0.0, clock: list | None = None):
        super().__init__(delay, clock)
        self.name, self.log = name, log

    def forward(self, x):
        self.log.append(self.name)
        return super().forward(x)


def test_timed_inputs_come_in_the_models_memory_layout():
    """A channels_last model (the engine's default) timed on NCHW images would convert them in
    every timed call; a plain model keeps plain inputs."""
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3)).eval()
    fast = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3)).eval().to(memory_format=torch.channels_last)
    cpu = torch.device("cpu")
    assert measure._example(plain, 2, (3, 8, 8), cpu).is_contiguous()
    x = measure._example(fast, 2, (3, 8, 8), cpu)
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def test_measure_latencies_times_compared_models_in_turn():
    log = []
    models = {"a": Logged("a", log), "b": Logged("b", log), "c": Logged("c", log)}
    out = measure.measure_latencies(models, (1, 4, 4), "cpu", batch_sizes=(1,), repeats=6, warmup=2)
    assert log[:6] == ["a", "a", "b", "b", "c", "c"]  # each model's own warm-up first
    # then, round after round, each model in turn: an untimed run (its weights back in the
    # caches the model before it evicted), then the timed one
    assert log[6:] == ["a", "a", "b", "b", "c", "c"] * 6
    assert {name: row["batch_1"]["repeats"] for name, row in out.items()} == {"a": 6, "b": 6, "c": 6}
    assert all(row["threads"] == torch.get_num_threads() and row["device"] == "cpu" and row["in_turn"] == 3
               for row in out.values())


def test_measure_latencies_times_only_the_run_after_the_untimed_one(monkeypatch):
    # A fake clock that each forward advances by a known time: the untimed runs take 100 ms,
    # so any of them counted would show in the medians.
    now = fake_clock(monkeypatch)

    class Ticking(nn.Module):
        def __init__(self, timed_ms):
            super().__init__()
            warm_then_turns = [0.5] + [t for ms in timed_ms for t in (0.1, ms / 1000)]
            self.durations = iter(warm_then_turns)

        def forward(self, x):
            now[0] += next(self.durations)
            return x

    out = measure.measure_latencies({"a": Ticking([3, 1, 5, 2, 4]), "b": Ticking([30, 10, 50, 20, 40])}, (1, 2, 2),
                                    "cpu", batch_sizes=(1,), repeats=5, warmup=1, budget_s=100)
    assert out["a"]["batch_1"]["median"] == pytest.approx(3.0)
    assert out["b"]["batch_1"]["median"] == pytest.approx(30.0)


def test_measure_latencies_budget_is_per_model_and_stop_is_honoured(monkeypatch):
    log, clock = [], fake_clock(monkeypatch)
    slow, fast = Logged("slow", log, delay=0.01, clock=clock), Logged("fast", log, clock=clock)
    out = measure.measure_latencies({"slow": slow, "fast": fast}, (1, 4, 4), "cpu", batch_sizes=(2,), repeats=20,
                                    warmup=0, budget_s=0.02)
    assert out["slow"]["batch_2"]["repeats"] == 5 and out["fast"]["batch_2"]["repeats"] == 20
    assert log[:20] == ["slow", "slow", "fast", "fast"] * 5 and log[20:] == ["fast"] * 30

    class Stop(Exception):
        pass

    rounds = []

    def between_rounds():
        rounds.append(len(log))
        if len(rounds) == 3:
            raise Stop

    log.clear()
    with pytest.raises(Stop):
        measure.measure_latencies({"slow": slow, "fast": fast}, (1, 4, 4), "cpu", batch_sizes=(2,), repeats=20,
                                  warmup=0, between_rounds=between_rounds)
    assert rounds == [4, 8, 12] and len(log) == 12  # abandoned after the third round


def test_model_profiles_give_each_model_its_own_numbers():
    """Profiled together, each model keeps its own counts (worked out by hand) and its latencies."""
    nets = {"big": small_net(), "small": nn.Sequential(nn.Flatten(), nn.Linear(64, 10))}
    profiles = measure.model_profiles(nets, (1, 8, 8), "cpu", latency_batch=4, repeats=5)
    assert {n: (p["params"], p["flops"], p["size_bytes"]) for n, p in profiles.items()} == {
        "big": (4 * 9 + 256 * 10, 2 * (4 * 8 * 8 * 9 + 256 * 10), measure.state_dict_bytes(nets["big"])),
        "small": (64 * 10 + 10, 2 * 64 * 10, measure.state_dict_bytes(nets["small"]))}
    for p in profiles.values():
        assert p["latency_ms"]["in_turn"] == 2 and p["latency_ms"]["batch_4"]["median"] > 0


def test_model_profile():
    net = small_net()
    prof = measure.model_profile(net, (1, 8, 8), "cpu", latency_batch=4, repeats=5)
    assert prof["params"] == measure.count_params(net)
    assert prof["size_bytes"] == measure.state_dict_bytes(net)
    assert prof["flops"] == 2 * (4 * 8 * 8 * 9 + 256 * 10)
    assert prof["flops_unit"] == "FLOPs"
    assert set(prof["latency_ms"]) == {"batch_1", "batch_4", "device", "threads", "in_turn"}


# ---- evaluate ---------------------------------------------------------------------------------
class FixedLogits(nn.Module):
    """Returns row i of a table for image i: image i is filled with the pixel value i."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.register_buffer("table", table)
        self.anchor = nn.Parameter(torch.zeros(()))  # so the model has a dtype and a mode
        self.seen_training = []

    def forward(self, x):
        self.seen_training.append(self.training)
        idx = (x[:, 0, 0, 0] * 255).round().long()  # mean 0, std 1: normalize is just /255
        return self.table[idx] + self.anchor


def make_data(labels: list[int], num_classes: int) -> ImageData:
    n = len(labels)
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    y = torch.tensor(labels, dtype=torch.long)
    return ImageData("hand", x, y, x, y, [f"c{i}" for i in range(num_classes)], (0.0,), (1.0,))


def logits_for(preds: list[int], num_classes: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    table = torch.rand(len(preds), num_classes, generator=g)
    table[torch.arange(len(preds)), torch.tensor(preds)] = 5.0
    return table


def test_evaluate_small_problem_exactly():
    labels = [0, 0, 1, 2, 3, 3]
    preds = [0, 1, 1, 2, 0, 3]
    table = logits_for(preds, 4)
    model = FixedLogits(table).train()
    out = measure.evaluate(model, make_data(labels, 4), "cpu", batch_size=4)  # two batches
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert "top5" not in out  # fewer than 10 classes
    assert out["per_class_accuracy"] == pytest.approx([0.5, 1.0, 1.0, 0.5])
    assert out["confusion_matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1]]
    assert all(isinstance(v, int) for row in out["confusion_matrix"] for v in row)
    expected_loss = F.cross_entropy(table, torch.tensor(labels)).item()
    assert out["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert out["probs"].shape == (6, 4) and out["probs"].device.type == "cpu"
    assert torch.allclose(out["probs"], table.softmax(1), atol=1e-6)
    assert model.seen_training == [False, False]
    assert model.training


def test_evaluate_top5_with_ten_classes():
    labels = [0, 1, 2, 3]
    table = torch.zeros(4, 10)
    table[0, 0] = 9.0  # top-1 right
    table[1, [5, 6, 7, 8]] = torch.tensor([9.0, 8.0, 7.0, 6.0])
    table[1, 1] = 5.0  # 5th: top-5 right, top-1 wrong
    table[2, [5, 6, 7, 8, 9]] = torch.tensor([9.0, 8.0, 7.0, 6.0, 5.0])
    table[2, 2] = -1.0  # 6th at best: top-5 wrong
    table[3, 9] = 9.0
    table[3, 3] = -5.0  # last
    out = measure.evaluate(FixedLogits(table), make_data(labels, 10), "cpu", channels_last=True)
    assert out["accuracy"] == pytest.approx(0.25)
    assert out["top5"] == pytest.approx(0.5)
    assert len(out["per_class_accuracy"]) == 10
    # classes with no validation images report 0.0 and an all-zero confusion row
    assert out["per_class_accuracy"][4:] == [0.0] * 6
    assert out["confusion_matrix"][7] == [0] * 10
    assert out["confusion_matrix"][1][5] == 1 and out["confusion_matrix"][3][9] == 1


# ---- disagreements ----------------------------------------------------------------------------
def test_disagreements_order_fields_and_limit():
    labels = torch.tensor([0, 1, 2, 0, 1])
    # ordered by the mean of the two models' confidence in their own answer, ties by index
    a = torch.tensor([[0.9, 0.1, 0.0],    # agrees with b: left out
                      [0.6, 0.4, 0.0],    # a:0 0.6, b:1 0.7 -> 0.65
                      [0.0, 0.05, 0.95],  # a:2 0.95, b:0 0.9 -> 0.925
                      [0.05, 0.9, 0.05],  # a:1 0.9, b:2 0.45 -> 0.675
                      [0.6, 0.4, 0.0]])   # a:0 0.6, b:1 0.7 -> 0.65, after index 1
    b = torch.tensor([[0.8, 0.2, 0.0],
                      [0.3, 0.7, 0.0],
                      [0.9, 0.1, 0.0],
                      [0.3, 0.25, 0.45],
                      [0.3, 0.7, 0.0]])
    rows = measure.disagreements(labels, a, b)
    assert [r["index"] for r in rows] == [2, 3, 1, 4]
    assert rows[0] == {"index": 2, "label": 2, "a": {"pred": 2, "prob": pytest.approx(0.95)},
                       "b": {"pred": 0, "prob": pytest.approx(0.9)}}
    assert rows[3]["label"] == 1 and rows[3]["a"]["pred"] == 0 and rows[3]["b"]["pred"] == 1
    assert isinstance(rows[0]["index"], int) and isinstance(rows[0]["a"]["prob"], float)
    assert [r["index"] for r in measure.disagreements(labels, a, b, limit=2)] == [2, 3]
    assert measure.disagreements(labels, a, a) == []
    named = measure.disagreements(labels, a, b, limit=1, names=("teacher", "student_kd"))
    assert set(named[0]) == {"index", "label", "teacher", "student_kd"}


# ---- compare and headline ---------------------------------------------------------------------
def entry(params, size, acc, best, lat1, lat64, flops=None):
    e = {"params": params, "size_bytes": size, "accuracy": acc, "best_accuracy": best,
         "latency_ms": {"batch_1": {"median": lat1, "p90": lat1 * 1.1},
                        "batch_64": {"median": lat64, "p90": lat64 * 1.1},
                        "device": "cpu", "threads": 2}}
    if flops is not None:
        e["flops"] = flops
    return e


TEACHER = entry(1000, 4000, 0.90, 0.91, 4.0, 64.0, flops=2000)
STUDENT = entry(100, 400, 0.88, 0.90, 1.0, 32.0, flops=500)


def test_compare_ratios_and_summary():
    c = measure.compare(TEACHER, STUDENT)
    assert c["smaller_x"] == pytest.approx(10.0)
    assert c["fewer_params_x"] == pytest.approx(10.0)
    assert c["fewer_flops_x"] == pytest.approx(4.0)
    assert c["faster_x_batch_1"] == pytest.approx(4.0)
    assert c["faster_x_batch_64"] == pytest.approx(2.0)
    assert c["delta_points"] == pytest.approx(-2.0)
    assert c["delta_points_best"] == pytest.approx(-1.0)
    assert c["summary"] == "10.0x smaller, 4.0x faster (batch 1), -2.0 points (last epoch, val)"


def test_compare_reports_batch_1_and_the_largest_batch_only():
    teacher = entry(1000, 4000, 0.9, 0.9, 4.0, 64.0)
    student = entry(100, 400, 0.9, 0.9, 1.0, 16.0)
    teacher["latency_ms"]["batch_8"] = {"median": 9.0}
    student["latency_ms"]["batch_8"] = {"median": 3.0}
    student["latency_ms"]["batch_256"] = {"median": 50.0}  # the teacher has no batch 256
    c = measure.compare(teacher, student)
    assert {k for k in c if k.startswith("faster_x_")} == {"faster_x_batch_1", "faster_x_batch_64"}
    assert c["faster_x_batch_64"] == pytest.approx(4.0)


def test_compare_slower_student_missing_flops_and_zero_guard():
    slow = entry(100, 0, 0.95, 0.95, 8.0, 0.0)
    teacher = {k: v for k, v in TEACHER.items() if k != "flops"}
    c = measure.compare(teacher, slow)
    assert "smaller_x" not in c and "fewer_flops_x" not in c and "faster_x_batch_64" not in c
    assert c["faster_x_batch_1"] == pytest.approx(0.5)
    assert c["summary"] == "2.0x slower (batch 1), +5.0 points (last epoch, val)"


def test_a_ratio_that_rounds_to_one_is_said_in_words():
    twin = entry(1000, 4000, 0.9, 0.9, 4.0 / 0.999, 64.0)  # timing noise: 0.999x
    c = measure.compare(TEACHER, twin)
    assert "about as fast (batch 1)" in c["summary"] and "slower" not in c["summary"]


def test_headline_with_and_without_scratch():
    scratch = entry(100, 400, 0.85, 0.86, 1.0, 32.0)
    full = measure.headline({"teacher": TEACHER, "student_scratch": scratch, "student_kd": STUDENT})
    assert set(full) == {"kd_vs_teacher", "scratch_vs_teacher", "kd_gain_points", "kd_gain_points_best"}
    assert full["kd_gain_points"] == pytest.approx(3.0)
    assert full["kd_gain_points_best"] == pytest.approx(4.0)
    assert full["scratch_vs_teacher"]["delta_points"] == pytest.approx(-5.0)

    cancelled = measure.headline({"teacher": TEACHER, "student_kd": STUDENT})
    assert set(cancelled) == {"kd_vs_teacher"}
    assert cancelled["kd_vs_teacher"]["smaller_x"] == pytest.approx(10.0)
    assert measure.headline({"teacher": TEACHER}) == {}
    no_kd = measure.headline({"teacher": TEACHER, "student_scratch": scratch})
    assert set(no_kd) == {"scratch_vs_teacher"}


def test_measure_does_not_import_streamlit():
    import subprocess
    import sys

    code = "import sys, distill_core.training.measure; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
