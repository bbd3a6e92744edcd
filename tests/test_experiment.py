"""A whole run: files, results schema, teacher cache, checkpoints, cancellation."""
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from distill_core import RunConfig, run_experiment
from distill_core.runs import teacher_cache
from distill_core.errors import CheckpointError, ConfigError, TrainingDiverged
from distill_core.events import EPOCH, ERROR, PHASE, RESULT, STATUS, EventLog
from distill_core.models import create_model

from helpers import tiny_config

ROOT = Path(__file__).resolve().parents[1]
MODEL_KEYS = {"accuracy", "best_accuracy", "best_epoch", "params", "size_bytes", "flops", "flops_unit",
              "latency_ms", "history", "split", "per_class_accuracy", "confusion_matrix", "top5"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    log = EventLog()
    results = run_experiment(tiny_config(out=str(out), cache_dir=str(out / "cache")), on_event=log)
    return out, results, log.since(0)


def test_a_run_writes_config_results_and_checkpoints(finished):
    out, results, _ = finished
    assert results["status"] == "done"
    on_disk = json.loads((out / "results.json").read_text())
    assert set(on_disk) >= {"config", "teacher", "student_scratch", "student_kd", "comparison"}
    assert RunConfig.load(out / "config.json") == RunConfig.from_dict(results["config"])
    for role in ("student_scratch", "student_kd"):
        for which in ("best", "last"):
            state = torch.load(out / f"{role}_{which}.pt", weights_only=True)
            assert set(state) == set(create_model("cnn_tiny", 1, 10, 8).state_dict())  # the student alone


def test_every_model_entry_has_the_documented_keys(finished):
    _, results, _ = finished
    for role in ("teacher", "student_scratch", "student_kd"):
        entry = results[role]
        assert MODEL_KEYS <= set(entry), MODEL_KEYS - set(entry)
        assert entry["flops_unit"] == "FLOPs" and entry["split"] == "val"
        assert set(entry["latency_ms"]) >= {"batch_1", "batch_8", "device"}
        assert entry["latency_ms"]["batch_1"]["median"] > 0
        assert entry["accuracy"] == entry["history"][-1]["val_accuracy"]
        assert entry["best_accuracy"] == max(r["val_accuracy"] for r in entry["history"])
        assert len(entry["confusion_matrix"]) == 10
    assert results["student_kd"]["params"] < results["teacher"]["params"]
    assert "kd_gain_points" in results["comparison"]


def test_fidelity_and_calibration_are_recorded_for_every_model(finished):
    """Agreement with the teacher and KL to it in every epoch of both students, on the validation
    split; once on the training split at the end; ECE with its 15 bins for all three models."""
    _, results, _ = finished
    for role in ("student_scratch", "student_kd"):
        entry = results[role]
        for row in entry["history"]:
            assert 0 <= row["val_agreement"] <= 1 and row["val_kl_teacher"] >= 0
        assert entry["val_agreement"] == entry["history"][-1]["val_agreement"]
        assert 0 <= entry["train_agreement"] <= 1 and entry["train_kl_teacher"] >= 0
        assert entry["train_fidelity_images"] == 1437  # digits' whole training split
    for role in ("teacher", "student_scratch", "student_kd"):
        entry = results[role]
        assert 0 <= entry["ece"] <= 1 and entry["ece_bins"] == 15 and len(entry["reliability"]) == 15
        assert sum(b["count"] for b in entry["reliability"]) == results["dataset"]["val"]
    gains = results["comparison"]["per_class_gain_points"]
    kd, scratch = results["student_kd"]["per_class_accuracy"], results["student_scratch"]["per_class_accuracy"]
    assert gains == pytest.approx([100 * (k - s) for k, s in zip(kd, scratch)])


def test_events_tell_the_story(finished):
    _, _, events = finished
    phases = [e.data["phase"] for e in events if e.kind == PHASE]
    assert phases == ["teacher", "student_scratch", "student_kd", "measure"]
    assert [e.data["status"] for e in events if e.kind == STATUS] == ["running", "done"]
    assert {e.data["model"] for e in events if e.kind == RESULT} == {"teacher", "student_scratch", "student_kd"}
    progress = [e.data["progress"] for e in events if e.kind == EPOCH]
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)


def test_the_teacher_cache_is_reused_and_keyed_by_recipe(finished, tmp_path):
    out, first, _ = finished
    log = EventLog()
    again = run_experiment(tiny_config(out=str(tmp_path / "a"), cache_dir=str(out / "cache")), on_event=log)
    sources = [e.data["source"] for e in log.since(0) if e.kind == PHASE and e.phase == "teacher"]
    assert sources == ["cache"]
    assert again["teacher"]["accuracy"] == first["teacher"]["accuracy"]
    assert again["teacher"]["history"] == first["teacher"]["history"]
    log = EventLog()
    run_experiment(tiny_config(out=str(tmp_path / "b"), cache_dir=str(out / "cache"), teacher_epochs=1), on_event=log)
    assert [e.data["source"] for e in log.since(0) if e.kind == PHASE and e.phase == "teacher"] == ["train"]


def test_a_teacher_checkpoint_is_used_and_checked(tmp_path):
    teacher = create_model("cnn_small", 1, 10, 8)
    torch.save(teacher.state_dict(), tmp_path / "teacher.pt")
    results = run_experiment(tiny_config(out=str(tmp_path / "run"), epochs=1, teacher_source="checkpoint",
                                         teacher_checkpoint=str(tmp_path / "teacher.pt")))
    assert results["teacher"]["source"] == "checkpoint" and results["teacher"]["history"] == []
    torch.save(create_model("cnn_small", 1, 100, 8).state_dict(), tmp_path / "c100.pt")
    log = EventLog()
    with pytest.raises(CheckpointError, match="100 classes"):
        run_experiment(tiny_config(out=str(tmp_path / "bad"), teacher_source="checkpoint",
                                   teacher_checkpoint=str(tmp_path / "c100.pt")), on_event=log)
    assert [e.kind for e in log.since(0)][-1] == ERROR


@pytest.mark.parametrize("when, kept", [
    (lambda e: e.kind == RESULT and e.data["model"] == "student_scratch", {"teacher", "student_scratch"}),
    (lambda e: e.kind == PHASE and e.data["phase"] == "measure", {"teacher", "student_scratch", "student_kd"}),
], ids=["after the scratch student", "while measuring"])
def test_a_stopped_run_is_cancelled_and_keeps_what_finished(when, kept, tmp_path):
    stop = threading.Event()
    results = run_experiment(tiny_config(out=str(tmp_path)), on_event=lambda e: when(e) and stop.set(), stop=stop)
    assert results["status"] == "cancelled"
    assert {role for role in ("teacher", "student_scratch", "student_kd") if role in results} == kept
    for role in kept:  # what needs no clock is measured as each model finishes, so a stop keeps it
        assert min(results[role][k] for k in ("params", "size_bytes", "flops")) > 0
        assert "latency_ms" not in results[role]  # the timing, after all three, did not finish
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "cancelled"


def test_a_diverged_teacher_fails_the_run_and_is_not_cached(tmp_path):
    config = tiny_config(out=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), lr=1e4)
    log = EventLog()
    with pytest.raises(TrainingDiverged, match="The teacher's training diverged"):
        run_experiment(config, on_event=log)
    assert [e.kind for e in log.since(0)][-1] == ERROR
    assert teacher_cache.lookup(config) is None  # a later run trains it again, not reuses NaN weights


@pytest.mark.parametrize("student", ["cnn_tiny", "cnn_large"])  # cnn_large has dropout
def test_the_two_students_start_alike_whatever_else_draws_random_numbers(student, tmp_path, monkeypatch):
    """Another job's thread drawing from torch's global generator between the scratch student's
    training and the distilled one's must give neither another start nor other dropout masks.
    With alpha = 0 the distilled student is trained exactly as the scratch one, so both must end equal."""
    import distill_core.runs.experiment as experiment

    real, phases = experiment.train_phase, []

    def interfered(*args, **kwargs):
        result = real(*args, **kwargs)
        phases.append(kwargs["phase"])
        if kwargs["phase"] == "student_scratch":  # another job draws before the distilled student trains
            torch.randn(1000)
        return result

    monkeypatch.setattr(experiment, "train_phase", interfered)
    results = run_experiment(tiny_config(out=str(tmp_path), student=student, epochs=1, teacher_epochs=1, alpha=0.0))
    assert phases == ["teacher", "student_scratch", "student_kd"]
    scratch, kd = (torch.load(results["artifacts"][f"{r}_last"], weights_only=True)
                   for r in ("student_scratch", "student_kd"))
    assert all(torch.equal(scratch[k], kd[k]) for k in scratch)


def test_a_runs_thread_count_does_not_outlive_it(tmp_path):
    """The app's worker thread runs job after job: one job's num_threads=1 made the next train and
    be timed on one thread, and record that as its setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # not the run's count, or the check could not fail (the tests run on 1)
    try:
        results = run_experiment(tiny_config(out=str(tmp_path), epochs=1, teacher_epochs=1, num_threads=1))
        assert results["teacher"]["latency_ms"]["threads"] == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_bad_config_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError) as err:
        run_experiment(tiny_config(out=str(tmp_path / "x"), temperature=0, alpha=1.5, student="resnet9000"))
    message = str(err.value)
    assert "temperature" in message and "alpha" in message and "resnet9000" in message
    assert not (tmp_path / "x").exists()


def test_the_default_run_shortened_beats_chance(tmp_path):
    """The embedded default (mnist5k, cnn_large -> cnn_tiny) shortened to 1 + 3 epochs: well above 10%."""
    results = run_experiment(RunConfig(out=str(tmp_path), epochs=3, teacher_epochs=1, latency_repeats=5))
    assert results["teacher"]["accuracy"] > 0.5
    assert results["student_kd"]["accuracy"] > 0.2 and results["student_scratch"]["accuracy"] > 0.2


def test_a_cached_teacher_that_does_not_fit_is_trained_again(finished, tmp_path):
    """A cache entry whose weights do not fit the model (written by hand, or by an older version)
    is a miss: the teacher trains, rather than the run failing in load_state_dict."""
    config = tiny_config(out=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), epochs=1, teacher_epochs=1)
    teacher_cache.store(config, create_model("cnn_small", 1, 3, 8).state_dict(), {"accuracy": 0.99})
    log = EventLog()
    results = run_experiment(config, on_event=log)
    assert [e.data["source"] for e in log.since(0) if e.kind == PHASE and e.phase == "teacher"] == ["train"]
    assert results["status"] == "done" and results["teacher"]["accuracy"] != 0.99


def test_a_cached_teacher_picked_as_a_file_keeps_its_training_record(finished, tmp_path):
    """The app's "reuse a cached teacher" passes the cached model.pt; its history must survive."""
    out, first, _ = finished
    cached = next((out / "cache").glob("*/model.pt"))
    results = run_experiment(tiny_config(out=str(tmp_path), epochs=1, lr=0.01, teacher_source="checkpoint",
                                         teacher_checkpoint=str(cached)))
    assert results["teacher"]["source"] == "cache"
    assert results["teacher"]["history"] == first["teacher"]["history"]
    assert results["teacher"]["accuracy"] == first["teacher"]["accuracy"]


PRELOAD_CHECK = """
import json, sys
from distill_core import RunConfig
from distill_core.runs.experiment import preload, run_experiment
before = set(sys.modules)
preload()
preloaded = set(sys.modules) - before
run_experiment(RunConfig(dataset="mnist5k", teacher="cnn_small", student="cnn_tiny", epochs=1, teacher_epochs=1,
                         batch_size=256, latency_repeats=5, latency_batch=8, out=sys.argv[1]))
print(json.dumps({"preloaded": sorted(preloaded), "in_run": sorted(set(sys.modules) - before - preloaded)}))
"""


def test_after_preload_a_run_on_the_default_data_imports_nothing_heavy(tmp_path):
    """A run's clock is for training: torch.optim's first call imported torch._dynamo and sympy
    (1.8 s), mnist5k's split imported scikit-learn (2.5 s). A fresh process, so nothing is
    imported already."""
    env = {**os.environ, "DISTILL_STUDIO_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", PRELOAD_CHECK, str(tmp_path / "run")], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert "torch._dynamo" in modules["preloaded"]
    heavy = [m for m in modules["in_run"] if m.split(".")[0] in ("sympy", "sklearn", "scipy", "triton")
             or m.startswith("torch._dynamo")]
    assert not heavy, heavy


def test_gpu_out_of_memory_is_one_clear_error_and_the_device_is_released(tmp_path, monkeypatch):
    """What a too-large batch on a GPU does, simulated on the CPU: torch raises OutOfMemoryError
    from inside training; the run fails with a message saying what to change, and the device's
    memory is handed back either way."""
    from distill_core.runs import experiment
    from distill_core.errors import DeviceError

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    released = []
    monkeypatch.setattr(experiment, "train_phase", out_of_memory)
    monkeypatch.setattr(experiment, "release", lambda device: released.append(str(device)))
    log = EventLog()
    with pytest.raises(DeviceError, match=r"ran out of memory \(batch size 64\); try a smaller batch size"):
        run_experiment(tiny_config(out=str(tmp_path / "oom"), teacher_source="train"), on_event=log)
    errors = [e.data for e in log.since(0) if e.kind == ERROR]
    assert errors == [{"message": errors[0]["message"], "type": "DeviceError"}] and released == ["cpu"]


def test_a_reused_scratch_student_is_the_one_the_run_would_train(tmp_path):
    """A sweep's trials that differ in T, alpha or the method reuse one scratch student. Fair only
    if it is the very student the run would have trained: then the distilled student (same
    initial weights, same data order) ends exactly as in a run that trains its own scratch."""
    def tiny(name, **changes):
        return tiny_config(out=str(tmp_path / name), cache_dir=str(tmp_path / "cache"), epochs=1,
                           teacher_epochs=1, num_threads=1, **changes)

    first = run_experiment(tiny("first", temperature=4.0, alpha=0.9), run_id="first")
    log = EventLog()
    reusing = run_experiment(tiny("reusing", temperature=2.0, alpha=0.5, distill_data="mask"),
                             scratch_from=tmp_path / "first", on_event=log, run_id="reusing")
    alone = run_experiment(tiny("alone", temperature=2.0, alpha=0.5, distill_data="mask"))
    scratch = reusing["student_scratch"]
    assert scratch["source"] == "reused" and scratch["from_run"] == "first"
    assert scratch["accuracy"] == first["student_scratch"]["accuracy"] == alone["student_scratch"]["accuracy"]
    def learnt(results):  # the history less its clock
        return [{k: v for k, v in row.items() if k not in ("images_per_s", "seconds")}
                for row in results["student_kd"]["history"]]

    assert learnt(reusing) == learnt(alone)
    assert [e.data["epochs"] for e in log.since(0) if e.kind == PHASE and e.phase == "student_scratch"] == [0]
    assert "batch_1" in scratch["latency_ms"]  # timed again, in turn with this run's two other models
    copied = Path(reusing["artifacts"]["student_scratch_last"])
    assert copied.parent == tmp_path / "reusing"
    assert all(torch.equal(a, b) for a, b in zip(torch.load(copied, weights_only=True).values(),
                                                  torch.load(tmp_path / "first" / "student_scratch_last.pt",
                                                             weights_only=True).values()))
    # reused again from the reusing run: it still names the run that trained it
    again = run_experiment(tiny("again", temperature=8.0), scratch_from=tmp_path / "reusing")
    assert again["student_scratch"]["from_run"] == "first"


def test_a_scratch_student_of_another_recipe_is_refused(tmp_path):
    config = tiny_config(out=str(tmp_path / "first"), cache_dir=str(tmp_path / "cache"), epochs=1, teacher_epochs=1)
    run_experiment(config)
    with pytest.raises(ConfigError, match="another epochs, lr"):
        run_experiment(config.replace(out=str(tmp_path / "second"), epochs=2, lr=0.1),
                       scratch_from=tmp_path / "first")
    with pytest.raises(ConfigError, match="no finished run"):
        run_experiment(config.replace(out=str(tmp_path / "third")), scratch_from=tmp_path / "nowhere")


def test_a_scratch_student_trained_in_another_precision_is_refused(tmp_path, monkeypatch):
    """``auto`` is the same setting on every machine but not the same training: a run from before
    bf16, or from a machine without it, trained its scratch student in fp32."""
    first = run_experiment(tiny_config(out=str(tmp_path / "first"), cache_dir=str(tmp_path / "cache"), epochs=1,
                                       teacher_epochs=1))
    written = json.loads((tmp_path / "first" / "results.json").read_text())
    written["precision"]["train"] = "bf16" if first["precision"]["train"] == "fp32" else "fp32"
    (tmp_path / "first" / "results.json").write_text(json.dumps(written))
    with pytest.raises(ConfigError, match="trained in .*, and this run would train in"):
        run_experiment(tiny_config(out=str(tmp_path / "second"), cache_dir=str(tmp_path / "cache"), epochs=1,
                                   teacher_epochs=1, temperature=2.0), scratch_from=tmp_path / "first")
    del written["precision"]  # a run from before precision existed trained in fp32
    (tmp_path / "first" / "results.json").write_text(json.dumps(written))
    monkeypatch.setattr("distill_core.runs.scratch_reuse.training_precision", lambda config: "bf16")
    with pytest.raises(ConfigError, match="trained in fp32, and this run would train in bf16"):
        run_experiment(tiny_config(out=str(tmp_path / "third"), cache_dir=str(tmp_path / "cache"), epochs=1,
                                   teacher_epochs=1, temperature=2.0), scratch_from=tmp_path / "first")
    assert not (tmp_path / "second").exists()


def reuse_config(tmp_path, name, **changes):
    return tiny_config(out=str(tmp_path / name), cache_dir=str(tmp_path / "cache"),
                       **{"epochs": 1, "teacher_epochs": 1, "num_threads": 1, **changes})


def edit_results(folder: Path, change) -> None:
    written = json.loads((folder / "results.json").read_text())
    change(written)
    (folder / "results.json").write_text(json.dumps(written))


def test_a_scratch_student_trained_on_another_kind_of_device_is_refused(tmp_path):
    """Its data order and augmentation come from generators on its device, and a CUDA generator
    draws another stream than a CPU one for the same seed: "auto" on a GPU machine is not the same run."""
    run_experiment(reuse_config(tmp_path, "first"))
    edit_results(tmp_path / "first", lambda r: r.update(device="cuda:0"))
    with pytest.raises(ConfigError, match="trained on cuda, and this run would train on cpu"):
        run_experiment(reuse_config(tmp_path, "second", temperature=2.0), scratch_from=tmp_path / "first")
    edit_results(tmp_path / "first", lambda r: r.update(device="cpu"))  # "auto" and "cpu" both train on the CPU
    reused = run_experiment(reuse_config(tmp_path, "third", temperature=2.0, device="cpu"),
                            scratch_from=tmp_path / "first")
    assert reused["student_scratch"]["source"] == "reused"


def test_a_scratch_student_of_other_images_or_another_split_is_refused(tmp_path):
    """The key a run records when it starts holds the image folder's listing and the split's
    version, as the teacher cache's does: images added since, or a split made another way, are
    other training and validation images."""
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (tmp_path / "images" / c).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / c / f"{i}.png")
    folder = dict(dataset="imagefolder", data_dir=str(tmp_path / "images"), image_size=8, batch_size=8)
    first = run_experiment(reuse_config(tmp_path, "first", **folder))
    assert first["scratch_key"]["folder"] and first["scratch_key"]["split"]
    assert run_experiment(reuse_config(tmp_path, "same", temperature=2.0, **folder),
                          scratch_from=tmp_path / "first")["student_scratch"]["source"] == "reused"
    Image.fromarray(np.zeros((10, 10, 3), dtype=np.uint8)).save(tmp_path / "images" / "dog" / "new.png")
    with pytest.raises(ConfigError, match="another image folder contents"):
        run_experiment(reuse_config(tmp_path, "added", temperature=2.0, **folder), scratch_from=tmp_path / "first")
    (tmp_path / "images" / "dog" / "new.png").unlink()
    edit_results(tmp_path / "first", lambda r: r["scratch_key"].update(split="sklearn"))
    with pytest.raises(ConfigError, match="another split of the dataset"):
        run_experiment(reuse_config(tmp_path, "split", temperature=2.0, **folder), scratch_from=tmp_path / "first")
    edit_results(tmp_path / "first", lambda r: r.pop("scratch_key"))
    with pytest.raises(ConfigError, match="does not record which data"):
        run_experiment(reuse_config(tmp_path, "unrecorded", temperature=2.0, **folder),
                       scratch_from=tmp_path / "first")


def test_a_reused_scratch_students_fidelity_is_to_this_runs_teacher(tmp_path):
    """teacher_epochs is not in the scratch key (the scratch student never sees the teacher), so a
    reused entry may come from a run with another teacher: its agreement and KL must be this
    teacher's, as in a run that trains its own scratch student."""
    first = run_experiment(reuse_config(tmp_path, "first"))
    same = run_experiment(reuse_config(tmp_path, "same", temperature=2.0), scratch_from=tmp_path / "first")
    assert same["student_scratch"]["history"] == first["student_scratch"]["history"]  # the same teacher: kept
    assert "fidelity_note" not in same["student_scratch"]
    reusing = run_experiment(reuse_config(tmp_path, "reusing", teacher_epochs=2), scratch_from=tmp_path / "first")
    alone = run_experiment(reuse_config(tmp_path, "alone", teacher_epochs=2))
    hashes = [r["teacher"]["weights_sha256"] for r in (reusing, alone, first)]
    assert hashes[0] == hashes[1] != hashes[2]
    mine, own = reusing["student_scratch"], alone["student_scratch"]
    assert mine["source"] == "reused" and mine["accuracy"] == own["accuracy"]
    for key in ("val_agreement", "train_agreement"):
        assert mine[key] == own[key]
    for key in ("val_kl_teacher", "train_kl_teacher"):
        assert mine[key] == pytest.approx(own[key], rel=1e-5) and mine[key] != pytest.approx(
            first["student_scratch"][key], rel=1e-5)
    assert all(row["val_agreement"] is None for row in mine["history"]) and "fidelity_note" in mine


def test_a_student_cut_from_another_teacher_is_not_reused_and_the_run_says_why(tmp_path):
    """A derived student starting from the teacher's weights depends on those weights, not only on
    the teacher's settings: a cached teacher with the same key but other weights (trained again
    elsewhere, or replaced) gives another scratch student, which this run trains. ``scratch_from``
    is a request (a sweep's, or a caller's): the run says why it trained its own, in the phase's
    event, in results.json and in the CLI's notes, instead of a silent full retrain."""
    from distill_core.cli import ConsolePrinter, format_table

    derived = dict(teacher="resnet8", student="derived", derive_width=0.5, student_init="teacher")
    config = reuse_config(tmp_path, "first", **derived)
    run_experiment(config, run_id="first")
    state, _ = teacher_cache.lookup(config)
    torch.save({k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()},
               teacher_cache.cached_path(config))
    log = EventLog()
    second = run_experiment(reuse_config(tmp_path, "second", temperature=2.0, **derived),
                            scratch_from=tmp_path / "first", on_event=log)
    assert second["teacher"]["source"] == "cache" and second["student_scratch"]["source"] == "train"
    phase = [e for e in log.since(0) if e.kind == PHASE and e.phase == "student_scratch"]
    assert [e.data["source"] for e in phase] == ["train"]
    why = second["student_scratch"].get("not_reused") or ""
    assert "run first" in why and "another teacher" in why
    assert [e.data.get("message") for e in phase] == [why]
    printed = io.StringIO()
    ConsolePrinter(printed)(phase[0])
    assert f"note: {why}" in printed.getvalue()
    assert f"scratch student {why}." in format_table(second)
    third = run_experiment(reuse_config(tmp_path, "third", temperature=8.0, **derived),
                           scratch_from=tmp_path / "second")
    assert third["student_scratch"]["source"] == "reused"  # the same teacher's weights: reused
    assert "not_reused" not in third["student_scratch"]
