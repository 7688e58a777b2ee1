"""Two gloo processes on the CPU train like one process with the same total batch."""

import ast
import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from alexnet_lib import distributed
from alexnet_lib.checkpoint import load_checkpoint
from alexnet_lib.config import TrainConfig
from alexnet_lib.train import Trainer, train, without_timing


def config(output_dir) -> TrainConfig:
    # No augmentation or dropout: each process draws its own, so only then can the runs agree.
    return TrainConfig(
        model="cifar-net", dataset="digits", epochs=1, batch_size=32, limit=192, val_limit=61,
        augment=False, dropout=0.0, output_dir=str(output_dir),
    )


def _worker(rank: int, world_size: int, rendezvous: str, output_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size)
    try:
        assert (distributed.rank(), distributed.world_size()) == (rank, world_size)
        # rank 0 writes the files; every rank returns the same (reduced) history.
        history = train(config(output_dir))
        with open(f"{output_dir}/history-rank{rank}.json", "w") as f:
            json.dump(history, f)
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_match_one(tmp_path):
    torch.set_num_threads(2)
    single = train(config(tmp_path / "single"))

    out = tmp_path / "ddp"
    out.mkdir()
    mp.spawn(_worker, args=(2, str(tmp_path / "rendezvous"), str(out)), nprocs=2, join=True)

    ranks = [json.loads((out / f"history-rank{r}.json").read_text()) for r in (0, 1)]
    assert without_timing(ranks[0]) == without_timing(ranks[1])
    # Same images per step, gradients averaged by DDP instead of in one batch: equal up to rounding.
    (one,), (two,) = single, ranks[0]
    for key in ("train_loss", "val_loss"):
        assert two[key] == pytest.approx(one[key], rel=1e-4), key
    # Counts of wrong answers may differ by an image when two logits nearly tie.
    for key in ("train_error", "val_top1_error", "val_top5_error"):
        assert two[key] == pytest.approx(one[key], abs=1.5 / 61), key
    a, b = load_checkpoint(tmp_path / "single" / "checkpoint.pt"), load_checkpoint(out / "checkpoint.pt")
    start = Trainer(dataclasses.replace(config(tmp_path), output_dir=None)).model.state_dict()
    # The 6 steps' updates are compared, not the weights: most weight matrices move by well under 1% of
    # their norm (hidden.0 by 1e-4 of it), so 1e-2 of the weights' norm would let their updates be all wrong.
    # float32 gradients of 16-image halves differ from those of the 32-image batch, DDP or not, by
    # 1e-6 to 2e-3 of the update depending on the CPU; in float64 both agree to 1e-15.
    for name, weight in a["model"].items():
        update = weight - start[name]
        gap = (b["model"][name] - start[name] - update).norm().item()
        assert gap <= 1e-2 * update.norm().item(), name
    # Only rank 0 wrote the run's files.
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("history-rank")) == [
        "checkpoint.pt", "config.json", "history.json", "run.json", "run.lock"
    ]
    assert json.loads((out / "run.json").read_text())["world_size"] == 2


def test_single_process_helpers_are_no_ops():
    values = torch.tensor([1.0, 2.0])
    assert distributed.sum_across(values) is values and values.tolist() == [1.0, 2.0]
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)


def test_every_helper_has_a_caller():
    # A helper nothing calls is untested code that looks like a feature.
    package = Path(distributed.__file__).parent
    helpers = {node.name for node in ast.parse(Path(distributed.__file__).read_text()).body
               if isinstance(node, ast.FunctionDef)}
    called = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if isinstance(node.func.value, ast.Name) and node.func.value.id == "distributed":
                    called.add(node.func.attr)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and path.name == "distributed.py":
                called.add(node.func.id)
    assert helpers - called == set()
