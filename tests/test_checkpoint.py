"""Checkpoints: atomic writes, safe loading, clear errors."""

import os
import pickle

import pytest
import torch

from alexnet_lib import checkpoint as ckpt
from alexnet_lib.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_tensors,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


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
    assert str(error.value).startswith(f"{path} was refused as unsafe")
    assert "this ran" not in capsys.readouterr().out


class RunsAShell:
    """Unpickling this runs a shell command, which leaves a file behind if it ever runs."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _zip(path, payload):
    torch.save({**_state(), "config": payload}, path)


def _legacy(path, payload):
    torch.save({**_state(), "config": payload}, path, _use_new_zipfile_serialization=False)


def _plain(protocol):
    def write(path, payload):
        # Plain pickle writes tensors through torch.storage._load_from_bytes, which would be refused first.
        path.write_bytes(pickle.dumps({"epoch": 1, "config": payload}, protocol=protocol))
    return write


@pytest.mark.parametrize("write", [_zip, _legacy, _plain(2), _plain(pickle.HIGHEST_PROTOCOL)],
                         ids=["torch.save zip", "torch.save legacy", "pickle protocol 2", "pickle latest protocol"])
def test_a_file_that_would_run_os_system_is_refused_as_unsafe(tmp_path, write):
    # Before: each of these was reported as "truncated or corrupt".
    marker = tmp_path / "it-ran"
    path = tmp_path / "evil.pt"
    write(path, RunsAShell(marker))
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert message.startswith(f"{path} was refused as unsafe: it holds a pickled Python object ({os.name}.system)")
    assert "corrupt" not in message and "\n" not in message
    assert not marker.exists()


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


def test_a_garbled_name_inside_a_checkpoint_is_corrupt_not_unsafe(tmp_path):
    path = save_checkpoint(_state(), tmp_path / "checkpoint.pt")
    data = path.read_bytes()
    name = data.index(b"collections\nOrderedDict") + len(b"collections")
    path.write_bytes(data[:name] + bytes(12) + data[name + 12:])
    with pytest.raises(CheckpointError, match=r"truncated or corrupt \(not a pickle that torch.load can read\)"):
        load_checkpoint(path)


def test_every_load_error_is_one_line_naming_the_file(tmp_path):
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(CheckpointError) as error:
        load_tensors(tmp_path / "folder.pt")
    assert str(error.value) == f"{tmp_path / 'folder.pt'} cannot be read (IsADirectoryError: Is a directory)"
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(tmp_path / "empty.pt")
    assert str(error.value).startswith(f"{tmp_path / 'empty.pt'} cannot be read: it is truncated or corrupt (EOFError")


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
