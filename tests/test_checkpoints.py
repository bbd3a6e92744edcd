"""User checkpoints: plain state_dicts only, of the right model and class count."""
import os

import pytest
import torch

from distill_core.checkpoints import load_into, read_state_dict
from distill_core.errors import CheckpointError
from distill_core.models import create_model


class RunsCode:
    """A pickle payload that would create a file if unpickled unsafely."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_a_plain_state_dict_loads(tmp_path):
    src = create_model("cnn_tiny", 1, 10, 28)
    torch.save(src.state_dict(), tmp_path / "ok.pt")
    dst = load_into(create_model("cnn_tiny", 1, 10, 28), tmp_path / "ok.pt", "cnn_tiny", 10)
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))


def test_wrapped_and_dataparallel_state_dicts_load(tmp_path):
    src = create_model("cnn_tiny", 1, 10, 28)
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "w.pt")
    load_into(create_model("cnn_tiny", 1, 10, 28), tmp_path / "w.pt", "cnn_tiny", 10)


def test_a_pickle_that_would_run_code_is_refused_and_not_run(tmp_path):
    target = tmp_path / "pwned"
    torch.save({"weight": torch.zeros(1), "evil": RunsCode(str(target))}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="could run code"):
        read_state_dict(tmp_path / "evil.pt")
    assert not target.exists()


def test_a_whole_pickled_model_is_refused(tmp_path):
    torch.save(create_model("cnn_tiny", 1, 10, 28), tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="could run code|not a state_dict"):
        read_state_dict(tmp_path / "model.pt")


def test_another_class_count_is_named(tmp_path):
    torch.save(create_model("cnn_tiny", 1, 100, 28).state_dict(), tmp_path / "c100.pt")
    with pytest.raises(CheckpointError, match="is for 100 classes, but this dataset has 10"):
        load_into(create_model("cnn_tiny", 1, 10, 28), tmp_path / "c100.pt", "cnn_tiny", 10)


def test_another_architecture_is_refused(tmp_path):
    torch.save(create_model("cnn_small", 1, 10, 28).state_dict(), tmp_path / "small.pt")
    with pytest.raises(CheckpointError, match="does not fit cnn_tiny|not a state_dict of cnn_tiny"):
        load_into(create_model("cnn_tiny", 1, 10, 28), tmp_path / "small.pt", "cnn_tiny", 10)
    torch.save(create_model("mlp", 1, 10, 28).state_dict(), tmp_path / "mlp.pt")
    with pytest.raises(CheckpointError, match="not a state_dict of cnn_tiny"):
        load_into(create_model("cnn_tiny", 1, 10, 28), tmp_path / "mlp.pt", "cnn_tiny", 10)


def test_another_architecture_is_not_called_another_class_count(tmp_path):
    # cnn_large's hidden layer has cnn_small's classifier's name: its 1,024 rows are no class count
    torch.save(create_model("cnn_large", 1, 10, 8).state_dict(), tmp_path / "large.pt")
    with pytest.raises(CheckpointError, match="not a state_dict of cnn_small|does not fit cnn_small") as caught:
        load_into(create_model("cnn_small", 1, 10, 8), tmp_path / "large.pt", "cnn_small", 10)
    assert "classes" not in str(caught.value)


def test_garbage_and_missing_files_are_refused(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk.pt is not a PyTorch file, or it is damaged: save one with "
                                              r"torch.save\(model.state_dict\(\), path\)$"):
        read_state_dict(tmp_path / "junk.pt")  # torch says KeyError(101): not a word for the user
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a state_dict"):
        read_state_dict(tmp_path / "list.pt")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch notes the protocol of the damaged file
def test_a_truncated_pickle_is_called_damaged_not_dangerous(tmp_path):
    import pickle

    (tmp_path / "cut.pt").write_bytes(pickle.dumps({"a": 1})[:5])
    with pytest.raises(CheckpointError, match="not a PyTorch file, or it is damaged"):
        read_state_dict(tmp_path / "cut.pt")
