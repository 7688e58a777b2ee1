"""PaperSGD: section 5's update, and how it relates to torch.optim.SGD."""

import pytest
import torch

from alexnet_lib.optim import PaperSGD


def _run(optimizer_cls, lrs, **kwargs):
    """Minimise a fixed quadratic in float64, one step per entry of ``lrs``; return the weights."""
    torch.manual_seed(0)
    target = torch.randn(20, dtype=torch.float64)
    w = torch.nn.Parameter(torch.randn(20, dtype=torch.float64))
    opt = optimizer_cls([w], lr=lrs[0], momentum=0.9, weight_decay=5e-4, **kwargs)
    for lr in lrs:
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        ((w - target) ** 2).sum().backward()
        opt.step()
    return w.detach()


def test_one_step_is_the_papers_formula():
    w = torch.nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    opt = PaperSGD([w], lr=0.1)
    (3 * w).sum().backward()  # dL/dw = 3
    opt.step()
    # v = 0.9*0 - 0.0005*0.1*2 - 0.1*3
    v = -0.0005 * 0.1 * 2 - 0.1 * 3
    assert w.item() == pytest.approx(2 + v, abs=1e-15)


def test_same_as_torch_sgd_at_constant_lr():
    lrs = [0.01] * 50
    assert torch.allclose(_run(PaperSGD, lrs), _run(torch.optim.SGD, lrs), rtol=0, atol=1e-12)


def test_differs_from_torch_sgd_across_a_drop():
    lrs = [0.01] * 20 + [0.001] * 5
    paper, torch_sgd = _run(PaperSGD, lrs), _run(torch.optim.SGD, lrs)
    # Equal up to the drop ...
    assert torch.allclose(_run(PaperSGD, lrs[:20]), _run(torch.optim.SGD, lrs[:20]), atol=1e-12)
    # ... and clearly apart after it: the paper's velocity keeps its old-lr steps.
    assert (paper - torch_sgd).abs().max() > 1e-4


def test_state_dict_round_trip():
    w = torch.nn.Parameter(torch.ones(3))
    opt = PaperSGD([w])
    w.sum().backward()
    opt.step()
    clone = PaperSGD([torch.nn.Parameter(torch.ones(3))])
    clone.load_state_dict(opt.state_dict())
    assert torch.equal(next(iter(clone.state.values()))["velocity"], next(iter(opt.state.values()))["velocity"])


@pytest.mark.parametrize("kwargs", [{"lr": -1.0}, {"momentum": 1.0}, {"weight_decay": -0.1}])
def test_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError):
        PaperSGD([torch.nn.Parameter(torch.ones(1))], **kwargs)


def test_thirty_steps_of_the_papers_update_with_a_drop_at_fifteen():
    # A drop the way ReduceLROnPlateau makes one: the group's lr divided in place, mid-run.
    torch.manual_seed(0)
    a, b = torch.randn(8, 20, dtype=torch.float64) / 5, torch.randn(8, dtype=torch.float64)
    start = torch.randn(20, dtype=torch.float64)
    w = torch.nn.Parameter(start.clone())
    opt = PaperSGD([w], lr=0.01)
    expected, v, eps = start.clone(), torch.zeros(20, dtype=torch.float64), 0.01
    for step in range(30):
        if step == 15:
            opt.param_groups[0]["lr"] /= 10
            eps /= 10
        opt.zero_grad()
        ((a @ w - b) ** 2).sum().backward()
        opt.step()
        gradient = 2 * a.T @ (a @ expected - b)
        v = 0.9 * v - 0.0005 * eps * expected - eps * gradient
        expected = expected + v
    # Decay at the rate before the drop would move w by up to 4e-4 of itself in 15 steps: far above rounding.
    torch.testing.assert_close(w.detach(), expected, rtol=1e-12, atol=0)
