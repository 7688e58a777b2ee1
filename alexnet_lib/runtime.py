"""Where code runs and how much of it: the device and the notebooks' run profile."""

from __future__ import annotations

import os

import torch

PROFILE_ENV = "ALEXNET_PROFILE"
PROFILES = ("quick", "full")


def profile() -> str:
    """``"quick"`` (small runs that finish on a laptop CPU) or ``"full"``.

    ``ALEXNET_PROFILE`` decides when set; otherwise CI and machines without a
    GPU get ``"quick"``, and a CUDA machine gets ``"full"``.
    """
    chosen = os.environ.get(PROFILE_ENV)
    if chosen:
        if chosen not in PROFILES:
            raise ValueError(f"{PROFILE_ENV} must be one of {PROFILES}, got {chosen!r}")
        return chosen
    if os.environ.get("CI") or not torch.cuda.is_available():
        return "quick"
    return "full"


def is_quick() -> bool:
    return profile() == "quick"


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
