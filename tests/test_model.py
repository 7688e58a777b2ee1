"""The paper's network: shapes (section 3.5), parameter counts, initialisation (section 5), connectivity (3.2)."""

import math

import pytest
import torch
from torch import nn

from alexnet_lib import AlexNet, LocalResponseNorm, conv_output_size, layer_table
from alexnet_lib.model import BIAS_ONE_LAYERS, LAYER_NAMES


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return AlexNet().eval()


def test_output_sides_at_227(model):
    sides = {row.name: row.output_shape[-1] for row in layer_table(model) if len(row.output_shape) == 3}
    assert [sides[n] for n in ("C1", "S1", "C2", "S2", "C3", "C4", "C5", "S3")] == [55, 27, 27, 13, 13, 13, 13, 6]


def test_layer_table_counts(model):
    table = {row.name: row for row in layer_table(model)}
    assert table["C1"].output_shape == (96, 55, 55)
    assert table["C1"].neurons == 290_400
    assert table["C2"].neurons == 186_624  # the paper's second number
    assert table["C3"].neurons == table["C4"].neurons == 64_896
    assert table["C5"].neurons == 43_264
    assert table["F3"].output_shape == (1000,)
    assert table["C1"].mult_adds == 55 * 55 * 96 * 11 * 11 * 3
    assert table["F1"].mult_adds == 9216 * 4096
    assert sum(r.parameters for r in table.values()) == 62_378_344
    assert "C1" in str(layer_table(model)) and "<table>" in layer_table(model)._repr_html_()


def test_no_square_map_gives_the_papers_first_layer_count():
    assert not any(96 * s * s == 253_440 for s in range(1, 100))


def test_224_cannot_give_55_but_227_can():
    assert conv_output_size(224, kernel=11, stride=4) == 54
    assert conv_output_size(227, kernel=11, stride=4) == 55


@pytest.mark.parametrize("groups,count", [(1, 62_378_344), (2, 60_965_224)])
def test_parameter_counts(groups, count):
    assert sum(p.numel() for p in AlexNet(groups=groups).parameters()) == count


def test_paper_initialisation():
    torch.manual_seed(0)
    net = AlexNet(num_classes=10)
    for name in LAYER_NAMES:
        layer = getattr(net, name)
        if not isinstance(layer, (nn.Conv2d, nn.Linear)):
            continue
        w = layer.weight.detach()
        assert abs(w.mean().item()) < 3 * 0.01 / math.sqrt(w.numel()) + 1e-6, name
        assert abs(w.std().item() - 0.01) < 0.01 * 5 / math.sqrt(w.numel()) + 1e-4, name
        expected_bias = 1.0 if name in BIAS_ONE_LAYERS else 0.0
        assert torch.all(layer.bias == expected_bias), name
    assert set(BIAS_ONE_LAYERS) == {"C2", "C4", "C5", "F1", "F2"}


def test_kaiming_initialisation_option():
    torch.manual_seed(0)
    net = AlexNet(init="kaiming")
    assert abs(net.C1.weight.std().item() - math.sqrt(2 / (3 * 11 * 11))) < 0.005
    assert torch.all(net.C2.bias == 0)
    with pytest.raises(ValueError, match="init"):
        AlexNet(init="xavier")


def test_logits_can_be_negative():
    torch.manual_seed(0)
    net = AlexNet(num_classes=10).eval()
    with torch.no_grad():
        logits = net(torch.randn(4, 3, 227, 227))
    assert (logits < 0).any() and (logits > 0).any()


def test_uses_cuda_convnet_lrn_by_default():
    net = AlexNet()
    assert isinstance(net.N1, LocalResponseNorm) and net.N1.convention == "cuda-convnet"
    assert (net.N1.size, net.N1.alpha, net.N1.beta, net.N1.k) == (5, 1e-4, 0.75, 2.0)
    assert isinstance(AlexNet(lrn=False).N2, nn.Identity)


@pytest.mark.parametrize(
    "shape",
    [(1, 3, 224, 224), (1, 1, 227, 227), (3, 227, 227), (1, 3, 227, 228), (1, 4, 227, 227), (1, 3, 227, 227, 1)],
)
def test_bad_input_raises(model, shape):
    with pytest.raises(ValueError, match=r"expects a batch of shape \(N, 3, 227, 227\)"):
        model(torch.zeros(shape))


def test_bad_arguments():
    with pytest.raises(ValueError, match="groups"):
        AlexNet(groups=3)
    with pytest.raises(ValueError, match="too small"):
        AlexNet(input_size=40)
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got 0"):
        AlexNet(num_classes=0)


def test_dropout_only_in_training():
    torch.manual_seed(0)
    net = AlexNet(num_classes=10, init="kaiming")
    x = torch.randn(2, 3, 227, 227)
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
    net.train()
    with torch.no_grad():
        assert not torch.equal(net(x), net(x))


def test_grouped_connectivity():
    """Section 3.2: C2's kernels on GPU 1 see only GPU 1's 48 maps."""
    torch.manual_seed(0)
    net = AlexNet(groups=2)
    x = torch.randn(1, 96, 27, 27)
    perturbed = x.clone()
    perturbed[:, 48:] += torch.randn(1, 48, 27, 27)
    with torch.no_grad():
        before, after = net.C2(x), net.C2(perturbed)
    assert torch.equal(before[:, :128], after[:, :128])
    assert not torch.equal(before[:, 128:], after[:, 128:])
    # C3 connects both columns, so every one of its outputs sees the perturbation.
    with torch.no_grad():
        c3 = net.C3(torch.relu(before)[:, :, :13, :13]) - net.C3(torch.relu(after)[:, :, :13, :13])
    assert (c3[0].abs().flatten(1).sum(1) > 0).all()


def test_grouped_lrn_stays_within_a_column():
    net = AlexNet(groups=2)
    x = torch.randn(1, 96, 5, 5)
    perturbed = x.clone()
    perturbed[:, 48:] *= 100
    assert torch.equal(net.N1(x)[:, :48], net.N1(perturbed)[:, :48])


def test_backward_reaches_every_parameter():
    torch.manual_seed(0)
    net = AlexNet(num_classes=10)
    loss = nn.functional.cross_entropy(net(torch.randn(2, 3, 227, 227)), torch.tensor([1, 2]))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
