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
import warnings
import zipfile

import torch

from .files import write_atomically

CHECKPOINT_NAME = "checkpoint.pt"
REQUIRED_KEYS = ("model", "optimizer", "scheduler", "epoch", "rng", "history", "config")


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used: unsafe, truncated, corrupt or incomplete."""


def save_checkpoint(state: dict, path: str | os.PathLike) -> pathlib.Path:
    """Write ``state`` to ``path`` atomically, creating its directory."""
    return write_atomically(path, lambda partial: torch.save(state, partial), sync=True)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; :class:`CheckpointError` if it is unusable."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = load_tensors(path, map_location)
    if not isinstance(state, dict) or not all(key in state for key in REQUIRED_KEYS):
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path} is not a training checkpoint: expected keys {list(REQUIRED_KEYS)}, found {found}"
        )
    return state


def load_tensors(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """``torch.load(path, weights_only=True)``, with every failure one :class:`CheckpointError` line naming ``path``.

    The failures: refused as unsafe (the file holds pickled objects other than tensors and plain
    containers, which could run code), unreadable (permissions, a folder), or truncated or corrupt.
    """
    path = pathlib.Path(path)
    try:
        handle = open(path, "rb")
    except OSError as unreadable:
        raise CheckpointError(f"{path} cannot be read ({_first_sentence(unreadable)})") from unreadable
    try:
        with handle, warnings.catch_warnings():
            # A plain pickle of a newer protocol makes torch warn before it refuses: the refusal says it all.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(handle, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as refused:
        unsafe = _unsafe_global(path, refused)
        if unsafe is None:
            raise _corrupt(path, "not a pickle that torch.load can read") from refused
        raise CheckpointError(
            f"{path} was refused as unsafe: it holds a pickled Python object ({unsafe}) besides tensors and plain "
            "containers, and loading it could run code; refusing to load it (torch.load weights_only=True). "
            "Only files written by alexnet_lib are accepted."
        ) from refused
    except Exception as broken:  # noqa: BLE001 - whatever a damaged file makes torch.load raise
        raise _corrupt(path, _first_sentence(broken)) from broken


def _corrupt(path: pathlib.Path, reason: str) -> CheckpointError:
    return CheckpointError(
        f"{path} cannot be read: it is truncated or corrupt ({reason}); delete it, or put an intact copy in its place"
    )


# torch's weights-only unpickler names the global it refused: "Unsupported global: GLOBAL x.y was not
# ..." for a name outside its allowlist, "unsupported GLOBAL posix.system whose module ..." for os & co.
# ("GLOBAL print" for builtins). A whole name followed by a space: a damaged file's garbled name is corruption.
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([A-Za-z_][\w.]*)(?=\s)")


class _NamedGlobal(Exception):
    pass


class _FirstGlobal(pickle.Unpickler):
    """Reads a pickle up to the first global it names, and stops there instead of importing it.

    Nothing can be called without a global, so reading up to one runs no code (the "restricting
    globals" pattern of the pickle module's documentation).
    """

    def find_class(self, module: str, name: str):
        raise _NamedGlobal(f"{module}.{name}")


def _unsafe_global(path: pathlib.Path, refused: pickle.UnpicklingError) -> str | None:
    """The global that made ``torch.load(weights_only=True)`` refuse ``path``; None if the file is damaged instead."""
    named = _REFUSED_GLOBAL.search(str(refused))
    if named:
        return named.group(1)
    if not str(refused).startswith("Weights only load failed") or zipfile.is_zipfile(path):
        return None
    # A plain pickle of protocol 4 or later stops torch's unpickler at its first opcode (FRAME), before
    # any global: read it without torch to find the object it would build.
    try:
        with open(path, "rb") as handle:
            _FirstGlobal(handle).load()
    except _NamedGlobal as found:
        return str(found)
    except Exception:  # noqa: BLE001 - not a whole pickle: damaged
        return None
    return None


def _first_sentence(error: Exception) -> str:
    # torch's zip-reader errors run to several sentences of advice; the first says what broke.
    text = (getattr(error, "strerror", None) or str(error)).split(". ")[0].strip() or "unexpected end of file"
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
