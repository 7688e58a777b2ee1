"""Measuring a trained network: error rates, 10-crop testing, confusion matrices, F2 neighbours."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from . import distributed


def _views(transform: nn.Module, images: Tensor, ten_crop: bool) -> Tensor:
    """Model inputs (V, N, 3, S, S): one view per image, or section 4.1's ten."""
    if not ten_crop:
        return transform(images).unsqueeze(0)
    if not hasattr(transform, "ten_crop"):
        raise ValueError(
            f"ten_crop=True needs an evaluation transform with a ten_crop method (data.BatchTransform), "
            f"got {type(transform).__name__}"
        )
    return transform.ten_crop(images)


def _batches(
    model: nn.Module,
    loader: Iterable,
    transform: nn.Module,
    device: torch.device,
    ten_crop: bool,
    autocast: contextlib.AbstractContextManager | None,
    channels_last: bool,
    desc: str,
    progress: bool,
):
    """(log-probabilities, labels) per batch; with ten_crop the softmax is averaged over the views."""
    model.eval()
    transform = transform.to(device)
    with torch.no_grad():
        for images, labels in tqdm(loader, desc=desc, leave=False, disable=not (progress and distributed.is_main())):
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            views = _views(transform, images, ten_crop)
            probs = None
            for view in views:
                if channels_last:
                    view = view.contiguous(memory_format=torch.channels_last)
                with autocast or contextlib.nullcontext():
                    logits = model(view)
                p = F.softmax(logits.float(), dim=1)
                probs = p if probs is None else probs + p
            # Section 4.1: "averaging the predictions made by the network's softmax layer on the ten patches".
            yield torch.log((probs / len(views)).clamp_min(torch.finfo(torch.float32).tiny)), labels


def evaluate(
    model: nn.Module,
    loader: Iterable,
    transform: nn.Module,
    device: str | torch.device | None = None,
    *,
    ten_crop: bool = False,
    autocast: contextlib.AbstractContextManager | None = None,
    channels_last: bool = False,
    desc: str = "evaluating",
    progress: bool = True,
) -> dict:
    """Cross-entropy loss and top-1/top-5 error rates over ``loader`` (summed over all processes).

    Returns ``{"loss", "top1_error", "top5_error", "images"}``; errors are fractions in [0, 1].
    With fewer than five classes "top-5" means top-(number of classes), which is always right.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top-1 wrong, top-5 wrong, images
    batches = _batches(model, loader, transform, device, ten_crop, autocast, channels_last, desc, progress)
    for log_probs, labels in batches:
        k = min(5, log_probs.shape[1])
        top = log_probs.topk(k, dim=1).indices
        correct = top == labels[:, None]
        sums[0] += F.nll_loss(log_probs, labels, reduction="sum")
        sums[1] += (~correct[:, 0]).sum()
        sums[2] += (~correct.any(dim=1)).sum()
        sums[3] += labels.numel()
    loss, top1, top5, count = distributed.sum_across(sums).tolist()
    if count == 0:
        raise ValueError("the evaluation loader yielded no images")
    return {"loss": loss / count, "top1_error": top1 / count, "top5_error": top5 / count, "images": int(count)}


def predictions(
    model: nn.Module,
    loader: Iterable,
    transform: nn.Module,
    device: str | torch.device | None = None,
    *,
    ten_crop: bool = False,
    progress: bool = True,
) -> tuple[Tensor, Tensor]:
    """Predicted classes and true labels of every image in ``loader``, on the CPU (this process only)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    predicted, truth = [], []
    for log_probs, labels in _batches(model, loader, transform, device, ten_crop, None, False, "predicting", progress):
        predicted.append(log_probs.argmax(dim=1).cpu())
        truth.append(labels.cpu())
    return torch.cat(predicted), torch.cat(truth)


def confusion_matrix(predicted: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    if predicted.shape != labels.shape:
        raise ValueError(
            f"predicted and labels must have the same shape, got {tuple(predicted.shape)} and {tuple(labels.shape)}"
        )
    flat = labels.long() * num_classes + predicted.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def embeddings(
    model: nn.Module,
    loader: Iterable,
    transform: nn.Module,
    device: str | torch.device | None = None,
    *,
    progress: bool = True,
) -> tuple[Tensor, Tensor]:
    """``model.embed`` of every image (AlexNet: the 4096 F2 activations) and the labels, on the CPU."""
    if not hasattr(model, "embed"):
        raise ValueError(f"{type(model).__name__} has no embed method (AlexNet and CifarNet have one)")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    transform = transform.to(device)
    features, truth = [], []
    with torch.no_grad():
        for images, labels in tqdm(loader, desc="embedding", leave=False, disable=not progress):
            features.append(model.embed(transform(images.to(device))).float().cpu())
            truth.append(labels)
    return torch.cat(features), torch.cat(truth)


def nearest_neighbours(queries: Tensor, bank: Tensor, k: int = 5) -> Tensor:
    """Indices (Q, k) of the ``k`` rows of ``bank`` closest to each query in Euclidean distance.

    Section 6.1 / Figure 4: images whose last-hidden-layer vectors have a small Euclidean
    separation are judged similar by the network.
    """
    if queries.dim() != 2 or bank.dim() != 2 or queries.shape[1] != bank.shape[1]:
        raise ValueError(f"expected (Q, D) queries and (M, D) bank, got {tuple(queries.shape)} and {tuple(bank.shape)}")
    if not 1 <= k <= bank.shape[0]:
        raise ValueError(f"k must be in 1..{bank.shape[0]}, got {k}")
    return torch.cdist(queries.float(), bank.float()).topk(k, dim=1, largest=False).indices
