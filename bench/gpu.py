"""GPU training throughput of this book's AlexNet and torchvision's, in four set-ups, at batch 128 and 256.

    python bench/gpu.py                        # on a CUDA machine: at most about 5 minutes
    python bench/gpu.py --device cpu --smoke   # checks the script on a CPU with 1 step per set-up

Set-ups: fp32; bf16 autocast; bf16 autocast + channels_last; the last one under torch.compile.
A training step is zero_grad, forward, cross-entropy, backward and an SGD step (momentum 0.9,
weight decay 5e-4, section 5), on random images already on the device.  Results go to
``results/bench-gpu.json`` after every set-up, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torchvision
from torch import nn

from measure import REPO, mult_adds_per_image, write_json

from alexnet_lib import AlexNet, lrn
from alexnet_lib.timing import training_step

MODES = ("fp32", "bf16", "bf16+channels_last", "bf16+channels_last+compile")
MODELS = ("AlexNet (this book)", "torchvision alexnet")


def build(name: str) -> tuple[nn.Module, int]:
    """A freshly initialised model and its input side."""
    if name == "AlexNet (this book)":
        return AlexNet(), 227
    if name == "torchvision alexnet":
        return torchvision.models.alexnet(weights=None), 224
    raise ValueError(f"model must be one of {MODELS}, got {name!r}")


def throughput(name: str, mode: str, batch: int, device: torch.device, warmup: int, iters: int, backend: str) -> dict:
    """Images per second of training steps of ``name`` in ``mode``, timed between two synchronisations."""
    torch.manual_seed(0)
    model, side = build(name)
    model.to(device)
    images = torch.randn(batch, 3, side, side, device=device)
    labels = torch.randint(0, 1000, (batch,), device=device)
    if "channels_last" in mode:
        model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    net = torch.compile(model, backend=backend) if "compile" in mode else model
    step = training_step(net, images, labels, optimizer, autocast_dtype=torch.bfloat16 if "bf16" in mode else None)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    start = time.perf_counter()
    step()  # the first step also compiles, when compiling
    sync()
    first_step_s = time.perf_counter() - start
    for _ in range(warmup - 1):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    sync()
    seconds = time.perf_counter() - start
    return {
        "model": name, "mode": mode, "batch": batch, "iterations": iters, "warmup": warmup,
        "images_per_s": batch * iters / seconds, "step_ms": 1000 * seconds / iters, "first_step_s": first_step_s,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="set-ups to run (default all)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (the first one compiles)")
    parser.add_argument("--iters", type=int, default=20, help="timed steps per set-up")
    parser.add_argument("--budget-s", type=float, default=270.0, help="skip set-ups not started within this time")
    parser.add_argument("--compile-backend", default=None, help="torch.compile backend (default inductor)")
    parser.add_argument("--smoke", action="store_true", help="batch 2, one step each, aot_eager compile; saves only with --out")
    parser.add_argument("--out", default=None, help="JSON path (default results/bench-gpu.json; none for --smoke)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench/gpu.py needs a CUDA GPU and torch.cuda.is_available() is False; "
              "to check the script on a CPU run: python bench/gpu.py --device cpu --smoke", file=sys.stderr)
        return 2
    if args.smoke:
        args.batches, args.warmup, args.iters = [2], 1, 1
        args.compile_backend = args.compile_backend or "aot_eager"
    backend = args.compile_backend or "inductor"
    if min(args.batches + [args.warmup, args.iters]) < 1:
        parser.error("--batches, --warmup and --iters must be positive")
    out = args.out or (None if args.smoke else str(REPO / "results" / "bench-gpu.json"))
    torch.backends.cudnn.benchmark = True

    mult_adds = {name: mult_adds_per_image(*build(name)) for name in MODELS}
    settings = {
        **vars(args), "compile_backend": backend, "cudnn_benchmark": True,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        # Outside the compiled set-up our LRN runs its fused kernels (tensors of at least
        # lrn.FUSED_MIN_ELEMENTS), or the fallback for this reason; compiled, the model's own kernels.
        "lrn_path": lrn.fused_unavailable(device) or "fused kernels (torch.compile)",
        "lrn_fused_min_elements": lrn.FUSED_MIN_ELEMENTS,
    }
    print(f"our LRN outside torch.compile: {settings['lrn_path']}")
    results, skipped, started = [], [], time.perf_counter()
    for mode in args.modes:
        for batch in args.batches:
            for name in MODELS:
                if time.perf_counter() - started > args.budget_s:
                    skipped.append({"model": name, "mode": mode, "batch": batch, "why": "time budget"})
                    continue
                row = throughput(name, mode, batch, device, args.warmup, args.iters, backend)
                row["gmacs_per_s"] = mult_adds[name] * row["images_per_s"] / 1e9
                results.append(row)
                print(f"{name:22s} {mode:28s} batch {batch:4d}: {row['images_per_s']:9.1f} images/s "
                      f"{row['gmacs_per_s']:9.1f} GMAC/s  (first step {row['first_step_s']:.1f} s)", flush=True)
                if out:
                    write_json(out, {"settings": settings, "mult_adds_per_image": mult_adds,
                                     "rows": results, "skipped": skipped})
    for entry in skipped:
        print(f"skipped {entry['model']} {entry['mode']} batch {entry['batch']}: {entry['why']}")
    if out:
        write_json(out, {"settings": settings, "mult_adds_per_image": mult_adds, "rows": results, "skipped": skipped})
        print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
