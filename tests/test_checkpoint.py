"""Checkpoints: atomic writes, safe loading, clear errors."""

import pytest
import torch

from alexnet_lib import checkpoint as ckpt
from alexnet_lib.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state


def _state(epoch=1):
    net = torch.nn.Linear(3, 2)
    return {
        "model": net.state_dict(),
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.01, "params": [0, 1]}]},
        "scheduler": {"best": float("inf"), "num_bad_epochs": 0},
        "epoch": epoch,
        "rng": rng_state(),
        "history": [{"epoch": epoch, "train_loss": 2.3}],
        "config": {"model": "cifar-net", "lr": None},
    }


def test_round_trip_creates_the_directory(tmp_path):
    original = _state()
    path = save_checkpoint(original, tmp_path / "new" / "dir" / "checkpoint.pt")
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and state["config"] == {"model": "cifar-net", "lr": None}
    assert torch.equal(state["model"]["weight"], original["model"]["weight"])
    assert state["scheduler"]["best"] == float("inf")
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # no temporary files left


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(_state(epoch=1), tmp_path / "checkpoint.pt")

    def crash(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(_state(epoch=2), path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


class Payload:
    """An object whose unpickling would run code."""

    def __reduce__(self):
        return (print, ("this ran while loading",))


def test_pickled_objects_are_refused(tmp_path, capsys):
    state = _state()
    state["config"] = Payload()
    path = tmp_path / "evil.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"a pickled Python object \(print\).*refusing to load it") as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)
    assert "this ran" not in capsys.readouterr().out


@pytest.mark.parametrize("keep", [0.5, 0.99, 0.0])
def test_truncated_checkpoint_names_the_file(tmp_path, keep):
    path = save_checkpoint(_state(), tmp_path / "checkpoint.pt")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_garbage_is_called_corrupt_not_unsafe(tmp_path):
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "garbage.pt")


def test_other_files_are_rejected(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        load_checkpoint(tmp_path / "weights.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_round_trip():
    state = rng_state()
    first = torch.rand(3)
    torch.rand(5)
    set_rng_state(state)
    assert torch.equal(torch.rand(3), first)
