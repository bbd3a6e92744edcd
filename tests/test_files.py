"""Files written while someone may read them: whole or not at all."""
import json

import pytest
import torch

from distill_core import files


def test_write_atomic_replaces_the_file_and_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "new" / "results.json"
    files.write_atomic(target, json.dumps({"a": 1}))
    files.write_atomic(target, b'{"a": 2}')
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["results.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_partial_one(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text("old")

    def no_rename(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", no_rename)
    with pytest.raises(OSError):
        files.write_atomic(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_save_atomic_writes_what_torch_load_reads(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3)}
    files.save_atomic(state, tmp_path / "m.pt")
    assert torch.equal(torch.load(tmp_path / "m.pt", weights_only=True)["w"], state["w"])
