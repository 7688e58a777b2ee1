"""Timing training steps side by side: the benchmarks' method."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm


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


def race(
    steps: dict[str, Callable[[], None]],
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] = lambda: None,
    desc: str = "timing",
    progress: bool = True,
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
    with tqdm(total=repeats * len(steps), desc=desc, leave=False, disable=not progress) as bar:
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


def best_milliseconds(steps: dict[str, Callable[[], None]], repeats: int,
                      device: torch.device) -> tuple[dict[str, float], str]:
    """The best wall time of each step in milliseconds, taking turns (:func:`race`), and where it ran, as text.

    The chapters' small comparisons: on a CPU they run on one thread, since on a shared machine an operation
    of a few milliseconds mostly times how fast a second thread wakes up; on CUDA each call is synchronised.
    """
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
        wall, _ = race(steps, repeats, warmup=0, sync=sync, progress=False)
        setup = f"{device.type}, {torch.get_num_threads()} thread(s)"
    finally:
        torch.set_num_threads(threads)
    return {name: 1000 * min(seconds) for name, seconds in wall.items()}, setup
