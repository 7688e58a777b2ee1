"""Where code runs: the device a run asks for, checked before any data is loaded; how the CPU reuses memory."""

from __future__ import annotations

import ctypes
import functools
import platform

import torch


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU.

    A ``device`` that torch does not know, or that this machine lacks, is a ValueError here,
    before any data is loaded, rather than a traceback at the first tensor moved to it.
    """
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r}: expected cpu, cuda, cuda:N, mps, ...") from error
    # torch.cuda, torch.mps, torch.xpu, ...: the backend that would run it, where torch has one.
    backend = getattr(torch, chosen.type, None)
    if chosen.type == "cpu" or not hasattr(backend, "is_available"):
        return chosen
    if not backend.is_available():
        raise ValueError(
            f"device {device!r} is not available on this machine (torch.{chosen.type}.is_available() is False); "
            "choose cpu, or leave the device unset to use what there is"
        )
    if chosen.index is not None and chosen.index >= backend.device_count():
        count = backend.device_count()
        raise ValueError(f"device {device!r} does not exist: this machine has {count} {chosen.type} device(s)")
    return chosen


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


@functools.cache
def keep_freed_memory() -> str | None:
    """Have this process reuse freed CPU memory rather than give it back to the system: None once done, else why not.

    glibc serves every block over 32 MiB (and smaller ones, until its threshold adapts) as fresh pages from
    the kernel and returns them on free, so each new tensor of that size pays a page fault for every 4 KiB it
    touches first.  An AlexNet training step at batch 32 allocates and frees about 370 MB of such tensors:
    about 95,000 faults per step, more than a tenth of its time on a 2-core CPU (the LRN layers' outputs
    among them).  With no blocks mapped apart from the heap and no trimming of it, freed tensors stay in
    the process and the next step reuses them; the process keeps the memory of its largest step.  Only
    glibc (Linux) has these settings; elsewhere nothing changes.  Once per process; the answer is kept.
    """
    if platform.libc_ver()[0] != "glibc":
        return "the C library is not glibc"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError) as error:
        return f"mallopt is not available: {error}"
    # mallopt returns 1 on success.  The trim threshold is an int: its largest value.
    if not (mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)):
        return "mallopt refused the settings"
    return None
