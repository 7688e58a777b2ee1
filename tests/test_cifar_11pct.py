"""cuda-convnet2's 11% CIFAR-10 network against its own cfg files, and its per-layer optimizer groups."""

import configparser
import pathlib

import pytest
import torch
from torch import nn

from alexnet_lib.cifar_11pct import BASE_LR, INIT_STD, LAYER_PARAMS, Cifar11pctNet
from alexnet_lib.local import LocallyConnected2d
from alexnet_lib.lrn import LocalResponseNorm, effective_alpha

# The copies of Krizhevsky's cfg files that CI keeps beside the checkout (../shared/reference, see its README).
REFERENCE = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "cuda-convnet2-layers"
PARAMETERS = 2_112_970


def _cfg(name: str) -> configparser.ConfigParser:
    if not REFERENCE.is_dir():
        pytest.skip(f"Krizhevsky's cfg files are not at {REFERENCE} (../shared/reference beside the checkout); the "
                    "checks against them need that copy, the other tests of the network do not")
    parser = configparser.ConfigParser(comment_prefixes=("#",), inline_comment_prefixes=None)
    parser.read_string((REFERENCE / name).read_text())
    return parser


@pytest.fixture(scope="module")
def layers():
    return _cfg("layers-cifar10-11pct.cfg")


@pytest.fixture(scope="module")
def params():
    return _cfg("layer-params-cifar10-11pct.cfg")


def _side(size: int, layer) -> int:
    """An output side as cuda-convnet2's layer.py computes it: 1 + ceil((2 padding + size - filter) / stride)."""
    filter_size = int(layer.get("filterSize", layer.get("sizeX")))
    padding, stride = int(layer.get("padding", 0)), int(layer["stride"])
    return 1 + -(-(2 * padding + size - filter_size) // stride)


def _expected_parameters(layers) -> int:
    """The parameter count the cfg implies: conv shares its filters, local has one set per output position."""
    side, channels, total = 24, 3, 0
    for name in layers.sections():
        layer = layers[name]
        if layer.get("type") in ("conv", "local"):
            side_out = _side(side, layer)
            filters, filter_size = int(layer["filters"]), int(layer["filterSize"])
            assert int(layer["channels"]) == channels, name
            per_filter = channels * filter_size**2
            if layer["type"] == "conv":
                total += filters * per_filter + filters  # sharedBiases=1
            else:
                total += side_out**2 * (filters * per_filter + filters)
            side, channels = side_out, filters
        elif layer.get("type") == "pool":
            side = _side(side, layer)
        elif layer.get("type") == "fc":
            outputs = int(layer["outputs"])
            total += side * side * channels * outputs + outputs
    return total


def test_parameter_count_is_the_cfgs(layers):
    net = Cifar11pctNet()
    assert sum(p.numel() for p in net.parameters()) == _expected_parameters(layers) == PARAMETERS


def test_parameter_count_without_the_cfg():
    # The same count written out: conv1, conv2, local3 and local4 (6 x 6 positions each), fc10.
    expected = (3 * 25 * 64 + 64) + (64 * 25 * 64 + 64) + 36 * (64 * 9 * 64 + 64) + 36 * (64 * 9 * 32 + 32) \
        + (32 * 36 * 10 + 10)
    assert sum(p.numel() for p in Cifar11pctNet().parameters()) == expected == PARAMETERS


def test_every_layer_has_the_cfgs_shape(layers):
    net = Cifar11pctNet()
    x = torch.zeros(2, 3, 24, 24)
    side = 24
    for name in ("conv1", "pool1", "rnorm1", "conv2", "rnorm2", "pool2", "local3", "local4"):
        layer, module = layers[name], getattr(net, name)
        x = module(torch.relu(x) if name in ("pool1", "rnorm2", "local4") else x)
        if layer["type"] in ("conv", "local", "pool"):
            side = _side(side, layer)
        assert tuple(x.shape[-2:]) == (side, side), name
        if layer["type"] in ("conv", "local"):
            assert x.shape[1] == int(layer["filters"]), name
            assert isinstance(module, nn.Conv2d if layer["type"] == "conv" else LocallyConnected2d), name
            kernel = module.kernel_size if layer["type"] == "local" else module.kernel_size[0]
            padding = module.padding if layer["type"] == "local" else module.padding[0]
            assert (kernel, padding) == (int(layer["filterSize"]), int(layer["padding"])), name
        if layer["type"] == "pool":
            assert layer["pool"] == "max" and isinstance(module, nn.MaxPool2d), name
            assert (module.kernel_size, module.stride) == (int(layer["sizeX"]), int(layer["stride"])), name
    assert net.fc10.out_features == int(layers["fc10"]["outputs"])
    # The order of the layers is the cfg's: each one's inputs are the previous one.
    order = ["conv1", "pool1", "rnorm1", "conv2", "rnorm2", "pool2", "local3", "local4", "fc10"]
    assert [layers[name]["inputs"] for name in order[1:]] == order[:-1]


def test_initial_weights_have_the_cfgs_initw(layers):
    torch.manual_seed(0)
    net = Cifar11pctNet()
    for name, std in INIT_STD.items():
        assert std == float(layers[name]["initW"]), name
        layer = getattr(net, name)
        assert layer.weight.std().item() == pytest.approx(std, rel=0.05), name
        assert torch.count_nonzero(layer.bias) == 0 and "initB" not in layers[name], name


def test_response_normalisation_has_the_cfgs_constants(layers, params):
    net = Cifar11pctNet()
    for name in ("rnorm1", "rnorm2"):
        norm, size = getattr(net, name), int(layers[name]["size"])
        assert layers[name]["type"] == "cmrnorm" and isinstance(norm, LocalResponseNorm)
        assert (norm.size, norm.alpha, norm.beta) == (size, float(params[name]["scale"]), float(params[name]["pow"]))
        # layer.py: scale /= size for cmrnorm; minDiv defaults to 1 and the cfg does not set it.
        assert effective_alpha(norm.alpha, norm.size, norm.convention) == float(params[name]["scale"]) / size
        assert "minDiv" not in params[name] and "minDiv" not in layers[name] and norm.k == 1.0


def test_the_normalisation_is_cuda_convnets_formula():
    # b = a / (1 + 0.001 / 9 * sum of a^2 over the 9 maps around, clipped at the edges)^0.75
    torch.manual_seed(0)
    a = torch.randn(2, 64, 3, 3) * 30
    squares = nn.functional.pad(a * a, (0, 0, 0, 0, 4, 4))
    window = sum(squares[:, i:i + 64] for i in range(9))
    expected = a / (1 + 0.001 / 9 * window) ** 0.75
    assert torch.allclose(Cifar11pctNet().rnorm1(a), expected, rtol=1e-5)


def test_per_layer_settings_are_the_cfgs(params):
    for name, layer in LAYER_PARAMS.items():
        cfg = params[name]
        assert (layer.eps_w, layer.eps_b, layer.wc) == (float(cfg["epsW"]), float(cfg["epsB"]), float(cfg["wc"])), name
        assert float(cfg["momW"]) == float(cfg["momB"]) == 0.9, name


def test_parameter_groups_cover_every_parameter_once_with_its_layers_rate_and_decay():
    net = Cifar11pctNet()
    groups = net.parameter_groups(lr=0.01)
    assert [id(p) for g in groups for p in g["params"]] == [id(p) for p in net.parameters()]
    by_name = {g["name"]: g for g in groups}
    for name, layer in LAYER_PARAMS.items():
        weight, bias = by_name[f"{name}.weight"], by_name[f"{name}.bias"]
        assert weight["lr"] == pytest.approx(0.01 * layer.eps_w / BASE_LR) and weight["weight_decay"] == layer.wc
        # The cfg's epsB is twice its epsW; biases get no weight decay (cuda-convnet2's layer.cu).
        assert bias["lr"] == pytest.approx(0.02) and bias["weight_decay"] == 0.0
    assert by_name["fc10.weight"]["weight_decay"] == 0.01 and by_name["conv1.weight"]["weight_decay"] == 0.0


def test_switches_keep_the_shapes():
    plain, no_lrn, non_overlapping = Cifar11pctNet(), Cifar11pctNet(lrn=False), Cifar11pctNet(pool=(2, 2))
    assert isinstance(no_lrn.rnorm1, nn.Identity) and isinstance(no_lrn.rnorm2, nn.Identity)
    assert non_overlapping.pool1.kernel_size == 2 and non_overlapping.pool2.stride == 2
    counts = {sum(p.numel() for p in net.parameters()) for net in (plain, no_lrn, non_overlapping)}
    assert counts == {PARAMETERS}
    for net in (plain, no_lrn, non_overlapping):
        assert net(torch.zeros(2, 3, 24, 24)).shape == (2, 10)


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = Cifar11pctNet()
    nn.functional.cross_entropy(net(torch.randn(4, 3, 24, 24) * 60), torch.arange(4)).backward()
    for name, p in net.named_parameters():
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_clear_errors():
    with pytest.raises(ValueError, match=r"\(N, 3, 24, 24\)"):
        Cifar11pctNet()(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="pool"):
        Cifar11pctNet(pool=(0, 2))
    with pytest.raises(ValueError, match="too small"):
        Cifar11pctNet(input_size=1)
    with pytest.raises(ValueError, match="num_classes"):
        Cifar11pctNet(num_classes=0)
