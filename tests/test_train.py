"""The training engine: learning, determinism, resumption, interruption, divergence, evaluation."""

import dataclasses
import importlib
import json
import math
import sys

import matplotlib
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torchvision.transforms import functional as TF

matplotlib.use("Agg")

from alexnet_lib.augment import BatchTransform  # noqa: E402
from alexnet_lib.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from alexnet_lib.config import TrainConfig  # noqa: E402
from alexnet_lib.data import build_data  # noqa: E402
from alexnet_lib.evaluate import confusion_matrix, embeddings, evaluate, nearest_neighbours, predictions  # noqa: E402
from alexnet_lib.plotting import filter_grid, image_grid, plot_confusion, plot_history  # noqa: E402
from alexnet_lib.train import Trainer, TrainingDiverged, train, without_timing  # noqa: E402

train_module = importlib.import_module("alexnet_lib.train")  # the module: alexnet_lib.train is also a function

HISTORY_KEYS = {
    "epoch", "train_loss", "train_error", "val_loss", "val_top1_error", "val_top5_error", "lr", "seconds",
    "images_per_second", "train_loss_curve",
}


pytestmark = pytest.mark.usefixtures("few_threads")


def small(**overrides) -> TrainConfig:
    """cifar-net on 160 digits: a 10-batch epoch that takes about a second on a CPU."""
    options = dict(
        model="cifar-net", dataset="digits", epochs=1, batch_size=16, limit=160, val_limit=50, progress=False
    )
    options.update(overrides)
    return TrainConfig(**options)


def test_one_epoch_lowers_the_loss():
    trainer = Trainer(small(limit=320))
    before = evaluate(trainer.model, trainer.data.val, trainer.eval_transform)
    # cuda-convnet's tiny initial weights make every class equally likely: loss ln 10.
    assert before["loss"] == pytest.approx(math.log(10), abs=0.01)
    (record,) = trainer.fit()
    assert set(record) == HISTORY_KEYS
    assert record["val_loss"] < before["loss"] - 0.1
    assert record["val_top1_error"] < 0.8
    for r in (before, record):
        top1, top5 = r.get("top1_error", r.get("val_top1_error")), r.get("top5_error", r.get("val_top5_error"))
        assert 0 <= top5 <= top1 <= 1
    assert record["lr"] == 0.001 and record["images_per_second"] > 0


def test_resumed_run_equals_an_uninterrupted_one(tmp_path, capsys):
    # Dropout and augmentation on, so the saved RNG and the data's (seed, epoch) seeding both matter.
    config = small(epochs=2, dropout=0.5, output_dir=str(tmp_path / "whole"))
    whole = train(config)

    broken = small(epochs=2, dropout=0.5, output_dir=str(tmp_path / "broken"))
    trainer = Trainer(broken)
    transform, calls = trainer.train_transform, []

    def interrupt_in_epoch_two(images):
        calls.append(1)
        if len(calls) == 15:  # the 5th of epoch 2's 10 batches
            raise KeyboardInterrupt
        return transform(images)

    trainer.train_transform = interrupt_in_epoch_two
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    message = capsys.readouterr().out
    assert "Interrupted during epoch 2" in message
    assert "python -m alexnet_lib train --model cifar-net --dataset digits" in message
    assert message.rstrip().endswith("--resume")
    assert load_checkpoint(tmp_path / "broken" / "checkpoint.pt")["epoch"] == 1

    resumed = train(small(epochs=2, dropout=0.5, output_dir=str(tmp_path / "broken"), resume=True))
    assert len(resumed) == 2
    # Epoch 1 comes from a separate run with the same seed, epoch 2 from the resumption.
    assert without_timing(resumed) == without_timing(whole)
    a = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "broken" / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    saved = json.loads((tmp_path / "broken" / "history.json").read_text())
    assert without_timing(saved) == without_timing(whole)


def test_the_schedule_stops_after_three_drops():
    # Section 5: the rate was reduced three times, 0.01 -> 1e-5.
    trainer = Trainer(small(lr=0.01, patience=0))
    for _ in range(10):
        trainer.scheduler.step(1.0)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)


def test_resume_refuses_changed_options(tmp_path):
    train(small(output_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="momentum: 0.9 in the checkpoint, 0.5 now"):
        Trainer(small(epochs=2, momentum=0.5, output_dir=str(tmp_path), resume=True))


def test_resume_may_lower_the_rate(tmp_path):
    # How a user follows the advice of a diverged run: resume it with a smaller --lr.
    train(small(output_dir=str(tmp_path)))
    trainer = Trainer(small(epochs=2, lr=1e-4, output_dir=str(tmp_path), resume=True))
    assert trainer.lr == 1e-4 and trainer.scheduler.min_lrs == [pytest.approx(1e-7)]
    (_, second) = trainer.fit()
    assert second["lr"] == 1e-4
    assert load_checkpoint(tmp_path / "checkpoint.pt")["config"]["lr"] == 1e-4


def test_every_model_but_cifar_11pct_has_one_parameter_group_as_before():
    # The state every recorded run was trained and checkpointed with: one group, the scheduler's scalar floor.
    trainer = Trainer(small())
    state = trainer.optimizer.state_dict()
    count = len(list(trainer.model.parameters()))
    assert state["param_groups"] == [{"lr": 0.001, "momentum": 0.9, "weight_decay": 0.004, "params": list(range(count))}]
    assert trainer.scheduler.default_min_lr == pytest.approx(1e-6) and trainer.scheduler.min_lrs == [1e-6]


def test_cifar_11pct_trains_with_its_cfgs_per_layer_rates_and_decays(tmp_path):
    config = small(model="cifar-11pct", limit=64, val_limit=20, output_dir=str(tmp_path))
    trainer = Trainer(config)
    groups = trainer.optimizer.param_groups
    assert [g["name"] for g in groups] == [f"{layer}.{kind}" for layer in ("conv1", "conv2", "local3", "local4", "fc10")
                                           for kind in ("weight", "bias")]
    assert [g["lr"] for g in groups] == pytest.approx([0.001, 0.002] * 5)
    assert [g["weight_decay"] for g in groups] == [0.0, 0.0, 0.0, 0.0, 0.004, 0.0, 0.004, 0.0, 0.01, 0.0]
    assert trainer.lr == 0.001 and trainer.scheduler.min_lrs == pytest.approx([1e-6, 2e-6] * 5)
    (record,) = trainer.fit()
    assert record["lr"] == 0.001 and math.isfinite(record["train_loss"])
    # A resumption at a lower rate keeps every layer's ratio to it (and each floor at its rate / 1000).
    resumed = Trainer(dataclasses.replace(config, epochs=2, lr=1e-4, resume=True))
    assert [g["lr"] for g in resumed.optimizer.param_groups] == pytest.approx([1e-4, 2e-4] * 5)
    assert resumed.scheduler.min_lrs == pytest.approx([1e-7, 2e-7] * 5)


MEASURED_KEYS = {"clean_train_loss", "clean_train_error", "test_loss", "test_top1_error", "test_top5_error"}


def _unmeasured(history):
    return [{k: v for k, v in record.items() if k not in MEASURED_KEYS} for record in without_timing(history)]


def test_per_epoch_measurements_add_keys_and_change_nothing_else(monkeypatch):
    # Dropout and augmentation on: the masks come from the generator that iterating a loader draws from.
    base = small(epochs=2, dropout=0.5, limit=190, holdout=30)
    plain = train(base)
    trainer = Trainer(dataclasses.replace(base, clean_train_error=True, test_curve=True))
    measured = trainer.fit()
    assert [set(record) for record in measured] == [HISTORY_KEYS | MEASURED_KEYS] * 2
    assert _unmeasured(measured) == without_timing(plain)
    # The numbers are the trained network's on the un-augmented training images and on the test set.
    clean = evaluate(trainer.model, trainer.data.train_in_order, trainer.eval_transform)
    test = evaluate(trainer.model, trainer.data.test, trainer.eval_transform)
    assert clean["images"] == 160 and test["images"] == 50
    assert (measured[-1]["clean_train_error"], measured[-1]["clean_train_loss"]) == (clean["top1_error"], clean["loss"])
    assert (measured[-1]["test_top1_error"], measured[-1]["test_loss"]) == (test["top1_error"], test["loss"])
    # Without putting the generators back, the measurements would change the training that follows them.
    # (The package's ``train`` is the function; the module is in sys.modules.)
    monkeypatch.setattr(importlib.import_module("alexnet_lib.train"), "set_rng_state", lambda state: None)
    unrestored = train(dataclasses.replace(base, clean_train_error=True, test_curve=True))
    assert _unmeasured(unrestored)[0] == without_timing(plain)[0] and _unmeasured(unrestored) != without_timing(plain)


def test_colour_noise_can_be_left_out_of_the_augmentation():
    # cuda-convnet's CIFAR-10 data provider crops and mirrors only.
    with_noise, without = Trainer(small()).train_transform, Trainer(small(colour_noise=False)).train_transform
    assert with_noise.eigval is not None and without.eigval is None and without.augment


def interrupt_at(trainer, call):
    """Make the trainer's ``call``-th training batch (counted over epochs) raise KeyboardInterrupt."""
    transform, calls = trainer.train_transform, []

    def interrupting(images):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return transform(images)

    trainer.train_transform = interrupting


@pytest.mark.parametrize("call", [5, 16])
def test_a_run_resumes_mid_epoch_bit_exactly(tmp_path, call):
    # checkpoint_minutes=0: a checkpoint after every window of 2 batches; epochs have 10 batches. Batch 5 is in
    # epoch 1, before any epoch ended; batch 16 is the 6th of epoch 2.
    options = dict(epochs=2, dropout=0.5, log_every=2, checkpoint_minutes=0)
    whole = train(small(output_dir=str(tmp_path / "whole"), **options))
    trainer = Trainer(small(output_dir=str(tmp_path / "broken"), **options))
    interrupt_at(trainer, call)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    state = load_checkpoint(tmp_path / "broken" / "checkpoint.pt")
    assert state["position"]["batch"] == (call - 1) % 10 // 2 * 2 and state["epoch"] == (call - 1) // 10
    resumed = train(small(output_dir=str(tmp_path / "broken"), resume=True, **options))
    assert without_timing(resumed) == without_timing(whole)
    a = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "broken" / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_an_existing_run_is_never_replaced_silently(tmp_path):
    train(small(output_dir=str(tmp_path)))
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(ValueError, match="already holds a run.*--resume.*--overwrite"):
        Trainer(small(output_dir=str(tmp_path)))
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    train(small(output_dir=str(tmp_path), overwrite=True, seed=1))
    assert load_checkpoint(tmp_path / "checkpoint.pt")["config"]["seed"] == 1


def test_two_processes_cannot_write_one_run(tmp_path):
    first = Trainer(small(output_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="another process is training into"):
        Trainer(small(output_dir=str(tmp_path), seed=1))
    first.fit()
    train(small(output_dir=str(tmp_path), epochs=2, resume=True))  # the lock went with the first run


def test_an_output_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        Trainer(small(output_dir=str(tmp_path / "file")))


def test_resume_checks_the_data(tmp_path):
    train(small(output_dir=str(tmp_path)))
    other = build_data("digits", input_size=32, batch_size=16, limit=200, val_limit=50)
    with pytest.raises(ValueError, match="trained on digits .*160 training.* now is digits .*200 training"):
        Trainer(small(epochs=2, output_dir=str(tmp_path), resume=True), data=other)


def test_the_resume_command_names_the_data_and_quotes_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXNET_DATA", str(tmp_path / "my data"))
    command = small(output_dir=str(tmp_path / "a run")).resume_command(lr=0.0001)
    assert f"--data-root '{tmp_path}/my data'" in command and f"--output-dir '{tmp_path}/a run'" in command
    assert "--lr 0.0001" in command and command.endswith("--resume")


def test_the_run_ends_at_a_plateau_after_three_drops(monkeypatch):
    # Section 5: "reduced three times prior to termination". A validation error that never improves makes every
    # epoch after the first a plateau (patience 0): drops after epochs 2, 3 and 4, and the end after epoch 5.
    training = sys.modules["alexnet_lib.train"]  # the module; alexnet_lib.train is the function
    trainer = Trainer(small(lr=0.01, patience=0, epochs=10))
    monkeypatch.setattr(training, "evaluate", lambda *a, **k: {"loss": 1.0, "top1_error": 0.5, "top5_error": 0.1})
    history = trainer.fit()
    assert [r["lr"] for r in history] == pytest.approx([0.01, 0.01, 0.001, 1e-4, 1e-5])
    assert trainer.finished


def script_validation(monkeypatch, errors):
    """Make each validation return the next of ``errors`` as its top-1 error; its loss falls every time."""
    training = sys.modules["alexnet_lib.train"]  # the module; alexnet_lib.train is the function
    scripted = enumerate(errors, start=1)

    def validate(*args, **kwargs):
        count, error = next(scripted)
        return {"loss": 1 / count, "top1_error": error, "top5_error": error / 2}

    monkeypatch.setattr(training, "evaluate", validate)


def test_the_rate_drops_when_the_validation_error_plateaus(monkeypatch):
    # Patience 1: the second validation in a row without a new best error drops the rate, after epochs 4 and 7.
    script_validation(monkeypatch, [0.5, 0.4, 0.4, 0.4, 0.3, 0.3, 0.3])
    trainer = Trainer(small(lr=0.01, patience=1, epochs=7))
    # The training loss (and the validation loss) fall every epoch: a schedule that watched either would not drop.
    monkeypatch.setattr(trainer, "train_epoch", lambda epoch: (1 / epoch, 0.5, 160, 1.0))
    history = trainer.fit()
    assert [r["lr"] for r in history] == pytest.approx([0.01] * 4 + [0.001] * 3)
    assert trainer.lr == pytest.approx(1e-4)


class Linear8(nn.Module):
    """A linear classifier of 8x8 digits, their mean-subtracted 0-255 pixels brought to about [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3 * 8 * 8, 10)

    def forward(self, x):
        return self.linear(x.flatten(1) / 255)


def test_a_run_resumed_across_a_rate_drop_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    # Patience 1: the rate drops after epoch 4. Stopped after epoch 3, only the restored count of bad epochs
    # makes epoch 4 drop it; stopped after epoch 4, only the restored best makes epoch 5 a bad epoch.
    errors = [0.5, 0.4, 0.4, 0.4, 0.4]

    def trainer(name, epochs, **options):
        torch.manual_seed(0)
        data = build_data("digits", input_size=8, batch_size=20, limit=20, val_limit=10)
        config = small(batch_size=20, lr=0.1, patience=1, epochs=epochs, output_dir=str(tmp_path / name), **options)
        return Trainer(config, model=Linear8(), data=data)

    script_validation(monkeypatch, errors)
    whole = trainer("whole", 5)
    whole.fit()
    assert [r["lr"] for r in whole.history] == pytest.approx([0.1] * 4 + [0.01])
    a = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    for stop in (3, 4):
        script_validation(monkeypatch, errors)
        trainer(f"stopped-{stop}", stop).fit()
        resumed = trainer(f"stopped-{stop}", 5, resume=True)
        resumed.fit()
        assert without_timing(resumed.history) == without_timing(whole.history), stop
        b = load_checkpoint(tmp_path / f"stopped-{stop}" / "checkpoint.pt")
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), stop
        assert b["scheduler"] == a["scheduler"] and resumed.lr == whole.lr, stop


class Broken(nn.Module):
    """A linear classifier of 8x8 digits whose output is NaN."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3 * 8 * 8, 10)

    def forward(self, x):
        return self.linear(x.flatten(1)) * float("nan")


def test_nan_loss_stops_the_run():
    data = build_data("digits", input_size=8, batch_size=16, limit=64, val_limit=20)
    with pytest.raises(TrainingDiverged, match="not finite.*learning rate too high"):
        train(small(log_every=1), model=Broken(), data=data)


class Spike(nn.Module):
    """A linear classifier whose logits are multiplied by ``factor`` in training calls listed in ``at``."""

    def __init__(self, at, factor):
        super().__init__()
        self.linear, self.at, self.factor, self.calls = nn.Linear(3 * 8 * 8, 10), set(at), factor, 0

    def forward(self, x):
        out = self.linear(x.flatten(1) / 255)
        if self.training:
            self.calls += 1
            if self.calls in self.at:
                out = out * self.factor
        return out


def test_a_sustained_blow_up_stops_the_run():
    data = build_data("digits", input_size=8, batch_size=16, limit=64, val_limit=20)
    # Logits 10,000 times too large in every step: finite, far above the limit, window after window.
    model = Spike(at=range(1, 100), factor=1e4)
    with pytest.raises(TrainingDiverged, match=r"stayed above 10 x ln\(classes\) = 23.0 for 3 batches"):
        train(small(lr=1e-9, log_every=1, diverge_batches=3, epochs=3), model=model, data=data)
    assert model.calls == 3


def test_one_spike_does_not_stop_the_run():
    data = build_data("digits", input_size=8, batch_size=16, limit=64, val_limit=20)
    model = Spike(at={2}, factor=1e4)  # one window far above the limit, finite: training goes on
    history = train(small(log_every=1, momentum=0, lr=1e-9), model=model, data=data)
    assert max(history[0]["train_loss_curve"]) > 1000 and len(history) == 1


def test_a_blow_up_in_the_last_step_is_never_saved(tmp_path):
    data = build_data("digits", input_size=8, batch_size=16, limit=64, val_limit=20)
    # Epochs of 4 batches: the 8th training call, the last of epoch 2, gives an infinite loss.
    model = Spike(at={8}, factor=float("inf"))
    with pytest.raises(TrainingDiverged, match=r"(?s)not finite.*lr=0.001 now.*resume it at a lower rate.*--lr 0.0001"):
        train(small(output_dir=str(tmp_path), epochs=3, log_every=3), model=model, data=data)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["epoch"] == 1 and all(torch.isfinite(w).all() for w in state["model"].values())


def test_the_divergence_advice_starts_from_the_current_rate(tmp_path):
    # After a plateau drop the optimizer runs at a tenth of the configured rate; a tenth of the configured
    # rate would be no lower than the rate that just diverged.
    trainer = Trainer(small(lr=0.01, output_dir=str(tmp_path)))
    try:
        trainer.save()
        for group in trainer.optimizer.param_groups:
            group["lr"] = 0.001
        with pytest.raises(TrainingDiverged, match=r"(?s)lr=0.001 now; try 0.0001.*--lr 0.0001 "):
            trainer.check_loss(float("nan"), batches=1, epoch=2, batch=3)
    finally:
        trainer.close()


def test_alexnet_at_227_runs_a_few_batches():
    # At batch 4 the paper's lr 0.01 overshoots on the high-contrast digits; a tenth of it does not.
    config = TrainConfig(model="alexnet", dataset="digits", epochs=1, batch_size=4, limit=8, val_limit=4, lr=0.001)
    history = train(config)
    assert history[0]["epoch"] == 1 and math.isfinite(history[0]["train_loss"])
    assert 0 <= history[0]["val_top5_error"] <= history[0]["val_top1_error"] <= 1


def test_config_errors():
    with pytest.raises(ValueError, match="model must be one of"):
        TrainConfig(model="vgg")
    with pytest.raises(ValueError, match="switches of cifar-net"):
        TrainConfig(model="alexnet", activation="tanh")
    with pytest.raises(ValueError, match="unknown TrainConfig options"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    assert TrainConfig.from_dict(small().to_dict()) == small()
    with pytest.raises(ValueError, match=r"alexnet is initialised with one of \('paper', 'kaiming'\)"):
        TrainConfig(model="alexnet", init="cuda-convnet")
    with pytest.raises(ValueError, match="cifar-11pct takes a weight decay per layer from its cfg"):
        TrainConfig(model="cifar-11pct", weight_decay=0.004)
    with pytest.raises(ValueError, match="cifar-11pct has a fixed initialisation and no dropout"):
        TrainConfig(model="cifar-11pct", dropout=0.5)
    with pytest.raises(ValueError, match="test_curve needs a holdout"):
        TrainConfig(test_curve=True)


def test_unset_settings_take_the_models_preset_when_the_config_is_made():
    assert (small().lr, small().weight_decay, small().input_size) == (0.001, 0.004, 32)
    assert (TrainConfig().lr, TrainConfig().weight_decay, TrainConfig().input_size) == (0.01, 5e-4, 227)
    assert TrainConfig(model="cifar-conv-local").input_size == 24
    # A config recorded before presets were resolved (None = the preset) reads back as the same run.
    recorded = {**small().to_dict(), "lr": None, "weight_decay": None, "input_size": None}
    assert TrainConfig.from_dict(recorded) == small()
    assert TrainConfig(lr=0.003).lr == 0.003


def test_a_checkpoint_written_before_presets_were_resolved_resumes_as_one_run(tmp_path):
    whole = train(small(epochs=2))
    config = small(output_dir=str(tmp_path))
    train(config)
    path = tmp_path / "checkpoint.pt"
    state = load_checkpoint(path)
    # What the code wrote before config.py resolved the presets: None for "the model's default".
    state["config"].update(lr=None, weight_decay=None, input_size=None)
    save_checkpoint(state, path)
    resumed = train(small(output_dir=str(tmp_path), epochs=2, resume=True))
    assert without_timing(resumed) == without_timing(whole)


def test_evaluation_tools():
    trainer = Trainer(small())
    trainer.fit()
    model, data = trainer.model, trainer.data
    one = evaluate(model, data.val, data.eval_transform)
    ten = evaluate(model, data.val, data.eval_transform, ten_crop=True)
    assert one["images"] == ten["images"] == 50
    assert 0 <= ten["top5_error"] <= ten["top1_error"] <= 1
    assert ten["loss"] != one["loss"]
    with pytest.raises(ValueError, match="ten_crop"):
        evaluate(model, data.val, nn.Identity(), ten_crop=True)

    predicted, labels = predictions(model, data.val, data.eval_transform)
    matrix = confusion_matrix(predicted, labels, 10)
    assert matrix.sum() == 50 and matrix.sum(dim=1).tolist() == torch.bincount(labels, minlength=10).tolist()
    assert matrix.trace().item() == pytest.approx(50 * (1 - one["top1_error"]))

    features, feature_labels = embeddings(model, data.val, data.eval_transform)
    assert features.shape == (50, 64) and torch.equal(feature_labels, labels)
    nearest = nearest_neighbours(features[:5], features, k=3)
    assert nearest[:, 0].tolist() == list(range(5))

    assert len(plot_history(trainer.history).axes) == 3
    assert len(plot_confusion(matrix, data.classes).axes) == 2
    assert sum(bool(ax.images) for ax in filter_grid(model.conv1.weight).axes) == 32
    images, image_labels = next(iter(data.val))
    grid = image_grid(images[:6], image_labels[:6], data.classes, columns=4)
    assert [ax.get_title() for ax in grid.axes if ax.images] == [data.classes[i] for i in image_labels[:6]]
    matplotlib.pyplot.close("all")


@pytest.mark.parametrize("ten_crop", [False, True])
def test_evaluate_equals_a_direct_computation(ten_crop):
    # 8x8 images into a linear classifier of 6x6 views: the ten views see different pixels, and their logits
    # (a few units apart) disagree often enough that averaging logits, or dropping the mirrored views, changes
    # the loss and both error counts (37 -> 38 and 38 wrong of 48 at top-1, 7 -> 6 and 5 at top-5).
    torch.manual_seed(0)
    images = torch.randint(0, 256, (48, 3, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 6, (48,))
    mean = images.float().mean(dim=0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 6))
    nn.init.normal_(model[1].weight, std=0.005)
    loader = [(images[:32], labels[:32]), (images[32:], labels[32:])]
    result = evaluate(model, loader, BatchTransform(mean, 6, augment=False), ten_crop=ten_crop, progress=False)

    centred = images.float() - mean
    views = TF.ten_crop(centred, 6) if ten_crop else [TF.center_crop(centred, 6)]
    with torch.no_grad():
        probs = torch.stack([F.softmax(model(view), dim=1) for view in views]).mean(dim=0)
    top1_wrong = (probs.argmax(dim=1) != labels).sum().item()
    top5_wrong = (probs.topk(5, dim=1).indices != labels[:, None]).all(dim=1).sum().item()
    loss = F.nll_loss(probs.log(), labels).item()
    assert result["images"] == 48
    assert result["top1_error"] * 48 == pytest.approx(top1_wrong)
    assert result["top5_error"] * 48 == pytest.approx(top5_wrong)
    assert result["loss"] == pytest.approx(loss, rel=1e-5)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_weight_that_is_not_finite_stops_training(tmp_path, bad):
    # The loss can still be finite when one weight is not (a dead unit's weight); the check reads every weight.
    trainer = Trainer(small(output_dir=str(tmp_path)))
    try:
        trainer.check_loss(1.0, batches=1, epoch=1, batch=1)
        with torch.no_grad():
            next(trainer.model.parameters()).view(-1)[-1] = bad
        with pytest.raises(TrainingDiverged, match="weights are no longer finite"):
            trainer.check_loss(1.0, batches=1, epoch=1, batch=2)
    finally:
        trainer.close()


def test_the_gpu_branches_run_on_the_cpu(monkeypatch):
    # What a GPU reader's run does differently, made to happen on the CPU: the network and every batch in
    # channels_last, the forward passes under bf16 autocast (CPU autocast has bf16).  Same run in fp32 and NCHW
    # beside it: one epoch, the same seed; bf16 rounds to about 3 significant digits.
    reference = train(small(limit=64, val_limit=32))[0]
    monkeypatch.setattr(train_module, "_prefers_channels_last", lambda device: True)
    monkeypatch.setattr(train_module, "_mixed_precision",
                        lambda device, enabled: (torch.bfloat16, torch.amp.GradScaler("cuda", enabled=False)))
    trainer = Trainer(small(limit=64, val_limit=32))
    try:
        assert trainer.channels_last and trainer.amp_dtype is torch.bfloat16
        conv = next(m for m in trainer.model.modules() if isinstance(m, nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
        with trainer.autocast():
            assert trainer.model(torch.zeros(2, 3, 32, 32)).dtype is torch.bfloat16
        record = trainer.fit()[0]
    finally:
        trainer.close()
    assert record["train_loss"] == pytest.approx(reference["train_loss"], rel=0.02)
    assert record["val_loss"] == pytest.approx(reference["val_loss"], rel=0.02)
    assert record["train_loss"] != reference["train_loss"]  # it did run in bf16
