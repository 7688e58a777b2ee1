"""Command line: ``python -m alexnet_lib train|evaluate|experiment|data ...``.

Data comes from ``--data-root``, else the environment variable ALEXNET_DATA, else the default data
folder (``data/`` in a checkout; see data.py).  ``python -m alexnet_lib data`` downloads CIFAR-10
there once when it is missing.
Every training run writes config.json, run.json, history.json and checkpoint.pt into
``--output-dir`` (default runs/<model>-<dataset>); ``--resume`` continues from there.

Full runs on a GPU machine (``--batch-size`` is the batch of one step over all GPUs):

    # CIFAR-10, the paper's AlexNet on images upsampled to 256 with 227 crops
    ALEXNET_DATA=/data python -m alexnet_lib train --model alexnet --dataset cifar10 --epochs 90 --workers 4

    # CIFAR-10, the four-layer network of Figure 1 (cuda-convnet's layers-80sec.cfg)
    ALEXNET_DATA=/data python -m alexnet_lib train --model cifar-net --dataset cifar10 --epochs 40

    # ImageNet (ILSVRC-2012: /data/imagenet/train/<wnid>/*.JPEG and /data/imagenet/val/<wnid>/*.JPEG),
    # the two-column network of section 3.2, on the 8 GPUs of one machine
    torchrun --nproc-per-node=8 -m alexnet_lib train --model alexnet-grouped --dataset imagefolder \\
        --data-root /data/imagenet --epochs 90 --workers 8 --output-dir runs/alexnet-imagenet

    # top-1/top-5 error with section 4.1's ten-patch averaging
    python -m alexnet_lib evaluate runs/alexnet-imagenet/checkpoint.pt --data-root /data/imagenet --ten-crop

    # re-measure one of the paper's claims into results/relu_tanh.json (see experiments.py)
    ALEXNET_DATA=/data python -m alexnet_lib experiment relu_tanh
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

from . import distributed
from .artifacts import export_artifacts, load_trained
from .checkpoint import CheckpointError, load_checkpoint
from .data import DATA_ENV, DATASETS, fetch_cifar10
from .evaluate import evaluate
from .experiments import EXPERIMENTS, run_experiment
from .runtime import pick_device
from .config import MODELS, OPTIMIZERS, PRESETS, RESUMABLE_CHANGES, TrainConfig
from .train import TrainingDiverged, train


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option costs one line of output instead of the full usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")




def _preset_help(name: str) -> str:
    """Each model's default for the preset setting ``name``, as the help text says it."""
    values = {}
    for model, preset in PRESETS.items():
        value = getattr(preset, name)
        value = value[0] if isinstance(value, tuple) else value
        values.setdefault("per layer" if value is None else value, []).append(model)
    return "default: " + "; ".join(f"{value} for {', '.join(models)}" for value, models in values.items())


def _add_data_root(parser: argparse.ArgumentParser, default_help: str | None = None) -> None:
    where = default_help or f"${DATA_ENV}, else data/ in a checkout, else ~/.cache/alexnet_lib/data"
    parser.add_argument("--data-root", default=None, help=f"data root directory (default: {where})")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _factor_or_none(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    bool_flag = argparse.BooleanOptionalAction
    d = TrainConfig()
    what = parser.add_argument_group("model")
    what.add_argument("--model", choices=MODELS, default=d.model,
                      help="alexnet (one column), alexnet-grouped (section 3.2's two columns), "
                      "cifar-net (Figure 1's CIFAR-10 network), cifar-conv-local (section 3.3's CIFAR-10 network "
                      "with convolutions), cifar-11pct (cuda-convnet2's 11%% network, locally connected layers)")
    inits = tuple(dict.fromkeys(init for preset in PRESETS.values() for init in preset.inits))
    what.add_argument("--init", choices=inits, default=None, help="weight initialisation (" + _preset_help("inits") + ")")
    what.add_argument("--dropout", type=float, default=None, help="dropout rate (default: 0.5 AlexNet, 0 cifar-net)")
    what.add_argument("--lrn", action=bool_flag, default=None,
                      help="local response normalisation (default: off for cifar-net, on for the others)")
    what.add_argument("--activation", choices=("relu", "tanh"), default=d.activation, help="cifar-net only (Figure 1)")
    what.add_argument("--overlap", action=bool_flag, default=d.overlap,
                      help="cifar-net only: 3/2 overlapping pools (section 3.4) or 2/2")
    what.add_argument("--input-size", type=_positive_int, default=None,
                      help="model input side (" + _preset_help("input_size") + ")")

    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, default=d.dataset)
    _add_data_root(data)
    data.add_argument("--download", action=bool_flag, default=d.download, help="let torchvision download CIFAR-10")
    data.add_argument("--fallback", action=bool_flag, default=d.fallback,
                      help="a demo: train on scikit-learn's digits when the dataset is missing (default: an error)")
    data.add_argument("--limit", type=_positive_int, default=None, help="train on this many images only")
    data.add_argument("--val-limit", type=_positive_int, default=None,
                      help="validate (with --holdout: test) on this many images only")
    data.add_argument("--holdout", type=int, default=d.holdout,
                      help="training images held out, class-balanced, as the validation set of the plateau rule; "
                      "the test set is then left for the end (0: validate on the test set, as older runs did)")
    data.add_argument("--augment", action=bool_flag, default=d.augment, help="random crops, mirrors, PCA colour noise")
    data.add_argument("--colour-noise", action=bool_flag, default=d.colour_noise,
                      help="the PCA colour noise of --augment (section 4.1); off: crops and mirrors only")
    data.add_argument("--workers", type=int, default=d.workers, help="data loader worker processes")

    optim = parser.add_argument_group("optimisation (section 5)")
    optim.add_argument("--epochs", type=_positive_int, default=d.epochs)
    optim.add_argument("--batch-size", type=_positive_int, default=d.batch_size,
                       help="images per step, all GPUs together")
    optim.add_argument("--lr", type=float, default=None, help="learning rate (" + _preset_help("lr") + ")")
    optim.add_argument("--momentum", type=float, default=d.momentum)
    optim.add_argument("--weight-decay", type=float, default=None, help=_preset_help("weight_decay"))
    optim.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer,
                       help="paper: section 5's rule, lr inside the velocity; sgd: torch.optim.SGD")
    optim.add_argument("--patience", type=int, default=d.patience,
                       help="validations without improvement before the learning rate drops 10x")
    optim.add_argument("--seed", type=int, default=d.seed)
    optim.add_argument("--diverge-factor", type=_factor_or_none, default=d.diverge_factor,
                       help="stop when the loss stays above this many times ln(classes) for --diverge-batches "
                       "batches (none: stop on NaN/inf only)")
    optim.add_argument("--diverge-batches", type=int, default=d.diverge_batches,
                       help="how many consecutive batches above the limit make a blow-up sustained")

    run = parser.add_argument_group("run")
    run.add_argument("--output-dir", default=None,
                     help="where checkpoints and JSON go (default runs/<model>-<dataset>)")
    run.add_argument("--resume", action=bool_flag, default=d.resume, help="continue from <output-dir>/checkpoint.pt")
    run.add_argument("--overwrite", action=bool_flag, default=d.overwrite,
                     help="replace a run already in <output-dir> (without it, such a directory is refused)")
    run.add_argument("--checkpoint-minutes", type=float, default=d.checkpoint_minutes,
                     help="also checkpoint within an epoch this often (a resumption continues mid-epoch)")
    run.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA when available)")
    run.add_argument("--amp", action=bool_flag, default=d.amp, help="mixed precision on CUDA (bf16, else fp16)")
    run.add_argument("--compile", action=bool_flag, default=d.compile, help="torch.compile the model")
    run.add_argument("--log-every", type=_positive_int, default=d.log_every, help="batches between loss checks")
    run.add_argument("--clean-train-error", action=bool_flag, default=d.clean_train_error,
                     help="also measure every epoch's error on the un-augmented training images")
    run.add_argument("--test-curve", action=bool_flag, default=d.test_curve,
                     help="also measure the test set every epoch, for overfitting curves (needs --holdout)")
    run.add_argument("--progress", action=bool_flag, default=d.progress, help="progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m alexnet_lib",
        description="Train and evaluate the networks of Krizhevsky, Sutskever and Hinton (2012).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train_options(commands.add_parser("train", help="train a network", description="Train a network."))
    ev = commands.add_parser("evaluate", help="error rates of a checkpoint", description="Evaluate a checkpoint.")
    ev.add_argument("checkpoint", help="checkpoint.pt written by train")
    _add_data_root(ev)
    ev.add_argument("--dataset", choices=DATASETS, default=None, help="default: the one it was trained on")
    ev.add_argument("--batch-size", type=_positive_int, default=128)
    ev.add_argument("--val-limit", type=_positive_int, default=None, help="evaluate on this many images only")
    ev.add_argument("--ten-crop", action=argparse.BooleanOptionalAction, default=False,
                    help="average the softmax over section 4.1's ten patches")
    ev.add_argument("--device", default=None)
    ev.add_argument("--output", default=None, help="also write the metrics to this JSON file")
    art = commands.add_parser("artifacts", help="the figures' data of a trained checkpoint, small enough to commit",
                              description="Write a checkpoint's filters, confusion matrix, top-5 predictions and "
                              "F2 neighbours to one .npz (alexnet_lib/artifacts.py).")
    art.add_argument("checkpoint", help="checkpoint.pt written by train")
    art.add_argument("--output", required=True, help="the .npz file to write")
    _add_data_root(art, "the training run's")
    art.add_argument("--device", default=None)
    ex = commands.add_parser("experiment", help="re-measure a claim of the paper into results/NAME.json",
                             description="Run a named experiment (alexnet_lib/experiments.py).")
    ex.add_argument("name", choices=sorted(EXPERIMENTS))
    ex.add_argument("--output", default=None, help="the results file (default results/NAME.json)")
    ex.add_argument("--epochs", type=_positive_int, default=None,
                    help="epochs of the main runs (default: CPU budget); runs of other settings than a results "
                    "file's recorded ones are refused, so give them another --output")
    ex.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="seeds of the main runs, added to those the results file records")
    _add_data_root(ex)
    ex.add_argument("--device", default=None)
    ex.add_argument("--runs-dir", default=None,
                    help="where the runs' checkpoints go, out of git (default: $ALEXNET_RUNS, else runs/)")
    ex.add_argument("--replay", action="store_true",
                    help="retrain an unfinished run whose checkpoint is lost from the start, checking every recorded "
                    "epoch as it comes again (the same machine kind, thread count and library versions reproduce it)")
    ex.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bars")
    da = commands.add_parser("data", help="CIFAR-10 under the data root, downloaded once when missing",
                             description="Find CIFAR-10 under the data root; when it is missing, download it there "
                             "once with torchvision (MD5-checked). ALEXNET_OFFLINE=1 forbids the download.")
    _add_data_root(da)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed ``train`` options.

    The default output directory names the model, the data set and every option that changes the
    numbers, so that two variants never share one: runs/alexnet-cifar10-lr0.001-seed1.
    """
    values = {k: v for k, v in vars(args).items() if k != "command"}
    config = TrainConfig(**values)
    if config.output_dir is None:
        config.output_dir = str(pathlib.Path("runs") / default_run_name(config))
    return config


def default_run_name(config: TrainConfig) -> str:
    defaults = TrainConfig(model=config.model, dataset=config.dataset)
    parts = [config.model, config.dataset]
    for name, value in config.to_dict().items():
        where_or_how_long = name in RESUMABLE_CHANGES and name != "lr"
        if where_or_how_long or name in ("model", "dataset") or value == getattr(defaults, name):
            continue
        flag = name.replace("_", "-")
        parts.append(("" if value else "no-") + flag if isinstance(value, bool) else f"{flag}{value}")
    return "-".join(str(part).replace("/", "_") for part in parts)


def check_output_dir(path: str) -> None:
    """ValueError unless ``path`` is a directory, or can become one, that the run can write into.

    Checked before the data loads, so that a bad ``--output-dir`` fails at once rather than after
    the first epoch, and an empty one does not silently turn saving off.
    """
    if not path:
        raise ValueError("--output-dir is empty: give the directory for the checkpoint and JSON files")
    target = pathlib.Path(path)
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        where = "" if existing == target else f" lies inside {existing}, which"
        raise ValueError(f"--output-dir {path}{where} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--output-dir {path} cannot be written: {existing} is not writable")


def _train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    check_output_dir(config.output_dir)
    distributed.init_from_env()
    try:
        history = train(config)
    finally:
        distributed.shutdown()
    if distributed.is_main() and history:
        last = history[-1]
        print(f"done: {len(history)} epochs, validation top-1 error {last['val_top1_error']:.2%}, "
              f"top-5 {last['val_top5_error']:.2%}; files in {config.output_dir}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    state = load_checkpoint(args.checkpoint)
    device = pick_device(args.device)
    # A run with a hold-out is scored on its test set.
    model, data = load_trained(state, data_root=args.data_root, dataset=args.dataset, batch_size=args.batch_size,
                               val_limit=args.val_limit)
    test = data.test if data.test is not None else data.val
    metrics = evaluate(model.to(device), test, data.eval_transform, device, ten_crop=args.ten_crop)
    metrics.update(checkpoint=str(args.checkpoint), epoch=int(state["epoch"]), data=data.source, ten_crop=args.ten_crop)
    print(json.dumps(metrics, indent=1))
    if args.output:
        pathlib.Path(args.output).write_text(json.dumps(metrics, indent=1) + "\n")
    return 0


def _artifacts(args: argparse.Namespace) -> int:
    artifacts = export_artifacts(args.checkpoint, args.output, data_root=args.data_root, device=pick_device(args.device))
    print(f"wrote {args.output}: epoch {int(artifacts['epoch'])}, test error of the centre crop "
          f"{artifacts['per_class_error'].mean():.2%} (mean over classes)")
    return 0


def _experiment(args: argparse.Namespace, argv: list[str]) -> int:
    results = run_experiment(args.name, output=args.output, epochs=args.epochs, seeds=args.seeds,
                             data_root=args.data_root, device=args.device, progress=args.progress,
                             command=["python", "-m", "alexnet_lib", *argv], runs_dir=args.runs_dir,
                             replay=args.replay)
    print(json.dumps(results["summary"], indent=1))
    return 0


def _data(args: argparse.Namespace) -> int:
    kind, where = fetch_cifar10(args.data_root)
    layout = "image folders" if kind == "folder" else "torchvision's format"
    print(f"CIFAR-10 is ready in {where} ({layout})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    commands = {"train": _train, "evaluate": _evaluate, "artifacts": _artifacts,
                "experiment": lambda a: _experiment(a, argv), "data": _data}
    run = commands[args.command]
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130  # the trainer has printed how to resume
    except (ValueError, FileNotFoundError, CheckpointError, TrainingDiverged) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
