"""Run presets and the options of a training run: what a run is, before anything trains.

Each model has a preset (:data:`PRESETS`): the learning rate, weight decay and input size a run
takes when its config leaves them unset.  AlexNet's come from section 5 and section 3.5 (see
paper.py).  The CIFAR-10 networks follow cuda-convnet's ``layer-params-80sec.cfg``: learning
rate (``epsW``) 0.001 and weight decay (``wc``) 0.004 of its convolutional layers; like ours,
cuda-convnet scales the learning rate by 1/batch size (``getEps() / numCases``), i.e. it follows
the mean gradient.  Its fully connected layers' wc=0.03 and biases' epsB=0.002 are not
reproduced: one rate and one decay serve every parameter here.  ``cifar-11pct`` is the exception:
its network carries cuda-convnet2's per-layer rates and decays (cifar_11pct.py), so its preset
leaves ``weight_decay`` unset.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass

from torch import nn

from . import distributed
from .cifar_11pct import BASE_LR as CIFAR_11PCT_LR
from .cifar_11pct import INPUT_SIZE as CIFAR_11PCT_INPUT_SIZE
from .cifar_11pct import Cifar11pctNet
from .cifar_net import CIFAR_NET_INPUT_SIZE, CONV_LOCAL_INPUT_SIZE, CifarNet, ConvLocalNet
from .data import resolve_data_root
from .model import AlexNet
from .paper import BATCH_SIZE, EPOCHS, INPUT_SIZE, LEARNING_RATE, MOMENTUM, WEIGHT_DECAY

OPTIMIZERS = ("paper", "sgd")


@dataclass(frozen=True)
class Preset:
    """A model's defaults: ``inits`` lists the initialisations it has, its default first.

    ``weight_decay`` is None for a model whose network sets a decay per layer (``parameter_groups``).
    """

    lr: float
    weight_decay: float | None
    input_size: int
    inits: tuple[str, ...]


PRESETS = {
    "alexnet": Preset(LEARNING_RATE, WEIGHT_DECAY, INPUT_SIZE, ("paper", "kaiming")),
    "alexnet-grouped": Preset(LEARNING_RATE, WEIGHT_DECAY, INPUT_SIZE, ("paper", "kaiming")),
    "cifar-net": Preset(0.001, 0.004, CIFAR_NET_INPUT_SIZE, ("cuda-convnet", "kaiming")),
    "cifar-conv-local": Preset(0.001, 0.004, CONV_LOCAL_INPUT_SIZE, ("cuda-convnet",)),
    "cifar-11pct": Preset(CIFAR_11PCT_LR, None, CIFAR_11PCT_INPUT_SIZE, ("cuda-convnet",)),
}
# Models whose initialisation is their cfg's and that have no dropout.
FIXED_INIT_MODELS = ("cifar-conv-local", "cifar-11pct")
MODELS = tuple(PRESETS)
# The settings a config left unset (None) takes from its model's preset.
PRESET_FIELDS = ("lr", "weight_decay", "input_size")
# Settings that say where and how a run executes, not what it computes.
EXECUTION_FIELDS = (
    "data_root", "download", "fallback", "device", "progress", "workers", "output_dir", "resume", "amp", "compile",
    "checkpoint_minutes", "overwrite",
)
# What may change between a run and its resumption: how it executes, how long it goes on, how often it
# logs, and ``lr``: a resumption may lower the rate, which is how a diverged run follows the advice it printed.
RESUMABLE_CHANGES = (*EXECUTION_FIELDS, "epochs", "log_every", "lr")


def constant_rate(epochs: int) -> dict:
    """The options of a run at a constant learning rate: ``epochs``, and a plateau rule that never fires."""
    return {"epochs": epochs, "patience": epochs + 1}


@dataclass
class TrainConfig:
    """Every option of a training run (the command line's options, one field each).

    ``lr``, ``weight_decay`` and ``input_size`` left at None take the model's preset (:data:`PRESETS`)
    when the config is made, so that each holds the value the run uses.

    ``colour_noise=False`` augments with crops and mirrors alone (cuda-convnet's CIFAR-10 data provider
    adds no PCA colour noise).  ``clean_train_error`` and ``test_curve`` add measurements to every
    epoch's record without changing the training (train.py): the error on the un-augmented training
    images, and the test set's loss and error beside the held-out validation (reporting only; it
    needs ``holdout``).
    """

    model: str = "alexnet"
    dataset: str = "cifar10"
    data_root: str | None = None
    download: bool = False
    fallback: bool = False
    epochs: int = EPOCHS
    batch_size: int = BATCH_SIZE
    lr: float | None = None
    momentum: float = MOMENTUM
    weight_decay: float | None = None
    optimizer: str = "paper"
    patience: int = 3
    seed: int = 0
    output_dir: str | None = None
    resume: bool = False
    device: str | None = None
    amp: bool = True
    compile: bool = False
    workers: int = 0
    limit: int | None = None
    val_limit: int | None = None
    augment: bool = True
    colour_noise: bool = True
    input_size: int | None = None
    init: str | None = None
    dropout: float | None = None
    lrn: bool | None = None
    activation: str = "relu"
    overlap: bool = True
    holdout: int = 0
    clean_train_error: bool = False
    test_curve: bool = False
    diverge_factor: float | None = 10.0
    diverge_batches: int = 100
    log_every: int = 20
    checkpoint_minutes: float = 15.0
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("epochs", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "momentum", "weight_decay", "patience", "workers", "holdout", "diverge_batches",
                     "checkpoint_minutes"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.diverge_factor is not None and self.diverge_factor <= 1:
            raise ValueError(f"diverge_factor must be above 1 (or None: stop on NaN/inf only), got {self.diverge_factor}")
        if self.model != "cifar-net" and (self.activation != "relu" or not self.overlap):
            raise ValueError("activation and overlap are switches of cifar-net; the other models use ReLU and 3/2 pools")
        if self.model in FIXED_INIT_MODELS and (self.init is not None or self.dropout is not None):
            raise ValueError(f"{self.model} has a fixed initialisation and no dropout")
        if PRESETS[self.model].weight_decay is None and self.weight_decay is not None:
            raise ValueError(f"{self.model} takes a weight decay per layer from its cfg: leave weight_decay unset")
        if self.test_curve and not self.holdout:
            raise ValueError("test_curve needs a holdout: without one the validation set is the test set already")
        preset = PRESETS[self.model]
        if self.init is not None and self.init not in preset.inits:
            raise ValueError(f"{self.model} is initialised with one of {preset.inits}, got init={self.init!r}")
        for name in PRESET_FIELDS:
            if getattr(self, name) is None:
                setattr(self, name, getattr(preset, name))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """The config of ``values``; options added since they were written take their defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig options {unknown}")
        return cls(**values)

    def to_argv(self) -> list[str]:
        """Command-line options that rebuild this config (only those that differ from the defaults).

        The model is named when it is not the default; its presets are not repeated.
        """
        preset, argv = TrainConfig(model=self.model), []
        for field in dataclasses.fields(self):
            value, flag = getattr(self, field.name), "--" + field.name.replace("_", "-")
            default = getattr(preset, field.name) if field.name in PRESET_FIELDS else field.default
            if field.name == "resume" or value == default:
                continue
            if isinstance(value, bool):
                argv.append(flag if value else "--no-" + flag[2:])
            else:
                argv += [flag, str(value)]
        return argv

    def resume_command(self, **changes) -> str:
        """The shell command that resumes this run (with ``changes`` to its options, e.g. a lower ``lr``).

        The data root is spelled out even when it came from $ALEXNET_DATA, and every word is quoted
        for the shell.
        """
        launcher = ["python", "-m", "alexnet_lib"]
        if distributed.world_size() > 1:
            launcher = ["torchrun", f"--nproc-per-node={distributed.world_size()}", "-m", "alexnet_lib"]
        root = resolve_data_root(self.data_root)
        config = dataclasses.replace(self, data_root=str(root) if root else None, overwrite=False, **changes)
        return shlex.join([*launcher, "train", *config.to_argv(), "--resume"])


def build_model(config: TrainConfig, num_classes: int, **options) -> nn.Module:
    """The network ``config.model`` names, with its switches (``options``: more constructor arguments)."""
    options.update(num_classes=num_classes, input_size=config.input_size)
    for name in ("init", "dropout", "lrn"):
        if getattr(config, name) is not None:
            options[name] = getattr(config, name)
    if config.model == "cifar-net":
        return CifarNet(activation=config.activation, overlap=config.overlap, **options)
    if config.model == "cifar-conv-local":
        return ConvLocalNet(**options)
    if config.model == "cifar-11pct":
        return Cifar11pctNet(**options)
    return AlexNet(groups=2 if config.model == "alexnet-grouped" else 1, **options)
