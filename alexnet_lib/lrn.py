"""Local response normalisation (Krizhevsky et al. 2012, section 3.3).

The paper writes

    b[i] = a[i] / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a[j]^2) ** beta

with k=2, n=5, alpha=1e-4, beta=0.75 (paper.py; the defaults here).  Krizhevsky's cuda-convnet code divides
``alpha`` by ``n`` before using it (``layer.py``: ``scale /= size``), and so
does :func:`torch.nn.functional.local_response_norm`.  Both conventions are
available here through ``convention``; they are the same function with
``alpha_paper = alpha_code / n``.

The same numbers come from three implementations:

- the reference, :func:`_formula`: the equation in differentiable tensor operations.  A model
  compiled as a whole with ``torch.compile`` runs it, fused into the model's own kernels.
- the fused kernels: the forward and the analytic backward, each compiled on its own by
  ``torch.compile`` (C++ and OpenMP on the CPU, Triton on CUDA) into a single pass over
  memory, for tensors of at least :data:`FUSED_MIN_ELEMENTS`.
- the fallback, eager tensor operations on slices of the batch, wherever the fused kernels
  cannot run: no C++ compiler or no Triton, another device, a compile that failed, or
  ``ALEXNET_LRN_FUSED=0``.  :func:`fused_unavailable` says which applies.

Below, the reference comes first, then :func:`local_response_norm` and
:class:`LocalResponseNorm`, then the two fast paths in the order above.
"""

from __future__ import annotations

import functools
import math
import os
import warnings

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from .paper import LRN_ALPHA, LRN_BETA, LRN_K, LRN_SIZE

CONVENTIONS = ("paper", "cuda-convnet")


def _formula(x: Tensor, dim: int, size: int, alpha: float, beta: float, k: float) -> Tensor:
    """The reference: LRN along ``dim`` from differentiable tensor operations.

    Inside a model compiled as a whole (``torch.compiler.is_compiling()``) this runs, and the
    compiler fuses it with its neighbours and derives its backward; elsewhere
    :class:`_LRNFunction` runs the fused kernels or the fallback below.
    """
    # Section 3.3: b[i] = a[i] / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a[j]^2)^beta, the
    # sum over the n channels around i.  ``alpha`` arrives as the coefficient of that sum: the paper's
    # alpha, or alpha / n where Krizhevsky's cuda-convnet convention was asked for (effective_alpha).
    return x * _denominator(x, dim, size, alpha, k).pow(-beta)


def _denominator(x: Tensor, dim: int, size: int, alpha: float, k: float) -> Tensor:
    """d[i] = k + alpha * sum_{j in window(i)} a[j]^2, from differentiable operations."""
    before, after = size // 2, (size - 1) // 2
    squares = F.pad(x * x, [0, 0] * (x.dim() - 1 - dim) + [before, after])
    return k + alpha * _window_sum(squares, dim, x.shape[dim])


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


def effective_alpha(alpha: float, size: int, convention: str) -> float:
    """The coefficient that multiplies the window sum under ``convention``."""
    if convention == "paper":
        return alpha
    if convention == "cuda-convnet":
        return alpha / size
    raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def local_response_norm(
    x: Tensor,
    size: int = LRN_SIZE,
    alpha: float = LRN_ALPHA,
    beta: float = LRN_BETA,
    k: float = LRN_K,
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
        size: int = LRN_SIZE,
        alpha: float = LRN_ALPHA,
        beta: float = LRN_BETA,
        k: float = LRN_K,
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


# The fast paths.  They give _formula's numbers with fewer passes over memory than its chain of
# tensor operations and its autograd backward make; see bench/README.md for what they save.

# The backward, for the fused kernels and the fallback alike.
# With d[i] = k + alpha * sum_{j in window(i)} a[j]^2 and b[i] = a[i] d[i]^-beta,
#     db[i]/da[j] = d[i]^-beta [i == j] - 2 alpha beta a[i] a[j] d[i]^(-beta-1) [j in window(i)],
# so with c[i] = d[i]^(-beta-1) and the incoming gradient g,
#     grad_a[j] = g[j] d[j]^-beta - 2 alpha beta a[j] sum_{i: j in window(i)} g[i] a[i] c[i],
# where "i such that j is in window(i)" is the mirrored window: before and after swap.


def _negative_power(d: Tensor, beta: float) -> Tensor:
    """d^(-beta), the dearest operation of the layer on a CPU.

    For the paper's beta = 3/4 it is sqrt(1 / (d sqrt(d))), as oneDNN's reference LRN computes
    it: the same to a rounding or two, in about half the time of a general power.
    """
    if beta == 0.75:
        return (d * d.sqrt()).reciprocal().sqrt()
    return d.pow(-beta)


def _fused_forward(x: Tensor, dim: int, size: int, alpha: float, beta: float, k: float) -> tuple[Tensor, Tensor]:
    """b and c, for torch.compile to fuse into one pass: read a, write b and c.

    c is kept for the backward: reading it back costs less than a second power of d there,
    while d itself is cheap to recompute.
    """
    d = _denominator(x, dim, size, alpha, k)
    scale = _negative_power(d, beta)
    return x * scale, scale / d


def _fused_backward(
    x: Tensor, c: Tensor, grad: Tensor, dim: int, size: int, alpha: float, beta: float, k: float
) -> Tensor:
    """grad_a from a, c and g, for torch.compile to fuse into one pass: read a, c and g, write grad_a."""
    d = _denominator(x, dim, size, alpha, k)
    before, after = size // 2, (size - 1) // 2
    terms = F.pad(grad * x * c, [0, 0] * (x.dim() - 1 - dim) + [after, before])
    return grad * (c * d) + (-2.0 * alpha * beta) * x * _window_sum(terms, dim, x.shape[dim])


FUSED_ENV = "ALEXNET_LRN_FUSED"
# A compile costs seconds of CPU, once per shape; a call on a tensor this big saves ten
# milliseconds or more.  Smaller tensors (tests, the notebooks' examples, tiny batches) keep to the
# fallback.  AlexNet's N1 holds 290,400 activations per image and N2 186,624: from batch 15
# and 23 on they fuse.
FUSED_MIN_ELEMENTS = 1 << 22
# Device type -> why the fused kernels cannot run there; decided once, at first use.
_unavailable: dict[str, str | None] = {}


def _check_compiler(device_type: str) -> str | None:
    """Why torch.compile cannot generate kernels for ``device_type``, or None when it can."""
    if device_type not in ("cpu", "cuda"):
        return f"no fused kernels for {device_type} tensors"
    # Private entry points of torch: where they fail or are missing, the fused kernels are too.
    try:
        if not torch._dynamo.is_dynamo_supported():
            return "torch.compile does not support this Python or platform"
        if device_type == "cpu":
            from torch._inductor import cpp_builder

            cpp_builder.get_cpp_compiler()
        else:
            from torch.utils._triton import has_triton

            if not has_triton():
                return "Triton is missing or does not support this GPU"
    except Exception as error:  # noqa: BLE001 - any failure here means "not available"
        return f"{type(error).__name__}: {error}"
    return None


def fused_unavailable(device: str | torch.device = "cpu") -> str | None:
    """Why LRN on ``device`` runs the fallback, or None when tensors big enough use the fused kernels.

    The compiler check runs once per device type; ``ALEXNET_LRN_FUSED=0`` forces the fallback.
    """
    forced = os.environ.get(FUSED_ENV, "1")
    if forced not in ("0", "1"):
        raise ValueError(f"{FUSED_ENV} must be 0 (eager fallback) or 1 (fused where possible), got {forced!r}")
    if forced == "0":
        return f"{FUSED_ENV}=0"
    device_type = torch.device(device).type
    if device_type not in _unavailable:
        _unavailable[device_type] = _check_compiler(device_type)
    return _unavailable[device_type]


def fuses(x: Tensor) -> bool:
    """Whether LRN on ``x`` runs the fused kernels: ``x`` is big enough, and they run on its device."""
    return x.numel() >= FUSED_MIN_ELEMENTS and fused_unavailable(x.device) is None


@functools.cache
def _compiled(kernel):
    # Sizes are fixed at compile time (simple, fast kernels) except the batch, which
    # _in_memory_order marks dynamic: an epoch's shorter last batch or an evaluation batch of
    # another size reuses the kernels.  fullgraph: a graph break is an error, and so a fallback,
    # never a silently half-compiled kernel.
    return torch.compile(kernel, dynamic=False, fullgraph=True)


def _run_fused(kernel, device_type: str, *args):
    """The compiled ``kernel`` on ``args``, or None where it cannot run and the caller falls back."""
    try:
        # The inputs already have the dtype autocast gave the layer before; keep it.
        with torch.autocast(device_type, enabled=False), torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
            return _compiled(kernel)(*args)
    except torch._dynamo.exc.FailOnRecompileLimitHit:
        return None  # more shapes than torch.compile keeps kernels for: only this one falls back
    except torch._dynamo.exc.TorchDynamoException as error:
        reason = f"torch.compile failed: {str(error).strip().splitlines()[0]}"
        _unavailable[device_type] = reason
        warnings.warn(f"local response normalisation on {device_type} uses the eager fallback from now on ({reason})")
        return None


def _memory_order(x: Tensor) -> list[int]:
    """``x``'s dimensions from the outermost in memory to the innermost."""
    return sorted(range(x.dim()), key=lambda i: -x.stride(i))


def _in_memory_order(x: Tensor, order: list[int]) -> Tensor:
    """``x`` permuted to ``order`` and contiguous there (a view when ``x`` is dense), batch size dynamic.

    The compiled kernels see one layout per shape, and their outputs, permuted back,
    have the layout of their input (contiguous or channels_last alike).
    """
    dense = x.permute(order).contiguous()
    torch._dynamo.maybe_mark_dynamic(dense, order.index(0))
    return dense


def _inverse(order: list[int]) -> list[int]:
    return [order.index(i) for i in range(len(order))]


def _padded_empty(x: Tensor, dim: int, before: int, after: int) -> tuple[Tensor, Tensor]:
    """An uninitialised copy of ``x``'s layout, ``before`` + ``after`` longer along ``dim``, zero there.

    Returns the buffer and its middle, which has ``x``'s shape.  The buffer keeps ``x``'s
    memory order (contiguous or channels_last), so element-wise work between them runs
    through memory in step.
    """
    order = _memory_order(x)
    shape = list(x.shape)
    shape[dim] += before + after
    buf = x.new_empty([shape[i] for i in order]).permute(_inverse(order))
    buf.narrow(dim, 0, before).zero_()
    buf.narrow(dim, before + x.shape[dim], after).zero_()
    return buf, buf.narrow(dim, before, x.shape[dim])


# On the CPU the fallback takes the batch in slices of about this many bytes per tensor.
# Whole-batch temporaries would be fresh memory (N1's input is 37 MB at batch 32; glibc maps
# blocks over 32 MiB afresh each time), and the first write to each fresh 4 KiB page is a page
# fault that costs more than the arithmetic.  A slice's temporaries stay in cache and reuse the
# memory of the previous slice's.  See bench/README.md.
CPU_SLICE_BYTES = 1 << 20


def _images_per_slice(x: Tensor) -> int:
    """About :data:`CPU_SLICE_BYTES` of images on the CPU; the whole batch elsewhere (fewer kernels)."""
    if x.device.type != "cpu":
        return max(1, x.shape[0])
    return max(1, CPU_SLICE_BYTES // max(1, math.prod(x.shape[1:]) * x.element_size()))


def _scale_and_denominator(
    x: Tensor, dim: int, size: int, alpha: float, beta: float, k: float
) -> tuple[Tensor, Tensor]:
    """d^(-beta) and d for every position of ``x``, written into two fresh buffers."""
    padded, squares = _padded_empty(x, dim, size // 2, (size - 1) // 2)
    torch.mul(x, x, out=squares)
    denom = _window_sum(padded, dim, x.shape[dim]).mul_(alpha).add_(k)
    return torch.pow(denom, -beta, out=squares), denom


def _fallback_forward(x: Tensor, dim: int, size: int, alpha: float, beta: float, k: float) -> Tensor:
    out = torch.empty_like(x)
    n = _images_per_slice(x)
    for x_part, out_part in zip(x.split(n), out.split(n)):
        scale, _ = _scale_and_denominator(x_part, dim, size, alpha, beta, k)
        torch.mul(x_part, scale, out=out_part)
    return out


def _fallback_backward(x: Tensor, grad: Tensor, dim: int, size: int, alpha: float, beta: float, k: float) -> Tensor:
    """The backward derived above :func:`_fused_forward`, recomputing d from ``x`` slice by slice."""
    grad_x = torch.empty_like(x)
    n = _images_per_slice(x)
    for x_part, g_part, grad_part in zip(x.split(n), grad.split(n), grad_x.split(n)):
        scale, denom = _scale_and_denominator(x_part, dim, size, alpha, beta, k)
        coeff = torch.div(scale, denom, out=denom).mul_(-2.0 * alpha * beta)
        padded, t = _padded_empty(x_part, dim, (size - 1) // 2, size // 2)
        torch.mul(g_part, x_part, out=t).mul_(coeff)
        torch.mul(_window_sum(padded, dim, x.shape[dim]), x_part, out=grad_part).addcmul_(g_part, scale)
    return grad_x


class _LRNFunction(torch.autograd.Function):
    """LRN along ``dim`` with the analytic backward: fused kernels where they run, else the fallback.

    The fused forward saves the input and c; the fallback saves only the input and
    recomputes d from it in the backward, slice by slice, which costs it less time than
    writing whole-batch tensors of d, and no memory.
    """

    @staticmethod
    def forward(ctx, x: Tensor, dim: int, size: int, alpha: float, beta: float, k: float) -> Tensor:
        ctx.window = (dim, size, alpha, beta, k)
        if fuses(x):
            ctx.order = _memory_order(x)
            fused = _run_fused(_fused_forward, x.device.type, _in_memory_order(x, ctx.order),
                               ctx.order.index(dim), size, alpha, beta, k)
            if fused is not None:
                out, c = fused
                ctx.save_for_backward(x, c)
                return out.permute(_inverse(ctx.order))
        ctx.save_for_backward(x)
        return _fallback_forward(x, *ctx.window)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, *c = ctx.saved_tensors
        dim, size, alpha, beta, k = ctx.window
        grad_x = None
        if c:
            order = ctx.order
            grad_x = _run_fused(_fused_backward, x.device.type, _in_memory_order(x, order), c[0],
                                _in_memory_order(grad, order), order.index(dim), size, alpha, beta, k)
        if grad_x is None:
            grad_x = _fallback_backward(x, grad, *ctx.window)
        else:
            grad_x = grad_x.permute(_inverse(ctx.order))
        return grad_x, None, None, None, None, None
