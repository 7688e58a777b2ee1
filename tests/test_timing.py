"""Training steps timed side by side, and the measured choice of memory format."""

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


class LayoutRecorder(nn.Module):
    """A small conv net that notes the memory format of every input and of its kernel."""

    seen: list[tuple[bool, bool]] = []  # on the class: deep copies of the module share it

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)  # 6x6 images -> 4x4 maps
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 4 * 4, 3))

    def forward(self, x):
        channels_last = torch.channels_last
        self.seen.append((x.is_contiguous(memory_format=channels_last),
                          self.conv.weight.is_contiguous(memory_format=channels_last)))
        return self.head(self.conv(x))


def test_channels_last_faster_times_both_formats_on_copies(monkeypatch):
    monkeypatch.setattr(timing, "_channels_last_faster", {})
    monkeypatch.setattr(LayoutRecorder, "seen", [])
    torch.manual_seed(11)
    model = LayoutRecorder().eval()
    weights = {name: p.detach().clone() for name, p in model.state_dict().items()}
    images = torch.randn(2, 3, 6, 6)
    rng = torch.random.get_rng_state()

    answer = timing.channels_last_faster(model, images, steps=2)
    assert isinstance(answer, bool)
    # One warm-up and two timed steps each: contiguous input and weights, then channels_last ones.
    assert sorted(set(LayoutRecorder.seen)) == [(False, False), (True, True)] and len(LayoutRecorder.seen) == 6
    assert not model.training and torch.equal(rng, torch.random.get_rng_state())
    assert all(torch.equal(weights[name], p) for name, p in model.state_dict().items())
    assert model.conv.weight.is_contiguous()


def test_channels_last_faster_follows_the_timings_and_measures_once(monkeypatch):
    monkeypatch.setattr(timing, "_channels_last_faster", {})
    races = []

    def fake_race(steps, repeats, **options):
        races.append(repeats)
        seconds = fake_seconds[len(races) - 1]
        return {"contiguous": seconds[0], "channels_last": seconds[1]}, {}

    fake_seconds = [([2.0, 1.0], [1.5, 1.2]), ([1.0, 3.0], [1.1, 1.2])]
    monkeypatch.setattr(timing, "race", fake_race)
    model = LayoutRecorder()
    assert timing.channels_last_faster(model, torch.randn(2, 3, 6, 6), steps=2) is False  # 1.0 < 1.2
    assert timing.channels_last_faster(model, torch.randn(2, 3, 6, 6), steps=2) is False  # kept, not measured
    assert timing.channels_last_faster(model, torch.randn(4, 3, 6, 6), steps=2) is False  # 1.0 < 1.1
    assert races == [2, 2]
    monkeypatch.setattr(timing, "_channels_last_faster", {})
    fake_seconds[0] = ([2.0, 1.5], [1.4, 1.6])
    races.clear()
    assert timing.channels_last_faster(model, torch.randn(2, 3, 6, 6), steps=2) is True  # 1.4 < 1.5
    with pytest.raises(ValueError, match="steps must be at least 1"):
        timing.channels_last_faster(model, torch.randn(2, 3, 6, 6), steps=0)


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
