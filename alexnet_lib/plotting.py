"""Figures the notebooks draw: training curves, recorded runs, confusion matrices, C1's filters, image grids."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import torch
from torch import Tensor


def plot_history(history: Sequence[dict], title: str | None = None) -> plt.Figure:
    """Loss, error rates and learning rate per epoch, from a training history."""
    if not history:
        raise ValueError("the history is empty: train for at least one epoch first")
    epochs = [r["epoch"] for r in history]
    fig, (loss_ax, error_ax, lr_ax) = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    loss_ax.plot(epochs, [r["train_loss"] for r in history], "o-", label="training")
    loss_ax.plot(epochs, [r["val_loss"] for r in history], "s-", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    error_ax.plot(epochs, [100 * r["train_error"] for r in history], "o-", label="training top-1")
    error_ax.plot(epochs, [100 * r["val_top1_error"] for r in history], "s-", label="validation top-1")
    error_ax.plot(epochs, [100 * r["val_top5_error"] for r in history], "^--", label="validation top-5")
    error_ax.set(xlabel="epoch", ylabel="error (%)", title="error rate")
    lr_ax.step(epochs, [r["lr"] for r in history], where="post")
    lr_ax.set(xlabel="epoch", ylabel="learning rate", title="learning rate", yscale="log")
    for ax in (loss_ax, error_ax):
        ax.legend()
    for ax in (loss_ax, error_ax, lr_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    return fig


def plot_runs(runs: dict[str, dict], key: str, ax: plt.Axes | None = None, style: str = "-") -> plt.Axes:
    """One line per run of a results file (``runs``: label -> run with a ``history``), ``key`` per epoch.

    Error rates (keys ending in "error") are drawn in percent.  Returns the axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
    scale = 100 if key.endswith("error") else 1
    for label, run in runs.items():
        history = run["history"]
        ax.plot([r["epoch"] for r in history], [scale * r[key] for r in history], style, label=label)
    ax.set(xlabel="epoch", ylabel=key.replace("_", " ") + (" (%)" if scale == 100 else ""))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    return ax


def plot_loss_windows(
    history: Sequence[dict], ax: plt.Axes | None = None, label: str | None = None, classes: int | None = None
) -> plt.Axes:
    """Each record's ``train_loss_curve`` (one mean per ``log_every`` batches), placed at its fraction of the epoch.

    An unfinished epoch's record says how many windows the whole epoch has (``windows_per_epoch``).
    With ``classes``, a dotted line at ln(classes), the loss of a uniform guess.  Returns the axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.4), constrained_layout=True)
    xs, ys = [], []
    for record in history:
        curve = record["train_loss_curve"]
        windows = record.get("windows_per_epoch", len(curve))
        xs += [record["epoch"] - 1 + (i + 1) / windows for i in range(len(curve))]
        ys += curve
    ax.plot(xs, ys, "o-", markersize=3, label=label)
    if classes:
        ax.axhline(math.log(classes), color="0.5", ls=":", label=f"ln {classes}: a uniform guess")
    ax.set(xlabel="epoch", ylabel="training loss")
    ax.grid(alpha=0.3)
    return ax


def plot_confusion(matrix: Tensor, classes: Sequence[str], normalise: bool = True) -> plt.Figure:
    """A confusion matrix (rows: true class, columns: predicted), as row fractions when ``normalise``."""
    n = len(classes)
    if tuple(matrix.shape) != (n, n):
        raise ValueError(f"expected a ({n}, {n}) matrix for {n} classes, got {tuple(matrix.shape)}")
    values = matrix.double()
    if normalise:
        values = values / values.sum(dim=1, keepdim=True).clamp_min(1)
    size = max(4.0, 0.5 * n + 1.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.9), constrained_layout=True)
    image = ax.imshow(values.numpy(), cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class" if normalise else "images")
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted class", ylabel="true class")
    ax.set_xticklabels(classes, rotation=45, ha="right")
    ax.set_yticklabels(classes)
    if n <= 20:
        threshold = values.max().item() / 2
        for i in range(n):
            for j in range(n):
                text = f"{values[i, j]:.2f}" if normalise else f"{int(values[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if values[i, j] > threshold else "black")
    return fig


def _to_display(images: Tensor) -> Tensor:
    """(N, 3, H, W) -> (N, H, W, 3) in [0, 1], each image stretched to its own range."""
    x = images.detach().float().cpu()
    low = x.amin(dim=(1, 2, 3), keepdim=True)
    high = x.amax(dim=(1, 2, 3), keepdim=True)
    return ((x - low) / (high - low).clamp_min(1e-12)).permute(0, 2, 3, 1)


def filter_grid(weight: Tensor, columns: int = 12, title: str | None = None) -> plt.Figure:
    """Figure 3: the first layer's kernels (e.g. C1.weight, 96x3x11x11) as colour images.

    Each kernel is stretched to the full display range on its own, as such figures usually
    are, so the pictures show shape and colour, not relative magnitude.
    """
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected kernels of shape (K, 3, h, w), got {tuple(weight.shape)}")
    return _grid(_to_display(weight), columns, labels=None, title=title, cell=0.55)


def image_grid(
    images: Tensor,
    labels: Sequence[int] | Tensor | None = None,
    classes: Sequence[str] | None = None,
    columns: int = 8,
    title: str | None = None,
) -> plt.Figure:
    """uint8 or float images (N, 3, H, W) in a grid, captioned with class names when given."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        shown = images.permute(0, 2, 3, 1).float() / 255.0
    else:
        shown = _to_display(images)
    captions = None
    if labels is not None:
        labels = [int(v) for v in labels]
        captions = [classes[v] if classes else str(v) for v in labels]
    return _grid(shown, columns, captions, title, cell=1.4)


def _grid(pictures: Tensor, columns: int, labels: Sequence[str] | None, title: str | None, cell: float) -> plt.Figure:
    n = pictures.shape[0]
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    spacing = {"wspace": 0.05, "hspace": 0.05} if labels is None else {"wspace": 0.1, "hspace": 0.35}
    fig, axes = plt.subplots(
        rows, columns, figsize=(cell * columns, cell * rows + (0.4 if title else 0)), squeeze=False, gridspec_kw=spacing
    )
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < n:
            ax.imshow(pictures[index].numpy(), interpolation="nearest")
            if labels is not None:
                ax.set_title(labels[index], fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_top5(images, labels, top5_classes, top5_probabilities, classes: Sequence[str], columns: int = 4
              ) -> plt.Figure:
    """Figure 4, left: test images, each above the bars of its five most probable classes.

    The true class's bar is red, as in the paper; its name is written under the image.
    """
    n = len(images)
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(2 * rows, columns, figsize=(2.6 * columns, 3.9 * rows),
                             gridspec_kw={"height_ratios": [1.2, 1] * rows}, squeeze=False, constrained_layout=True)
    for index in range(rows * columns):
        picture, bars = axes[2 * (index // columns), index % columns], axes[2 * (index // columns) + 1, index % columns]
        picture.axis("off")
        if index >= n:
            bars.axis("off")
            continue
        truth = int(labels[index])
        picture.imshow(torch.as_tensor(images[index]).permute(1, 2, 0).numpy(), interpolation="nearest")
        picture.set_title(classes[truth], fontsize=10)
        predicted = [int(c) for c in top5_classes[index]]
        colours = ["tab:red" if c == truth else "tab:blue" for c in predicted]
        bars.barh(range(len(predicted)), [float(p) for p in top5_probabilities[index]], color=colours)
        bars.set(xlim=(0, 1), yticks=range(len(predicted)))
        bars.set_yticklabels([classes[c] for c in predicted], fontsize=9)
        bars.invert_yaxis()
        bars.tick_params(axis="x", labelsize=8)
    return fig


def plot_neighbours(query_images, neighbour_images, query_labels, neighbour_labels, classes: Sequence[str]
                    ) -> plt.Figure:
    """Figure 4, right: each test image (first column) beside the training images nearest to it in F2."""
    rows, k = len(query_images), len(neighbour_images[0])
    fig, axes = plt.subplots(rows, k + 1, figsize=(1.5 * (k + 1), 1.65 * rows), squeeze=False,
                             gridspec_kw={"wspace": 0.08, "hspace": 0.4})
    for row in range(rows):
        pictures = [query_images[row], *neighbour_images[row]]
        names = [int(query_labels[row]), *[int(v) for v in neighbour_labels[row]]]
        for column, (picture, name) in enumerate(zip(pictures, names)):
            ax = axes[row, column]
            ax.imshow(torch.as_tensor(picture).permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(classes[name], fontsize=8, color="black" if column == 0 or name == names[0] else "tab:red")
            if column == 0:
                for spine in ax.spines.values():
                    spine.set(color="tab:blue", linewidth=2.5)
    return fig


def plot_lr_probe(runs: dict[str, dict], layers: Sequence[str] = ("C1", "F3"),
                  dead_layers: Sequence[str] = ("C5", "F1", "F2")) -> plt.Figure:
    """The first batches of runs at several learning rates (``results/alexnet_lr.json``'s runs), in three panels.

    Left: the training loss, one mean per ``log_every`` batches (dots: single recorded steps), against ln 10.  Middle: each
    layer of ``layers``' update/weight ratio per step.  Right: the fraction of dead units of
    ``dead_layers`` on the held-out probe batch.  One colour per run.
    """
    fig, (loss_ax, step_ax, dead_ax) = plt.subplots(1, 3, figsize=(14, 3.8), constrained_layout=True)
    styles = ("-", "--", ":", "-.")
    for colour, (label, run) in enumerate(runs.items()):
        every = run["config"]["log_every"]
        curve = run["partial"]["train_loss_curve"]
        loss_ax.plot([every * (i + 1) for i in range(len(curve))], curve, color=f"C{colour}", label=label)
        # The recorded steps' own losses: a window's mean hides how high single steps went.
        loss_ax.plot([s["batch"] for s in run["steps"]], [s["loss"] for s in run["steps"]], ".", color=f"C{colour}",
                     alpha=0.4, markersize=4)
        for style, layer in zip(styles, layers):
            step_ax.plot([s["batch"] for s in run["steps"]], [s["layers"][layer]["update_ratio"] for s in run["steps"]],
                         color=f"C{colour}", ls=style, label=f"{label}, {layer}")
        for style, layer in zip(styles, dead_layers):
            dead_ax.plot([p["batch"] for p in run["probes"]], [p["dead_fraction"][layer] for p in run["probes"]],
                         color=f"C{colour}", ls=style, marker="o", markersize=3, label=f"{label}, {layer}")
    loss_ax.axhline(math.log(10), color="0.5", ls=":", label="ln 10: a uniform guess")
    loss_ax.set(xlabel="batch", ylabel="training loss", yscale="log", title="training loss")
    step_ax.set(xlabel="batch", ylabel="|update| / |weights|", yscale="log", title="size of each step, per layer")
    dead_ax.set(xlabel="batch", ylabel="fraction of units", ylim=(-0.03, 1.03), title="dead units (held-out batch)")
    for ax in (loss_ax, step_ax, dead_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig
