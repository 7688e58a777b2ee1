"""alexnet_lib.diagnostics: the hooks and summaries chapter 08 measures a network with."""

import math

import torch
from torch import nn

from alexnet_lib.diagnostics import gradient_norm, layer_outputs, signal_stats


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.A = nn.Linear(2, 2)
        self.B = nn.Linear(2, 2)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.B(self.drop(torch.relu(self.A(x))))


def fixed_net():
    net = TwoLayers()
    with torch.no_grad():
        net.A.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
        net.A.bias.zero_()
        net.B.weight.copy_(torch.tensor([[1.0, 1.0], [-1.0, 0.0]]))
        net.B.bias.copy_(torch.tensor([0.0, -5.0]))
    return net


def test_layer_outputs_applies_relu_to_all_but_the_logits_in_eval_mode():
    net = fixed_net().train()
    x = torch.tensor([[1.0, 2.0], [-3.0, -4.0]])
    outputs = layer_outputs(net, x, ("A", "B"))
    # A's outputs (1, -2) and (-3, 4) after a ReLU; B's logits keep their negative values; no dropout.
    assert torch.equal(outputs["A"], torch.tensor([[1.0, 0.0], [0.0, 4.0]]))
    assert torch.equal(outputs["B"], torch.tensor([[1.0, -6.0], [4.0, -5.0]]))
    assert net.training and not net.A._forward_hooks and not net.B._forward_hooks


def test_signal_stats_separates_the_image_signal_from_a_constant():
    same_for_all = torch.full((4, 3), 7.0)
    varies = torch.tensor([[0.0, 2.0], [2.0, 0.0]])
    stats = signal_stats({"constant": same_for_all, "varies": varies})
    assert stats["constant"] == {"std": 0.0, "between": 0.0, "zeros": 0.0}
    assert math.isclose(stats["varies"]["between"], math.sqrt(2), rel_tol=1e-6)
    assert math.isclose(stats["varies"]["std"], math.sqrt(4 / 3), rel_tol=1e-6)
    assert stats["varies"]["zeros"] == 0.5


def test_gradient_norm_is_the_norm_over_all_parameters():
    net = nn.Linear(3, 1)
    net(torch.tensor([[1.0, 2.0, 2.0]])).sum().backward()
    # d/dw = x = (1, 2, 2), d/db = 1: norm sqrt(1 + 4 + 4 + 1).
    assert math.isclose(gradient_norm(net), math.sqrt(10), rel_tol=1e-6)
