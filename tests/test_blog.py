"""alexnet_lib.blog.watch_collapse: the fixed point of a ReLU on the logits, on a model small enough to test."""

import math

import torch
from torch import nn

from alexnet_lib.blog import watch_collapse


class ReluLogits(nn.Module):
    def __init__(self, bias):
        super().__init__()
        self.F3 = nn.Linear(4, 10)
        nn.init.constant_(self.F3.bias, bias)

    def forward(self, x):
        return torch.relu(self.F3(x))


def test_all_negative_outputs_are_a_fixed_point_with_zero_gradient():
    torch.manual_seed(0)
    model = ReluLogits(bias=-100.0)
    images, labels = torch.randn(6, 4), torch.arange(6)
    weight = model.F3.weight.detach().clone()
    start, history = watch_collapse(model, model.F3, images, labels, steps=3)
    assert len(history) == 3
    for step in history:
        assert step["loss"] == nn.functional.cross_entropy(torch.zeros(6, 10), labels).item()
        assert step["grad"] == 0 and step["nonzero"] == 0 and step["positive"] == 0
        assert step["largest"] < -90
    # Only weight decay moves the weights: with momentum 0.9 the three steps shrink them by
    # lr * wd * (1 + 1.9 + 2.71) in all, to first order.
    assert torch.allclose(model.F3.weight, weight * (1 - 0.01 * 5e-4 * 5.61), rtol=1e-6)
    assert start > 0 and not model.F3._forward_hooks


def test_positive_outputs_pass_a_gradient_and_the_start_spread_is_measured():
    torch.manual_seed(0)
    model = ReluLogits(bias=1.0)
    images, labels = torch.randn(6, 4), torch.arange(6)
    with torch.no_grad():
        expected_start = model.F3(images).std(dim=0).mean().item()
        expected_loss = nn.functional.cross_entropy(model(images), labels).item()
    start, history = watch_collapse(model, model.F3, images, labels, steps=1)
    assert start == expected_start
    assert history[0]["grad"] > 0 and history[0]["nonzero"] > 0 and 0 < history[0]["positive"] <= 1
    assert math.isclose(history[0]["loss"], expected_loss, rel_tol=1e-6)
