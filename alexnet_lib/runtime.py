"""Where code runs: the device a run asks for, checked before any data is loaded."""

from __future__ import annotations

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
