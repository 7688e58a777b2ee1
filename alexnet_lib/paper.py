"""The paper's numbers that several modules share, and where this project departs from the paper.

Each constant cites the section that states it; the modules that implement a section import
it from here, so that a number the paper fixes is written once.  :data:`DEVIATIONS` lists
every place where this project does something else than the paper, and why; chapter 00
renders it and ``tests/test_paper.py`` checks each entry against the code.
"""

from __future__ import annotations

from dataclasses import dataclass

# Section 3.5 writes "the 224x224x3 input image", but an 11x11 kernel with stride 4 and no
# padding gives Figure 2's 55x55 maps only from 227x227 (model.py): 227 is what runs.
PRINTED_INPUT_SIZE = 224
INPUT_SIZE = 227
# Section 2: "rescaled the image such that the shorter side was of length 256 and then cropped
# out the central 256x256 patch"; section 4.1 takes the training patches from it.
SCALE_SIZE = 256

# Section 3.3: b = a / (k + alpha * sum of a^2 over n adjacent maps)^beta with these values.
LRN_SIZE = 5
LRN_ALPHA = 1e-4
LRN_BETA = 0.75
LRN_K = 2.0

# Section 4.1: the PCA colour noise's alpha_i is "drawn from a Gaussian with mean zero and
# standard deviation 0.1".
PCA_STD = 0.1
# Section 4.2: "setting to zero the output of each hidden neuron with probability 0.5".
DROPOUT = 0.5

# Section 5: "a batch size of 128 examples, momentum of 0.9, and weight decay of 0.0005";
# "The learning rate was initialized at 0.01"; weights from "a zero-mean Gaussian
# distribution with standard deviation 0.01".
BATCH_SIZE = 128
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
LEARNING_RATE = 0.01
INIT_STD = 0.01
# Section 5: the rate was "divided by 10 when the validation error rate stopped improving
# ... and reduced three times prior to termination", after "roughly 90 cycles".
LR_DROP_FACTOR = 10
LR_DROPS = 3
EPOCHS = 90


@dataclass(frozen=True)
class Deviation:
    """One place where this project does something else than the paper."""

    topic: str
    paper: str
    here: str
    why: str


DEVIATIONS = (
    Deviation(
        "input size",
        f"{PRINTED_INPUT_SIZE}x{PRINTED_INPUT_SIZE}x3 (section 3.5)",
        f"{INPUT_SIZE}x{INPUT_SIZE}x3",
        f"C1's 11x11 kernels at stride 4 give the paper's 55x55 maps only from {INPUT_SIZE} pixels",
    ),
    Deviation(
        "response normalisation",
        f"alpha = {LRN_ALPHA:g} in b = a / (k + alpha sum a^2)^beta (section 3.3)",
        f"alpha / n = {LRN_ALPHA / LRN_SIZE:g} in the same formula (the printed one is an option)",
        "Krizhevsky's cuda-convnet, which trained the paper's networks, divides alpha by n; so do Caffe and torch",
    ),
    Deviation(
        "two GPUs",
        "the kernels split over two GPUs that talk only in certain layers (section 3.2)",
        "one column by default; the two-column connectivity is the model alexnet-grouped",
        "one GPU holds the whole network today; the split changes the connections, and the book compares both",
    ),
    Deviation(
        "data",
        "ImageNet: 1.2 million images, 1000 classes (section 2)",
        f"CIFAR-10: 50,000 images of 32x32, 10 classes, upsampled to {SCALE_SIZE} and cropped to {INPUT_SIZE}",
        "ImageNet does not fit a laptop or a CI machine; CIFAR-10 keeps every layer's shape",
    ),
    Deviation(
        "validation set",
        "not stated how the plateau rule's validation set was drawn (section 5)",
        "class-balanced training images held out; the test set is scored once, at the end",
        "stepping the rate on the test set would bias every test error reported",
    ),
    Deviation(
        "learning rate",
        f"{LEARNING_RATE:g} (section 5)",
        "the largest of the probed rates that trains on CIFAR-10 at batch 128 (chapter 12)",
        f"at {LEARNING_RATE:g} the first steps silence the network on upsampled CIFAR-10 (recorded in results/alexnet_lr.json)",
    ),
    Deviation(
        "plateau rule",
        "divide by 10 when the validation error stops improving (section 5), patience not stated",
        "divide by 10 after a set number of validations without a new best (patience, our choice)",
        "the paper does not say how long 'stopped improving' is",
    ),
    Deviation(
        "training length",
        f"roughly {EPOCHS} epochs, five to six days on two GTX 580s (section 5)",
        f"{EPOCHS} epochs on a GPU with the same command; a shorter budget in the recorded CPU run (chapter 12)",
        "a 2-core CPU trains about an epoch an hour at 227",
    ),
)
