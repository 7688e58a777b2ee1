"""The paper's update rule (section 5) as a PyTorch optimizer, and the path it takes on a small function.

Krizhevsky et al. write the learning rate *inside* the velocity:

    v <- 0.9 v - 0.0005 eps w - eps dL/dw
    w <- w + v

``torch.optim.SGD`` keeps the learning rate outside it (``b <- mu b + g + wd w``;
``w <- w - lr b``).  With a constant learning rate the two are the same
(``v = -lr b``).  After a learning-rate drop they differ: the paper's velocity
still carries steps taken at the old rate and lets them decay with the momentum,
while PyTorch's rescales the whole accumulated velocity by the new rate at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor
from torch.optim import Optimizer

from .paper import LEARNING_RATE, MOMENTUM, WEIGHT_DECAY


class PaperSGD(Optimizer):
    """Momentum SGD exactly as section 5 writes it, learning rate inside the velocity.

    Defaults are the paper's: ``lr=0.01``, ``momentum=0.9``, ``weight_decay=5e-4``.
    Works with :class:`torch.optim.lr_scheduler` schedulers (they change ``lr`` in
    the param groups).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = LEARNING_RATE,
        momentum: float = MOMENTUM,
        weight_decay: float = WEIGHT_DECAY,
    ):
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
            for w in group["params"]:
                if w.grad is None:
                    continue
                state = self.state[w]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(w, memory_format=torch.preserve_format)
                v = state["velocity"]
                # Section 5: v <- 0.9 v - 0.0005 eps w - eps <dL/dw>
                v.mul_(momentum).add_(w, alpha=-decay * lr).add_(w.grad, alpha=-lr)
                # Section 5: w <- w + v
                w.add_(v)
        return loss


def descent_path(
    loss: Callable[[Tensor], Tensor], start: Sequence[float], lr: float, momentum: float, steps: int
) -> Tensor:
    """Every point :class:`PaperSGD` (no weight decay) visits minimising ``loss`` from ``start``.

    ``loss`` maps a float64 weight vector to a scalar; autograd supplies its gradient, the
    way it does for a network.  Returns a ``(steps + 1, len(start))`` tensor: the start, then
    the weights after each step.
    """
    w = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    optimizer = PaperSGD([w], lr=lr, momentum=momentum, weight_decay=0.0)
    path = [w.detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        loss(w).backward()
        optimizer.step()
        path.append(w.detach().clone())
    return torch.stack(path)
