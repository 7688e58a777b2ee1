"""The network of Krizhevsky, Sutskever and Hinton (2012), section 3.5 and Figure 2.

Layer names follow the blog reproduction this book grew from: C convolution,
N response normalisation, S max-pooling ("subsampling"), F fully connected.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .lrn import LocalResponseNorm
from .paper import DROPOUT, INIT_STD, INPUT_SIZE

LAYER_NAMES = ("C1", "N1", "S1", "C2", "N2", "S2", "C3", "C4", "C5", "S3", "F1", "F2", "F3")

# Section 5: "We initialized the neuron biases in the second, fourth, and fifth
# convolutional layers, as well as in the fully-connected hidden layers, with the constant 1."
BIAS_ONE_LAYERS = ("C2", "C4", "C5", "F1", "F2")


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial size after a convolution or pooling: floor((size + 2p - kernel) / stride) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def check_image_batch(x: Tensor, input_size: int, model_name: str) -> None:
    """Raise ValueError unless ``x`` is a batch of RGB images of ``input_size`` x ``input_size``."""
    expected = (3, input_size, input_size)
    if x.dim() != 4 or tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"{model_name} expects a batch of shape (N, {', '.join(map(str, expected))}); got {tuple(x.shape)}"
        )


def check_num_classes(num_classes: int) -> None:
    """Raise ValueError unless the output layer gets at least one class."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes}")


def feature_map_side(input_size: int) -> int:
    """Side of S3's maps: C1 (11/4) and three 3/2 pools shrink the image; padded convs keep it."""
    side = conv_output_size(input_size, kernel=11, stride=4)
    for _ in ("S1", "S2", "S3"):
        side = conv_output_size(side, kernel=3, stride=2)
    return side


class AlexNet(nn.Module):
    """AlexNet as the paper describes it.

    ``groups=2`` reproduces the two-GPU connectivity of section 3.2: C2, C4 and
    C5 see only the kernel maps of their own column, N1 and N2 normalise within
    a column, and C3 and the fully connected layers see both columns.

    Response normalisation uses the ``"cuda-convnet"`` convention by default:
    ``alpha`` is divided by the window size ``n``.  The evidence: the networks
    of the paper were trained with Krizhevsky's cuda-convnet, whose layer parser
    (``layer.py``, ``CrossMapNormLayerParser.add_params``) runs
    ``dic['scale'] /= dic['size']`` on the configured ``scale=0.0001``, so the
    computation actually used alpha/n = 2e-5 with the paper's alpha = 1e-4.
    Caffe's reference AlexNet and :func:`torch.nn.functional.local_response_norm`
    do the same.  Pass ``lrn_convention="paper"`` for the formula as printed.

    The paper says the input is 224x224, but an 11x11 kernel with stride 4 and
    no padding gives the 55x55 maps of Figure 2 only from 227x227, so 227 is
    the default ``input_size``.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        groups: int = 1,
        dropout: float = DROPOUT,
        lrn: bool = True,
        lrn_convention: str = "cuda-convnet",
        input_size: int = INPUT_SIZE,
        init: str = "paper",
    ):
        super().__init__()
        check_num_classes(num_classes)
        if groups not in (1, 2):
            raise ValueError(f"groups must be 1 (one column) or 2 (the two-GPU model), got {groups}")
        side = feature_map_side(input_size)
        if side < 1:
            raise ValueError(f"input_size {input_size} is too small: nothing is left after C1, S1, S2 and S3")
        self.num_classes, self.groups, self.input_size = num_classes, groups, input_size

        def norm() -> nn.Module:
            if not lrn:
                return nn.Identity()
            # Section 3.3's n, alpha, beta and k are LocalResponseNorm's defaults (paper.py).
            return LocalResponseNorm(convention=lrn_convention, groups=groups)

        # Section 3.5: "The first convolutional layer filters the 224x224x3 input image
        # with 96 kernels of size 11x11x3 with a stride of 4 pixels."
        self.C1 = nn.Conv2d(3, 96, kernel_size=11, stride=4)
        self.N1 = norm()
        # Section 3.4: overlapping pooling, z=3, s=2.
        self.S1 = nn.MaxPool2d(kernel_size=3, stride=2)
        # "256 kernels of size 5x5x48": each kernel sees the 48 maps of its own GPU.
        self.C2 = nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=groups)
        self.N2 = norm()
        self.S2 = nn.MaxPool2d(kernel_size=3, stride=2)
        # "384 kernels of size 3x3x256": C3 sees both GPUs' maps.
        self.C3 = nn.Conv2d(256, 384, kernel_size=3, padding=1)
        # "384 kernels of size 3x3x192" and "256 kernels of size 3x3x192".
        self.C4 = nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=groups)
        self.C5 = nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=groups)
        self.S3 = nn.MaxPool2d(kernel_size=3, stride=2)
        # "The fully-connected layers have 4096 neurons each."
        self.F1 = nn.Linear(256 * side * side, 4096)
        self.F2 = nn.Linear(4096, 4096)
        self.F3 = nn.Linear(4096, num_classes)
        # Section 4.2: dropout 0.5 "in the first two fully-connected layers".
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters(init)

    def reset_parameters(self, init: str = "paper") -> None:
        """``"paper"``: section 5's N(0, 0.01^2) weights and 0/1 biases; ``"kaiming"``: He et al. 2015."""
        for name in LAYER_NAMES:
            layer = getattr(self, name)
            if not isinstance(layer, (nn.Conv2d, nn.Linear)):
                continue
            if init == "paper":
                nn.init.normal_(layer.weight, mean=0.0, std=INIT_STD)
                nn.init.constant_(layer.bias, 1.0 if name in BIAS_ONE_LAYERS else 0.0)
            elif init == "kaiming":
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)
            else:
                raise ValueError(f"init must be 'paper' or 'kaiming', got {init!r}")

    def features(self, x: Tensor) -> Tensor:
        """Everything up to S3, flattened: the 9216 inputs of F1 at 227."""
        check_image_batch(x, self.input_size, "AlexNet")
        x = self.S1(self.N1(F.relu(self.C1(x))))
        x = self.S2(self.N2(F.relu(self.C2(x))))
        x = F.relu(self.C3(x))
        x = F.relu(self.C4(x))
        x = self.S3(F.relu(self.C5(x)))
        return torch.flatten(x, 1)

    def embed(self, x: Tensor) -> Tensor:
        """The 4096 activations of F2 after its ReLU (the features of the paper's Figure 4)."""
        x = F.relu(self.F1(self.features(x)))
        return F.relu(self.F2(self.dropout(x)))

    def forward(self, x: Tensor) -> Tensor:
        # F3 has no activation: its logits go to the softmax inside the loss.
        return self.F3(self.dropout(self.embed(x)))
