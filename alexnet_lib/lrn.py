"""Local response normalisation (Krizhevsky et al. 2012, section 3.3).

The paper writes

    b[i] = a[i] / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a[j]^2) ** beta

with k=2, n=5, alpha=1e-4, beta=0.75.  Krizhevsky's cuda-convnet code divides
``alpha`` by ``n`` before using it (``layer.py``: ``scale /= size``), and so
does :func:`torch.nn.functional.local_response_norm`.  Both conventions are
available here through ``convention``; they are the same function with
``alpha_paper = alpha_code / n``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

CONVENTIONS = ("paper", "cuda-convnet")


def effective_alpha(alpha: float, size: int, convention: str) -> float:
    """The coefficient that multiplies the window sum under ``convention``."""
    if convention == "paper":
        return alpha
    if convention == "cuda-convnet":
        return alpha / size
    raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def _window_sum(t: Tensor, before: int, after: int) -> Tensor:
    """Sum of ``t`` over channels ``i - before .. i + after`` (clipped to the edges)."""
    channels = t.shape[1]
    out = t.clone()
    # A loop over window offsets (size - 1 shifted adds), never over batch or channels.
    for shift in range(1, min(before, channels - 1) + 1):
        out[:, shift:] += t[:, : channels - shift]
    for shift in range(1, min(after, channels - 1) + 1):
        out[:, : channels - shift] += t[:, shift:]
    return out


class _LRNFunction(torch.autograd.Function):
    """LRN with an analytic backward, so autograd stores three tensors, not six."""

    @staticmethod
    def forward(ctx, x: Tensor, size: int, alpha: float, beta: float, k: float) -> Tensor:
        before, after = size // 2, (size - 1) // 2
        # d[i] = k + alpha * sum_{j in window(i)} a[j]^2
        denom = _window_sum(x * x, before, after).mul_(alpha).add_(k)
        # b[i] = a[i] * d[i]^(-beta)
        scale = denom.pow(-beta)
        ctx.save_for_backward(x, scale, denom)
        ctx.constants = (before, after, alpha, beta)
        return x * scale

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, scale, denom = ctx.saved_tensors
        before, after, alpha, beta = ctx.constants
        # db[i]/da[j] = d[i]^-beta [i == j] - 2 alpha beta a[i] a[j] d[i]^(-beta-1) [j in window(i)],
        # so grad_a[j] = g[j] d[j]^-beta - 2 alpha beta a[j] sum_{i: j in window(i)} g[i] b[i] / d[i].
        # "i such that j is in window(i)" is the mirrored window: before and after swap.
        t = grad * x
        t.mul_(scale).div_(denom)
        back = _window_sum(t, after, before)
        grad_x = grad * scale
        grad_x.addcmul_(x, back, value=-2.0 * alpha * beta)
        return grad_x, None, None, None, None


def local_response_norm(
    x: Tensor,
    size: int = 5,
    alpha: float = 1e-4,
    beta: float = 0.75,
    k: float = 2.0,
    convention: str = "paper",
) -> Tensor:
    """Normalise each activation by the energy of ``size`` neighbouring channels.

    ``x`` has channels in dimension 1 and at least one dimension after it.  For
    an even ``size`` the window holds ``size // 2`` channels before and
    ``(size - 1) // 2`` after, as in :func:`torch.nn.functional.local_response_norm`.
    """
    if x.dim() < 3:
        raise ValueError(f"local_response_norm expects (N, C, ...) with at least 3 dimensions, got shape {tuple(x.shape)}")
    if size < 1:
        raise ValueError(f"size must be a positive integer, got {size}")
    if not x.is_floating_point():
        raise TypeError(f"local_response_norm needs a floating-point tensor, got {x.dtype}")
    return _LRNFunction.apply(x, int(size), effective_alpha(alpha, size, convention), float(beta), float(k))


class LocalResponseNorm(nn.Module):
    """Module form of :func:`local_response_norm`.

    ``groups`` normalises each group of channels on its own, as the two-GPU
    network did: a GPU's normalisation layer saw only that GPU's kernel maps.
    """

    def __init__(
        self,
        size: int = 5,
        alpha: float = 1e-4,
        beta: float = 0.75,
        k: float = 2.0,
        convention: str = "paper",
        groups: int = 1,
    ):
        super().__init__()
        effective_alpha(alpha, size, convention)  # validates the convention early
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self.convention, self.groups = convention, groups

    def forward(self, x: Tensor) -> Tensor:
        args = (self.size, self.alpha, self.beta, self.k, self.convention)
        if self.groups == 1:
            return local_response_norm(x, *args)
        n, c = x.shape[:2]
        grouped = x.reshape(n * self.groups, c // self.groups, *x.shape[2:])
        return local_response_norm(grouped, *args).reshape(x.shape)

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, "
            f"convention={self.convention!r}, groups={self.groups}"
        )
