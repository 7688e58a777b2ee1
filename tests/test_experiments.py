"""results/NAME.json: one per experiment, complete, with provenance, and reproducible from its record."""

import json
import math
import pathlib
import re
import types

import matplotlib
import pytest

from alexnet_lib import experiments
from alexnet_lib.cli import main
from alexnet_lib.experiments import (
    EXPERIMENTS,
    Recorder,
    headline,
    largest_rate_that_trains,
    loss_history,
    recorded_first_loss,
    reproduce_first_epoch,
    run_experiment,
    run_progress,
)
from alexnet_lib.plotting import plot_loss_windows, plot_lr_probe, plot_runs

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from alexnet_lib.augment import BatchTransform  # noqa: E402
from alexnet_lib.config import TrainConfig  # noqa: E402
from alexnet_lib.train import without_timing  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parents[1] / "results"
RECORD_KEYS = {"epoch", "train_loss", "train_error", "val_loss", "val_top1_error", "val_top5_error", "lr",
               "seconds", "images_per_second", "train_loss_curve"}
# Each run is rerun for its first loss windows only: enough batches to show that the numbers did not move
# (an AlexNet step at 227 costs several seconds on 2 CPU cores: three single steps the probe kept; two windows
# of the CIFAR-10 nets), few enough for CI.  The long run is not rerun: its first window is the lr probe's.
FIRST_BATCHES = {"blog_plateau": 8, "alexnet_cifar": 5, "alexnet_lr": 3, "lrn": 40, "pooling": 40, "relu_tanh": 40,
                 "dropout": 40}
# The run each file is checked by: its first that trained, unless named here.
FIRST_RUN = {"alexnet_lr": "lr=0.003"}

pytestmark = pytest.mark.usefixtures("few_threads")


def _results(name):
    path = RESULTS / f"{name}.json"
    assert path.exists(), f"{path.name} is missing: run python -m alexnet_lib experiment {name}"
    return json.loads(path.read_text())


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_results_file_schema(name):
    results = _results(name)
    # A long run is committed as it grows: a complete file has no run in progress (and, below, only it has a summary).
    in_progress = [label for label, run in results["runs"].items() if not run.get("complete", True)]
    assert results["name"] == name and not (results["complete"] and in_progress)
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
@pytest.mark.parametrize("name", sorted(set(EXPERIMENTS) - {"alexnet_cifar_full"}))
def test_first_epoch_reproduces(name):
    runs = _results(name)["runs"]
    label = FIRST_RUN.get(name) or next(label for label, run in runs.items() if run["history"] or run.get("partial"))
    recorded, rerun = reproduce_first_epoch(runs[label], max_batches=FIRST_BATCHES.get(name))
    assert rerun == pytest.approx(recorded, rel=0.01), label


def test_the_long_run_starts_as_the_lr_probe_of_its_rate():
    # So the probe's rerun above covers the long run's start: the same settings for the first epoch's batches
    # (the length of the run, the plateau's patience and a guard that never fired aside), the same first window.
    run = _results("alexnet_cifar_full")["runs"]["alexnet seed=0"]
    probe = _results("alexnet_lr")["runs"][FIRST_RUN["alexnet_lr"]]
    run_length = {"epochs", "patience", "diverge_factor"}
    assert ({k: v for k, v in TrainConfig.from_dict(run["config"]).to_dict().items() if k not in run_length}
            == {k: v for k, v in TrainConfig.from_dict(probe["config"]).to_dict().items() if k not in run_length})
    assert (run["network"], run["seed"]) == (probe["network"], probe["seed"])
    assert loss_history(run)[0]["train_loss_curve"][0] == probe["partial"]["train_loss_curve"][0]


def test_the_recorded_loss_of_the_first_batches():
    run = {"config": {"log_every": 2}, "history": [{"train_loss": 1.5, "train_loss_curve": [3.0, 2.0, 1.0]}]}
    assert recorded_first_loss(run) == 1.5 and recorded_first_loss(run, 4) == 2.5
    with pytest.raises(ValueError, match="max_batches 3 is not a multiple of log_every 2, and the run kept 0"):
        recorded_first_loss(run, 3)
    steps = [{"batch": 1, "loss": 4.0}, {"batch": 2, "loss": 2.0}]
    assert recorded_first_loss({**run, "steps": steps}, 1) == 4.0 and recorded_first_loss({**run, "steps": steps}, 2) == 3.0


@pytest.mark.cifar10
def test_a_different_seed_does_not_reproduce():
    # The check above can fail: the same run with another seed starts elsewhere.
    run = _results("blog_plateau")["runs"]["paper lr=0.0001"]
    _, other = reproduce_first_epoch({**run, "config": {**run["config"], "seed": run["seed"] + 1}}, max_batches=8)
    assert other != pytest.approx(recorded_first_loss(run, 8), rel=0.01)


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
    recorded = path.read_bytes()
    with pytest.raises(ValueError, match=r"records 'tiny' with lr=0.001; this run has lr=0.002\. Recorded runs are never"):
        Recorder("pooling", path, progress=False).run("tiny", TrainConfig(**{**config.to_dict(), "lr": 0.002}))
    assert path.read_bytes() == recorded


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
    # The checkpoint after epoch 2's first batch brought its loss window into the file.
    first_window = whole["history"][1]["train_loss_curve"][0]
    assert partial["partial"] == {"epoch": 2, "batches": 1, "train_loss_curve": [first_window]}
    assert [len(r["train_loss_curve"]) for r in loss_history(partial)] == [3, 1]
    monkeypatch.setattr(BatchTransform, "forward", forward)
    resumed = Recorder("pooling", path, progress=False, runs_dir=tmp_path / "b").run("tiny", config)
    assert without_timing(resumed["history"]) == without_timing(whole["history"])
    assert [(s["from_epoch"], s["from_batch"], s["to_epoch"]) for s in resumed["segments"]] == [(0, 0, 1), (1, 1, 2)]
    assert resumed["complete"] and all(s["git_commit"] for s in resumed["segments"]) and "partial" not in resumed


@pytest.mark.cifar10
def test_a_run_whose_checkpoint_is_lost_is_replayed_against_its_record(tmp_path, monkeypatch):
    config = TrainConfig(model="cifar-net", epochs=3, limit=200, val_limit=50, batch_size=50, log_every=1,
                         checkpoint_minutes=0, holdout=50)
    whole = Recorder("pooling", tmp_path / "whole.json", progress=False, runs_dir=tmp_path / "a").run("tiny", config)
    forward, calls = BatchTransform.forward, []

    def interrupted(self, batch):
        calls.append(1)
        if len(calls) == 9:  # epoch 3's first batch: two epochs recorded, then a lost machine
            raise KeyboardInterrupt
        return forward(self, batch)

    monkeypatch.setattr(BatchTransform, "forward", interrupted)
    path = tmp_path / "lost.json"
    with pytest.raises(KeyboardInterrupt):
        Recorder("pooling", path, progress=False, runs_dir=tmp_path / "b").run("tiny", config)
    monkeypatch.setattr(BatchTransform, "forward", forward)
    recorded = json.loads(path.read_text())["runs"]["tiny"]
    assert len(recorded["history"]) == 2
    for lost in (tmp_path / "b").rglob("*"):
        if lost.is_file():
            lost.unlink()
    with pytest.raises(ValueError, match="is gone: restore it, retrain it from the start with --replay"):
        Recorder("pooling", path, progress=False, runs_dir=tmp_path / "b").run("tiny", config)

    # A record the retraining does not reproduce: stopped at the first checkpoint's loss window, the file untouched.
    tampered = json.loads(path.read_text())
    tampered["runs"]["tiny"]["history"][0]["train_loss_curve"][0] += 1e-12
    other = tmp_path / "other.json"
    other.write_text(json.dumps(tampered))
    before = other.read_bytes()
    with pytest.raises(experiments.ReplayMismatch, match="epoch 1 came out otherwise"):
        Recorder("pooling", other, progress=False, runs_dir=tmp_path / "c", replay=True).run("tiny", config)
    assert other.read_bytes() == before

    replayed = Recorder("pooling", path, progress=False, runs_dir=tmp_path / "b", replay=True).run("tiny", config)
    assert without_timing(replayed["history"]) == without_timing(whole["history"])
    # The recorded epochs are the record's own, timings included; the segments show the replay after them.
    assert replayed["history"][:2] == recorded["history"]
    assert [(s["from_epoch"], s["to_epoch"]) for s in replayed["segments"]] == [(0, 2), (0, 3)]


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_headline_and_figures_from_every_results_file(name):
    results = _results(name)
    assert headline(results).startswith("in progress") is (not results["complete"])
    ax = plot_runs({label: run for label, run in results["runs"].items() if run["history"]}, "val_top1_error")
    assert len(ax.lines) == sum(bool(run["history"]) for run in results["runs"].values())
    for run in results["runs"].values():
        plot_loss_windows(loss_history(run), ax)
    if name == "alexnet_lr":
        loss_ax, step_ax, dead_ax = plot_lr_probe(results["runs"]).axes
        runs = len(results["runs"])
        # Per run: the windows and the single steps; two layers' update ratios; three layers' dead units.
        assert (len(loss_ax.lines), len(step_ax.lines), len(dead_ax.lines)) == (2 * runs + 1, 2 * runs, 3 * runs)
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


# ------------------------------------------------- the results files' bookkeeping, with a stand-in for training


class FakeTrainer:
    """Instant epochs with made-up numbers, for tests of what the Recorder keeps, refuses and writes."""

    def __init__(self, config):
        self.config, self.epoch, self.history, self.loss_curve, self.segments = config, 0, [], [], []
        self.data = types.SimpleNamespace(source="CIFAR-10 image folders (a stand-in)")

    def fit(self, after_epoch, command, after_checkpoint=None):
        self.segments.append({"command": " ".join(command or []), "wall_seconds": 0.1})
        while self.epoch < self.config.epochs:
            if after_epoch(self.run_epoch(self.epoch + 1)):
                break
        return self.history

    def run_epoch(self, epoch):
        error = 0.5 / epoch + 0.01 * self.config.seed
        record = {"epoch": epoch, "train_loss": 2 * error, "train_error": error, "val_loss": 2 * error,
                  "val_top1_error": error, "val_top5_error": error / 5, "lr": 0.001, "seconds": 0.1,
                  "images_per_second": 1.0, "train_loss_curve": [2 * error]}
        self.history.append(record)
        self.epoch = epoch
        return record


@pytest.fixture
def trained(monkeypatch):
    """The configs the experiments trained (with FakeTrainer), in order."""
    configs = []

    def fake(config, network):
        configs.append(config)
        return FakeTrainer(config)

    monkeypatch.setattr(experiments, "_trainer", fake)
    return configs


def _copy(name, tmp_path):
    path = tmp_path / f"{name}.json"
    path.write_bytes((RESULTS / f"{name}.json").read_bytes())
    return path


def _command(*argv):
    return ["python", "-m", "alexnet_lib", "experiment", *argv]


def test_a_quick_run_is_refused_and_the_recorded_runs_stay(tmp_path, trained, capsys):
    # Before: `experiment lrn --epochs 1 --seeds 0` replaced the recorded 10-epoch runs with 1-epoch
    # runs and marked the file complete.
    path = _copy("lrn", tmp_path)
    recorded = path.read_bytes()
    assert main(["experiment", "lrn", "--epochs", "1", "--seeds", "0", "--output", str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path} records 'with LRN seed=0' with epochs=10; this run has epochs=1. "
                          "Recorded runs are never replaced") and err.count("\n") == 1
    assert trained == [] and path.read_bytes() == recorded
    # The file the advice names takes them.
    elsewhere = tmp_path / "lrn-epochs1.json"
    assert f"--output {elsewhere}" in err
    quick = run_experiment("lrn", output=elsewhere, epochs=1, seeds=(0,), progress=False)
    assert len(trained) == 2 and quick["complete"] and quick["runs"]["with LRN seed=0"]["config"]["epochs"] == 1


def test_an_unfinished_run_may_be_given_more_epochs_not_fewer(tmp_path, trained):
    path = tmp_path / "pooling.json"
    config = TrainConfig(model="cifar-net", epochs=2)
    Recorder("pooling", path, progress=False).run("tiny", config)
    results = json.loads(path.read_text())

    def settings(epochs):
        return {"config": experiments._settings(TrainConfig(model="cifar-net", epochs=epochs)), "network": None,
                "stop_at_train_error": None}

    with pytest.raises(ValueError, match="records 'tiny' with epochs=2; this run has epochs=3"):
        Recorder("pooling", path, progress=False).kept("tiny", settings(3))  # a finished run stays as it is
    results["runs"]["tiny"]["complete"] = False
    path.write_text(json.dumps(results))
    assert Recorder("pooling", path, progress=False).kept("tiny", settings(3))["history"] == results["runs"]["tiny"]["history"]
    with pytest.raises(ValueError, match="records 'tiny' with epochs=2; this run has epochs=1"):
        Recorder("pooling", path, progress=False).kept("tiny", settings(1))


def test_the_long_run_uses_the_largest_rate_that_trained_in_the_probe():
    probe = _results("alexnet_lr")
    if not probe["complete"]:
        pytest.skip("results/alexnet_lr.json is still growing")
    assert experiments.FULL_LR == largest_rate_that_trains(probe["summary"])
    assert _results("alexnet_cifar_full")["runs"]["alexnet seed=0"]["config"]["lr"] == experiments.FULL_LR


def test_run_progress_says_where_a_growing_run_stands():
    run = {"config": {"epochs": 10, "log_every": 10}, "wall_seconds": 5400.0,
           "history": [{"epoch": 1, "val_top1_error": 0.4567, "lr": 0.01}],
           "partial": {"epoch": 2, "batches": 1200, "train_loss_curve": [1.5, 1.25]}}
    assert run_progress(run) == ("1 of 10 epochs finished; after epoch 1 the validation top-1 error was 45.7% at lr "
                                 "0.01; epoch 2 stands at batch 1,200, the mean loss of its last 10 batches 1.250; "
                                 "1.5 hours of training so far")
    assert run_progress({**run, "history": [], "partial": None}) == "0 of 10 epochs finished; 1.5 hours of training so far"


def test_a_probe_with_another_number_of_batches_is_refused(tmp_path, trained, monkeypatch):
    path = _copy("alexnet_lr", tmp_path)
    recorded = path.read_bytes()
    monkeypatch.setattr(experiments, "ALEXNET_LR_BATCHES", 200)
    with pytest.raises(ValueError, match=re.escape(f"{path} records 'lr=0.01' with batches=300; this run has "
                                                   "batches=200. Recorded runs are never replaced")):
        run_experiment("alexnet_lr", output=path, progress=False)
    assert trained == [] and path.read_bytes() == recorded


def test_a_file_of_another_experiment_is_refused(tmp_path, trained):
    # Before: `experiment pooling --output results/lrn.json` threw the lrn results away.
    path = _copy("lrn", tmp_path)
    recorded = path.read_bytes()
    with pytest.raises(ValueError, match=re.escape(f"{path} holds the results of experiment 'lrn', not 'pooling'")):
        run_experiment("pooling", output=path, progress=False)
    assert trained == [] and path.read_bytes() == recorded


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_rerunning_a_finished_experiment_leaves_its_file_alone(name, tmp_path, trained):
    # Before: with every run kept, the file was rewritten with this command's provenance.
    path = _copy(name, tmp_path)
    recorded = path.read_bytes()
    if not json.loads(recorded)["complete"]:
        pytest.skip(f"results/{name}.json is still growing: running it again would train its next runs")
    run_experiment(name, output=path, progress=False, command=_command(name))
    assert trained == [] and path.read_bytes() == recorded


def test_new_seeds_go_beside_the_recorded_runs_with_their_own_provenance(tmp_path, trained):
    path = _copy("pooling", tmp_path)
    before = json.loads(path.read_text())
    command = _command("pooling", "--seeds", "2")
    after = run_experiment("pooling", output=path, seeds=(2,), progress=False, command=command)
    assert [(c.seed, c.overlap, c.epochs) for c in trained] == [(2, True, 8), (2, False, 8)]
    assert json.loads(path.read_text()) == after
    # The recorded runs are as they were, with the file's former provenance as theirs.
    earlier = {k: v for k, v in before["provenance"].items() if k not in ("seeds", "wall_seconds")}
    for label, run in before["runs"].items():
        assert after["runs"][label] == {**run, "provenance": earlier}
    new = after["runs"]["overlapping 3/2 seed=2"]
    assert new["provenance"]["command"] == " ".join(command) and new["provenance"]["git_commit"] is not None
    assert set(new["provenance"]) >= {"date", "hardware", "torch"}
    assert after["provenance"]["command"] == " ".join(command) and after["provenance"]["seeds"] == [0, 1, 2]
    assert after["complete"] and len(after["summary"]["val_top1_error"]["overlapping 3/2"]["values"]) == 3


def test_an_interrupted_experiment_continues_and_each_run_keeps_its_command(tmp_path, trained, monkeypatch):
    path = tmp_path / "lrn.json"
    real_run_epoch = FakeTrainer.run_epoch

    def interrupted(self, epoch):
        if len(trained) == 2:
            raise KeyboardInterrupt
        return real_run_epoch(self, epoch)

    monkeypatch.setattr(FakeTrainer, "run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_experiment("lrn", output=path, epochs=2, progress=False, command=_command("lrn", "--epochs", "2"))
    partial = json.loads(path.read_text())
    assert list(partial["runs"]) == ["with LRN seed=0"] and not partial["complete"] and partial["summary"] is None
    monkeypatch.undo()
    monkeypatch.setattr(experiments, "_trainer", lambda config, network: trained.append(config) or FakeTrainer(config))
    done = run_experiment("lrn", output=path, epochs=2, progress=False, command=_command("lrn", "--epochs", "2", "--no-progress"))
    assert len(trained) == 3 and done["complete"]
    commands = [run["provenance"]["command"] for run in done["runs"].values()]
    assert commands == [" ".join(_command("lrn", "--epochs", "2")), " ".join(_command("lrn", "--epochs", "2", "--no-progress"))]


def test_a_file_that_is_not_a_results_file_is_a_clear_error(tmp_path):
    path = tmp_path / "lrn.json"
    path.write_text('{"name": "lrn", "runs": {')
    with pytest.raises(ValueError, match=re.escape(f"{path} cannot be read as a results file (JSONDecodeError")):
        Recorder("lrn", path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=re.escape(f"{path} is not a results file")):
        Recorder("lrn", path)
