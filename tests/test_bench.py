"""The benchmark helpers in bench/: FLOP counting, timing in turns, the table, the targets' verdicts.

No timings are checked here: performance claims live only in the benchmarks' output.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import cpu  # noqa: E402
import measure  # noqa: E402

from alexnet_lib import AlexNet, layer_table, lrn  # noqa: E402


def test_training_step_mult_adds_agree_with_the_layer_table():
    """Forward once; backward once for the weights and once for the inputs, except C1's (the image needs none)."""
    model = AlexNet(num_classes=10)
    table = {row.name: row.mult_adds for row in layer_table(model)}
    expected = 3 * sum(table.values()) - table["C1"]
    assert measure.mult_adds_per_image(model, 227) == expected
    assert all(p.grad is None for p in model.parameters())


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


def test_target_verdicts_show_margin_and_noise():
    best = {"lrn_overhead_pct": 4.0, "flop_rate_vs_torchvision": 0.97, "speedup_vs_blog": 100.0,
            "input_vs_model": 20.0, "loop_vs_model": 0.95, "other": 1.0}
    rounds = [dict(best, lrn_overhead_pct=v, flop_rate_vs_torchvision=f)
              for v, f in [(4.5, 0.9), (6.0, 1.01), (4.2, 0.95)]]
    result = cpu.verdicts(best, rounds)
    assert result["lrn_overhead_pct"]["margin"] == pytest.approx(1.0)
    assert result["lrn_overhead_pct"]["rounds_missed"] == 1
    assert result["lrn_overhead_pct"]["verdict"] == "met, within noise: 1 of 3 rounds miss"
    assert result["flop_rate_vs_torchvision"]["margin"] == pytest.approx(-0.03)
    assert result["flop_rate_vs_torchvision"]["verdict"] == "NOT met, within noise: 1 of 3 rounds meet"
    assert result["speedup_vs_blog"]["verdict"] == "met" and "other" not in result
    lines = {line.split()[0]: line for line in cpu.report(best, rounds).splitlines() if line.strip()}
    assert "(4.200 / 4.500 / 6.000)" in lines["lrn_overhead_pct"] and "margin +1.000" in lines["lrn_overhead_pct"]
    assert lines["speedup_vs_blog"].endswith("target >= 40, margin +60.000: met")
    assert "target" not in lines["other"] and "(1.000 / 1.000 / 1.000)" in lines["other"]
    by_cpu = dict.fromkeys(cpu.CPU_RATIOS, 2.5)
    assert "from median CPU seconds" in cpu.report(best, rounds, by_cpu)
    assert "from median CPU seconds" not in cpu.report(best, rounds)


def test_ratios_per_round_pair_the_steps_of_one_round():
    def row(name, seconds, batch=32, macs=1):
        return measure.Row(name, batch, 227, seconds, macs)

    rows = {r.name: r for r in [
        row("AlexNet (this book)", [1.1, 1.0]), row("AlexNet, no LRN", [1.0, 0.8]),
        row("AlexNet, LRN fallback", [1.2, 1.2]), row("AlexNet, torch's built-in LRN", [2.0, 2.0]),
        row("torchvision alexnet", [0.5, 0.5], macs=2)]}
    slow = {r.name: r for r in [
        row("AlexNet (this book), small batch", [0.2, 0.25], 4), row("AlexNet, blog's loop LRN", [0.4, 0.5], 4),
        row("blog's model (BlogAlexNet)", [0.4, 0.5], 4)]}
    blog_main = {"blog's model (BlogAlexNet)": row("blog's model (BlogAlexNet)", [50.0])}
    loop = {cpu.LOOP: row(cpu.LOOP, [2.0, 2.5], 128), cpu.LOOP_MODEL: row(cpu.LOOP_MODEL, [1.9, 2.0], 128)}
    best, rounds = cpu.best_and_rounds(2, rows, slow, blog_main, row("input path", [1.0, 2.0], batch=320), loop)
    assert best["lrn_overhead_pct"] == pytest.approx(100 * (1.0 / 0.8 - 1))  # fastest of each, not of one round
    assert [r["lrn_overhead_pct"] for r in rounds] == pytest.approx([10.0, 25.0])
    assert [r["speedup_vs_blog"] for r in rounds] == pytest.approx([50 / 1.1, 50.0])  # one blog step for all rounds
    assert [r["flop_rate_vs_torchvision"] for r in rounds] == pytest.approx([0.5 / 1.1 / 2, 0.5 / 1.0 / 2])
    assert [r["input_vs_model"] for r in rounds] == pytest.approx([320 / 32 * 1.1, 160 / 32 * 1.0])
    assert [r["loop_vs_model"] for r in rounds] == pytest.approx([0.95, 0.8]) and best["loop_vs_model"] == 0.95


def test_the_training_loop_is_timed_beside_model_only_steps():
    rows, setup = cpu.time_training_loop(batch=2, batches=2, repeats=1)
    assert set(rows) == {cpu.LOOP, cpu.LOOP_MODEL} and setup["batches"] == 2 and setup["batch"] == 2
    assert all(row.batch == 4 and len(row.seconds) == 1 and row.best > 0 for row in rows.values())


def test_lrn_fallback_context_restores_the_environment(monkeypatch):
    monkeypatch.delenv(lrn.FUSED_ENV, raising=False)
    with cpu.lrn_fallback():
        assert lrn.fused_unavailable("cpu") == "ALEXNET_LRN_FUSED=0"
    assert lrn.FUSED_ENV not in os.environ
    monkeypatch.setenv(lrn.FUSED_ENV, "1")
    with cpu.lrn_fallback(enabled=False):
        assert os.environ[lrn.FUSED_ENV] == "1"
    with cpu.lrn_fallback():
        assert os.environ[lrn.FUSED_ENV] == "0"
    assert os.environ[lrn.FUSED_ENV] == "1"


def test_lrn_layer_timing_reports_bandwidth_and_passes():
    result = cpu.time_lrn_layers(batch=1, repeats=1)
    assert set(result["layers"]) == {"N1", "N1, fallback", "N2", "N2, fallback"}
    n1 = result["layers"]["N1"]
    assert n1["path"] == "fallback"  # one image is below lrn.FUSED_MIN_ELEMENTS
    assert n1["shape"] == [1, 96, 55, 55] and n1["mb"] == pytest.approx(96 * 55 * 55 * 4 / 1e6)
    assert n1["gb_per_s"] == pytest.approx(cpu.LRN_PASSES * n1["mb"] / 1e3 / n1["best_s"])
    assert n1["passes_at_copy_bandwidth"] == pytest.approx(n1["best_s"] * result["copy_gb_per_s"] * 1e3 / n1["mb"])
    assert "N1, fallback" in cpu.format_lrn_layers(result)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_gpu_script_fails_fast_without_cuda():
    done = subprocess.run([sys.executable, str(BENCH / "gpu.py")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "needs a CUDA GPU" in done.stderr and "--device cpu --smoke" in done.stderr
