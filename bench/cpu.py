"""CPU training-step benchmark: this book's AlexNet beside its LRN variants, torchvision's and the blog's.

    python bench/cpu.py [--batch 32] [--repeats 5] [--small-batch 4] [--channels-last] [--blog-at-main-batch]

Every configuration of one batch size is timed in turns within this one run (see
``measure.race``); the table and the ratios the performance targets are about go to
stdout and to ``results/bench-cpu.json``.  Offline: models start from random weights.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torchvision
from torch import nn

from measure import REPO, Row, format_table, mult_adds_per_image, race, training_step, write_json

from alexnet_lib import AlexNet
from alexnet_lib.blog import BlogAlexNet, LoopLocalResponseNorm
from alexnet_lib.data import build_data

# The performance targets (issue 6): LRN overhead, FLOP rate, speed-up over the blog, input path.
TARGETS = {"lrn_overhead_pct": 10.0, "flop_rate_vs_torchvision": 0.95, "speedup_vs_blog": 40.0, "input_vs_model": 5.0}


def with_norm(make_norm) -> AlexNet:
    """The paper's model with N1 and N2 replaced by ``make_norm()``."""
    model = AlexNet()
    model.N1, model.N2 = make_norm(), make_norm()
    return model


def configurations(channels_last: bool) -> dict[str, tuple[nn.Module, int]]:
    """Name -> (model, input side) for the models timed at the main batch size."""
    configs = {
        "AlexNet (this book)": (AlexNet(), 227),
        "AlexNet, no LRN": (AlexNet(lrn=False), 227),
        # torch's LRN divides alpha by n, like cuda-convnet: the same numbers as ours.
        "AlexNet, torch's built-in LRN": (with_norm(lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)), 227),
        "torchvision alexnet": (torchvision.models.alexnet(weights=None), 224),
    }
    if channels_last:
        configs["AlexNet (this book), channels_last"] = (AlexNet().to(memory_format=torch.channels_last), 227)
        configs["torchvision alexnet, channels_last"] = (
            torchvision.models.alexnet(weights=None).to(memory_format=torch.channels_last), 224)
    return configs


def slow_configurations() -> dict[str, tuple[nn.Module, int]]:
    """The blog's per-(image, channel) LRN loop, timed at a small batch beside our model at that batch."""
    return {
        "AlexNet (this book), small batch": (AlexNet(), 227),
        # The loop uses the paper's alpha rather than alpha / n; that changes no timing.
        "AlexNet, blog's loop LRN": (with_norm(LoopLocalResponseNorm), 227),
        "blog's model (BlogAlexNet)": (BlogAlexNet(), 224),
    }


def time_models(
    configs: dict[str, tuple[nn.Module, int]], batch: int, repeats: int, desc: str, warmup: int = 1
) -> list[Row]:
    steps, sizes = {}, {}
    for name, (model, side) in configs.items():
        images = torch.randn(batch, 3, side, side)
        if name.endswith("channels_last"):
            images = images.contiguous(memory_format=torch.channels_last)
        labels = torch.randint(0, 1000, (batch,))
        steps[name], sizes[name] = training_step(model, images, labels), side
    wall, cpu = race(steps, repeats, warmup=warmup, desc=desc)
    return [Row(name, batch, sizes[name], wall[name], mult_adds_per_image(configs[name][0], sizes[name]), cpu[name])
            for name in configs]


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


def ratios(rows: dict[str, Row], slow: dict[str, Row], slow_at_main: dict[str, Row], input_path: dict) -> dict:
    ours, plain = rows["AlexNet (this book)"], rows["AlexNet, no LRN"]
    tv = rows["torchvision alexnet"]
    blog, ours_small = slow["blog's model (BlogAlexNet)"], slow["AlexNet (this book), small batch"]
    blog_main = slow_at_main.get("blog's model (BlogAlexNet)")
    result = {
        "lrn_overhead_pct": 100 * (ours.best / plain.best - 1),
        "builtin_lrn_overhead_pct": 100 * (rows["AlexNet, torch's built-in LRN"].best / plain.best - 1),
        "loop_lrn_slowdown_at_small_batch": slow["AlexNet, blog's loop LRN"].best / ours_small.best,
        "flop_rate_vs_torchvision": ours.gmacs_per_s / tv.gmacs_per_s,
        "flop_rate_vs_torchvision_no_lrn": plain.gmacs_per_s / tv.gmacs_per_s,
        # One training step each at the same batch; at the main batch when that was timed.
        "speedup_vs_blog": (blog_main.best / ours.best) if blog_main else blog.best / ours_small.best,
        "speedup_vs_blog_at_small_batch": blog.best / ours_small.best,
        "input_vs_model": input_path["images_per_s"] / ours.images_per_s,
    }
    if "AlexNet (this book), channels_last" in rows:
        result["flop_rate_vs_torchvision_both_channels_last"] = (
            rows["AlexNet (this book), channels_last"].gmacs_per_s / rows["torchvision alexnet, channels_last"].gmacs_per_s)
    return result


def report(ratio: dict) -> str:
    lines = ["", "ratios (from the best step of each configuration):"]
    for key, value in ratio.items():
        target = TARGETS.get(key)
        if target is None:
            verdict = ""
        else:
            met = value <= target if key == "lrn_overhead_pct" else value >= target
            verdict = f"   target {'<=' if key == 'lrn_overhead_pct' else '>='} {target:g}: {'met' if met else 'NOT met'}"
        lines.append(f"  {key:42s} {value:10.3f}{verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="batch of the main comparison (default 32)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per configuration, after one warm-up")
    parser.add_argument("--small-batch", type=int, default=4, help="batch for the blog's slow LRN loop (default 4)")
    parser.add_argument("--blog-at-main-batch", action="store_true",
                        help="also time one step of the blog's model at --batch (minutes: its backward grows ~batch^2)")
    parser.add_argument("--data-images", type=int, default=1024, help="CIFAR-10 training images for the input path")
    parser.add_argument("--channels-last", action="store_true", help="also time both models in channels_last")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default=str(REPO / "results" / "bench-cpu.json"))
    args = parser.parse_args(argv)
    if min(args.batch, args.repeats, args.small_batch, args.data_images) < 1:
        parser.error("--batch, --repeats, --small-batch and --data-images must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"CPU training step (forward + backward), {torch.get_num_threads()} threads, torch {torch.__version__}")

    rows = time_models(configurations(args.channels_last), args.batch, args.repeats, f"batch {args.batch}")
    slow = time_models(slow_configurations(), args.small_batch, args.repeats, f"batch {args.small_batch}")
    blog_main = []
    if args.blog_at_main_batch:
        blog = {"blog's model (BlogAlexNet)": slow_configurations()["blog's model (BlogAlexNet)"]}
        blog_main = time_models(blog, args.batch, repeats=1, desc=f"blog, batch {args.batch}", warmup=0)
    input_path = time_input_path(args.batch, args.data_images, args.repeats)
    print(format_table(rows + slow + blog_main))
    print(f"\ninput path: {input_path['images_per_s']:.0f} images/s ({input_path['dataset']}, {input_path['source']}; "
          f"{input_path['images']} images in batches of {args.batch}, uint8 -> {input_path['transform']})")
    ratio = ratios({r.name: r for r in rows}, {r.name: r for r in slow}, {r.name: r for r in blog_main}, input_path)
    print(report(ratio))
    path = write_json(args.out, {
        "settings": vars(args), "threads": torch.get_num_threads(),
        "timing": "time.perf_counter around each training step (zero_grad, forward, cross-entropy, backward); "
                  "configurations take turns; 'best' is the fastest step, ratios use it; "
                  "cpu_seconds: time.process_time of the same steps (all threads)",
        "mult_adds": "torch.utils.flop_counter.FlopCounterMode over one training step, FLOPs / 2",
        "rows": [r.record() for r in rows + slow + blog_main], "input_path": input_path, "ratios": ratio, "targets": TARGETS,
    })
    print(f"\nsaved {path}")


if __name__ == "__main__":
    sys.exit(main())
