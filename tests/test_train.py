"""The training engine: learning, determinism, resumption, interruption, divergence, evaluation."""

import json
import math

import matplotlib
import pytest
import torch
from torch import nn

matplotlib.use("Agg")

from alexnet_lib.checkpoint import load_checkpoint  # noqa: E402
from alexnet_lib.data import build_data  # noqa: E402
from alexnet_lib.evaluate import confusion_matrix, embeddings, evaluate, nearest_neighbours, predictions  # noqa: E402
from alexnet_lib.plotting import filter_grid, image_grid, plot_confusion, plot_history  # noqa: E402
from alexnet_lib.train import TrainConfig, Trainer, TrainingDiverged, train, without_timing  # noqa: E402

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
    with pytest.raises(ValueError, match="lr: None in the checkpoint, 0.1 now"):
        Trainer(small(epochs=2, lr=0.1, output_dir=str(tmp_path), resume=True))


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


def test_exploding_loss_stops_the_run():
    data = build_data("digits", input_size=8, batch_size=16, limit=64, val_limit=20)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    # Raw 0-255 pixels and a huge step: the logits blow up after the first update.
    with pytest.raises(TrainingDiverged, match=r"exceeds 10 x ln\(classes\) = 23.0"):
        train(small(lr=10.0, log_every=1), model=model, data=data)


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
    assert (small().learning_rate, small().decay) == (0.001, 0.004)
    assert (TrainConfig().learning_rate, TrainConfig().decay) == (0.01, 5e-4)


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
