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

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.autograd.function import once_differentiable

CONVENTIONS = ("paper", "cuda-convnet")


def effective_alpha(alpha: float, size: int, convention: str) -> float:
    """The coefficient that multiplies the window sum under ``convention``."""
    if convention == "paper":
        return alpha
    if convention == "cuda-convnet":
        return alpha / size
    raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def _padded_empty(x: Tensor, dim: int, before: int, after: int) -> tuple[Tensor, Tensor]:
    """An uninitialised copy of ``x``'s layout, ``before`` + ``after`` longer along ``dim``, zero there.

    Returns the buffer and its middle, which has ``x``'s shape.  The buffer keeps ``x``'s
    memory order (contiguous or channels_last), so element-wise work between them runs
    through memory in step.
    """
    outer_first = sorted(range(x.dim()), key=lambda i: -x.stride(i))
    shape = list(x.shape)
    shape[dim] += before + after
    buf = x.new_empty([shape[i] for i in outer_first]).permute([outer_first.index(i) for i in range(x.dim())])
    buf.narrow(dim, 0, before).zero_()
    buf.narrow(dim, before + x.shape[dim], after).zero_()
    return buf, buf.narrow(dim, before, x.shape[dim])


def _window_sum(buf: Tensor, dim: int, length: int) -> Tensor:
    """Sums of ``buf`` over every window of ``buf.shape[dim] - length + 1`` neighbours along ``dim``.

    ``buf`` is zero-padded, so windows at the edges are clipped for free.  A
    loop over window offsets (size - 1 adds), never over batch or channels.
    """
    size = buf.shape[dim] - length + 1
    if size == 1:
        return buf.clone()
    out = buf.narrow(dim, 0, length) + buf.narrow(dim, 1, length)
    for shift in range(2, size):
        out += buf.narrow(dim, shift, length)
    return out


# On the CPU the batch goes through in slices of about this many bytes per tensor.  Whole-batch
# temporaries would be fresh memory (N1's input is 37 MB at batch 32; glibc maps blocks over
# 32 MiB afresh each time), and the first write to each fresh 4 KiB page is a page fault that
# costs more than the arithmetic.  A slice's temporaries stay in cache and reuse the memory of
# the previous slice's.  See bench/README.md.
CPU_SLICE_BYTES = 1 << 20


def _images_per_slice(x: Tensor) -> int:
    """About :data:`CPU_SLICE_BYTES` of images on the CPU; the whole batch elsewhere (fewer kernels)."""
    if x.device.type != "cpu":
        return max(1, x.shape[0])
    return max(1, CPU_SLICE_BYTES // max(1, math.prod(x.shape[1:]) * x.element_size()))


def _scale_and_denominator(
    x: Tensor, dim: int, before: int, after: int, alpha: float, beta: float, k: float
) -> tuple[Tensor, Tensor]:
    """d^(-beta) and d for every position of ``x``."""
    padded, squares = _padded_empty(x, dim, before, after)
    torch.mul(x, x, out=squares)
    # d[i] = k + alpha * sum_{j in window(i)} a[j]^2
    denom = _window_sum(padded, dim, x.shape[dim]).mul_(alpha).add_(k)
    return torch.pow(denom, -beta, out=squares), denom


class _LRNFunction(torch.autograd.Function):
    """LRN along ``dim`` with an analytic backward.

    Autograd stores only the input: the backward recomputes d from it, slice by slice, which
    costs less time than writing whole-batch tensors of d for it, and no memory.
    """

    @staticmethod
    def forward(ctx, x: Tensor, dim: int, size: int, alpha: float, beta: float, k: float) -> Tensor:
        ctx.window = (dim, size // 2, (size - 1) // 2, alpha, beta, k)
        out = torch.empty_like(x)
        n = _images_per_slice(x)
        for x_part, out_part in zip(x.split(n), out.split(n)):
            scale, _ = _scale_and_denominator(x_part, *ctx.window)
            # b[i] = a[i] * d[i]^(-beta)
            torch.mul(x_part, scale, out=out_part)
        ctx.save_for_backward(x)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        dim, before, after, alpha, beta, _ = ctx.window
        grad_x = torch.empty_like(x)
        n = _images_per_slice(x)
        for x_part, g_part, grad_part in zip(x.split(n), grad.split(n), grad_x.split(n)):
            scale, denom = _scale_and_denominator(x_part, *ctx.window)
            # db[i]/da[j] = d[i]^-beta [i == j] - 2 alpha beta a[i] a[j] d[i]^(-beta-1) [j in window(i)].
            # With c[i] = -2 alpha beta d[i]^(-beta-1) (written over d):
            coeff = torch.div(scale, denom, out=denom).mul_(-2.0 * alpha * beta)
            # grad_a[j] = g[j] d[j]^-beta + a[j] sum_{i: j in window(i)} g[i] a[i] c[i], where
            # "i such that j is in window(i)" is the mirrored window: before and after swap.
            padded, t = _padded_empty(x_part, dim, after, before)
            torch.mul(g_part, x_part, out=t).mul_(coeff)
            torch.mul(_window_sum(padded, dim, x.shape[dim]), x_part, out=grad_part).addcmul_(g_part, scale)
        return grad_x, None, None, None, None, None


def _formula(x: Tensor, dim: int, size: int, alpha: float, beta: float, k: float) -> Tensor:
    """The same LRN from differentiable tensor operations, which torch.compile fuses into one kernel.

    :class:`_LRNFunction` writes into views of its buffers (``out=``), which the
    compiler cannot trace; inside a compiled graph this is used instead.
    """
    before, after = size // 2, (size - 1) // 2
    padded = F.pad((x * x).movedim(dim, -1), (before, after)).movedim(-1, dim)
    energy = sum(padded.narrow(dim, shift, x.shape[dim]) for shift in range(size))
    # b[i] = a[i] * (k + alpha * sum_{j in window(i)} a[j]^2)^(-beta)
    return x * (k + alpha * energy).pow(-beta)


def _normalise(x: Tensor, dim: int, size: int, alpha: float, beta: float, k: float) -> Tensor:
    """LRN along ``dim``, with ``alpha`` already the coefficient of the window sum."""
    if torch.compiler.is_compiling():
        return _formula(x, dim, size, alpha, beta, k)
    return _LRNFunction.apply(x, dim, size, alpha, beta, k)


def _check_parameters(size: int, alpha: float, beta: float, k: float) -> None:
    # k > 0 and alpha >= 0 keep the base of d^(-beta) positive; otherwise the output is NaN or inf.
    if size < 1:
        raise ValueError(f"size must be a positive integer, got {size}")
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if not k > 0:
        raise ValueError(f"k must be > 0, got {k}")
    if not math.isfinite(beta):
        raise ValueError(f"beta must be a finite number, got {beta}")


def _check_input(x: Tensor) -> None:
    if x.dim() < 3:
        raise ValueError(f"local_response_norm expects (N, C, ...) with at least 3 dimensions, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"local_response_norm needs a floating-point tensor, got {x.dtype}")


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
    _check_parameters(size, alpha, beta, k)
    _check_input(x)
    return _normalise(x, 1, int(size), effective_alpha(alpha, size, convention), float(beta), float(k))


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
        _check_parameters(size, alpha, beta, k)
        if groups < 1:
            raise ValueError(f"groups must be a positive integer, got {groups}")
        effective_alpha(alpha, size, convention)  # validates the convention early
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self.convention, self.groups = convention, groups

    def forward(self, x: Tensor) -> Tensor:
        if self.groups == 1:
            return local_response_norm(x, self.size, self.alpha, self.beta, self.k, self.convention)
        _check_input(x)
        if x.shape[1] % self.groups:
            raise ValueError(f"{x.shape[1]} channels do not split into {self.groups} equal groups")
        # (N, C, ...) -> (N, groups, C / groups, ...) is a view in any memory layout; normalise along dim 2.
        grouped = x.unflatten(1, (self.groups, x.shape[1] // self.groups))
        alpha = effective_alpha(self.alpha, self.size, self.convention)
        return _normalise(grouped, 2, int(self.size), alpha, float(self.beta), float(self.k)).flatten(1, 2)

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, "
            f"convention={self.convention!r}, groups={self.groups}"
        )
