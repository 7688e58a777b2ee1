"""Files written whole or not at all: results, histories, checkpoints and caches outlive crashes."""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable


def write_atomically(path: str | os.PathLike, write: Callable[[pathlib.Path], object], sync: bool = False) -> pathlib.Path:
    """Call ``write`` on a hidden file beside ``path``, then rename it to ``path``.

    A rename within a folder is atomic, so ``path`` always holds either its old content or the new,
    never half of it, even when the process is killed while writing; a failed write leaves no
    stray file.  ``sync`` flushes the bytes to the disk before the rename, for files too costly
    to lose in a power cut (checkpoints).
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        write(partial)
        if sync:
            with open(partial, "rb") as written:
                os.fsync(written.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def json_text(value) -> str:
    """The one JSON layout of every file this project writes: one-space indents, a final newline."""
    return json.dumps(value, indent=1) + "\n"


def write_json(value, path: str | os.PathLike) -> pathlib.Path:
    return write_atomically(path, lambda partial: partial.write_text(json_text(value)))
