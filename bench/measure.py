"""Shared pieces of the benchmarks: a training step's multiply-adds, the rows and their table, the JSON.

Used by ``bench/cpu.py`` and ``bench/gpu.py``; run those, not this.  The training step and the
side-by-side timing are :mod:`alexnet_lib.timing`'s, which the trainer uses too.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from alexnet_lib.provenance import provenance
from alexnet_lib.timing import training_step

REPO = Path(__file__).resolve().parents[1]


def mult_adds_per_image(model: nn.Module, input_size: int, device: str | torch.device = "cpu") -> int:
    """Multiply-adds of one training step (forward and backward) per image, as FlopCounterMode counts them.

    FlopCounterMode counts convolutions and matrix products (2 FLOPs per multiply-add) and
    ignores element-wise work such as ReLU, pooling and LRN.
    """
    images = torch.zeros(1, 3, input_size, input_size, device=device)
    labels = torch.zeros(1, dtype=torch.long, device=device)
    with FlopCounterMode(display=False) as counter:
        training_step(model, images, labels)()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() // 2


@dataclass
class Row:
    """One benchmarked configuration: what ran and the seconds of each timed step."""

    name: str
    batch: int
    input_size: int
    seconds: list[float]
    mult_adds_per_image: int
    cpu_seconds: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        """The fastest step: the least disturbed by other work on the machine."""
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_seconds) if self.cpu_seconds else float("nan")

    @property
    def images_per_s(self) -> float:
        return self.batch / self.best

    @property
    def gmacs_per_s(self) -> float:
        """Multiply-adds per second of the fastest step, in billions."""
        return self.mult_adds_per_image * self.batch / self.best / 1e9

    def record(self) -> dict:
        return {**asdict(self), "best_s": self.best, "median_s": self.median, "cpu_median_s": self.cpu_median,
                "images_per_s": self.images_per_s, "gmacs_per_s": self.gmacs_per_s}


COLUMNS = ("configuration", "batch", "input", "best s/step", "median", "CPU s", "images/s", "GMAC/image", "GMAC/s")


def format_table(rows: list[Row]) -> str:
    """A plain-text table of ``rows`` with the columns of :data:`COLUMNS`."""
    cells = [COLUMNS] + [
        (r.name, str(r.batch), str(r.input_size), f"{r.best:.3f}", f"{r.median:.3f}", f"{r.cpu_median:.3f}",
         f"{r.images_per_s:.2f}",
         f"{r.mult_adds_per_image / 1e9:.3f}", f"{r.gmacs_per_s:.1f}")
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` with a ``provenance`` record (command, commit, date, machine, versions)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"provenance": provenance(), **payload}, indent=2) + "\n")
    return path
