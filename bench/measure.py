"""Shared pieces of the benchmarks: a training step, its multiply-adds, side-by-side timing, the table.

Used by ``bench/cpu.py`` and ``bench/gpu.py``; run those, not this.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from alexnet_lib.provenance import provenance

REPO = Path(__file__).resolve().parents[1]


def training_step(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    optimizer: torch.optim.Optimizer | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> Callable[[], None]:
    """A closure that runs one training step: forward, cross-entropy, backward (and the optimizer, if given)."""
    if images.dim() != 4 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"expected images (N, C, H, W) and N labels, got {tuple(images.shape)} and {tuple(labels.shape)}")
    model.train()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast(images.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        if optimizer is not None:
            optimizer.step()

    return step


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


def race(
    steps: dict[str, Callable[[], None]],
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] = lambda: None,
    desc: str = "timing",
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and CPU seconds of each call of each step, taking turns (one call of each per round).

    Taking turns spreads the load of a shared machine evenly over the candidates,
    so their ratios stay meaningful even when the absolute times drift.  CPU seconds
    (all threads of this process) barely change when other processes compete for the
    cores, so they show how much of a slow wall-clock time was waiting.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for step in steps.values():
        for _ in range(warmup):
            step()
    wall: dict[str, list[float]] = {name: [] for name in steps}
    cpu: dict[str, list[float]] = {name: [] for name in steps}
    with tqdm(total=repeats * len(steps), desc=desc, leave=False) as bar:
        for _ in range(repeats):
            for name, step in steps.items():
                sync()
                start, start_cpu = time.perf_counter(), time.process_time()
                step()
                sync()
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
                bar.update()
    return wall, cpu


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
