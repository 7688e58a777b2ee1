"""AlexNet (Krizhevsky, Sutskever and Hinton, NIPS 2012), reproduced layer by layer."""

from .lrn import LocalResponseNorm, local_response_norm
from .model import AlexNet, conv_output_size, feature_map_side
from .summary import LayerTable, layer_table

__all__ = [
    "AlexNet",
    "LayerTable",
    "LocalResponseNorm",
    "conv_output_size",
    "feature_map_side",
    "layer_table",
    "local_response_norm",
]
__version__ = "0.1.0"
