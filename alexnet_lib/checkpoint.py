"""Checkpoints that survive crashes and refuse to run code.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, written with
:func:`torch.save` to a temporary file in the target directory and moved into place with
:func:`os.replace`, so the file on disk is always either the old checkpoint or the new one,
never half of one.  It is read back with ``torch.load(weights_only=True)``, which builds
nothing but tensors and plain containers: a file holding other pickled objects is refused.
"""

from __future__ import annotations

import os
import pathlib
import pickle
import re
import zipfile

import torch

CHECKPOINT_NAME = "checkpoint.pt"
REQUIRED_KEYS = ("model", "optimizer", "scheduler", "epoch", "rng", "history", "config")


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used: unsafe, truncated, corrupt or incomplete."""


def save_checkpoint(state: dict, path: str | os.PathLike) -> pathlib.Path:
    """Write ``state`` to ``path`` atomically, creating its directory."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        torch.save(state, partial)
        with open(partial, "rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; :class:`CheckpointError` if it is unusable."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as refused:
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(refused))
        if unsafe is None:
            message = f"{path} cannot be read: it is truncated or corrupt (not a valid pickle)"
            raise CheckpointError(message) from refused
        raise CheckpointError(
            f"{path} contains a pickled Python object ({unsafe.group(1)}) besides tensors and plain containers; "
            "refusing to load it (torch.load weights_only=True). Only checkpoints written by alexnet_lib are accepted."
        ) from refused
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as broken:
        raise CheckpointError(
            f"{path} cannot be read: it is truncated or corrupt ({_first_sentence(broken)}); "
            "delete it to start afresh, or resume from an intact copy"
        ) from broken
    if not isinstance(state, dict) or not all(key in state for key in REQUIRED_KEYS):
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path} is not a training checkpoint: expected keys {list(REQUIRED_KEYS)}, found {found}"
        )
    return state


def _first_sentence(error: Exception) -> str:
    # torch's zip-reader errors run to several sentences of advice; the first says what broke.
    text = str(error).split(". ")[0].strip() or "unexpected end of file"
    return f"{type(error).__name__}: {text}"


def rng_state() -> dict:
    """The random generators a training step touches (dropout uses torch's global generator)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if torch.cuda.is_available():
        # A checkpoint from a machine with more GPUs than this one restores the ones that exist.
        for index, cuda_state in enumerate(state.get("cuda", [])[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)
