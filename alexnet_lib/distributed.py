"""Data-parallel training across processes with torch.distributed (launched by ``torchrun``).

``torchrun`` starts one process per GPU and sets RANK, LOCAL_RANK and WORLD_SIZE; this
module joins them into a process group (NCCL on GPUs, gloo on CPUs) and sums metrics
across them.  Without those variables everything here is a no-op for a single process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env() -> None:
    """Join the process group that ``torchrun`` describes in the environment, once."""
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Rank 0, the one process that writes files and shows progress bars."""
    return rank() == 0


def sum_across(values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of ``values`` over all processes (in place); unchanged for one process."""
    if active():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def shutdown() -> None:
    if active():
        dist.destroy_process_group()
