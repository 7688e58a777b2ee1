"""AlexNet (Krizhevsky, Sutskever and Hinton, NIPS 2012), reproduced layer by layer."""

from .cifar_net import CifarNet
from .config import TrainConfig
from .data import DataBundle, build_data
from .evaluate import evaluate
from .lrn import LocalResponseNorm, local_response_norm
from .model import AlexNet, conv_output_size, feature_map_side
from .optim import PaperSGD
from .summary import LayerTable, layer_table
from .train import Trainer, TrainingDiverged, train

__all__ = [
    "AlexNet",
    "CifarNet",
    "DataBundle",
    "LayerTable",
    "LocalResponseNorm",
    "PaperSGD",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "build_data",
    "conv_output_size",
    "evaluate",
    "feature_map_side",
    "layer_table",
    "local_response_norm",
    "train",
]
__version__ = "0.1.0"
