"""A locally connected layer: cuda-convnet's ``type=local`` ("unshared, locally-connected").

Like a convolution, every output position sees a ``kernel_size`` x ``kernel_size`` window of the
input; unlike one, every position has its own filters and its own biases.  cuda-convnet2's
``layer.py`` (``LocalUnsharedLayerParser``) gives such a layer ``modules x filterPixels x
filterChannels`` weights for ``filters`` outputs and ``modules x filters`` biases, ``modules``
being the number of output positions; the same shapes here.  Krizhevsky's CIFAR-10 networks with
11-13% error (``layers-conv-local-13pct.cfg``, ``layers-cifar10-11pct.cfg``) use two of them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class LocallyConnected2d(nn.Module):
    """Unshared-weight "convolution" on square ``input_size`` x ``input_size`` maps.

    ``weight`` is (side, side, out_channels, in_channels, k, k): at output position (i, j) the
    filter bank ``weight[i, j]`` of a convolution; ``bias`` is (out_channels, side, side).  The
    output side is PyTorch's ``(input_size + 2 padding - k) // stride + 1``, which is
    cuda-convnet's ``1 + ceil((2 padding + imgSize - filterSize) / stride)`` whenever the windows
    tile the padded input exactly, as with stride 1.  Weights start from N(0, ``init_std``^2) and
    biases at 0, as a cfg's ``initW`` (and absent ``initB``) set them.

    The forward pass is one unfold (every window as a column) and one batched matrix product over
    positions; autograd differentiates both.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, input_size: int, *,
                 stride: int = 1, padding: int = 0, init_std: float = 0.01):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("kernel_size", kernel_size), ("input_size", input_size), ("stride", stride)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        side = (input_size + 2 * padding - kernel_size) // stride + 1
        if side < 1:
            raise ValueError(f"a {kernel_size}x{kernel_size} window does not fit a {input_size}x{input_size} "
                             f"input with padding {padding}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.input_size, self.output_size, self.stride, self.padding = input_size, side, stride, padding
        self.weight = nn.Parameter(torch.empty(side, side, out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels, side, side))
        self.reset_parameters(init_std)

    def reset_parameters(self, init_std: float = 0.01) -> None:
        nn.init.normal_(self.weight, mean=0.0, std=init_std)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        expected = (self.in_channels, self.input_size, self.input_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"LocallyConnected2d expects input of shape (N, {', '.join(map(str, expected))}), "
                             f"got {tuple(x.shape)}")
        n, side = x.shape[0], self.output_size
        # (N, C k k, L): column l holds the window of output position l = i * side + j.
        columns = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)
        weight = self.weight.reshape(side * side, self.out_channels, -1)
        # out[n, o, l] = sum_c columns[n, c, l] weight[l, o, c]: one (N x Ckk) @ (Ckk x O) product per position.
        out = torch.einsum("ncl,loc->nol", columns, weight)
        return out.reshape(n, self.out_channels, side, side) + self.bias

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"input_size={self.input_size}, stride={self.stride}, padding={self.padding}, "
                f"output_size={self.output_size}")
