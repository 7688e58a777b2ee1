"""Seconds per batch of the networks that issue 12's experiments train, for their CPU-time estimates.

    python bench/experiment_costs.py [--repeats 5] [--threads 1]

Times a training step (forward, cross-entropy, backward, the paper's update) and an evaluation
forward pass of a batch of 128 for each network, all in turns (``alexnet_lib.timing.race``), and
prints the median CPU seconds of each (``time.process_time``).  With one thread a step's CPU
seconds are its wall time on an idle core, and hardly change when other processes compete for the
cores (with more threads, OpenMP's waiting threads spin and a busy machine inflates them); two
threads on two idle cores take at most as long.  So they bound an idle machine's wall time from
above even when measured on a busy one.  ``alexnet_lib/experiments.py``'s ``SECONDS_PER_BATCH``
holds what it printed.  Nothing is written to disk.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn

from alexnet_lib import runtime
from alexnet_lib.cifar_11pct import Cifar11pctNet
from alexnet_lib.cifar_net import CifarNet
from alexnet_lib.optim import PaperSGD
from alexnet_lib.timing import race, training_step

BATCH = 128


def networks() -> dict[str, nn.Module]:
    """The networks by the names ``SECONDS_PER_BATCH`` uses."""
    return {
        "cifar-net relu": CifarNet(),
        "cifar-net tanh": CifarNet(activation="tanh"),
        "cifar-net wide head": CifarNet(hidden=(4096, 4096), dropout=0.5),
        "cifar-11pct": Cifar11pctNet(),
        "cifar-11pct no LRN": Cifar11pctNet(lrn=False),
        "cifar-11pct 2/2": Cifar11pctNet(pool=(2, 2)),
    }


def evaluation_step(model: nn.Module, images: torch.Tensor):
    def step() -> None:
        model.eval()
        with torch.no_grad():
            model(images)
        model.train()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runtime.keep_freed_memory()  # as the Trainer runs them on the CPU
    torch.manual_seed(0)
    steps = {}
    for name, model in networks().items():
        # Mean-subtracted 0-255 pixels are about this large.
        images = torch.randn(BATCH, 3, model.input_size, model.input_size) * 60
        labels = torch.randint(0, 10, (BATCH,))
        steps[f"{name}|train"] = training_step(model, images, labels, PaperSGD(model.parameters(), lr=1e-3))
        steps[f"{name}|eval"] = evaluation_step(model, images)
    _, cpu = race(steps, args.repeats, progress=False)
    for name in networks():
        train, evaluation = (statistics.median(cpu[f"{name}|{kind}"]) for kind in ("train", "eval"))
        print(f'"{name}": ({train:.3f}, {evaluation:.3f}),')


if __name__ == "__main__":
    main()
