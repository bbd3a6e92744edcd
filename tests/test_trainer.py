"""The trainer: fair comparisons, repeatable seeds, a frozen teacher, a prompt stop."""
import threading

import pytest
import torch

from distill_core.data.datasets import load_dataset
from distill_core.errors import Cancelled, TrainingDiverged
from distill_core.events import EPOCH, STEP, EventLog
from distill_core.methods import Loss, Term, create_method
from distill_core.methods.kd import LogitKD
from distill_core.models import create_model
from distill_core.training import trainer
from distill_core.training.trainer import train_phase

from helpers import tiny_config


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def build(name, data, seed=0):
    torch.manual_seed(seed)
    return create_model(name, data.in_channels, data.num_classes, data.image_size)


def train(data, config, student, teacher=None, alpha=None, **kw):
    method = create_method("kd", student, teacher, temperature=config.temperature,
                           alpha=config.alpha if alpha is None else alpha)
    return train_phase(method, data, config, epochs=config.epochs, phase="p", emit=EventLog(), **kw)


def test_same_seed_gives_identical_runs(digits):
    config = tiny_config()
    a = train(digits, config, build("cnn_tiny", digits))
    b = train(digits, config, build("cnn_tiny", digits))
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    assert all(torch.equal(a.last_state[k], b.last_state[k]) for k in a.last_state)
    c = train(digits, config.replace(seed=1), build("cnn_tiny", digits, seed=1))
    assert [r["train_loss"] for r in a.history] != [r["train_loss"] for r in c.history]


def test_scratch_and_kd_students_see_the_same_batches(digits):
    """With alpha=0 the KD loss is exactly CE, so the KD phase must reproduce the scratch phase
    bit for bit: same initial weights, same data order, same augmentation draws."""
    config = tiny_config()
    teacher = build("cnn_small", digits, seed=5)
    scratch = train(digits, config, build("cnn_tiny", digits))
    kd = train(digits, config, build("cnn_tiny", digits), teacher=teacher, alpha=0.0)
    assert all(torch.equal(scratch.last_state[k], kd.last_state[k]) for k in scratch.last_state)
    # ...and with alpha > 0 the teacher really changes the student
    kd9 = train(digits, config, build("cnn_tiny", digits), teacher=teacher, alpha=0.9)
    assert not torch.equal(scratch.last_state["classifier.1.weight"], kd9.last_state["classifier.1.weight"])


def test_teacher_is_frozen_and_in_eval_mode_while_the_student_learns(digits):
    config = tiny_config(epochs=1)
    teacher = build("cnn_small", digits, seed=3)
    teacher.train()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    modes = []
    teacher.register_forward_hook(lambda m, i, o: modes.append(m.training))
    train(digits, config, build("cnn_tiny", digits), teacher=teacher)
    assert modes and not any(modes)
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # BN stats too


def test_history_rows_have_every_metric(digits):
    result = train(digits, tiny_config(epochs=2), build("cnn_tiny", digits), teacher=build("cnn_small", digits))
    keys = {"epoch", "train_loss", "train_ce", "train_kd", "train_accuracy", "val_loss", "val_accuracy", "lr",
            "images_per_s", "seconds", "terms"}
    assert [r["epoch"] for r in result.history] == [1, 2]
    for row in result.history:
        assert keys <= set(row)
        assert row["train_kd"] > 0 and 0 <= row["val_accuracy"] <= 1
        # the terms as the method weighed them: their contributions add up to the loss
        terms = {t["name"]: t for t in row["terms"]}
        assert terms["kd"]["weight"] == pytest.approx(0.9) and terms["ce"]["weight"] == pytest.approx(0.1)
        assert terms["kd"]["contribution"] == pytest.approx(0.9 * row["train_kd"], rel=1e-5)
        assert sum(t["contribution"] for t in row["terms"]) == pytest.approx(row["train_loss"], rel=1e-5)
    assert result.best_accuracy == max(r["val_accuracy"] for r in result.history)


@pytest.mark.parametrize("schedule", ["step", "cosine"])
def test_each_epoch_logs_the_learning_rate_it_started_with(digits, schedule):
    config = tiny_config(epochs=3, schedule=schedule, lr=0.01)
    rates = [r["lr"] for r in train(digits, config, build("cnn_tiny", digits), alpha=0.0).history]
    assert rates[0] == pytest.approx(0.01)  # at its end, the first epoch's rate is the second's
    assert rates == sorted(rates, reverse=True) and rates[-1] > 0


def test_stop_ends_training_at_the_next_step(digits):
    config = tiny_config(epochs=10_000, batch_size=16)
    model = build("cnn_tiny", digits)
    stop, outcome = threading.Event(), {}
    steps, after_stop = [], []
    forward = model.forward

    def counted(x):
        (after_stop if stop.is_set() else steps).append(x.shape[0])
        if len(steps) == 20:
            stop.set()  # the user presses Stop in the middle of the run
        return forward(x)

    model.forward = counted

    def work():
        try:
            train(digits, config, model, stop=stop)
        except Cancelled:
            outcome["cancelled"] = True

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive() and outcome == {"cancelled": True}
    assert len(steps) == 20 and after_stop == []  # no forward pass started after Stop


def test_stop_is_seen_while_the_teacher_labels_a_chunk(digits):
    """The teacher labels a chunk of images before the student's first step in it; a big teacher
    takes seconds for one (resnet56, 4,096 CIFAR images: 9 s on 2 cores). Stop is checked
    between its batches, not only between the student's."""
    config = tiny_config(epochs=1)
    teacher = build("cnn_small", digits)
    method = create_method("kd", build("cnn_tiny", digits), teacher, temperature=4.0, alpha=0.9)
    stop, calls = threading.Event(), []
    label = method.teacher_targets

    def labelled(x):
        calls.append(x.shape[0])
        stop.set()  # the user presses Stop while the first batch is labelled
        return label(x)

    method.teacher_targets = labelled
    with pytest.raises(Cancelled):
        train_phase(method, digits, config, epochs=1, phase="p", emit=EventLog(), stop=stop)
    assert digits.train_x.shape[0] > 2 * trainer.TEACHER_BATCH and calls == [trainer.TEACHER_BATCH]


def test_stop_is_seen_between_validation_batches(digits):
    model, stop, calls = build("cnn_tiny", digits), threading.Event(), []
    forward = model.forward

    def counted(x):
        calls.append(x.shape[0])
        stop.set()  # pressed while the first validation batch runs
        return forward(x)

    model.forward = counted
    with pytest.raises(Cancelled):
        trainer.validate(model, digits, batch_size=64, stop=stop)
    assert calls == [64]  # of 360 validation images
    assert model.training  # left as it was found


def test_a_diverging_run_says_so_and_how_to_fix_it(digits):
    config = tiny_config(epochs=3, lr=1e4)
    with pytest.raises(TrainingDiverged, match="The distilled student's training diverged: its loss was nan in "
                                               "epoch 1; lower the learning rate .* or use a temperature"):
        train_phase(create_method("kd", build("cnn_tiny", digits), build("cnn_small", digits), temperature=4.0,
                                  alpha=0.9), digits, config, epochs=3, phase="student_kd", emit=EventLog())


def test_events_report_progress(digits):
    log = EventLog()
    method = create_method("kd", build("cnn_tiny", digits), None)
    train_phase(method, digits, tiny_config(epochs=2), epochs=2, phase="student_scratch", emit=log)
    epochs = [e for e in log.since(0) if e.kind == EPOCH]
    assert [e.data["epoch"] for e in epochs] == [1, 2]
    assert epochs[-1].data["progress"] == pytest.approx(1.0)
    assert all(e.phase == "student_scratch" for e in log.since(0) if e.kind in (EPOCH, STEP))
    # each epoch's last step reports, however short the epoch (a curve, not one point a phase)
    ends = [(e.data["epoch"], e.data["step"]) for e in log.since(0) if e.kind == STEP]
    last = ends[-1][1]  # the number of an epoch's last step
    assert (1, last) in ends and (2, last) in ends


def test_distillation_data_modes_train(digits, monkeypatch):
    """Each mode reaches the batches: the trainer passes it on, and the run differs from "none"."""
    seen = []
    real = trainer.distill_transform
    monkeypatch.setattr(trainer, "distill_transform", lambda mode, *a: seen.append(mode) or real(mode, *a))

    def run(mode):
        return train(digits, tiny_config(epochs=1), build("cnn_tiny", digits), teacher=build("cnn_small", digits),
                     distill_data=mode).last_state

    plain = run("none")
    for mode in ("mask", "replace", "mixup"):
        seen.clear()
        state = run(mode)
        assert seen and set(seen) == {mode}
        assert any(not torch.equal(state[k], plain[k]) for k in plain), f"{mode} trained like 'none'"


def test_a_feature_method_plugs_in_without_touching_the_trainer(digits):
    """The method contract: a method with extra trainable parts and non-sliceable targets."""

    class Hint(LogitKD):
        sliceable = False

        def __init__(self, student, teacher, **kw):
            super().__init__(student, teacher, **kw)
            self.adapter = torch.nn.Linear(10, 10)

        def distill(self, x, targets, teacher_out):
            loss, logits = super().distill(x, targets, teacher_out)
            hint = (self.adapter(logits) - teacher_out.clone()).pow(2).mean()
            return Loss(loss.total + hint, (*loss.terms, Term("hint", "hint", 1.0, hint))), logits

    method = Hint(build("cnn_tiny", digits), build("cnn_small", digits))
    before = method.adapter.weight.detach().clone()
    result = train_phase(method, digits, tiny_config(epochs=1), epochs=1, phase="student_kd", emit=EventLog())
    assert not torch.equal(before, method.adapter.weight)  # the trainer optimised the extra part
    assert result.history[0]["train_hint"] > 0  # and recorded the term it added


def test_step_speed_is_measured_at_chunk_ends(digits, monkeypatch):
    # The teacher labels a whole chunk before its first step, so images / seconds read mid-chunk
    # undercounts (a KD epoch used to start at about 270 img/s for 3,600 over the epoch). Steps
    # report the speed at the last chunk end: none in the phase's first chunk, then one per chunk.
    monkeypatch.setattr(trainer, "CHUNK_IMAGES", 128)  # two batches of 64 per chunk
    monkeypatch.setattr(trainer, "STEP_EVENT_SECONDS", 0.0)  # an event every step
    # A fake clock that only training steps advance, each a little slower than the one before:
    # every chunk end then reads a speed of its own, whatever this machine is doing.
    now, steps = [0.0], [0]
    monkeypatch.setattr(trainer.time, "perf_counter", lambda: now[0])
    log = EventLog()
    method = create_method("kd", build("cnn_tiny", digits), build("cnn_small", digits), temperature=4.0, alpha=0.9)
    loss = method.loss

    def timed_loss(*args):
        steps[0] += 1
        now[0] += 0.001 * (1 + 0.1 * steps[0])
        return loss(*args)

    method.loss = timed_loss
    train_phase(method, digits, tiny_config(epochs=2), epochs=2, phase="p", emit=log)
    per_epoch, epoch_speed = {}, {}
    for e in log.since(0):
        if e.kind == STEP:
            per_epoch.setdefault(e.data["epoch"], []).append(e.data.get("images_per_s"))
        elif e.kind == EPOCH:
            epoch_speed[e.data["epoch"]] = e.data["images_per_s"]
    chunks = [speeds[i:i + 2] for _, speeds in sorted(per_epoch.items()) for i in range(0, len(speeds), 2)]
    assert chunks[0] == [None, None]  # the phase's first chunk: nothing measured yet
    assert all(len(set(c)) == 1 and c[0] > 0 for c in chunks[1:])  # one figure per chunk
    assert len({c[0] for c in chunks[1:]}) == len(chunks) - 1  # measured again at every chunk end
    # The second epoch starts with the first epoch's speed, measured at its last chunk's end.
    assert per_epoch[2][0] == pytest.approx(epoch_speed[1])


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_the_batched_optimizer_step_changes_no_weight(digits, optimizer):
    """build_optimizer asks for torch's foreach update (fewer, larger calls): the weights after
    a few steps must equal those of the per-parameter update, bit for bit."""
    config = tiny_config(optimizer=optimizer, lr=0.01)
    x = digits.normalize(digits.train_x[:64])
    y = digits.train_y[:64]
    states = []
    for foreach in (True, False):
        model = build("cnn_tiny", digits)
        opt = trainer.build_optimizer(model.parameters(), config)
        assert opt.defaults["foreach"] is True
        if not foreach:
            for group in opt.param_groups:
                group["foreach"] = False
        for _ in range(4):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
