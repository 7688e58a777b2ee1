"""The CIFAR-10 network of Figure 1, in the shape of cuda-convnet's layers-80sec.cfg."""

import pytest
import torch
from torch import nn

from alexnet_lib.cifar_net import CUDA_CONVNET_INIT_STD, WIDE_HEAD_INIT_STD, CifarNet, ConvLocalNet, pooled_side
from alexnet_lib.lrn import LocalResponseNorm


def _sides(net, x):
    sides = []
    x = net.pool1(net.conv1(x))
    sides.append(x.shape[-1])
    x = net.pool2(net.act2(net.conv2(net.act1(x))))
    sides.append(x.shape[-1])
    x = net.pool3(net.act3(net.conv3(x)))
    sides.append(x.shape[-1])
    return sides


@pytest.mark.parametrize("overlap", [True, False])
def test_cuda_convnet_sides_and_parameters(overlap):
    net = CifarNet(overlap=overlap)
    assert _sides(net, torch.zeros(1, 3, 32, 32)) == [16, 8, 4]
    # conv 3->32, 32->32, 32->64 (5x5 + bias), fc 1024->64, fc 64->10.
    expected = (3 * 25 + 1) * 32 + (32 * 25 + 1) * 32 + (32 * 25 + 1) * 64 + (1024 + 1) * 64 + (64 + 1) * 10
    assert sum(p.numel() for p in net.parameters()) == expected == 145_578


def test_wide_head_is_alexnets():
    torch.manual_seed(0)
    net = CifarNet(hidden=(4096, 4096), dropout=0.5)
    assert [layer.out_features for layer in net.hidden] == [4096, 4096] and net.fc10.in_features == 4096
    assert net.hidden[1].weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="hidden"):
        CifarNet(hidden=())


def test_conv_local_net_shapes_and_lrn_switch():
    with_lrn, without = ConvLocalNet(lrn=True), ConvLocalNet(lrn=False)
    assert isinstance(with_lrn.norm1, LocalResponseNorm) and isinstance(without.norm2, nn.Identity)
    # 24 -> pool 12 -> pool 6; conv4 has 32 maps.
    assert with_lrn.fc10.in_features == 32 * 6 * 6
    assert with_lrn(torch.zeros(2, 3, 24, 24)).shape == (2, 10)
    with pytest.raises(ValueError, match="24"):
        without(torch.zeros(1, 3, 32, 32))


def test_pooled_side_is_cuda_convnets_ceil():
    assert [pooled_side(32, 3, 2), pooled_side(16, 3, 2), pooled_side(8, 3, 2)] == [16, 8, 4]
    assert pooled_side(32, 2, 2) == 16


def test_init_follows_the_cfg():
    torch.manual_seed(0)
    net = CifarNet()
    for name, std in CUDA_CONVNET_INIT_STD.items():
        layer = net.hidden[0] if name == "fc64" else getattr(net, name)
        assert layer.weight.std().item() == pytest.approx(std, rel=0.2), name
        assert torch.count_nonzero(layer.bias) == 0


def test_init_stds_are_recorded_and_can_be_chosen():
    assert CifarNet().init_std == CUDA_CONVNET_INIT_STD
    assert CifarNet(hidden=(4096, 4096)).init_std == WIDE_HEAD_INIT_STD
    torch.manual_seed(0)
    cfg_stds = CifarNet(hidden=(128, 128), init_std=CUDA_CONVNET_INIT_STD)
    assert cfg_stds.init_std == CUDA_CONVNET_INIT_STD
    assert cfg_stds.hidden[1].weight.std().item() == pytest.approx(0.1, rel=0.05)
    with pytest.raises(ValueError, match="init_std"):
        CifarNet(init_std={"conv1": 0.01})


def _init_before_init_std(self, init="cuda-convnet"):
    """CifarNet.reset_parameters as it was before ``init_std``: the head's widths chose the stds."""
    stds = dict(CUDA_CONVNET_INIT_STD)
    if [layer.out_features for layer in self.hidden] != [64]:
        stds.update(fc64=0.01, fc10=0.01)
    layers = [(getattr(self, name), stds[name]) for name in ("conv1", "conv2", "conv3", "fc10")]
    for layer, std in layers + [(layer, stds["fc64"]) for layer in self.hidden]:
        if init == "cuda-convnet":
            nn.init.normal_(layer.weight, mean=0.0, std=std)
        else:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu" if self.activation == "relu" else "tanh")
        nn.init.zeros_(layer.bias)


@pytest.mark.parametrize("options", [
    {}, {"hidden": (4096, 4096), "dropout": 0.5}, {"hidden": (64, 64)}, {"activation": "tanh", "lrn": True},
    {"overlap": False}, {"input_size": 24}, {"init": "kaiming"},
])
def test_default_init_draws_the_same_weights_as_before(options, monkeypatch):
    # Recorded experiments rerun their first epoch from these weights: the same draws, in the same order.
    torch.manual_seed(0)
    now = CifarNet(**options).state_dict()
    after_now = torch.rand(1)
    monkeypatch.setattr(CifarNet, "reset_parameters", _init_before_init_std)
    torch.manual_seed(0)
    before = CifarNet(**options).state_dict()
    assert torch.equal(torch.rand(1), after_now)
    assert now.keys() == before.keys() and all(torch.equal(now[name], before[name]) for name in before)


def test_switches():
    net = CifarNet(activation="tanh", lrn=True, overlap=False, dropout=0.5)
    acts = [net.act1, net.act2, net.act3, *net.hidden_acts]
    assert len(acts) == 4 and all(isinstance(act, nn.Tanh) for act in acts)
    assert isinstance(net.norm1, LocalResponseNorm) and isinstance(net.norm2, LocalResponseNorm)
    assert net.pool1.kernel_size == 2 and isinstance(net.pool2, nn.AvgPool2d)
    plain = CifarNet()
    assert isinstance(plain.norm1, nn.Identity) and plain.pool1.kernel_size == 3
    assert isinstance(plain.act1, nn.ReLU)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_max_pool_commutes_with_the_activation(activation):
    # Why following the cfg's conv -> pool -> neuron order in layer 1 changes nothing.
    net = CifarNet(activation=activation)
    x = net.conv1(torch.randn(2, 3, 32, 32))
    assert torch.allclose(net.act1(net.pool1(x)), net.pool1(net.act1(x)))


def test_dropout_only_in_training():
    torch.manual_seed(0)
    net = CifarNet(dropout=0.5, init="kaiming")
    x = torch.randn(4, 3, 32, 32)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    assert not torch.equal(net(x), net(x))


@pytest.mark.parametrize("options", [{}, {"activation": "tanh", "lrn": True, "overlap": False, "dropout": 0.5}])
def test_every_parameter_gets_a_gradient(options):
    # Learning itself is tested on real digits in test_train.py (one epoch lowers the loss).
    torch.manual_seed(0)
    net = CifarNet(**options)
    loss = nn.functional.cross_entropy(net(torch.randn(4, 3, 32, 32) * 60), torch.arange(4))
    loss.backward()
    for name, p in net.named_parameters():
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_clear_errors():
    with pytest.raises(ValueError, match="activation"):
        CifarNet(activation="sigmoid")
    with pytest.raises(ValueError, match="init"):
        CifarNet(init="xavier")
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\)"):
        CifarNet()(torch.zeros(1, 3, 28, 28))
    for network in (CifarNet, ConvLocalNet):
        with pytest.raises(ValueError, match="num_classes must be a positive integer, got 0"):
            network(num_classes=0)
