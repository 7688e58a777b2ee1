"""LocallyConnected2d against a direct loop over output positions: values and gradients."""

import pytest
import torch
from torch.nn import functional as F

from alexnet_lib.local import LocallyConnected2d


def direct(x, weight, bias, stride, padding):
    """Output position by position: the window times that position's own filters, plus its own biases."""
    k = weight.shape[-1]
    padded = F.pad(x, (padding,) * 4)
    side = weight.shape[0]
    rows = []
    for i in range(side):
        row = []
        for j in range(side):
            window = padded[:, :, i * stride:i * stride + k, j * stride:j * stride + k]  # (N, C, k, k)
            outputs = [(window * weight[i, j, o]).sum(dim=(1, 2, 3)) + bias[o, i, j] for o in range(weight.shape[2])]
            row.append(torch.stack(outputs, dim=1))  # (N, O)
        rows.append(torch.stack(row, dim=-1))  # (N, O, side)
    return torch.stack(rows, dim=-2)  # (N, O, side, side)


# (in, out, kernel, input size, stride, padding): the cfg's local3/local4 shape (3x3, pad 1, stride 1)
# scaled down, and stride 2 / no padding / an even kernel for the indexing.
CASES = [(4, 3, 3, 6, 1, 1), (3, 2, 3, 7, 2, 1), (2, 5, 2, 5, 1, 0), (3, 2, 3, 6, 2, 0)]


@pytest.mark.parametrize("in_ch, out_ch, k, size, stride, padding", CASES)
def test_values_and_gradients_equal_the_direct_loop(in_ch, out_ch, k, size, stride, padding):
    torch.manual_seed(0)
    layer = LocallyConnected2d(in_ch, out_ch, k, size, stride=stride, padding=padding, init_std=1.0).double()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(3, in_ch, size, size, dtype=torch.float64, requires_grad=True)
    expected_side = (size + 2 * padding - k) // stride + 1
    fast = layer(x)
    assert fast.shape == (3, out_ch, expected_side, expected_side)
    weight = layer.weight.detach().clone().requires_grad_()
    bias = layer.bias.detach().clone().requires_grad_()
    x_loop = x.detach().clone().requires_grad_()
    slow = direct(x_loop, weight, bias, stride, padding)
    assert torch.allclose(fast, slow, rtol=1e-12, atol=1e-12)

    upstream = torch.randn_like(fast)
    (fast * upstream).sum().backward()
    (slow * upstream).sum().backward()
    assert torch.allclose(x.grad, x_loop.grad, rtol=1e-12, atol=1e-12)
    assert torch.allclose(layer.weight.grad, weight.grad, rtol=1e-12, atol=1e-12)
    assert torch.allclose(layer.bias.grad, bias.grad, rtol=1e-12, atol=1e-12)


def test_weights_are_not_shared_between_positions():
    torch.manual_seed(0)
    layer = LocallyConnected2d(2, 3, 3, 5, padding=1)
    x = torch.randn(1, 2, 5, 5)
    before = layer(x).detach()
    with torch.no_grad():
        layer.weight[1, 2] += 1.0  # only position (1, 2)'s filters
    changed = (layer(x).detach() - before).abs().amax(dim=1)[0] > 0
    assert changed.nonzero().tolist() == [[1, 2]]


def test_parameter_shapes_are_cuda_convnets():
    # LocalUnsharedLayerParser: modules * filterPixels * filterChannels weights per filter, modules * filters biases.
    layer = LocallyConnected2d(64, 32, 3, 6, padding=1)
    modules = 6 * 6
    assert layer.weight.numel() == modules * 9 * 64 * 32 and layer.bias.numel() == modules * 32
    assert layer.bias.abs().sum() == 0


def test_clear_errors():
    with pytest.raises(ValueError, match=r"\(N, 2, 5, 5\)"):
        LocallyConnected2d(2, 3, 3, 5)(torch.zeros(1, 2, 6, 6))
    with pytest.raises(ValueError, match="does not fit"):
        LocallyConnected2d(2, 3, 5, 3)
    with pytest.raises(ValueError, match="stride"):
        LocallyConnected2d(2, 3, 3, 5, stride=0)
