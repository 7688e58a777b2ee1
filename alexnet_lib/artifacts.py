"""What a trained network gives the book, small enough to commit: Figures 3 and 4 and the confusion matrix.

``python -m alexnet_lib artifacts CHECKPOINT --output FILE.npz`` reads a training checkpoint,
rebuilds its data (the same training subset, hence the same mean image) and writes one
compressed ``.npz`` of a few hundred kilobytes:

    classes                 the class names
    c1_filters              the first layer's weights (Figure 3: 96x3x11x11 for AlexNet)
    confusion               test-set confusion matrix of the centre crop (row: true, column: predicted)
    per_class_error         1 - diagonal / row sum
    top5_images, top5_labels, top5_classes, top5_probabilities
                            Figure 4 left: fixed test images, their labels, the five most probable
                            classes and their softmax probabilities
    query_images, query_labels, neighbour_images, neighbour_labels, neighbour_indices, neighbour_distances
                            Figure 4 right: fixed test images and the training images whose last hidden
                            layer (F2) vectors lie nearest in Euclidean distance (section 6.1)
    test_indices            which test images the two figures show (positions in the test set)
    epoch                   the checkpoint's epoch

The images are stored (uint8, as in the data set), so the book can draw the figures without the data.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .checkpoint import load_checkpoint
from .config import TrainConfig, build_model
from .data import DataBundle, build_data, stratified_indices
from .evaluate import confusion_matrix, embeddings, nearest_neighbours, predictions

# Figure 4 shows eight test images with their top-5 labels and five with six neighbours each.
TOP5_IMAGES, QUERY_IMAGES, NEIGHBOURS = 8, 5, 6
# Fixed choices: a class-balanced draw with its own seed, not the first images of the test set.
FIGURE_SEED = 2012


def load_trained(state: dict, *, val_limit: int | None, data_root=None, dataset: str | None = None,
                 batch_size: int = 128) -> tuple[nn.Module, DataBundle]:
    """A checkpoint's network with its weights, and its data rebuilt as it was trained, without augmentation.

    The training subset and the hold-out decide the mean image that evaluation subtracts, so both are
    rebuilt as trained; ``data_root`` and ``dataset`` default to the run's, and ``val_limit`` (None: all)
    limits the evaluation images.
    """
    config = TrainConfig.from_dict(state["config"])
    data = build_data(dataset or config.dataset, data_root if data_root is not None else config.data_root,
                      input_size=config.input_size, batch_size=batch_size, limit=config.limit,
                      val_limit=val_limit, holdout=config.holdout, augment=False, seed=config.seed)
    model = build_model(config, data.num_classes)
    model.load_state_dict(state["model"])
    return model, data


def export_artifacts(checkpoint: str | os.PathLike, output: str | os.PathLike, *, data_root=None,
                     device: str | torch.device = "cpu", progress: bool = True) -> dict[str, np.ndarray]:
    """Compute the artifacts of ``checkpoint`` and write them to ``output`` (.npz); return them."""
    state = load_checkpoint(checkpoint)
    # The test images the run was scored on (a subset where it trained on one).
    model, data = load_trained(state, data_root=data_root, val_limit=state["config"]["val_limit"])
    model = model.to(device).eval()
    test = data.test if data.test is not None else data.val
    test_images, test_labels = test.dataset.data.images, test.dataset.data.labels
    train_images, train_labels = data.train.dataset.data.images, data.train.dataset.data.labels

    predicted, labels = predictions(model, test, data.eval_transform, device, progress=progress)
    confusion = confusion_matrix(predicted, labels, data.num_classes)
    chosen = stratified_indices(test_labels, TOP5_IMAGES + QUERY_IMAGES, seed=FIGURE_SEED)
    chosen = chosen[torch.randperm(len(chosen), generator=torch.Generator().manual_seed(FIGURE_SEED))]
    top5_at, query_at = chosen[:TOP5_IMAGES], chosen[TOP5_IMAGES:]
    with torch.no_grad():
        logits = model(data.eval_transform.to(device)(test_images[top5_at].to(device))).float()
    top5 = F.softmax(logits, dim=1).topk(min(5, data.num_classes), dim=1)

    bank, _ = embeddings(model, _unshuffled(data.train), data.eval_transform, device, progress=progress)
    with torch.no_grad():
        queries = model.embed(data.eval_transform(test_images[query_at].to(device))).float().cpu()
    nearest = nearest_neighbours(queries, bank, k=NEIGHBOURS)
    distances = torch.cdist(queries, bank).gather(1, nearest)

    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    artifacts = {
        "classes": np.array(data.classes),
        "c1_filters": first.weight.detach().cpu().float().numpy(),
        "confusion": confusion.numpy(),
        "per_class_error": (1 - confusion.diag().double() / confusion.sum(dim=1).double()).numpy(),
        "test_indices": chosen.numpy(),
        "top5_images": test_images[top5_at].numpy(),
        "top5_labels": test_labels[top5_at].numpy(),
        "top5_classes": top5.indices.cpu().numpy(),
        "top5_probabilities": top5.values.cpu().numpy(),
        "query_images": test_images[query_at].numpy(),
        "query_labels": test_labels[query_at].numpy(),
        "neighbour_indices": nearest.numpy(),
        "neighbour_images": train_images[nearest].numpy(),
        "neighbour_labels": train_labels[nearest].numpy(),
        "neighbour_distances": distances.numpy(),
        "epoch": np.array(int(state["epoch"])),
    }
    output = pathlib.Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(output, **artifacts)
    return artifacts


def load_artifacts(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays :func:`export_artifacts` wrote (no pickled objects are allowed in)."""
    with np.load(path, allow_pickle=False) as stored:
        return dict(stored)


def _unshuffled(loader):
    """The training images in their stored order, in batches (the neighbour indices refer to it)."""
    dataset = loader.dataset
    return [dataset[range(start, min(start + 256, len(dataset)))] for start in range(0, len(dataset), 256)]
