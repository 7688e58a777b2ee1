"""Training steps timed side by side."""

import time

import pytest
import torch
from torch import nn

from alexnet_lib import timing


def test_training_step_updates_the_weights_with_an_optimizer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model[1].weight.detach().clone()
    timing.training_step(model, torch.randn(2, 3, 4, 4), torch.tensor([0, 4]), optimizer)()
    assert not torch.equal(before, model[1].weight)
    with pytest.raises(ValueError, match="N labels"):
        timing.training_step(model, torch.randn(2, 3, 4, 4), torch.tensor([0]))


def test_race_takes_turns_after_warmup():
    calls = []
    wall, cpu = timing.race({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=2)
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3
    for times in (wall, cpu):
        assert set(times) == {"a", "b"} and all(len(v) == 3 and min(v) >= 0 for v in times.values())
    with pytest.raises(ValueError, match="repeats"):
        timing.race({"a": lambda: None}, repeats=0)


def test_best_milliseconds_keeps_each_steps_fastest_call_on_one_cpu_thread():
    threads = torch.get_num_threads()
    seen, calls = [], {"slow": 0}

    def slow():
        seen.append(torch.get_num_threads())
        calls["slow"] += 1
        # Slowest on the first call: the best of three is a later one.
        time.sleep(0.2 if calls["slow"] == 1 else 0.01)

    best, setup = timing.best_milliseconds({"slow": slow, "fast": lambda: None}, 3, torch.device("cpu"))
    assert calls["slow"] == 3 and set(seen) == {1} and setup == "cpu, 1 thread(s)"
    assert 10 <= best["slow"] < 200 and best["fast"] < best["slow"]
    assert torch.get_num_threads() == threads
