"""CPU training-step benchmark: this book's AlexNet beside its LRN variants, torchvision's and the blog's.

    python bench/cpu.py [--batch 32] [--repeats 5] [--small-batch 4] [--channels-last] [--blog-at-main-batch]

Every configuration of one batch size is timed in turns within this one run (see
``alexnet_lib.timing.race``); so are the LRN layers alone, beside a copy that gauges the
memory bandwidth.  The table, the LRN layers' GB/s and passes over memory, and the ratios the
performance targets are about, each with its spread over the rounds, go to stdout and to
``results/bench-cpu.json``.  Offline: models start from random weights.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

from measure import REPO, Row, format_table, mult_adds_per_image, write_json

from alexnet_lib import AlexNet, layer_table, lrn, runtime
from alexnet_lib.blog import BlogAlexNet, LoopLocalResponseNorm
from alexnet_lib.config import TrainConfig
from alexnet_lib.data import build_data
from alexnet_lib.timing import race, training_step
from alexnet_lib.train import Trainer

# The performance targets: direction and bound.  Issue 15 for the LRN, the FLOP rate, the blog and the
# training loop; issue 6 for the input path.
TARGETS = {
    "lrn_overhead_pct": ("<=", 5.0),
    "flop_rate_vs_torchvision": (">=", 1.0),
    "speedup_vs_blog": (">=", 40.0),
    "input_vs_model": (">=", 5.0),
    "loop_vs_model": (">=", 0.9),
}


@dataclass
class Config:
    """A model to time: its input side, and how it runs."""

    model: nn.Module
    side: int
    channels_last: bool = False
    lrn_fallback: bool = False  # our LRN forced to its eager fallback (ALEXNET_LRN_FUSED=0)


@contextlib.contextmanager
def lrn_fallback(enabled: bool = True):
    """Our LRN runs its eager fallback inside, when ``enabled``."""
    previous = os.environ.get(lrn.FUSED_ENV)
    if enabled:
        os.environ[lrn.FUSED_ENV] = "0"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(lrn.FUSED_ENV, None)
        else:
            os.environ[lrn.FUSED_ENV] = previous


def with_norm(make_norm) -> AlexNet:
    """The paper's model with N1 and N2 replaced by ``make_norm()``."""
    model = AlexNet()
    model.N1, model.N2 = make_norm(), make_norm()
    return model


def configurations(channels_last: bool) -> dict[str, Config]:
    """The models timed at the main batch size."""
    configs = {
        "AlexNet (this book)": Config(AlexNet(), 227),
        "AlexNet, no LRN": Config(AlexNet(lrn=False), 227),
        "AlexNet, LRN fallback": Config(AlexNet(), 227, lrn_fallback=True),
        # torch's LRN divides alpha by n, like cuda-convnet: the same numbers as ours.
        "AlexNet, torch's built-in LRN": Config(
            with_norm(lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)), 227),
        "torchvision alexnet": Config(torchvision.models.alexnet(weights=None), 224),
    }
    if channels_last:
        configs["AlexNet (this book), channels_last"] = Config(AlexNet(), 227, channels_last=True)
        configs["torchvision alexnet, channels_last"] = Config(torchvision.models.alexnet(weights=None), 224, True)
    return configs


def slow_configurations() -> dict[str, Config]:
    """The blog's per-(image, channel) LRN loop, timed at a small batch beside our model at that batch."""
    return {
        "AlexNet (this book), small batch": Config(AlexNet(), 227),
        # The loop uses the paper's alpha rather than alpha / n; that changes no timing.
        "AlexNet, blog's loop LRN": Config(with_norm(LoopLocalResponseNorm), 227),
        "blog's model (BlogAlexNet)": Config(BlogAlexNet(), 224),
    }


def time_models(configs: dict[str, Config], batch: int, repeats: int, desc: str, warmup: int = 1) -> list[Row]:
    steps = {}
    layout = {False: torch.contiguous_format, True: torch.channels_last}
    for name, config in configs.items():
        model = config.model.to(memory_format=layout[config.channels_last])
        images = torch.randn(batch, 3, config.side, config.side).contiguous(memory_format=layout[config.channels_last])
        step = training_step(model, images, torch.randint(0, 1000, (batch,)))

        def run(step=step, fallback=config.lrn_fallback) -> None:
            with lrn_fallback(fallback):
                step()

        steps[name] = run
    wall, cpu = race(steps, repeats, warmup=warmup, desc=desc)
    return [Row(name, batch, c.side, wall[name], mult_adds_per_image(c.model, c.side), cpu[name])
            for name, c in configs.items()]


# Any LRN reads a and writes b going forward, and reads a and g and writes the gradient going back.
LRN_PASSES = 5


def time_lrn_layers(batch: int, repeats: int) -> dict:
    """N1 and N2 alone, forward + backward on their training-time input, beside a copy of N1's input.

    The copy (read and write, into memory written before) gauges the machine's bandwidth.  Each
    layer's time is given as GB/s of the :data:`LRN_PASSES` passes every LRN makes, and as how many
    passes over the tensor the copy's bandwidth would allow in that time.
    """
    model = AlexNet()
    shapes = {row.name: (batch, *row.output_shape) for row in layer_table(model) if row.name in ("N1", "N2")}
    steps, first_call_s, tensors, paths = {}, {}, {}, {}
    for name, shape in shapes.items():
        x = torch.rand(shape).requires_grad_()  # ReLU outputs: not negative
        g = torch.randn(shape)
        for key, fallback in ((name, False), (f"{name}, fallback", True)):

            def step(layer=getattr(model, name), x=x, g=g, fallback=fallback) -> None:
                with lrn_fallback(fallback):
                    torch.autograd.grad(layer(x), x, g)

            start = time.perf_counter()
            step()  # the fused path's first call compiles, or loads the kernels from torch.compile's cache
            first_call_s[key] = time.perf_counter() - start
            steps[key], tensors[key] = step, x
            with lrn_fallback(fallback):
                paths[key] = "fused" if lrn.fuses(x) else "fallback"
    source, target = torch.rand(shapes["N1"]), torch.empty(shapes["N1"])
    steps["copy"] = lambda: target.copy_(source)
    wall, cpu = race(steps, repeats, desc="LRN layers")
    n1_bytes = source.numel() * source.element_size()
    copy_gb_per_s = 2 * n1_bytes / min(wall["copy"]) / 1e9
    layers = {}
    for key, seconds in wall.items():
        if key == "copy":
            continue
        size = tensors[key].numel() * tensors[key].element_size()
        layers[key] = {"path": paths[key], "shape": list(tensors[key].shape), "mb": size / 1e6, "seconds": seconds,
                       "best_s": min(seconds),
                       "median_s": statistics.median(seconds), "cpu_median_s": statistics.median(cpu[key]),
                       "first_call_s": first_call_s[key],
                       "gb_per_s": LRN_PASSES * size / min(seconds) / 1e9,
                       "passes_at_copy_bandwidth": min(seconds) * copy_gb_per_s * 1e9 / size}
    return {"fused_unavailable": lrn.fused_unavailable("cpu"), "fused_min_elements": lrn.FUSED_MIN_ELEMENTS,
            "lrn_passes": LRN_PASSES,
            "copy_seconds": wall["copy"], "copy_gb_per_s": copy_gb_per_s, "layers": layers}


def format_lrn_layers(result: dict) -> str:
    fused = result["fused_unavailable"] or f"tensors of at least {result['fused_min_elements']:,} elements"
    lines = [f"\nLRN layers alone, forward + backward (our fused kernels: {fused}):",
             f"  {'layer':12s} {'path':8s} {'shape':16s} {'MB':>6s} {'best ms':>8s} {'median':>8s} {'CPU ms':>8s} "
             f"{'first s':>8s} {'GB/s':>6s} {'passes':>7s}"]
    for key, row in result["layers"].items():
        lines.append(f"  {key:12s} {row['path']:8s} {'x'.join(map(str, row['shape'])):16s} {row['mb']:6.1f} "
                     f"{1e3 * row['best_s']:8.1f} {1e3 * row['median_s']:8.1f} {1e3 * row['cpu_median_s']:8.1f} "
                     f"{row['first_call_s']:8.1f} {row['gb_per_s']:6.1f} {row['passes_at_copy_bandwidth']:7.1f}")
    lines.append(f"  copy of N1's input (read + write): {1e3 * min(result['copy_seconds']):.1f} ms, "
                 f"{result['copy_gb_per_s']:.1f} GB/s")
    lines.append(f"  GB/s: the {result['lrn_passes']} passes any LRN makes (forward: read a, write b; backward: read a "
                 "and g, write the gradient) per second of the best step.  passes: the best step's time as passes "
                 "over the tensor at the copy's bandwidth.  CPU ms: median CPU time, all threads.  first s: the first "
                 "call (the fused path compiles).")
    return "\n".join(lines)


def time_input_path(batch: int, images: int, repeats: int) -> dict:
    """Images per second of the CIFAR-10 training input: cached uint8 batches through the batch transform."""
    # Without CIFAR-10 the same path runs on the digits; "dataset" and "source" record which it was.
    data = build_data("cifar10", input_size=227, batch_size=batch, limit=images, val_limit=batch, fallback=True)
    seconds = []
    for epoch in range(repeats):
        data.set_epoch(epoch)
        count, start = 0, time.perf_counter()
        for uint8_batch, _ in data.train:
            x = data.train_transform(uint8_batch)
            count += x.shape[0]
        seconds.append(time.perf_counter() - start)
    return {"source": data.source, "dataset": data.name, "images": count, "batch": batch,
            "transform": repr(data.train_transform), "seconds": seconds, "images_per_s": count / min(seconds)}


LOOP, LOOP_MODEL = "training loop (Trainer.train_epoch)", "model only, the loop's batches"


def time_training_loop(batch: int, batches: int, repeats: int) -> tuple[dict[str, Row], dict]:
    """The trainer's own loop on CIFAR-10 at 227 beside model-only steps of the same batch and memory format.

    A round is one ``Trainer.train_epoch`` over ``batches`` batches (the loader, the batch
    transform, PaperSGD's update and the loss bookkeeping included) and, in turn, as many
    model-only steps (forward, cross-entropy, backward) of a copy of its network.
    """
    # Without CIFAR-10 the loop runs on the digits; "source" records which it was.
    trainer = Trainer(TrainConfig(model="alexnet", batch_size=batch, limit=batch * batches, val_limit=batch,
                                  fallback=True, progress=False))
    if len(trainer.data.train) != batches:
        raise ValueError(f"the loop has {len(trainer.data.train)} batches, not {batches}")
    model = copy.deepcopy(trainer.model)
    layout = torch.channels_last if trainer.channels_last else torch.contiguous_format
    images = torch.randn(batch, 3, model.input_size, model.input_size).contiguous(memory_format=layout)
    step = training_step(model, images, torch.randint(0, 10, (batch,)))
    epochs = itertools.count(1)

    def model_only() -> None:
        for _ in range(batches):
            step()

    wall, cpu_s = race({LOOP: lambda: trainer.train_epoch(next(epochs)), LOOP_MODEL: model_only}, repeats,
                       desc="training loop")
    macs = mult_adds_per_image(model, model.input_size)
    rows = {name: Row(name, batch * batches, model.input_size, wall[name], macs, cpu_s[name]) for name in wall}
    return rows, {"source": trainer.data.source, "batch": batch, "batches": batches,
                  "channels_last": trainer.channels_last}


def ratios(rows: dict[str, Row], slow: dict[str, Row], slow_at_main: dict[str, Row], input_path: Row,
           loop: dict[str, Row], seconds: Callable[[Row], float]) -> dict[str, float]:
    """The ratios the targets are about, from the step times ``seconds`` picks out of each row."""

    def rate(row: Row) -> float:  # multiply-adds per second
        return row.mult_adds_per_image * row.batch / seconds(row)

    ours, plain = rows["AlexNet (this book)"], rows["AlexNet, no LRN"]
    tv = rows["torchvision alexnet"]
    blog, ours_small = slow["blog's model (BlogAlexNet)"], slow["AlexNet (this book), small batch"]
    blog_main = slow_at_main.get("blog's model (BlogAlexNet)")
    result = {
        "lrn_overhead_pct": 100 * (seconds(ours) / seconds(plain) - 1),
        "fallback_lrn_overhead_pct": 100 * (seconds(rows["AlexNet, LRN fallback"]) / seconds(plain) - 1),
        "builtin_lrn_overhead_pct": 100 * (seconds(rows["AlexNet, torch's built-in LRN"]) / seconds(plain) - 1),
        "loop_lrn_slowdown_at_small_batch": seconds(slow["AlexNet, blog's loop LRN"]) / seconds(ours_small),
        "flop_rate_vs_torchvision": rate(ours) / rate(tv),
        "flop_rate_vs_torchvision_no_lrn": rate(plain) / rate(tv),
        # One training step each at the same batch; at the main batch when that was timed.
        "speedup_vs_blog": seconds(blog_main) / seconds(ours) if blog_main else seconds(blog) / seconds(ours_small),
        "speedup_vs_blog_at_small_batch": seconds(blog) / seconds(ours_small),
        "input_vs_model": (input_path.batch / seconds(input_path)) / (ours.batch / seconds(ours)),
        # The same images each: the ratio of images per second.
        "loop_vs_model": seconds(loop[LOOP_MODEL]) / seconds(loop[LOOP]),
    }
    if "AlexNet (this book), channels_last" in rows:
        result["flop_rate_vs_torchvision_both_channels_last"] = (
            rate(rows["AlexNet (this book), channels_last"]) / rate(rows["torchvision alexnet, channels_last"]))
    return result


# The ratios also given from CPU seconds: those of configurations timed side by side in one race.
CPU_RATIOS = ("lrn_overhead_pct", "fallback_lrn_overhead_pct", "builtin_lrn_overhead_pct", "flop_rate_vs_torchvision",
              "flop_rate_vs_torchvision_no_lrn")


def best_and_rounds(repeats: int, *rows) -> tuple[dict[str, float], list[dict[str, float]]]:
    """The ratios from each row's fastest step, and from each round's steps.

    Round i takes the i-th step of every row; a row timed fewer times (the blog at the main
    batch: once) gives its last step to the rounds after it.
    """
    best = ratios(*rows, seconds=lambda row: row.best)
    rounds = [ratios(*rows, seconds=lambda row, i=i: row.seconds[min(i, len(row.seconds) - 1)]) for i in range(repeats)]
    return best, rounds


def verdicts(best: dict[str, float], rounds: list[dict[str, float]]) -> dict[str, dict]:
    """For each target: the value, its margin (positive: room to spare), the rounds that miss it, and the verdict."""
    result = {}
    for key, (direction, bound) in TARGETS.items():
        value = best[key]
        per_round = [r[key] for r in rounds]

        def meets(v: float) -> bool:
            return v <= bound if direction == "<=" else v >= bound

        missed = sum(not meets(v) for v in per_round)
        verdict = "met" if meets(value) else "NOT met"
        if meets(value) and missed:
            verdict += f", within noise: {missed} of {len(per_round)} rounds miss"
        elif not meets(value) and missed < len(per_round):
            verdict += f", within noise: {len(per_round) - missed} of {len(per_round)} rounds meet"
        result[key] = {"direction": direction, "target": bound, "value": value,
                       "margin": bound - value if direction == "<=" else value - bound,
                       "rounds": per_round, "rounds_missed": missed, "verdict": verdict}
    return result


def report(best: dict[str, float], rounds: list[dict[str, float]], by_cpu: dict[str, float] | None = None) -> str:
    spread = "min / median / max over the rounds"
    lines = ["", f"targets (value from the best step of each configuration; {spread}; margin: room to spare):"]
    for key, v in verdicts(best, rounds).items():
        r = v["rounds"]
        lines.append(f"  {key:26s} {v['value']:9.3f}  ({min(r):.3f} / {statistics.median(r):.3f} / {max(r):.3f})  "
                     f"target {v['direction']} {v['target']:g}, margin {v['margin']:+.3f}: {v['verdict']}")
    lines.append(f"other ratios ({spread}):")
    for key, value in best.items():
        if key not in TARGETS:
            r = [x[key] for x in rounds]
            lines.append(f"  {key:42s} {value:9.3f}  ({min(r):.3f} / {statistics.median(r):.3f} / {max(r):.3f})")
    if by_cpu:
        lines.append("from median CPU seconds instead (all threads; other processes on the machine disturb them less):")
        lines.extend(f"  {key:42s} {by_cpu[key]:9.3f}" for key in CPU_RATIOS)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="batch of the main comparison (default 32)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per configuration, after one warm-up")
    parser.add_argument("--small-batch", type=int, default=4, help="batch for the blog's slow LRN loop (default 4)")
    parser.add_argument("--blog-at-main-batch", action="store_true",
                        help="also time one step of the blog's model at --batch (minutes: its backward grows ~batch^2)")
    parser.add_argument("--data-images", type=int, default=1024, help="CIFAR-10 training images for the input path")
    parser.add_argument("--loop-batches", type=int, default=4,
                        help="batches of the training loop per round, beside as many model-only steps (default 4)")
    parser.add_argument("--channels-last", action="store_true", help="also time both models in channels_last")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default=str(REPO / "results" / "bench-cpu.json"))
    args = parser.parse_args(argv)
    if min(args.batch, args.repeats, args.small_batch, args.data_images, args.loop_batches) < 1:
        parser.error("--batch, --repeats, --small-batch, --data-images and --loop-batches must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # As the Trainer does on the CPU, for every configuration alike.
    not_kept = runtime.keep_freed_memory()
    allocator = f"freed memory not kept ({not_kept})" if not_kept else "freed memory kept (runtime.keep_freed_memory)"
    print(f"CPU training step (forward + backward), {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{allocator}")

    lrn_layers = time_lrn_layers(args.batch, args.repeats)
    rows = time_models(configurations(args.channels_last), args.batch, args.repeats, f"batch {args.batch}")
    slow = time_models(slow_configurations(), args.small_batch, args.repeats, f"batch {args.small_batch}")
    blog_main = []
    if args.blog_at_main_batch:
        blog = {"blog's model (BlogAlexNet)": slow_configurations()["blog's model (BlogAlexNet)"]}
        blog_main = time_models(blog, args.batch, repeats=1, desc=f"blog, batch {args.batch}", warmup=0)
    input_path = time_input_path(args.batch, args.data_images, args.repeats)
    loop, loop_setup = time_training_loop(args.batch, args.loop_batches, args.repeats)
    print(format_table(rows + slow + blog_main + list(loop.values())))
    print(format_lrn_layers(lrn_layers))
    print(f"\ninput path: {input_path['images_per_s']:.0f} images/s ({input_path['dataset']}, {input_path['source']}; "
          f"{input_path['images']} images in batches of {args.batch}, uint8 -> {input_path['transform']})")
    print(f"training loop: {loop_setup['batches']} batches of {args.batch} per round ({loop_setup['source']}; "
          f"channels_last {loop_setup['channels_last']}), beside as many model-only steps")
    input_row = Row("input path", input_path["images"], 227, input_path["seconds"], 0)
    ratio_rows = ({r.name: r for r in rows}, {r.name: r for r in slow}, {r.name: r for r in blog_main}, input_row,
                  loop)
    best, rounds = best_and_rounds(args.repeats, *ratio_rows)
    by_cpu = {key: value for key, value in ratios(*ratio_rows, seconds=lambda row: row.cpu_median).items()
              if key in CPU_RATIOS}
    print(report(best, rounds, by_cpu))
    path = write_json(args.out, {
        "settings": vars(args), "threads": torch.get_num_threads(), "allocator": allocator,
        "timing": "time.perf_counter around each training step (zero_grad, forward, cross-entropy, backward); "
                  "configurations take turns, one step each per round; 'best' is the fastest step, ratios use it; "
                  "ratio_rounds: the ratios from each round's steps; "
                  "cpu_seconds: time.process_time of the same steps (all threads)",
        "mult_adds": "torch.utils.flop_counter.FlopCounterMode over one training step, FLOPs / 2",
        "rows": [r.record() for r in rows + slow + blog_main + list(loop.values())], "lrn_layers": lrn_layers,
        "input_path": input_path, "training_loop": loop_setup,
        "ratios": best, "ratio_rounds": rounds, "ratios_from_cpu_median": by_cpu, "targets": verdicts(best, rounds),
    })
    print(f"\nsaved {path}")


if __name__ == "__main__":
    sys.exit(main())
