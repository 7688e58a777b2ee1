"""Where code runs: the device check (alexnet_lib.runtime)."""

import pytest
import torch

from alexnet_lib.runtime import pick_device


def test_no_device_picks_what_there_is():
    assert pick_device() == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu") == torch.device("cpu")


def test_an_unknown_device_is_a_value_error():
    # Before: torch's RuntimeError listing two dozen device types.
    with pytest.raises(ValueError, match=r"unknown device 'foo': expected cpu, cuda"):
        pick_device("foo")


def test_a_missing_gpu_is_refused_when_asked_for(monkeypatch):
    # Before: torch.device("cuda") was returned and the run failed at the first tensor moved there.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device 'cuda' is not available on this machine"):
        pick_device("cuda")


def test_a_gpu_index_beyond_the_machines_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"device 'cuda:2' does not exist: this machine has 2 cuda device\(s\)"):
        pick_device("cuda:2")
