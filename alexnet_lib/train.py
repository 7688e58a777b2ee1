"""Training as section 5 describes it, with checkpoints, resumption, mixed precision and DDP.

Section 5: "We trained our models using stochastic gradient descent with a batch size of 128
examples, momentum of 0.9, and weight decay of 0.0005", learning rate 0.01, "divided by 10 when
the validation error rate stopped improving with the current learning rate".  The paper does
not say how long "stopped improving" is; ``patience`` (3 validations here) is our choice.
The options of a run and the models' presets live in config.py.

:func:`train` runs a :class:`TrainConfig` and returns the history, one dict per epoch:

    epoch, train_loss, train_error, val_loss, val_top1_error, val_top5_error, lr,
    seconds (the whole epoch, validation included), images_per_second (training images, all
    processes together, per second of the training pass), train_loss_curve (the mean batch
    loss of every ``log_every`` batches, in order)

Errors are fractions in [0, 1]; ``lr`` is the rate the epoch trained with (a network with per-layer
rates: that of its first parameter group, the others keeping their ratios to it).  Two optional
measurements add keys, and change nothing else (the random generators they draw from are restored):

    clean_train_loss, clean_train_error (``clean_train_error``): the training images again, un-augmented
    (evaluation's centre crop, no mirrors, no colour noise), with the weights at the epoch's end;
    test_loss, test_top1_error, test_top5_error (``test_curve``): the test set, for overfitting curves.
    Nothing decides on them: the plateau rule watches the validation set alone.

With an
``output_dir`` every epoch writes checkpoint.pt, history.json and (once) config.json and
run.json there, and a long epoch also checkpoints every ``checkpoint_minutes`` (a resumption
continues mid-epoch, bit for bit).  A directory that already holds a run is refused unless the
run is resumed (``resume``) or replaced (``overwrite``), and a lock file keeps a second process out.

The validation set that the plateau rule watches is, with ``holdout`` > 0, that many training
images held out class by class; the test set is then not touched during training.  With
``holdout=0`` (older runs) validation uses the test set, as the experiments recorded before
the hold-out existed did.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import pathlib
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from . import distributed, runtime
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import RESUMABLE_CHANGES, TrainConfig, build_model
from .data import DataBundle, build_data
from .evaluate import evaluate
from .files import write_json
from .optim import PaperSGD
from .paper import LR_DROP_FACTOR, LR_DROPS
from .provenance import provenance

TIMING_KEYS = ("seconds", "images_per_second")
LOCK_NAME = "run.lock"


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf or exploded, so further training would only fit noise."""


def _floor(lr: float) -> float:
    """The rate after section 5's last drop, below which the plateau rule does not go."""
    return lr * LR_DROP_FACTOR**-LR_DROPS


def _mixed_precision(device: torch.device, enabled: bool) -> tuple[torch.dtype | None, torch.amp.GradScaler]:
    """bf16 where the GPU has it (no scaler needed), else fp16 with a GradScaler; fp32 on the CPU."""
    if not enabled or device.type != "cuda":
        return None, torch.amp.GradScaler("cuda", enabled=False)
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, torch.amp.GradScaler("cuda", enabled=False)
    return torch.float16, torch.amp.GradScaler("cuda", enabled=True)


def _prefers_channels_last(device: torch.device) -> bool:
    """Whether the Trainer runs its network and batches in ``torch.channels_last`` on ``device``."""
    # NHWC suits cuDNN's convolutions.  On the CPU it measured slower on some machines and faster on others
    # (bench/cpu.py --channels-last), but choosing it per machine would change the rounding with the machine:
    # the CPU keeps NCHW, so that every CPU computes the same numbers (the notebooks' stored outputs, the
    # recorded runs' reproduction tests, a run resumed bit-exactly on another machine).
    return device.type == "cuda"


def _finite(tensor: Tensor) -> bool:
    """Whether every element of ``tensor`` is finite.

    From its smallest and largest elements (a NaN anywhere makes both NaN): one pass over the weights and no
    61-million-element mask to allocate, where ``isfinite(p).all()`` cost AlexNet about 170 ms on the CPU.
    """
    low, high = torch.aminmax(tensor.detach())
    return bool(torch.isfinite(low) and torch.isfinite(high))


class Trainer:
    """One training run: model, data, optimizer, scheduler and history, resumable from a checkpoint.

    ``model`` and ``data`` replace the ones ``config`` would build (a notebook's own network or
    bundle); the model must accept ``data.input_size`` inputs.
    """

    def __init__(self, config: TrainConfig, model: nn.Module | None = None, data: DataBundle | None = None):
        self.config = config
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.main = distributed.is_main()
        self.device = self._choose_device()
        if self.device.type == "cpu":
            runtime.keep_freed_memory()
        self.channels_last = _prefers_channels_last(self.device)
        torch.manual_seed(config.seed)
        if config.batch_size % self.world_size:
            raise ValueError(f"batch_size {config.batch_size} must be divisible by the {self.world_size} processes")
        self.output_dir = pathlib.Path(config.output_dir) if config.output_dir else None
        # Before the (slow) data loading, so that a refused directory costs nothing.
        self._lock = self._claim_output_dir()
        self.data = data or self._build_data(getattr(model, "input_size", config.input_size))
        self.model = self._place_model(model or build_model(config, self.data.num_classes))
        self.train_transform = self.data.train_transform.to(self.device)
        self.eval_transform = self.data.eval_transform.to(self.device)
        self.amp_dtype, self.scaler = _mixed_precision(self.device, config.amp)
        self.optimizer, self.scheduler = self._build_optimizer()
        self.history: list[dict] = []
        # The current epoch's windowed losses; kept when training diverges mid-epoch.
        self.loss_curve: list[float] = []
        self.epoch = 0
        # True once a plateau comes after the third drop: section 5's run has ended.
        self.finished = False
        # Where a checkpoint taken mid-epoch stopped; the next train_epoch continues from there.
        self._position: dict | None = None
        self._last_save = time.monotonic()
        self._batches_above_limit = 0
        # One record per fit() call that trained: its provenance, where it started and how far it got.
        self.segments: list[dict] = []
        self._segment_start: float | None = None
        self._after_checkpoint: Callable[[dict], None] | None = None
        if config.resume:
            self.resume()
        self.network = self._wrap_network()

    def _choose_device(self) -> torch.device:
        if self.config.device is None and self.world_size > 1 and torch.cuda.is_available():
            return torch.device("cuda", distributed.local_rank())
        return runtime.pick_device(self.config.device)

    def _build_data(self, input_size: int) -> DataBundle:
        """The config's data, built for the model's input size (the model owns it)."""
        config = self.config
        return build_data(
            config.dataset,
            config.data_root,
            input_size=input_size,
            # batch_size is the whole step's batch (section 5's 128); each process takes its share.
            batch_size=config.batch_size // self.world_size,
            limit=config.limit,
            val_limit=config.val_limit,
            holdout=config.holdout,
            download=config.download,
            fallback=config.fallback,
            augment=config.augment,
            # Without colour noise the PCA is not even fitted.
            **({} if config.colour_noise else {"pca_scaling": None}),
            seed=config.seed,
            rank=self.rank,
            world_size=self.world_size,
            workers=config.workers,
            pin_memory=self.device.type == "cuda",
        )

    def _place_model(self, model: nn.Module) -> nn.Module:
        """``model`` on the device, checked against the data's input size."""
        if getattr(model, "input_size", self.data.input_size) != self.data.input_size:
            raise ValueError(f"the model takes {model.input_size}x{model.input_size} images, but the data "
                             f"is built for {self.data.input_size}x{self.data.input_size}")
        model = model.to(self.device)
        # After the (identical) initialisation each process draws its own dropout masks.
        torch.manual_seed(self.config.seed + 1_000_003 * (self.rank + 1))
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def _build_optimizer(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.ReduceLROnPlateau]:
        """One parameter group at ``config.lr`` and ``config.weight_decay``, or the network's own per-layer groups.

        A network with a ``parameter_groups(lr)`` method (cifar_11pct.py) sets each layer's rate (a
        multiple of ``lr``) and weight decay itself; each group's floor is its own rate / 1000.
        """
        config = self.config
        optimizer_cls = PaperSGD if config.optimizer == "paper" else torch.optim.SGD
        groups = getattr(self.model, "parameter_groups", None)
        if groups is None:
            optimizer = optimizer_cls(
                self.model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
            )
            min_lr = _floor(config.lr)
        else:
            if config.weight_decay is not None:
                raise ValueError(f"{type(self.model).__name__} sets a weight decay per layer; leave weight_decay unset")
            optimizer = optimizer_cls(groups(config.lr), lr=config.lr, momentum=config.momentum, weight_decay=0.0)
            min_lr = [_floor(group["lr"]) for group in optimizer.param_groups]
        # Section 5: divided by 10 on a plateau, "reduced three times prior to termination": min_lr = lr / 1000.
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=1 / LR_DROP_FACTOR, patience=config.patience, min_lr=min_lr
        )
        return optimizer, scheduler

    def _wrap_network(self) -> nn.Module:
        """What the training step calls: the model, inside DDP across processes, compiled if asked."""
        network = self.model
        if self.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            network = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        return torch.compile(network) if self.config.compile else network

    @property
    def checkpoint_path(self) -> pathlib.Path | None:
        return self.output_dir / CHECKPOINT_NAME if self.output_dir else None

    @property
    def lr(self) -> float:
        """The rate the optimizer uses now (after any drops)."""
        return self.optimizer.param_groups[0]["lr"]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    # ---------------------------------------------------------------- the output directory

    def _claim_output_dir(self):
        """Lock ``output_dir`` for this process; refuse to start afresh over a run that is there."""
        if self.output_dir is None or not self.main:
            return None
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise ValueError(f"output_dir {self.output_dir} is a file, not a directory")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.output_dir / LOCK_NAME, "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise ValueError(
                f"another process is training into {self.output_dir} (it holds {LOCK_NAME}); wait for it to end "
                "or choose another --output-dir"
            ) from None
        found = [name for name in (CHECKPOINT_NAME, "history.json") if (self.output_dir / name).exists()]
        if found and not self.config.resume:
            if not self.config.overwrite:
                lock.close()
                raise ValueError(
                    f"{self.output_dir} already holds a run ({', '.join(found)}): continue it with --resume, "
                    "replace it with --overwrite, or choose another --output-dir"
                )
            for name in found:
                (self.output_dir / name).unlink()
        return lock

    def close(self) -> None:
        """Release the output directory's lock (also done when :meth:`fit` returns or fails)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # ---------------------------------------------------------------- checkpoints

    def data_signature(self) -> dict:
        """What a resumption or evaluation must find again: the data set, its classes and split sizes."""
        return {
            "name": self.data.name,
            "classes": list(self.data.classes),
            "train_images": len(self.data.train.dataset),
            "val_images": len(self.data.val.dataset),
        }

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "finished": self.finished,
            "rng": rng_state(),
            "history": self.history,
            "segments": self.segments,
            "config": self.config.to_dict(),
            "data": self.data_signature(),
        }

    def resume(self) -> None:
        """Continue from ``output_dir/checkpoint.pt``: weights, optimizer, schedule, RNG and history.

        A checkpoint taken mid-epoch also holds the position in the epoch.  A new ``lr`` replaces
        the current rate (and the schedule's floor becomes lr / 1000).
        """
        if self.checkpoint_path is None:
            raise ValueError("resume needs the output_dir that holds the checkpoint")
        state = load_checkpoint(self.checkpoint_path, map_location=self.device)
        stored = TrainConfig.from_dict(state["config"]).to_dict()
        changed = [
            f"{name}: {stored[name]!r} in the checkpoint, {value!r} now"
            for name, value in self.config.to_dict().items()
            if name not in RESUMABLE_CHANGES and stored[name] != value
        ]
        if changed:
            raise ValueError(f"cannot resume {self.checkpoint_path} with different options: " + "; ".join(changed))
        if "data" in state and state["data"] != self.data_signature():
            raise ValueError(
                f"cannot resume {self.checkpoint_path}: it was trained on {_describe(state['data'])}, "
                f"but the data now is {_describe(self.data_signature())} ({self.data.source})"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.history = int(state["epoch"]), list(state["history"])
        self.finished = bool(state.get("finished", False))
        self.segments = list(state.get("segments", []))
        if self.config.lr != TrainConfig.from_dict(state["config"]).lr:
            for group in self.optimizer.param_groups:
                # Per-layer groups keep their ratio to the run's rate.
                group["lr"] = self.config.lr * group.get("lr_scale", 1.0)
            self.scheduler.min_lrs = [_floor(group["lr"]) for group in self.optimizer.param_groups]
            if self.main:
                tqdm.write(f"resuming at lr {self.config.lr:g}")
        if state.get("position") is not None:
            # The loader draws from the global generator when an epoch starts: train_epoch restores it after that.
            self._position = {**state["position"], "rng": state["rng"]}
        else:
            set_rng_state(state["rng"])

    def save(self, position: dict | None = None) -> None:
        """Checkpoint and history (rank 0 only): after an epoch, or mid-epoch at ``position``."""
        self._last_save = time.monotonic()
        if self.segments and self._segment_start is not None:
            self.segments[-1].update(to_epoch=self.epoch, to_batch=position["batch"] if position else 0,
                                     wall_seconds=round(time.perf_counter() - self._segment_start, 1))
        if self.output_dir is None or not self.main:
            return
        save_checkpoint({**self.state_dict(), "position": position}, self.checkpoint_path)
        write_json(self.history, self.output_dir / "history.json")
        if position is not None and self._after_checkpoint is not None:
            self._after_checkpoint(position)

    def _checkpoint_due(self) -> bool:
        return self.output_dir is not None and time.monotonic() - self._last_save >= 60 * self.config.checkpoint_minutes

    def write_run_files(self) -> None:
        if self.output_dir is None or not self.main:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.config.to_dict(), self.output_dir / "config.json")
        run = {
            "model": type(self.model).__name__,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "data": {"name": self.data.name, "source": self.data.source, "classes": self.data.classes},
            "device": str(self.device),
            "world_size": self.world_size,
            "mixed_precision": str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else "fp32",
            "provenance": provenance(),
        }
        write_json(run, self.output_dir / "run.json")

    # ---------------------------------------------------------------- the loop

    def fit(self, after_epoch: Callable[[dict], bool | None] | None = None, command: list[str] | None = None,
            after_checkpoint: Callable[[dict], None] | None = None) -> list[dict]:
        """Train from where the run stands up to ``config.epochs`` or the schedule's end; return the history.

        ``after_epoch(record)`` runs after each epoch's checkpoint; when it returns true, training ends.
        ``after_checkpoint(position)`` runs after each mid-epoch checkpoint, with where in the epoch it stands.

        Each call appends a segment (provenance with ``command``, the epoch and batch it started
        from, the epochs it completed, its wall time) to :attr:`segments`, saved with every checkpoint.
        """
        self.segments.append({**provenance(command), "from_epoch": self.epoch,
                              "from_batch": self._position["batch"] if self._position else 0,
                              "to_epoch": self.epoch, "to_batch": 0, "wall_seconds": 0.0})
        self._segment_start = time.perf_counter()
        self._after_checkpoint = after_checkpoint
        try:
            self.write_run_files()
            while self.epoch < self.config.epochs and not self.finished:
                record = self.run_epoch(self.epoch + 1)
                if after_epoch is not None and after_epoch(record):
                    break
        except KeyboardInterrupt:
            if self.main:
                print(self.interrupted_message())
            raise
        finally:
            self.close()
        return self.history

    def interrupted_message(self) -> str:
        saved = self.checkpoint_path is not None and self.checkpoint_path.exists()
        if not saved:
            return f"Interrupted during epoch {self.epoch + 1}; no checkpoint was written, so nothing can be resumed."
        return (
            f"Interrupted during epoch {self.epoch + 1}; {self.checkpoint_path} holds the last checkpoint. "
            f"Resume with:\n  {self.config.resume_command()}"
        )

    def run_epoch(self, epoch: int) -> dict:
        start = time.perf_counter()
        lr = self.lr
        train_loss, train_error, images, train_seconds = self.train_epoch(epoch)
        val = self._evaluate(self.data.val, f"validating {epoch}")
        measured = self.measure()
        best = self.scheduler.best
        # PyTorch's documented order: optimizer.step() per batch above, scheduler.step() after validation.
        self.scheduler.step(val["top1_error"])
        # A plateau: no new best, and the count of bad epochs ran past the patience (so it was reset).
        plateau = self.scheduler.best == best and self.scheduler.num_bad_epochs == 0
        # Section 5: the rate was "reduced three times prior to termination", so a plateau at the
        # floor (lr / 1000) ends the run instead of a fourth drop.
        self.finished = plateau and lr <= self.scheduler.min_lrs[0] * (1 + 1e-9)
        self.epoch = epoch
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_error": train_error,
            "val_loss": val["loss"],
            "val_top1_error": val["top1_error"],
            "val_top5_error": val["top5_error"],
            "lr": lr,
            "seconds": time.perf_counter() - start,
            "images_per_second": images / train_seconds,
            "train_loss_curve": list(self.loss_curve),
            **measured,
        }
        self.history.append(record)
        self.save()
        if self.main:
            tqdm.write(
                f"epoch {epoch}: train loss {train_loss:.4f}, error {train_error:.2%}; "
                f"val loss {val['loss']:.4f}, top-1 error {val['top1_error']:.2%}, "
                f"top-5 error {val['top5_error']:.2%}; "
                f"lr {lr:g}; {record['images_per_second']:.0f} images/s"
                + ("; the schedule has ended (a plateau after three drops)" if self.finished else "")
            )
        return record

    def _evaluate(self, loader, desc: str) -> dict:
        return evaluate(self.model, loader, self.eval_transform, self.device, autocast=self.autocast(),
                        channels_last=self.channels_last, desc=desc, progress=self.config.progress)

    def measure(self) -> dict:
        """The optional per-epoch measurements (``clean_train_error``, ``test_curve``), as record keys.

        Iterating a loader draws its base seed from torch's global generator, which also draws the
        dropout masks: the generators are put back as they were, so that training goes on as without.
        """
        if not (self.config.clean_train_error or self.config.test_curve):
            return {}
        state, measured = rng_state(), {}
        if self.config.clean_train_error:
            clean = self._evaluate(self.data.train_in_order, "measuring the clean training error")
            measured.update(clean_train_loss=clean["loss"], clean_train_error=clean["top1_error"])
        if self.config.test_curve:
            test = self._evaluate(self.data.test, "measuring the test error")
            measured.update(test_loss=test["loss"], test_top1_error=test["top1_error"],
                            test_top5_error=test["top5_error"])
        set_rng_state(state)
        return measured

    def train_epoch(self, epoch: int, step_hook: Callable[[int, Tensor], None] | None = None
                    ) -> tuple[float, float, int, float]:
        """One pass over the training set: (mean loss, error rate, images, seconds), summed over processes.

        ``step_hook(batch, loss)`` runs after every optimizer step (gradients still in place).
        """
        self.network.train()
        self.data.set_epoch(epoch)
        total = len(self.data.train)
        # tqdm.auto's bar calls iter() on the loader when it is made and again when iterated: two
        # iterators, each drawing the loader's base seed from the global generator.  Every recorded
        # run trained so (its dropout masks follow those draws), so the bar wraps the loader itself.
        bar = tqdm(
            self.data.train,
            total=total,
            desc=f"epoch {epoch}/{self.config.epochs}",
            leave=False,
            disable=not (self.main and self.config.progress),
        )
        batches = iter(bar)
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss * n, wrong, n
        self.loss_curve, done, seconds_before = [], 0, 0.0
        position, self._position = self._position, None
        if position is not None:
            if position["epoch"] != epoch:
                raise ValueError(f"the checkpoint stopped in epoch {position['epoch']}, not {epoch}")
            done, seconds_before = position["batch"], position["train_seconds"]
            # Skipping draws no random numbers: the order comes from (seed, epoch), and augmentation happens below.
            for _ in range(done):
                next(batches)
            sums = position["sums"].to(self.device)
            self.loss_curve = list(position["loss_curve"])
            if position["augment_rng"] is not None:
                self.data.train_transform.generator.set_state(position["augment_rng"])
            set_rng_state(position["rng"])
        window = torch.zeros((), dtype=torch.float64, device=self.device)
        window_batches = 0
        start = time.perf_counter()
        for batch, (images, labels) in enumerate(batches, start=done + 1):
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            x = self.train_transform(images)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self.autocast():
                logits = self.network(x)
            loss = F.cross_entropy(logits.float(), labels)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if step_hook is not None:
                step_hook(batch, loss)
            loss = loss.detach().double()
            # Sums stay on the device: no host sync per batch.
            sums[0] += loss * labels.numel()
            sums[1] += (logits.detach().argmax(dim=1) != labels).sum()
            sums[2] += labels.numel()
            window += loss
            window_batches += 1
            if window_batches == self.config.log_every or batch == total:
                # One host sync per window: the mean batch loss over the window and all processes (so that
                # every process stops together); a NaN in any step makes it NaN.
                mean = distributed.sum_across(window).item() / (window_batches * self.world_size)
                self.loss_curve.append(mean)
                self.check_loss(mean, window_batches, epoch, batch)
                bar.set_postfix(loss=f"{mean:.4f}", lr=f"{self.lr:g}")
                window.zero_()
                window_batches = 0
                if batch < total and self._checkpoint_due():
                    self.save(position={
                        "epoch": epoch,
                        "batch": batch,
                        "sums": sums.cpu(),
                        "loss_curve": list(self.loss_curve),
                        "augment_rng": _generator_state(self.data.train_transform),
                        "train_seconds": seconds_before + time.perf_counter() - start,
                    })
        loss_sum, wrong, count = distributed.sum_across(sums).tolist()
        if count == 0:
            raise ValueError("the training loader yielded no images")
        return loss_sum / count, wrong / count, int(count), seconds_before + time.perf_counter() - start

    def check_loss(self, loss: float, batches: int, epoch: int, batch: int) -> None:
        """Stop when a window's mean loss is not finite, when the weights are not, or on a sustained blow-up.

        The blow-up rule: the mean loss of every window over at least ``diverge_batches``
        consecutive batches exceeds ``diverge_factor`` x ln(classes).  ln(classes) is the loss of a
        network that guesses uniformly, about where a sound initialisation starts; one window above
        it is a spike that training often recovers from, a hundred batches above it are not.
        """
        limit = (self.config.diverge_factor or math.inf) * math.log(max(self.data.num_classes, 2))
        if not math.isfinite(loss):
            what = f"the mean loss of the last {batches} batches is not finite"
        elif not all(_finite(p) for p in self.model.parameters()):
            what = "the weights are no longer finite"
        elif loss <= limit:
            self._batches_above_limit = 0
            return
        else:
            self._batches_above_limit += batches
            if self._batches_above_limit < self.config.diverge_batches:
                return
            what = (f"the mean loss stayed above {self.config.diverge_factor:g} x ln(classes) = {limit:.1f} for "
                    f"{self._batches_above_limit} batches (now {loss:.4g})")
        lr = self.lr
        saved = self.checkpoint_path is not None and self.checkpoint_path.exists()
        advice = (f". The last checkpoint, {self.checkpoint_path}, was saved with finite weights; resume it at a "
                  f"lower rate with:\n  {self.config.resume_command(lr=lr / 10)}") if saved else ""
        raise TrainingDiverged(
            f"training diverged in epoch {epoch} near batch {batch}: {what}. "
            f"Likely causes: a learning rate too high for this model and batch size (lr={lr:g} now; try {lr / 10:g}), "
            "or an initialisation too large for the inputs, which are mean-subtracted 0-255 pixels as in the paper "
            "(the paper's and cuda-convnet's small Gaussian inits expect that scale)" + advice
        )


def _generator_state(transform: nn.Module) -> Tensor | None:
    """The state of the augmentation's own generator (data.BatchTransform has one; a plain module none)."""
    generator = getattr(transform, "generator", None)
    return generator.get_state() if generator is not None else None


def _describe(signature: dict) -> str:
    return (f"{signature['name']} ({len(signature['classes'])} classes, {signature['train_images']:,} training and "
            f"{signature['val_images']:,} validation images)")


def train(config: TrainConfig, model: nn.Module | None = None, data: DataBundle | None = None) -> list[dict]:
    """Run ``config`` (optionally with a model or data bundle of your own); return the per-epoch history."""
    return Trainer(config, model=model, data=data).fit()


def without_timing(history: list[dict]) -> list[dict]:
    """The history minus its wall-clock fields: what a rerun with the same seed reproduces."""
    return [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in history]
