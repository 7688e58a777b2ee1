"""The blog reproduction's design, rebuilt from its description for side-by-side comparisons.

JacobDale, "小白的经典CNN复现(三):AlexNet", cnblogs, 2021-02-07 (see the book's introduction).
Nothing here is recommended: it exists so that notebooks, benchmarks and experiments can
measure what each of the post's choices costs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .diagnostics import gradient_norm
from .lrn import effective_alpha
from .model import AlexNet
from .paper import DROPOUT, INIT_STD, LRN_ALPHA, LRN_BETA, LRN_K, LRN_SIZE, PRINTED_INPUT_SIZE


def loop_local_response_norm(
    x: Tensor,
    size: int = LRN_SIZE,
    alpha: float = LRN_ALPHA,
    beta: float = LRN_BETA,
    k: float = LRN_K,
    convention: str = "paper",
) -> Tensor:
    """LRN computed the way the post does: a Python loop over every (image, channel) pair."""
    coefficient = effective_alpha(alpha, size, convention)
    squares = x * x
    window_sums = torch.zeros_like(x)
    channels = x.shape[1]
    for b in range(x.shape[0]):
        for c in range(channels):
            lo, hi = max(0, c - size // 2), min(channels - 1, c + (size - 1) // 2)
            window_sums[b, c] = squares[b, lo : hi + 1].sum(dim=0)
    return x / (k + coefficient * window_sums) ** beta


class LoopLocalResponseNorm(nn.Module):
    """Module form of :func:`loop_local_response_norm` (the paper's convention, as in the post)."""

    def __init__(self, size: int = LRN_SIZE, alpha: float = LRN_ALPHA, beta: float = LRN_BETA, k: float = LRN_K):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: Tensor) -> Tensor:
        return loop_local_response_norm(x, self.size, self.alpha, self.beta, self.k)


class BlogAlexNet(AlexNet):
    """The post's network, with each of its departures from the paper as a switch.

    - 224x224 input with C1 padded by 2 (the post's route to 55x55 maps);
    - ``loop_lrn``: its per-(image, channel) LRN loop, paper convention (else our vectorised LRN, same numbers);
    - ``relu_on_logits``: a ReLU after F3, which clips every negative logit to 0;
    - ``output_bias_one``: every fully connected bias set to 1, F3's included (the paper: 0 for F3, 0 for C3 too).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        relu_on_logits: bool = True,
        output_bias_one: bool = True,
        loop_lrn: bool = True,
        dropout: float = DROPOUT,
    ):
        super().__init__(num_classes=num_classes, dropout=dropout, lrn_convention="paper")
        self.relu_on_logits = relu_on_logits
        self.input_size = PRINTED_INPUT_SIZE
        self.C1 = nn.Conv2d(3, 96, kernel_size=11, stride=4, padding=2)
        nn.init.normal_(self.C1.weight, mean=0.0, std=INIT_STD)
        nn.init.zeros_(self.C1.bias)
        if loop_lrn:
            self.N1, self.N2 = LoopLocalResponseNorm(), LoopLocalResponseNorm()
        if output_bias_one:
            nn.init.ones_(self.F3.bias)

    def forward(self, x: Tensor) -> Tensor:
        logits = super().forward(x)
        return torch.relu(logits) if self.relu_on_logits else logits


def watch_collapse(
    model: nn.Module,
    pre_relu: nn.Module,
    images: Tensor,
    labels: Tensor,
    steps: int = 10,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
) -> tuple[float, list[dict[str, float]]]:
    """Train ``model`` on one fixed batch with the post's SGD settings, watching the layer ``pre_relu``.

    ``pre_relu`` is the layer whose outputs a go through the ReLU on the logits (F3 in
    :class:`BlogAlexNet`). Returns the spread of a between images before training (std over
    images, averaged over outputs, in eval mode) and, per step, the loss, the gradient norm over
    all parameters, the number of non-zero gradient entries, the fraction of a above 0 and the
    largest a: together they show the logits collapse to the fixed point where every a < 0.
    """
    seen = {}
    hook = pre_relu.register_forward_hook(lambda layer, inputs, out: seen.__setitem__("a", out.detach()))
    try:
        with torch.no_grad():
            model.eval()
            model(images)
            model.train()
        start_between = seen["a"].std(dim=0).mean().item()
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        history = []
        for _ in range(steps):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(images), labels)
            loss.backward()
            history.append({
                "loss": loss.item(),
                "grad": gradient_norm(model),
                "nonzero": sum(int((p.grad != 0).sum()) for p in model.parameters()),
                "positive": (seen["a"] > 0).float().mean().item(),
                "largest": seen["a"].max().item(),
            })
            optimizer.step()
    finally:
        hook.remove()
    return start_between, history
