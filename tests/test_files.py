"""Files written while someone may read them: whole or not at all."""
import errno
import json
from pathlib import Path

import pytest
import torch

from distill_core import files
from distill_core.errors import WriteError


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


def test_a_full_disk_names_the_file_it_could_not_write(tmp_path, monkeypatch):
    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it: no file name

    monkeypatch.setattr(Path, "write_bytes", full)
    target = tmp_path / "run" / "results.json"
    with pytest.raises(WriteError) as caught:
        files.write_atomic(target, "{}")
    assert str(caught.value).startswith(f"cannot write {target}: No space left on device")
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC
    assert list(target.parent.iterdir()) == []


def test_a_run_that_fills_its_disk_says_which_file(tmp_path, capsys):
    from distill_core import cli
    from fs_faults import small_disk

    with small_disk(tmp_path / "disk", kilobytes=64) as disk:
        out = disk / "run"
        code = cli.main(["run", "--dataset", "digits", "--teacher", "cnn_small", "--student", "cnn_tiny",
                         "--epochs", "1", "--teacher-epochs", "1", "--latency-repeats", "5", "--quiet",
                         "--out", str(out)])
        err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"error: cannot write {out}/") and "No space left on device" in err, err
    assert len(err.strip().splitlines()) == 1
