"""A teacher weaker than the student trained alone can only pull the distilled student down: the
reason is said where a person looks (the CLI's summary, Live, Compare, and Distill before Start)."""
from __future__ import annotations

from distill_core import RunConfig, RunStore, comparison_headline
from distill_core.cli import format_table
from distill_core.events import RESULT, Event
from distill_core.runs.job_state import Job
from studio import live_feed

WEAK = {"config": {"teacher_epochs": 6, "latency_batch": 8},
        "teacher": {"model": "resnet56", "source": "train", "accuracy": 0.294, "best_accuracy": 0.3},
        "student_scratch": {"model": "resnet8", "accuracy": 0.958, "best_accuracy": 0.96},
        "student_kd": {"model": "resnet8", "accuracy": 0.514, "best_accuracy": 0.52}}


def test_the_engine_names_a_weak_teacher_and_the_ways_out():
    note = comparison_headline(WEAK)["weak_teacher"]
    assert "The teacher (29.4% after 6 epochs) is weaker than the student trained alone (95.8%)" in note
    assert "more epochs" in note and "smaller teacher" in note
    strong = {**WEAK, "teacher": {**WEAK["teacher"], "accuracy": 0.99}}
    assert "weak_teacher" not in comparison_headline(strong)


def test_the_cli_summary_says_it():
    assert comparison_headline(WEAK)["weak_teacher"] in format_table({**WEAK, "comparison": comparison_headline(WEAK)})


def test_the_cli_summary_gives_the_compare_pages_verdict_and_chance_warning():
    from distill_core import GAIN_WORDS, NOISE_POINTS, gain_verdict

    chance = {**WEAK, "dataset": {"classes": 10}, "teacher": {**WEAK["teacher"], "accuracy": 0.1}}
    comparison = comparison_headline(chance)
    assert comparison["chance_teacher"].startswith("The teacher is at chance level (10.0% on 10 classes)")
    assert comparison["chance_teacher"] in format_table({**chance, "comparison": comparison})
    assert "chance_teacher" not in comparison_headline({**chance, "teacher": {**WEAK["teacher"], "accuracy": 0.9}})
    assert "chance_teacher" not in comparison_headline(WEAK)  # no class count: no claim
    assert [gain_verdict(p) for p in (3.0, NOISE_POINTS, 0.7, -0.4, -NOISE_POINTS, None)] == \
        ["helped", "helped", "unclear", "unclear", "hurt", None]
    table = format_table({**WEAK, "comparison": comparison_headline(WEAK)})
    assert f"KD gain over scratch: -44.40 points (last epoch, val): {GAIN_WORDS['hurt']}" in table
    small = {**WEAK, "student_kd": {**WEAK["student_kd"], "accuracy": 0.962}}
    assert f": {GAIN_WORDS['unclear']} (within 1 point either way)" in format_table(
        {**small, "comparison": comparison_headline(small)})


def test_live_says_it_once_the_scratch_student_has_finished():
    job = Job("j", RunConfig(teacher_epochs=6), "cpu", "key")
    job.observe(Event(RESULT, "teacher", {"model": "teacher", "entry": WEAK["teacher"]}))
    assert live_feed.feed(job.snapshot(None))["note"] is None  # nothing to compare with yet
    job.observe(Event(RESULT, "student_scratch", {"model": "student_scratch", "entry": WEAK["student_scratch"]}))
    assert "weaker than the student trained alone" in live_feed.feed(job.snapshot(None))["note"]


def test_distill_warns_before_start_when_an_earlier_run_knows(tmp_path):
    from studio.form import weak_teacher_hint

    config = RunConfig(dataset="digits", teacher="resnet56", student="resnet8", teacher_epochs=6)
    assert weak_teacher_hint(config) is None
    store = RunStore()
    store.create_run("weak", config)
    store.set_results("weak", {"run_id": "weak", "status": "done", "config": config.to_dict(), **{
        k: v for k, v in WEAK.items() if k != "config"}})
    hint = weak_teacher_hint(config)
    assert hint.startswith("In run `weak`, this teacher reached 29.4 % after 6 epochs")
    assert weak_teacher_hint(config.replace(teacher_epochs=30)) is None  # a longer-trained teacher is unknown
