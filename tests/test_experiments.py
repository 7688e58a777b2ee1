"""results/NAME.json: one per experiment, complete, with provenance, and reproducible from its record."""

import json
import math
import pathlib

import matplotlib
import pytest

from alexnet_lib.experiments import EXPERIMENTS, Recorder, headline, loss_history, reproduce_first_epoch
from alexnet_lib.plotting import plot_loss_windows, plot_runs

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from alexnet_lib.augment import BatchTransform  # noqa: E402
from alexnet_lib.train import TrainConfig, without_timing  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parents[1] / "results"
RECORD_KEYS = {"epoch", "train_loss", "train_error", "val_loss", "val_top1_error", "val_top5_error", "lr",
               "seconds", "images_per_second", "train_loss_curve"}
# AlexNet steps cost about a second each on 2 CPU cores: those runs are rerun for their first windows only.
FIRST_BATCHES = {"blog_plateau": 8, "alexnet_cifar": 5, "alexnet_lr": 10}

pytestmark = pytest.mark.usefixtures("few_threads")


def _results(name):
    path = RESULTS / f"{name}.json"
    assert path.exists(), f"{path.name} is missing: run python -m alexnet_lib experiment {name}"
    return json.loads(path.read_text())


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_results_file_schema(name):
    results = _results(name)
    # A long run is committed as it grows: the file is complete exactly when none of its runs is in progress.
    in_progress = [label for label, run in results["runs"].items() if not run.get("complete", True)]
    assert results["name"] == name and results["complete"] is (not in_progress)
    for key in ("claim", "setup", "preprocessing"):
        assert isinstance(results[key], str) and results[key]
    assert isinstance(results["paper"], dict) and isinstance(results["summary"], dict) is results["complete"]
    prov = results["provenance"]
    assert prov["command"].startswith(f"python -m alexnet_lib experiment {name}")
    commit = prov["git_commit"]
    assert len(commit) == 40 and int(commit, 16) >= 0, f"recorded from uncommitted code: {commit}"
    assert prov["hardware"]["cpu"] and prov["torch"] and prov["date"] and prov["seeds"]
    assert prov["wall_seconds"] > 0
    assert results["runs"]
    for label, run in results["runs"].items():
        config = TrainConfig.from_dict(run["config"])
        assert config.seed == run["seed"], label
        assert "CIFAR-10" in run["data"] or "cifar" in run["data"].lower(), label
        # A probe of a run's first batches keeps them as a partial epoch.
        partial = run.get("partial")
        assert run["history"] or run["diverged"] or partial, f"{label} has neither epochs nor a divergence record"
        if partial:
            assert len(partial["train_loss_curve"]) == math.ceil(partial["batches"] / config.log_every), label
            assert all(math.isfinite(x) for x in partial["train_loss_curve"]), label
        for segment in run.get("segments", []):
            assert len(segment["git_commit"]) == 40, label
            assert segment["command"].startswith(f"python -m alexnet_lib experiment {name}"), label
            assert 0 <= segment["from_epoch"] <= segment["to_epoch"] and segment["wall_seconds"] >= 0, label
        for epoch, record in enumerate(run["history"], start=1):
            assert set(record) == RECORD_KEYS and record["epoch"] == epoch, label
            assert all(math.isfinite(x) for x in record["train_loss_curve"]), label
            assert 0 <= record["train_error"] <= 1 and 0 <= record["val_top1_error"] <= 1, label


@pytest.mark.cifar10
@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_first_epoch_reproduces(name):
    runs = _results(name)["runs"]
    label, run = next((label, run) for label, run in runs.items() if run["history"] or run.get("partial"))
    recorded, rerun = reproduce_first_epoch(run, max_batches=FIRST_BATCHES.get(name))
    assert rerun == pytest.approx(recorded, rel=0.01), label


@pytest.mark.cifar10
def test_a_different_seed_does_not_reproduce():
    # The check above can fail: the same run with another seed starts elsewhere.
    run = _results("blog_plateau")["runs"]["paper lr=0.0001"]
    recorded, _ = reproduce_first_epoch(run, max_batches=8)
    _, other = reproduce_first_epoch({**run, "config": {**run["config"], "seed": run["seed"] + 1}}, max_batches=8)
    assert other != pytest.approx(recorded, rel=0.01)


def test_experiments_refuse_missing_data_and_the_digits_fallback(tmp_path):
    recorder = Recorder("pooling", tmp_path / "pooling.json", data_root=tmp_path, progress=False)
    config = TrainConfig(model="cifar-net", epochs=1, limit=64, val_limit=20, batch_size=16)
    with pytest.raises(FileNotFoundError, match=f"CIFAR-10 not found under {tmp_path}"):
        recorder.run("tiny", config)
    with pytest.raises(ValueError, match="real CIFAR-10"):
        recorder.run("tiny", TrainConfig(**{**config.to_dict(), "fallback": True}))
    assert not (tmp_path / "pooling.json").exists()


@pytest.mark.cifar10
def test_recorded_runs_are_kept(tmp_path, capsys):
    path = tmp_path / "pooling.json"
    config = TrainConfig(model="cifar-net", epochs=1, limit=100, val_limit=50, batch_size=50)
    first = Recorder("pooling", path, progress=False).run("tiny", config)
    again = Recorder("pooling", path, progress=False).run("tiny", config)
    assert "kept" in capsys.readouterr().out and again == first
    changed = Recorder("pooling", path, progress=False).run("tiny", TrainConfig(**{**config.to_dict(), "lr": 0.002}))
    assert changed["config"]["lr"] == 0.002 and changed["history"] != first["history"]


@pytest.mark.cifar10
def test_an_interrupted_experiment_continues_mid_run(tmp_path, monkeypatch):
    config = TrainConfig(model="cifar-net", epochs=2, limit=200, val_limit=50, batch_size=50, log_every=1,
                         checkpoint_minutes=0, holdout=50)
    whole = Recorder("pooling", tmp_path / "whole.json", progress=False, runs_dir=tmp_path / "a").run("tiny", config)

    forward, calls = BatchTransform.forward, []

    def interrupted(self, batch):
        calls.append(1)
        # Epoch 1 is 3 training batches (150 images after the hold-out) and 1 validation batch: call 6 is
        # epoch 2's second batch, after the checkpoint taken at its first.
        if len(calls) == 6:
            raise KeyboardInterrupt
        return forward(self, batch)

    monkeypatch.setattr(BatchTransform, "forward", interrupted)
    path = tmp_path / "broken.json"
    with pytest.raises(KeyboardInterrupt):
        Recorder("pooling", path, progress=False, runs_dir=tmp_path / "b").run("tiny", config)
    partial = json.loads(path.read_text())["runs"]["tiny"]
    assert len(partial["history"]) == 1 and partial["complete"] is False
    monkeypatch.setattr(BatchTransform, "forward", forward)
    resumed = Recorder("pooling", path, progress=False, runs_dir=tmp_path / "b").run("tiny", config)
    assert without_timing(resumed["history"]) == without_timing(whole["history"])
    assert [(s["from_epoch"], s["from_batch"], s["to_epoch"]) for s in resumed["segments"]] == [(0, 0, 1), (1, 1, 2)]
    assert resumed["complete"] and all(s["git_commit"] for s in resumed["segments"])


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_headline_and_figures_from_every_results_file(name):
    results = _results(name)
    if results["complete"]:
        assert headline(results)
    ax = plot_runs({label: run for label, run in results["runs"].items() if run["history"]}, "val_top1_error")
    assert len(ax.lines) == sum(bool(run["history"]) for run in results["runs"].values())
    for run in results["runs"].values():
        plot_loss_windows(loss_history(run), ax)
    plt.close("all")


def test_loss_history_ends_where_a_run_diverged():
    run = {"config": {"limit": 1280, "batch_size": 32, "log_every": 4},
           "history": [{"epoch": 1, "train_loss_curve": [2.3] * 10}],
           "diverged": {"epoch": 2, "message": "", "train_loss_curve": [9.0, 40.0]}}
    history = loss_history(run)
    assert [r["epoch"] for r in history] == [1, 2] and history[1]["windows_per_epoch"] == 10
    assert loss_history({**run, "diverged": None}) == run["history"]
    # The unfinished epoch's two windows sit at 1.1 and 1.2 epochs, not spread over the whole epoch.
    ax = plot_loss_windows(history)
    assert list(ax.lines[0].get_xdata()[-2:]) == pytest.approx([1.1, 1.2])
    plt.close("all")
