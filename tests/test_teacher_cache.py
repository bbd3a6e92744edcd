"""The teacher cache's key: a teacher is reused only with the data split it was trained on."""
import hashlib
import json

import torch

from distill_core import RunConfig
from distill_core import teacher_cache
from distill_core.datasets import STRATIFIED_SPLIT


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


def test_datasets_with_an_official_split_keep_their_teachers(tmp_path):
    """CIFAR teachers are costly to train: their keys did not change."""
    config = RunConfig(dataset="cifar10", teacher="resnet56", student="resnet20", cache_dir=str(tmp_path))
    assert "split" not in teacher_cache.teacher_key_fields(config)
    cache_as_before_the_split_changed(config)
    assert teacher_cache.lookup(config) is not None
    assert len(teacher_cache.list_cached(str(tmp_path), dataset="cifar10")) == 1
