"""Looking inside a training network: per-layer gradient and update sizes, dead units, logit spread.

These tell a diverging network (weights and loss growing without bound) from a silenced one (a
large early step leaves most ReLUs off for every input, the logits collapse to one value for all
images, and the loss sits at ln(classes) with vanishing gradients).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The convolutional and fully connected layers of ``model``, by name, in order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def step_sizes(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, dict[str, float]]:
    """Per layer, right after ``optimizer.step()``: the weights' gradient norm, weight norm and update/weight ratio.

    The update of :class:`~alexnet_lib.optim.PaperSGD` is its velocity (section 5: w <- w + v);
    for ``torch.optim.SGD`` it is lr times the momentum buffer.
    """
    lr = optimizer.param_groups[0]["lr"]
    sizes = {}
    for name, layer in weight_layers(model).items():
        w = layer.weight
        state = optimizer.state.get(w, {})
        if "velocity" in state:
            update = state["velocity"].norm()
        elif "momentum_buffer" in state:
            update = lr * state["momentum_buffer"].norm()
        else:
            update = torch.tensor(float("nan"))
        weight = w.detach().norm()
        grad = w.grad.norm() if w.grad is not None else torch.tensor(float("nan"))
        sizes[name] = {"grad_norm": grad.item(), "weight_norm": weight.item(), "update_ratio": (update / weight).item()}
    return sizes


@torch.no_grad()
def activity(model: nn.Module, x: Tensor, labels: Tensor) -> dict:
    """On the batch ``x`` (in eval mode): per layer the fraction of dead units, the logits' spread, the loss.

    A unit (a channel of a convolution, a neuron of a fully connected layer) is dead on ``x`` when
    its input to the ReLU is <= 0 at every position of every image: it passes no signal and gets
    no gradient.  ``logit_std_over_images`` is the standard deviation over images of each class's
    logit, averaged over classes: near 0 when the network answers the same for every image.
    """
    layers = weight_layers(model)
    last = list(layers)[-1]
    positive: dict[str, Tensor] = {}

    def record(name):
        def hook(module, inputs, output):
            # Channels are dimension 1 of a conv output (N, C, H, W) and of a linear one (N, C).
            reduce = [d for d in range(output.dim()) if d != 1]
            positive[name] = (output > 0).sum(dim=reduce) > 0

        return hook

    handles = [layer.register_forward_hook(record(name)) for name, layer in layers.items() if name != last]
    was_training = model.training
    model.eval()
    try:
        logits = model(x).float()
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return {
        "dead_fraction": {name: 1 - alive.float().mean().item() for name, alive in positive.items()},
        "logit_std_over_images": logits.std(dim=0).mean().item(),
        "loss": nn.functional.cross_entropy(logits, labels).item(),
        "error": (logits.argmax(dim=1) != labels).float().mean().item(),
    }


def gradient_norm(model: nn.Module) -> float:
    """The norm of the gradient over all of ``model``'s parameters, as one vector (0 exactly when nothing learns)."""
    return torch.sqrt(sum((p.grad**2).sum() for p in model.parameters() if p.grad is not None)).item()


@torch.no_grad()
def layer_outputs(model: nn.Module, x: Tensor, names: tuple[str, ...]) -> dict[str, Tensor]:
    """What each layer in ``names`` passes on for the batch ``x``, in eval mode (no dropout).

    Every layer but the last is followed by a ReLU in the paper's network (section 3.1), so its
    output is recorded after one; the last layer's outputs are the logits, which have none.
    """
    outputs = {}

    def keep(name):
        last = name == names[-1]
        return lambda layer, inputs, out: outputs.__setitem__(name, out if last else torch.relu(out))

    hooks = [getattr(model, name).register_forward_hook(keep(name)) for name in names]
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return outputs


def signal_stats(outputs: dict[str, Tensor]) -> dict[str, dict[str, float]]:
    """Per layer: the std of all outputs, the std between images (per neuron, averaged), the fraction of zeros.

    Only the spread between images carries information about the image: a neuron that gives every
    image the same value tells the next layer nothing.
    """
    return {
        name: {"std": out.std().item(), "between": out.std(dim=0).mean().item(), "zeros": (out == 0).float().mean().item()}
        for name, out in outputs.items()
    }
