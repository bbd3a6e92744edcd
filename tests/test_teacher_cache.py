"""The teacher cache's key: a teacher is reused only with the data (and split) it was trained on."""
import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

from distill_core import RunConfig, run_experiment
from distill_core.runs import teacher_cache
from distill_core.data.datasets import HOLDOUT_SPLIT, STRATIFIED_SPLIT
from distill_core.errors import ConfigError


def cache_as_before_the_split_changed(config: RunConfig) -> None:
    """A teacher stored as this cache did before 2026-11: no split in its key or its fields."""
    fields = {k: v for k, v in teacher_cache.teacher_key_fields(config).items() if k != "split"}
    blob = json.dumps(fields, sort_keys=True).encode()
    key = f"{config.teacher}-{config.dataset}-{hashlib.sha256(blob).hexdigest()[:12]}"
    folder = teacher_cache.cache_root(config) / key
    folder.mkdir(parents=True)
    torch.save({"w": torch.zeros(1)}, folder / "model.pt")
    (folder / "meta.json").write_text(json.dumps({"key": key, "fields": fields, "accuracy": 0.9}))


def test_a_teacher_trained_on_the_old_split_is_neither_reused_nor_offered(tmp_path):
    config = RunConfig(cache_dir=str(tmp_path))  # mnist5k: split by this project
    cache_as_before_the_split_changed(config)
    assert teacher_cache.teacher_key_fields(config)["split"] == STRATIFIED_SPLIT
    assert teacher_cache.lookup(config) is None
    assert teacher_cache.list_cached(str(tmp_path), dataset="mnist5k") == []
    assert len(teacher_cache.list_cached(str(tmp_path))) == 1  # still on disk, listed without a dataset

    teacher_cache.store(config, {"w": torch.ones(1)}, {"accuracy": 0.95})
    state, meta = teacher_cache.lookup(config)
    assert torch.equal(state["w"], torch.ones(1)) and meta["fields"]["split"] == STRATIFIED_SPLIT
    assert [t["accuracy"] for t in teacher_cache.list_cached(str(tmp_path), dataset="mnist5k")] == [0.95]
    assert teacher_cache.list_cached(str(tmp_path), dataset="digits") == []


def test_a_torchvision_teacher_trained_on_the_whole_training_set_is_not_reused(tmp_path):
    """Before the validation split was held out of CIFAR's training set, teachers trained on all
    of it: today's validation images are in their training set."""
    config = RunConfig(dataset="cifar10", teacher="resnet56", student="resnet20", cache_dir=str(tmp_path))
    assert teacher_cache.teacher_key_fields(config)["split"] == HOLDOUT_SPLIT
    cache_as_before_the_split_changed(config)
    assert teacher_cache.lookup(config) is None
    assert teacher_cache.list_cached(str(tmp_path), dataset="cifar10") == []


def test_options_a_dataset_ignores_do_not_retrain_its_teacher(tmp_path):
    plain = RunConfig(cache_dir=str(tmp_path))  # mnist5k: ships in a package, its split is fixed
    assert teacher_cache.teacher_key(plain.replace(data_dir=str(tmp_path), image_size=16, val_fraction=0.3)) == \
        teacher_cache.teacher_key(plain)
    cifar = plain.replace(dataset="cifar10")  # a download's folder stays in the key: it may hold other files
    assert teacher_cache.teacher_key(cifar.replace(data_dir=str(tmp_path))) != teacher_cache.teacher_key(cifar)


def write_folder(root, classes=("a", "b"), per_class=6, start=0):
    rng = np.random.default_rng(start)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(start, start + per_class):
            Image.fromarray(rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)).save(root / c / f"{i}.png")


def test_an_image_folder_teacher_is_keyed_by_the_folders_images(tmp_path):
    write_folder(tmp_path / "imgs")
    config = RunConfig(dataset="imagefolder", data_dir=str(tmp_path / "imgs"), cache_dir=str(tmp_path / "cache"))
    first = teacher_cache.teacher_key(config)
    assert teacher_cache.teacher_key(config) == first  # the same images, the same key
    teacher_cache.store(config, {"w": torch.ones(1)}, {"accuracy": 0.9, "teacher": config.teacher,
                                                       "dataset": "imagefolder"})
    write_folder(tmp_path / "imgs", per_class=2, start=100)  # images added: some land in validation
    assert teacher_cache.teacher_key(config) != first and teacher_cache.lookup(config) is None
    write_folder(tmp_path / "imgs", classes=("c",))  # a class added: the weights would not fit
    assert len({first, teacher_cache.teacher_key(config)}) == 2


def test_a_cached_teacher_of_another_split_is_refused_with_the_reason(tmp_path):
    write_folder(tmp_path / "imgs")
    config = RunConfig(dataset="imagefolder", data_dir=str(tmp_path / "imgs"), cache_dir=str(tmp_path / "cache"))
    path = teacher_cache.store(config, {"w": torch.ones(1)}, {"accuracy": 0.9, "teacher": config.teacher,
                                                              "dataset": "imagefolder"})
    meta = teacher_cache.meta_for(path)
    assert teacher_cache.split_mismatch(meta, config) is None
    other_seed = config.replace(seed=1)  # another split of the same folder
    assert "(seed 0 there, 1 here): some of this run's validation images may have trained it" in \
        teacher_cache.split_mismatch(meta, other_seed)
    assert "(validation share 0.2 there, 0.3 here)" in teacher_cache.split_mismatch(meta, config.replace(val_fraction=0.3))
    # The size: 32, the default, is stored as none; said in pixels, and for what it is.
    bigger = teacher_cache.split_mismatch(meta, config.replace(image_size=48))
    assert "(image size 32 px there, 48 px here): it learnt from pictures of another size" in bigger
    assert teacher_cache.split_mismatch(meta, config.replace(image_size=32)) is None
    with pytest.raises(ConfigError, match="trained on other data than this run's.*validation images may have"):
        run_experiment(other_seed.replace(teacher_source="checkpoint", teacher_checkpoint=str(path),
                                          out=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()  # refused before any work


def test_a_retrained_teacher_never_replaces_the_cached_one(tmp_path):
    """Runs that used a cached teacher, and their repeats, keep the teacher they were compared
    with: retraining (``teacher_source="train"``, other threads) keeps the new one in its run."""
    from helpers import tiny_config

    config = tiny_config(cache_dir=str(tmp_path / "cache"), epochs=1, teacher_epochs=1, latency_repeats=5)
    first = run_experiment(config.replace(out=str(tmp_path / "a")))
    cached = teacher_cache.cache_root(config) / teacher_cache.teacher_key(config) / "model.pt"
    before = cached.read_bytes(), cached.stat().st_ino, cached.stat().st_mtime_ns
    assert first["artifacts"]["teacher"] == str(tmp_path / "a" / "teacher.pt")
    assert torch.load(tmp_path / "a" / "teacher.pt", weights_only=True).keys() == \
        torch.load(cached, weights_only=True).keys()
    again = run_experiment(config.replace(out=str(tmp_path / "b"), teacher_source="train", num_threads=1))
    assert (cached.read_bytes(), cached.stat().st_ino, cached.stat().st_mtime_ns) == before
    assert again["artifacts"]["teacher"] == str(tmp_path / "b" / "teacher.pt")
    assert (tmp_path / "b" / "teacher.pt").is_file()


@pytest.mark.parametrize("damage", ["zeros", "text", "not a state_dict"])
def test_a_damaged_cached_teacher_is_a_miss_not_a_traceback(damage, tmp_path, caplog):
    config = RunConfig(dataset="digits", cache_dir=str(tmp_path))
    path = teacher_cache.store(config, {"w": torch.ones(1)}, {"accuracy": 0.9})
    if damage == "zeros":  # torch.load(weights_only=True) raises pickle.UnpicklingError
        path.write_bytes(bytes(4096))
    elif damage == "text":  # ... and KeyError or ValueError for a text file
        path.write_text("this is not a checkpoint\n" * 20)
    else:
        torch.save([torch.ones(1)], path)
    with caplog.at_level("WARNING", logger="distill_core.runs.teacher_cache"):
        assert teacher_cache.lookup(config) is None
    assert str(path) in caplog.text and "trained again" in caplog.text
    teacher_cache.store(config, {"w": torch.zeros(1)}, {"accuracy": 0.8})  # the miss trains it, and heals the entry
    assert torch.equal(teacher_cache.lookup(config)[0]["w"], torch.zeros(1))


def test_a_sound_cached_teacher_that_memory_cannot_hold_now_is_not_a_miss(tmp_path, monkeypatch):
    config = RunConfig(dataset="digits", cache_dir=str(tmp_path))
    path = teacher_cache.store(config, {"w": torch.ones(1)}, {"accuracy": 0.9})

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(torch, "load", out_of_memory)
    with pytest.raises(MemoryError):  # not None: the run would train it again and store over a sound entry
        teacher_cache.lookup(config)
    assert path.is_file()


@pytest.mark.parametrize("meta", ["[1, 2]", "null", "\"text\"", "{\"key\": ", ""])
def test_a_cached_teachers_meta_that_is_not_a_json_object_is_a_miss(meta, tmp_path):
    config = RunConfig(dataset="digits", cache_dir=str(tmp_path))
    path = teacher_cache.store(config, {"w": torch.ones(1)}, {"accuracy": 0.9, "teacher": config.teacher,
                                                             "dataset": config.dataset})
    (path.parent / "meta.json").write_text(meta)
    assert teacher_cache.lookup(config) is None
    assert teacher_cache.meta_for(path) is None
    assert teacher_cache.list_cached(str(tmp_path)) == []
    assert teacher_cache.checkpoint_problem(config.replace(teacher_source="checkpoint",
                                                           teacher_checkpoint=str(path))) is None


def test_a_run_whose_cached_teacher_is_damaged_trains_it_again(tmp_path):
    from helpers import tiny_config

    config = tiny_config(out=str(tmp_path / "first"), cache_dir=str(tmp_path / "cache"))
    run_experiment(config)
    teacher_cache.cached_path(config).write_text("this is not a checkpoint\n" * 20)
    second = run_experiment(config.replace(out=str(tmp_path / "second")))
    assert second["teacher"]["source"] == "train" and teacher_cache.lookup(config) is not None
