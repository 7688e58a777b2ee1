"""Where code runs: the device check (alexnet_lib.runtime)."""

import platform
import subprocess
import sys

import pytest
import torch

from alexnet_lib.runtime import keep_freed_memory, pick_device


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


FAULT_PROBE = """
import resource, sys, torch
from alexnet_lib.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory() is None
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 << 20)  # 64 MiB, touched, then freed
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults()
print(min(faults() for _ in range(3)))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="only glibc has the settings")
@pytest.mark.parametrize("mode", ["keep", "default"])
def test_kept_memory_is_reused_without_page_faults(mode):
    # A fresh process each: the setting is process-wide and stays.  64 MiB is 16,384 pages of 4 KiB.
    result = subprocess.run([sys.executable, "-c", FAULT_PROBE, mode], capture_output=True, text=True, check=True)
    faults = int(result.stdout.split()[-1])
    if mode == "keep":
        assert faults < 100
    else:
        assert faults > 10_000  # glibc's own behaviour, which the setting changes


def test_keep_freed_memory_answers_the_same_each_time():
    first = keep_freed_memory()
    assert keep_freed_memory() == first
    assert first is None or isinstance(first, str)
