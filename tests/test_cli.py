"""The command line: help, a tiny training run, evaluation, and argument errors."""

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

from test_data import write_cifar_batches

from alexnet_lib import cli
from alexnet_lib.cli import build_parser, config_from_args, main
from alexnet_lib.config import TrainConfig
from alexnet_lib.data import DATA_ENV, OFFLINE_ENV
from alexnet_lib.evaluate import evaluate
from alexnet_lib.train import Trainer

TINY = ["--model", "cifar-net", "--dataset", "digits", "--limit", "64", "--val-limit", "20", "--epochs", "1",
        "--batch-size", "16"]


pytestmark = pytest.mark.usefixtures("few_threads")


def test_module_help_runs():
    command = [sys.executable, "-m", "alexnet_lib", "--help"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "train" in result.stdout and "evaluate" in result.stdout and "torchrun" in result.stdout


@pytest.mark.parametrize("command", ["train", "evaluate", "experiment"])
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--data-root" in out and "--device" in out


def test_every_config_option_is_on_the_command_line():
    args = build_parser().parse_args(["train"])
    assert set(vars(args)) - {"command"} == {f.name for f in dataclasses.fields(TrainConfig)}


def test_to_argv_round_trips():
    config = TrainConfig(
        model="cifar-net", dataset="digits", data_root="/data", epochs=7, batch_size=32, lr=0.02, weight_decay=0.0,
        optimizer="sgd", seed=3, output_dir="runs/x", device="cpu", amp=False, compile=True, limit=100,
        val_limit=50, augment=False, init="kaiming", dropout=0.25, lrn=True, activation="tanh", overlap=False,
        fallback=True,
    )
    parsed = config_from_args(build_parser().parse_args(["train", *config.to_argv()]))
    assert parsed == config
    resumed = config_from_args(build_parser().parse_args(config.resume_command().split()[3:]))
    assert resumed == dataclasses.replace(config, resume=True)
    # The model's own presets are not repeated: a command names only what was chosen.
    assert TrainConfig(lr=0.001, epochs=2).to_argv() == ["--epochs", "2", "--lr", "0.001"]


def test_tiny_training_run_writes_its_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--output-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.json", "history.json", "run.json", "run.lock"]
    config = json.loads((out / "config.json").read_text())
    assert TrainConfig.from_dict(config).limit == 64
    (record,) = json.loads((out / "history.json").read_text())
    assert record["epoch"] == 1 and 0 <= record["val_top5_error"] <= record["val_top1_error"] <= 1
    run = json.loads((out / "run.json").read_text())
    assert run["model"] == "CifarNet" and run["data"]["name"] == "digits"
    capsys.readouterr()

    metrics = tmp_path / "metrics.json"
    assert main(["evaluate", str(out / "checkpoint.pt"), "--output", str(metrics)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(metrics.read_text())
    # Evaluated on the whole validation split (360 digits), not the 20 it validated on while training.
    assert printed["images"] == 360 and printed["epoch"] == 1
    # On those 20 the numbers must be the ones the trainer measured for the weights it saved.
    assert main(["evaluate", str(out / "checkpoint.pt"), "--val-limit", "20"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["images"] == 20
    assert [again["loss"], again["top1_error"], again["top5_error"]] == pytest.approx(
        [record["val_loss"], record["val_top1_error"], record["val_top5_error"]], rel=1e-6)


def test_a_run_with_a_hold_out_is_evaluated_on_its_test_set_with_its_own_mean_image(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--holdout", "20", "--output-dir", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out / "checkpoint.pt")]) == 0
    printed = json.loads(capsys.readouterr().out)
    # What the trainer's own data gives for the saved weights: the 44 images left after the hold-out
    # make the mean image, and the 20 test digits it was limited to are scored.
    trainer = Trainer(dataclasses.replace(config_from_args(build_parser().parse_args(
        ["train", *TINY, "--holdout", "20", "--output-dir", str(out)])), resume=True))
    own = evaluate(trainer.model, trainer.data.test, trainer.data.eval_transform, progress=False)
    trainer.close()
    assert printed["images"] == 360
    assert main(["evaluate", str(out / "checkpoint.pt"), "--val-limit", "20"]) == 0
    limited = json.loads(capsys.readouterr().out)
    assert [limited["loss"], limited["images"]] == pytest.approx([own["loss"], own["images"]], rel=1e-6)


def test_bad_arguments_give_one_line(capsys):
    with pytest.raises(SystemExit) as done:
        main(["train", "--epochs", "0"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--epochs: expected a positive integer, got 0" in err

    assert main(["train", "--model", "alexnet", "--activation", "tanh"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: activation and overlap are switches of cifar-net")


def test_missing_or_broken_checkpoint_is_one_line(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "none.pt")]) == 1
    assert capsys.readouterr().err.strip() == f"error: no checkpoint at {tmp_path / 'none.pt'}"
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert main(["evaluate", str(tmp_path / "bad.pt")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "truncated or corrupt" in err


def test_resume_without_a_checkpoint_is_one_line(tmp_path, capsys):
    assert main(["train", *TINY, "--output-dir", str(tmp_path / "empty"), "--resume"]) == 1
    assert "no checkpoint at" in capsys.readouterr().err


def test_experiment_without_cifar10_says_so(tmp_path, capsys):
    argv = ["experiment", "pooling", "--data-root", str(tmp_path), "--output", str(tmp_path / "pooling.json"),
            "--no-progress"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: CIFAR-10 not found under {tmp_path}")


@pytest.mark.parametrize("device, message", [
    ("foo", "error: unknown device 'foo'"),
    ("cuda", "error: device 'cuda' is not available on this machine"),
])
def test_a_device_this_machine_lacks_is_one_line_before_training(device, message, tmp_path, capsys, monkeypatch):
    # Before: a RuntimeError traceback from torch.device("foo"), or a CUDA error at the first tensor moved there.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", *TINY, "--device", device, "--output-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_bad_output_dir_is_one_line_before_training(tmp_path, capsys, monkeypatch):
    # Before: a file as --output-dir gave a FileExistsError traceback after the data had loaded, and an
    # empty one trained without saving anything.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a directory")
    cases = {
        "notes.txt": "error: --output-dir notes.txt is a file, not a directory",
        "notes.txt/run": "error: --output-dir notes.txt/run lies inside notes.txt, which is a file, not a directory",
        "": "error: --output-dir is empty",
    }
    for output_dir, message in cases.items():
        assert main(["train", *TINY, "--output-dir", output_dir]) == 1
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "not a directory"


def test_an_output_dir_that_cannot_be_written_is_one_line(tmp_path, capsys, monkeypatch):
    # Mode bits do not stop root, so the permission answer is simulated for the folder itself.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = cli.os.access
    monkeypatch.setattr(cli.os, "access", lambda path, mode: path != locked and real_access(path, mode))
    assert main(["train", *TINY, "--output-dir", str(locked / "run")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"error: --output-dir {locked / 'run'} cannot be written: {locked} is not writable"


def test_data_step_finds_cifar10_or_says_in_one_line_why_not(tmp_path, monkeypatch, capsys):
    write_cifar_batches(tmp_path / "here" / "cifar-10-batches-py")
    assert main(["data", "--data-root", str(tmp_path / "here")]) == 0
    assert capsys.readouterr().out == f"CIFAR-10 is ready in {tmp_path / 'here'} (torchvision's format)\n"
    monkeypatch.setenv(OFFLINE_ENV, "1")
    assert main(["data", "--data-root", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert err == f"error: CIFAR-10 not found under {tmp_path / 'empty'}, and {OFFLINE_ENV} forbids downloading it\n"


def test_missing_data_stops_train_resume_and_evaluate_instead_of_using_the_digits(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(DATA_ENV, raising=False)
    data_root, out = tmp_path / "data", tmp_path / "run"
    write_cifar_batches(data_root / "cifar-10-batches-py")
    tiny_cifar = [*TINY[:2], "--dataset", "cifar10", *TINY[4:], "--output-dir", str(out)]
    assert main(["train", *tiny_cifar, "--data-root", str(data_root)]) == 0
    history = (out / "history.json").read_text()
    capsys.readouterr()
    gone = tmp_path / "moved"
    for argv in (["train", *tiny_cifar, "--epochs", "2", "--resume", "--data-root", str(gone)],
                 ["evaluate", str(out / "checkpoint.pt"), "--data-root", str(gone)],
                 ["train", *tiny_cifar, "--output-dir", str(tmp_path / "new"), "--data-root", str(gone)]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: CIFAR-10 not found under {gone}"), argv
    assert (out / "history.json").read_text() == history
    # Only a demo that asks for it trains on the digits instead.
    assert main(["train", *tiny_cifar, "--output-dir", str(tmp_path / "demo"), "--data-root", str(gone),
                 "--fallback"]) == 0
    assert "Using scikit-learn digits" in capsys.readouterr().out
