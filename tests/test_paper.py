"""Each deviation from the paper that paper.py lists is what the code does."""

import torch

from alexnet_lib import experiments
from alexnet_lib.augment import BatchTransform
from alexnet_lib.book import load_results
from alexnet_lib.config import TrainConfig, build_model
from alexnet_lib.lrn import effective_alpha
from alexnet_lib.model import AlexNet, conv_output_size
from alexnet_lib.paper import (
    DEVIATIONS,
    EPOCHS,
    INPUT_SIZE,
    LEARNING_RATE,
    LRN_ALPHA,
    LRN_SIZE,
    PRINTED_INPUT_SIZE,
    SCALE_SIZE,
)


def _input_size() -> bool:
    # Figure 2's 55x55 maps come from 227, not from the printed 224.
    return (AlexNet().input_size == TrainConfig().input_size == INPUT_SIZE
            and conv_output_size(INPUT_SIZE, 11, 4) == 55 != conv_output_size(PRINTED_INPUT_SIZE, 11, 4))


def _normalisation() -> bool:
    norm = AlexNet().N1
    return (norm.convention == "cuda-convnet" and (norm.size, norm.alpha) == (LRN_SIZE, LRN_ALPHA)
            and effective_alpha(LRN_ALPHA, LRN_SIZE, norm.convention) == LRN_ALPHA / LRN_SIZE)


def _two_gpus() -> bool:
    one, two = (build_model(TrainConfig(model=name), 10) for name in ("alexnet", "alexnet-grouped"))
    return TrainConfig().model == "alexnet" and (one.groups, two.groups) == (1, 2)


def _data() -> bool:
    transform = BatchTransform(torch.zeros(3, 32, 32), INPUT_SIZE, augment=False)
    return TrainConfig().dataset == "cifar10" and transform.scale_size == SCALE_SIZE


def _validation() -> bool:
    # The recorded long run and the lr probe stepped and judged on held-out training images.
    runs = [run for name in ("alexnet_cifar_full", "alexnet_lr") for run in load_results(name)["runs"].values()]
    return experiments.HOLDOUT > 0 and all(run["config"]["holdout"] == experiments.HOLDOUT for run in runs)


def _learning_rate() -> bool:
    return experiments.FULL_LR in experiments.ALEXNET_LR_RATES and experiments.FULL_LR < LEARNING_RATE


def _plateau_rule() -> bool:
    return TrainConfig().patience > 0


def _training_length() -> bool:
    return TrainConfig().epochs == EPOCHS and experiments.FULL_EPOCHS < EPOCHS


CHECKS = {
    "input size": _input_size,
    "response normalisation": _normalisation,
    "two GPUs": _two_gpus,
    "data": _data,
    "validation set": _validation,
    "learning rate": _learning_rate,
    "plateau rule": _plateau_rule,
    "training length": _training_length,
}


def test_every_deviation_is_checked_and_holds():
    assert [d.topic for d in DEVIATIONS] == list(CHECKS)
    assert [topic for topic, holds in CHECKS.items() if not holds()] == []

