"""The paper's CIFAR-10 "four-layer convolutional network" (section 3.1, Figure 1).

Figure 1 compares ReLU and tanh units in "a four-layer convolutional neural network"
on CIFAR-10.  Its shape here is that of Krizhevsky's own cuda-convnet example
``example-layers/layers-80sec.cfg`` ("26% error on CIFAR-10 in 80 seconds"):

    conv1 32 5x5 pad 2 -> max-pool 3/2 -> conv2 32 5x5 pad 2 -> avg-pool 3/2
    -> conv3 64 5x5 pad 2 -> avg-pool 3/2 -> fc 64 -> fc 10 -> softmax

on 32x32 inputs.  Five switches turn it into the variants the paper discusses:
``activation`` (ReLU or tanh, Figure 1), ``lrn`` (cross-map response normalisation,
section 3.3), ``overlap`` (3/2 pools vs non-overlapping 2/2, section 3.4), ``dropout``
(after each hidden fully connected layer, section 4.2) and ``hidden`` (the widths of
those layers: (64,) in the cfg, (4096, 4096) for AlexNet's head).

:class:`ConvLocalNet` is the network of section 3.3's CIFAR-10 normalisation claim.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .lrn import LocalResponseNorm
from .model import check_image_batch, check_num_classes

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
# cuda-convnet's CIFAR-10 nets see the 32x32 images whole (layers-80sec) or 24x24 crops of them (conv-local).
CIFAR_NET_INPUT_SIZE = 32
CONV_LOCAL_INPUT_SIZE = 24

# layers-80sec.cfg, ``initW``: the standard deviation of each layer's Gaussian weights ("fc64"
# stands for every hidden fully connected layer).  The file sets no ``initB``, so every bias starts at 0.
CUDA_CONVNET_INIT_STD = {"conv1": 1e-4, "conv2": 0.01, "conv3": 0.01, "fc64": 0.1, "fc10": 0.1}
# A head of other widths starts like AlexNet's fully connected layers (section 5: N(0, 0.01^2)); the
# cfg's 0.1 makes a 4096-wide head's outputs overflow in the first steps.
WIDE_HEAD_INIT_STD = {**CUDA_CONVNET_INIT_STD, "fc64": 0.01, "fc10": 0.01}


def response_norm(lrn: bool) -> nn.Module:
    """Section 3.3's normalisation (its constants, cuda-convnet's convention), or nothing when ``lrn`` is off."""
    return LocalResponseNorm(convention="cuda-convnet") if lrn else nn.Identity()


def pooled_side(size: int, kernel: int, stride: int) -> int:
    """cuda-convnet's pooling output side (``layer.py``, outputsX=0): ceil((size - kernel) / stride) + 1."""
    return math.ceil((size - kernel) / stride) + 1


class CifarNet(nn.Module):
    """The layers-80sec.cfg network with the paper's switches.

    Order follows the cfg file.  ``pool1`` carries conv1's neuron (``neuron=relu`` on the
    pool layer), so layer 1 is conv -> max-pool -> activation; max-pooling commutes
    with any increasing activation (ReLU, tanh), so this equals conv -> activation ->
    pool.  Layers 2 and 3 are conv -> activation -> avg-pool.  With ``lrn=True`` the
    normalisation goes after pool1 and pool2, where cuda-convnet's
    ``layers-18pct.cfg`` (the same network with normalisation added) puts its
    ``rnorm1``/``rnorm2``; the normalisation itself is the paper's cross-map LRN with
    section 3.3's k=2, n=5, alpha=1e-4, beta=0.75 (cuda-convnet convention).

    ``hidden`` gives the widths of the hidden fully connected layers (``self.hidden``);
    dropout acts on each one's output.  ``overlap=False`` uses 2/2 pools.  Pools use
    ``ceil_mode`` so that a 32x32 input gives 16, 8 and 4 as in cuda-convnet (PyTorch's
    default floor would give 15, 7, 3).

    ``init_std`` gives the standard deviations of the ``"cuda-convnet"`` init, keyed as
    :data:`CUDA_CONVNET_INIT_STD`.  Left out, it is that table for the cfg's head ``(64,)`` and
    :data:`WIDE_HEAD_INIT_STD` for any other; ``self.init_std`` holds the table in use.
    """

    def __init__(
        self,
        num_classes: int = 10,
        activation: str = "relu",
        lrn: bool = False,
        overlap: bool = True,
        dropout: float = 0.0,
        input_size: int = CIFAR_NET_INPUT_SIZE,
        init: str = "cuda-convnet",
        hidden: tuple[int, ...] = (64,),
        init_std: dict[str, float] | None = None,
    ):
        super().__init__()
        check_num_classes(num_classes)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must list one or more positive widths, got {hidden!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if init_std is None:
            init_std = CUDA_CONVNET_INIT_STD if tuple(hidden) == (64,) else WIDE_HEAD_INIT_STD
        if set(init_std) != set(CUDA_CONVNET_INIT_STD):
            raise ValueError(f"init_std must give the stds of {sorted(CUDA_CONVNET_INIT_STD)}, got {sorted(init_std)}")
        kernel = 3 if overlap else 2
        side = input_size
        for _ in range(3):
            side = pooled_side(side, kernel, 2)
        if side < 1:
            raise ValueError(f"input_size {input_size} is too small for three stride-2 pools")
        self.num_classes, self.input_size, self.activation = num_classes, input_size, activation
        self.init_std = dict(init_std)

        def act() -> nn.Module:
            return ACTIVATIONS[activation]()

        def pool(kind: type[nn.Module]) -> nn.Module:
            return kind(kernel_size=kernel, stride=2, ceil_mode=True)

        self.conv1 = nn.Conv2d(3, 32, kernel_size=5, padding=2)
        self.pool1 = pool(nn.MaxPool2d)
        self.act1, self.norm1 = act(), response_norm(lrn)
        self.conv2 = nn.Conv2d(32, 32, kernel_size=5, padding=2)
        self.act2 = act()
        self.pool2 = pool(nn.AvgPool2d)
        self.norm2 = response_norm(lrn)
        self.conv3 = nn.Conv2d(32, 64, kernel_size=5, padding=2)
        self.act3 = act()
        self.pool3 = pool(nn.AvgPool2d)
        widths = (64 * side * side, *hidden)
        self.hidden = nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in zip(widths, widths[1:]))
        self.hidden_acts = nn.ModuleList(act() for _ in hidden)
        self.dropout = nn.Dropout(dropout)
        self.fc10 = nn.Linear(widths[-1], num_classes)
        self.reset_parameters(init)

    def reset_parameters(self, init: str = "cuda-convnet") -> None:
        """``"cuda-convnet"``: Gaussians with the stds of ``self.init_std``, zero biases; ``"kaiming"``: He et al."""
        stds = self.init_std
        layers = [(getattr(self, name), stds[name]) for name in ("conv1", "conv2", "conv3", "fc10")]
        for layer, std in layers + [(layer, stds["fc64"]) for layer in self.hidden]:
            if init == "cuda-convnet":
                nn.init.normal_(layer.weight, mean=0.0, std=std)
            elif init == "kaiming":
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu" if self.activation == "relu" else "tanh")
            else:
                raise ValueError(f"init must be 'cuda-convnet' or 'kaiming', got {init!r}")
            nn.init.zeros_(layer.bias)

    def features(self, x: Tensor) -> Tensor:
        """Everything up to pool3, flattened (1024 values at 32x32 with overlapping pools)."""
        check_image_batch(x, self.input_size, "CifarNet")
        x = self.norm1(self.act1(self.pool1(self.conv1(x))))
        x = self.norm2(self.pool2(self.act2(self.conv2(x))))
        x = self.pool3(self.act3(self.conv3(x)))
        return torch.flatten(x, 1)

    def embed(self, x: Tensor) -> Tensor:
        """The activations of the last hidden layer (fc64's 64 in the cfg's shape)."""
        x = self.features(x)
        for i, (layer, act) in enumerate(zip(self.hidden, self.hidden_acts)):
            x = act(layer(self.dropout(x) if i else x))
        return x

    def forward(self, x: Tensor) -> Tensor:
        # fc10 has no activation (the cfg's ``fc10`` sets no neuron): logits for the softmax.
        return self.fc10(self.dropout(self.embed(x)))


class ConvLocalNet(nn.Module):
    """cuda-convnet's ``layers-conv-local-13pct.cfg`` / ``-11pct.cfg`` network, with convolutions for its local layers.

    Section 3.3: "a four-layer CNN achieved a 13% test error rate without normalization and 11%
    with normalization".  Krizhevsky's example configurations of that size are

        conv1 64 5x5 pad 2 -> max-pool 3/2 [-> rnorm1] -> conv2 64 5x5 pad 2 [-> rnorm2]
        -> max-pool 3/2 -> local3 64 3x3 pad 1 -> local4 32 3x3 pad 1 -> fc10

    on 24x24 crops, the bracketed normalisations being the 11% file's addition.  Here the
    locally connected (unshared-weight) layers 3 and 4 are ordinary convolutions, ReLU follows
    every hidden layer, and the normalisation is the paper's (section 3.3's k, n, alpha, beta,
    cuda-convnet convention), not the cfg's own values.  Weights start from small Gaussians in
    cuda-convnet's manner, biases at 0.
    """

    INIT_STD = {"conv1": 1e-4, "conv2": 0.01, "conv3": 0.04, "conv4": 0.04, "fc10": 0.01}

    def __init__(self, num_classes: int = 10, lrn: bool = True, input_size: int = CONV_LOCAL_INPUT_SIZE):
        super().__init__()
        check_num_classes(num_classes)
        side = pooled_side(pooled_side(input_size, 3, 2), 3, 2)
        self.num_classes, self.input_size = num_classes, input_size

        self.conv1 = nn.Conv2d(3, 64, kernel_size=5, padding=2)
        self.pool1 = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)
        self.norm1 = response_norm(lrn)
        self.conv2 = nn.Conv2d(64, 64, kernel_size=5, padding=2)
        self.norm2 = response_norm(lrn)
        self.pool2 = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3, padding=1)
        self.conv4 = nn.Conv2d(64, 32, kernel_size=3, padding=1)
        self.fc10 = nn.Linear(32 * side * side, num_classes)
        for name, std in self.INIT_STD.items():
            nn.init.normal_(getattr(self, name).weight, mean=0.0, std=std)
            nn.init.zeros_(getattr(self, name).bias)

    def embed(self, x: Tensor) -> Tensor:
        """conv4's activations, flattened: the input of the output layer."""
        check_image_batch(x, self.input_size, "ConvLocalNet")
        x = self.norm1(self.pool1(torch.relu(self.conv1(x))))
        x = self.pool2(self.norm2(torch.relu(self.conv2(x))))
        x = torch.relu(self.conv4(torch.relu(self.conv3(x))))
        return torch.flatten(x, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc10(self.embed(x))
