"""cuda-convnet2's CIFAR-10 network with 11% test error, layer for layer, and its per-layer training settings.

Section 3.3: "a four-layer CNN achieved a 13% test error rate without normalization and 11% with
normalization".  Krizhevsky's cuda-convnet2 ships that network as ``layers/layers-cifar10-11pct.cfg``
with its training settings in ``layers/layer-params-cifar10-11pct.cfg`` (akrizhevsky/cuda-convnet2,
commit 3238bf0367f63eb370e897b9e5714794cb67ddc2; a copy for reading lies in
``../shared/reference/cuda-convnet2-layers/``):

    conv1 64 5x5 pad 2, relu -> pool1 max 3/2 -> rnorm1 cmrnorm 9 -> conv2 64 5x5 pad 2, relu
    -> rnorm2 cmrnorm 9 -> pool2 max 3/2 -> local3 64 3x3 pad 1, relu -> local4 32 3x3 pad 1, relu -> fc10

on 24x24 crops of the 32x32 images.  ``local3``/``local4`` are locally connected (local.py), not
convolutions.  :class:`Cifar11pctNet` follows it exactly; ``lrn=False`` drops the two normalisation
layers (section 3.3's comparison) and ``pool`` sets both pools' (z, s) (section 3.4's).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .cifar_net import pooled_side
from .lrn import LocalResponseNorm
from .local import LocallyConnected2d
from .model import check_image_batch, check_num_classes

INPUT_SIZE = 24

# layers-cifar10-11pct.cfg, ``initW`` of each layer (no ``initB``: biases start at 0).
INIT_STD = {"conv1": 1e-4, "conv2": 0.01, "local3": 0.04, "local4": 0.04, "fc10": 0.01}

# layer-params-cifar10-11pct.cfg, rnorm1/rnorm2 ``scale`` and ``pow``, and layers-cifar10-11pct.cfg's ``size``.
# The cfg sets no ``minDiv``, which cuda-convnet2's layer.py defaults to 1 (the paper's k); layer.py also
# divides ``scale`` by ``size`` for cmrnorm, which is LocalResponseNorm's "cuda-convnet" convention.
LRN_SIZE, LRN_SCALE, LRN_POW, LRN_MIN_DIV = 9, 0.001, 0.75, 1.0
# Both pools of the cfg: max, sizeX=3, stride=2 (section 3.4's z=3, s=2).
POOL = (3, 2)


@dataclass(frozen=True)
class LayerParams:
    """One layer's entry of layer-params-cifar10-11pct.cfg: weight and bias learning rates, weight decay."""

    eps_w: float
    eps_b: float
    wc: float


# layer-params-cifar10-11pct.cfg (every layer's momW and momB are 0.9, section 5's momentum).
LAYER_PARAMS = {
    "conv1": LayerParams(eps_w=0.001, eps_b=0.002, wc=0.0),
    "conv2": LayerParams(eps_w=0.001, eps_b=0.002, wc=0.0),
    "local3": LayerParams(eps_w=0.001, eps_b=0.002, wc=0.004),
    "local4": LayerParams(eps_w=0.001, eps_b=0.002, wc=0.004),
    "fc10": LayerParams(eps_w=0.001, eps_b=0.002, wc=0.01),
}
# A run's ``lr`` stands for conv1's epsW; every other rate keeps its ratio to it.
BASE_LR = LAYER_PARAMS["conv1"].eps_w


class Cifar11pctNet(nn.Module):
    """layers-cifar10-11pct.cfg: 2,112,970 parameters at 24x24, most of them in the unshared local3/local4.

    ``pool`` is the (z, s) of both max pools; pools use ``ceil_mode`` so that the sides are
    cuda-convnet's (24 -> 12 -> 6 with 3/2 and with 2/2).  Every hidden layer's ReLU is the cfg's
    ``neuron=relu`` of that layer, applied before the layer that follows it.
    """

    def __init__(self, num_classes: int = 10, lrn: bool = True, pool: tuple[int, int] = POOL,
                 input_size: int = INPUT_SIZE):
        super().__init__()
        check_num_classes(num_classes)
        kernel, stride = pool
        if kernel < 1 or stride < 1:
            raise ValueError(f"pool must be a positive (size, stride), got {pool!r}")
        side = pooled_side(pooled_side(input_size, kernel, stride), kernel, stride)
        if side < 1:
            raise ValueError(f"input_size {input_size} is too small for two {kernel}/{stride} pools")
        self.num_classes, self.input_size, self.pool = num_classes, input_size, (kernel, stride)

        def norm() -> nn.Module:
            if not lrn:
                return nn.Identity()
            return LocalResponseNorm(size=LRN_SIZE, alpha=LRN_SCALE, beta=LRN_POW, k=LRN_MIN_DIV,
                                     convention="cuda-convnet")

        def max_pool() -> nn.Module:
            return nn.MaxPool2d(kernel_size=kernel, stride=stride, ceil_mode=True)

        self.conv1 = nn.Conv2d(3, 64, kernel_size=5, padding=2)
        self.pool1 = max_pool()
        self.rnorm1 = norm()
        self.conv2 = nn.Conv2d(64, 64, kernel_size=5, padding=2)
        self.rnorm2 = norm()
        self.pool2 = max_pool()
        self.local3 = LocallyConnected2d(64, 64, 3, side, padding=1, init_std=INIT_STD["local3"])
        self.local4 = LocallyConnected2d(64, 32, 3, side, padding=1, init_std=INIT_STD["local4"])
        self.fc10 = nn.Linear(32 * side * side, num_classes)
        for name in ("conv1", "conv2", "fc10"):
            nn.init.normal_(getattr(self, name).weight, mean=0.0, std=INIT_STD[name])
            nn.init.zeros_(getattr(self, name).bias)

    def embed(self, x: Tensor) -> Tensor:
        """local4's activations, flattened: the input of the output layer."""
        check_image_batch(x, self.input_size, "Cifar11pctNet")
        x = self.rnorm1(self.pool1(torch.relu(self.conv1(x))))
        x = self.pool2(self.rnorm2(torch.relu(self.conv2(x))))
        x = torch.relu(self.local4(torch.relu(self.local3(x))))
        return torch.flatten(x, 1)

    def forward(self, x: Tensor) -> Tensor:
        # fc10 sets no neuron in the cfg: logits for the softmax.
        return self.fc10(self.embed(x))

    def parameter_groups(self, lr: float) -> list[dict]:
        """Optimizer groups with layer-params-cifar10-11pct.cfg's rates and decays, conv1's epsW taken as ``lr``.

        Biases get no weight decay: cuda-convnet2's WeightLayer (``src/layer.cu``) gives its biases'
        Weights a wc of 0.  ``lr_scale`` is each group's rate over ``lr``, kept so that a resumption at
        another ``lr`` keeps the ratios.
        """
        groups = []
        for name, params in LAYER_PARAMS.items():
            layer = getattr(self, name)
            for kind, tensor, eps, wc in (("weight", layer.weight, params.eps_w, params.wc),
                                          ("bias", layer.bias, params.eps_b, 0.0)):
                scale = eps / BASE_LR
                groups.append({"params": [tensor], "name": f"{name}.{kind}", "lr": lr * scale, "lr_scale": scale,
                               "weight_decay": wc})
        return groups
