"""The benchmark helpers in bench/: FLOP counting, timing in turns, the table, the targets' verdicts.

No timings are checked here: performance claims live only in the benchmarks' output.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import cpu  # noqa: E402
import measure  # noqa: E402

from alexnet_lib import AlexNet, layer_table  # noqa: E402


def test_training_step_mult_adds_agree_with_the_layer_table():
    """Forward once; backward once for the weights and once for the inputs, except C1's (the image needs none)."""
    model = AlexNet(num_classes=10)
    table = {row.name: row.mult_adds for row in layer_table(model)}
    expected = 3 * sum(table.values()) - table["C1"]
    assert measure.mult_adds_per_image(model, 227) == expected
    assert all(p.grad is None for p in model.parameters())


def test_training_step_updates_the_weights_with_an_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model[1].weight.detach().clone()
    measure.training_step(model, torch.randn(2, 3, 4, 4), torch.tensor([0, 4]), optimizer)()
    assert not torch.equal(before, model[1].weight)
    with pytest.raises(ValueError, match="N labels"):
        measure.training_step(model, torch.randn(2, 3, 4, 4), torch.tensor([0]))


def test_race_takes_turns_after_warmup():
    calls = []
    wall, cpu = measure.race({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=2)
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3
    for times in (wall, cpu):
        assert set(times) == {"a", "b"} and all(len(v) == 3 and min(v) >= 0 for v in times.values())
    with pytest.raises(ValueError, match="repeats"):
        measure.race({"a": lambda: None}, repeats=0)


def test_row_rates_and_table():
    row = measure.Row("model", batch=4, input_size=227, seconds=[2.0, 1.0, 4.0], mult_adds_per_image=500_000_000,
                      cpu_seconds=[3.0, 2.0, 9.0])
    assert (row.best, row.median, row.cpu_median, row.images_per_s, row.gmacs_per_s) == (1.0, 2.0, 3.0, 4.0, 2.0)
    lines = measure.format_table([row, row]).splitlines()
    assert len(lines) == 4 and lines[0].startswith("configuration") and set(lines[1]) <= {"-", " "}
    assert lines[2].split()[-2:] == ["0.500", "2.0"]


def test_json_carries_provenance(tmp_path):
    path = measure.write_json(tmp_path / "sub" / "out.json", {"rows": []})
    record = json.loads(path.read_text())
    assert record["rows"] == [] and {"command", "git_commit", "date", "hardware", "torch"} <= set(record["provenance"])


def test_target_verdicts():
    text = cpu.report({"lrn_overhead_pct": 12.0, "flop_rate_vs_torchvision": 0.97, "other": 1.0})
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert lines["lrn_overhead_pct"].endswith("NOT met")
    assert lines["flop_rate_vs_torchvision"].endswith("met") and "NOT" not in lines["flop_rate_vs_torchvision"]
    assert "target" not in lines["other"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_gpu_script_fails_fast_without_cuda():
    done = subprocess.run([sys.executable, str(BENCH / "gpu.py")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "needs a CUDA GPU" in done.stderr and "--device cpu --smoke" in done.stderr
