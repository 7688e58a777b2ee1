"""Figures the notebooks draw: training curves, recorded runs, confusion matrices, C1's filters, image grids,
the architecture (Figure 2) and optimisation paths."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, Rectangle
from matplotlib.ticker import MaxNLocator
import torch
from torch import Tensor, nn

from . import stats
from .lrn import LocalResponseNorm
from .summary import LayerTable, layer_table

# The book's text column is about 675 px wide at a 1280 px window, and a notebook figure is drawn at 100 dpi: a
# figure at most 840 px wide is shown at 80% of its size or more (tests/test_book.py checks it). The inline
# backend's tight bounding box adds about 10 px to a constrained layout, hence a little less than 8.4 in.
COLUMN_INCHES = 8.2


def plot_history(history: Sequence[dict], title: str | None = None) -> plt.Figure:
    """Loss and error rates per epoch side by side, the learning rate under them, from a training history."""
    if not history:
        raise ValueError("the history is empty: train for at least one epoch first")
    epochs = [r["epoch"] for r in history]
    # Two panels side by side and the learning rate under them, at the column's width.
    fig = plt.figure(figsize=(COLUMN_INCHES, 6.4), constrained_layout=True)
    grid = fig.add_gridspec(2, 2, height_ratios=(1.35, 1))
    loss_ax, error_ax, lr_ax = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])
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
        ax.legend(fontsize=9)
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
    for label, run in runs.items():
        _plot_per_epoch(ax, run["history"], key, style, label=label)
    _epoch_axes(ax, key)
    return ax


def _plot_per_epoch(ax: plt.Axes, history: Sequence[dict], key: str, style: str, **line) -> None:
    scale = 100 if key.endswith("error") else 1
    ax.plot([r["epoch"] for r in history], [scale * r[key] for r in history], style, **line)


def _epoch_axes(ax: plt.Axes, key: str) -> None:
    """Whole epochs along x, ``key`` along y (error rates in percent, as :func:`_plot_per_epoch` draws them)."""
    ax.set(xlabel="epoch", ylabel=key.replace("_", " ") + (" (%)" if key.endswith("error") else ""))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def plot_seed_values(values: dict[str, Sequence[float]], ax: plt.Axes | None = None, ylabel: str = "test error (%)",
                     scale: float = 100) -> plt.Axes:
    """Each arm's values, one dot per seed, beside their mean and its 95% t interval (a bar; none for one seed).

    Dots are spread sideways by seed so that equal values stay visible.  Returns the axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.6), constrained_layout=True)
    for position, (arm, arm_values) in enumerate(values.items()):
        d = stats.describe(arm_values)
        n = d["n"]
        spread = [position - 0.25 + 0.2 * (i / max(n - 1, 1)) for i in range(n)]
        ax.plot(spread, [scale * v for v in arm_values], "o", color=f"C{position}", alpha=0.7)
        if d["ci95"] is not None:
            low, high = (scale * v for v in d["ci95"])
            ax.errorbar(position + 0.15, scale * d["mean"], yerr=[[scale * d["mean"] - low], [high - scale * d["mean"]]],
                        fmt="s", color=f"C{position}", capsize=6, markersize=7)
        elif n:
            ax.plot(position + 0.15, scale * d["mean"], "s", color=f"C{position}", markersize=7)
    ax.set_xticks(range(len(values)), [f"{arm}\n(n={len(v)})" for arm, v in values.items()])
    ax.set(xlim=(-0.6, len(values) - 0.4), ylabel=ylabel)
    ax.grid(alpha=0.3, axis="y")
    return ax


def plot_arm_curves(histories: dict[str, Sequence[Sequence[dict]]], key: str, ax: plt.Axes | None = None,
                    styles: dict[str, str] | None = None, suffix: str = "") -> plt.Axes:
    """``key`` per epoch for every run of every arm (``histories``: arm -> one history per seed), a colour per arm.

    ``styles`` gives an arm its line style (Figure 1: ReLU solid, tanh dashed); ``suffix`` is added to the legend
    labels, for a second call on the same axes with another key.  Error rates are drawn in percent.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.8), constrained_layout=True)
    for colour, (arm, runs) in enumerate(histories.items()):
        style = (styles or {}).get(arm, "-")
        for seed, history in enumerate(runs):
            _plot_per_epoch(ax, history, key, style, color=f"C{colour}", alpha=0.8,
                            label=f"{arm}{suffix}" if seed == 0 else None)
    _epoch_axes(ax, key)
    return ax


def plot_arm_comparison(arms: dict[str, Sequence[dict]], curve_key: str = "val_top1_error",
                        test_key: str = "ten_crop_top1_error") -> plt.Figure:
    """A two-arm experiment's runs (``experiments.runs_by_arm``) side by side, in two panels.

    Left: every run's ``curve_key`` per epoch (validation on held-out training images), a colour per arm.
    Right: the test error ``test_key`` each finished run measured once at the end (its ``analysis``), a dot
    per seed, with each arm's mean and 95% interval.
    """
    fig, (curves_ax, seeds_ax) = plt.subplots(1, 2, figsize=(COLUMN_INCHES, 3.6), constrained_layout=True)
    plot_arm_curves(_histories(arms), curve_key, curves_ax)
    curves_ax.set(title="during training: held-out training images", ylabel=_readable(curve_key) + " (%)")
    curves_ax.legend()
    plot_seed_values({arm: [run["analysis"][test_key] for run in runs if run["analysis"]] for arm, runs in arms.items()},
                     seeds_ax, ylabel=_readable(test_key) + " (%)")
    seeds_ax.set(title="at the end: the test set, once per run")
    return fig


def plot_figure1(arms: dict[str, Sequence[dict]], target: float, ax: plt.Axes | None = None) -> plt.Axes:
    """Figure 1 as the paper draws it: each run's training error per epoch (on the un-augmented training
    images), ReLU solid and tanh dashed, every seed; ``target`` (25%) as a dotted line.  ``arms``: activation ->
    runs (:func:`experiments.runs_by_arm`); an arm named "tanh..." ("tanh lr=0.01") is dashed."""
    ax = plot_arm_curves(_histories(arms), "clean_train_error", ax,
                         styles={arm: "--" for arm in arms if arm.startswith("tanh")})
    ax.axhline(100 * target, color="grey", linestyle=":", label=f"{target:.0%}")
    ax.set(ylabel="training error (%)")
    ax.legend()
    return ax


def plot_overfitting(arms: dict[str, Sequence[dict]], ax: plt.Axes | None = None) -> plt.Axes:
    """Each run's training error (un-augmented images, dashed) and test error (solid) per epoch, a colour per arm:
    the gap between an arm's two kinds of line is its overfitting.  ``arms`` as for :func:`plot_figure1`."""
    histories = _histories(arms)
    ax = plot_arm_curves(histories, "clean_train_error", ax, styles=dict.fromkeys(histories, "--"),
                         suffix=", training")
    plot_arm_curves(histories, "test_top1_error", ax, suffix=", test")
    ax.set(ylabel="top-1 error (%)")
    ax.legend()
    return ax


def _histories(arms: dict[str, Sequence[dict]]) -> dict[str, list[Sequence[dict]]]:
    """Each arm's runs (:func:`experiments.runs_by_arm`) as their histories, for :func:`plot_arm_curves`."""
    return {arm: [run["history"] for run in runs] for arm, runs in arms.items()}


def _readable(key: str) -> str:
    """A results file's key as an axis label: "val_top1_error" -> "validation top-1 error"."""
    words = key.replace("top1", "top-1").replace("top5", "top-5").replace("ten_crop", "test, ten-crop").split("_")
    return " ".join({"val": "validation"}.get(word, word) for word in words)


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
    # At most the column's width: a wider grid keeps its layout, with smaller pictures (the captions keep their size).
    cell = min(cell, COLUMN_INCHES / columns)
    spacing = {"wspace": 0.05, "hspace": 0.05} if labels is None else {"wspace": 0.1, "hspace": 0.35}
    height = cell * rows + (0.4 if title else 0)
    if title:  # room above the pictures (and their captions) for the title, whatever the pictures' size
        spacing["top"] = 1 - (0.3 if labels is None else 0.45) / height
    fig, axes = plt.subplots(rows, columns, figsize=(cell * columns, height), squeeze=False, gridspec_kw=spacing)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < n:
            ax.imshow(pictures[index].numpy(), interpolation="nearest")
            if labels is not None:
                ax.set_title(labels[index], fontsize=8)
    if title:
        fig.suptitle(title, y=1 - 0.05 / height, va="top")
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

    Top: the training loss, one mean per ``log_every`` batches (dots: single recorded steps), against ln 10.  Middle: each
    layer of ``layers``' update/weight ratio per step.  Bottom: the fraction of dead units of
    ``dead_layers`` on the held-out probe batch.  One colour per run.
    """
    # One panel above the other over the same batches, each with its legend on the right, at the column's width.
    fig, (loss_ax, step_ax, dead_ax) = plt.subplots(3, 1, figsize=(COLUMN_INCHES, 8.4), sharex=True,
                                                    constrained_layout=True)
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
    loss_ax.set(ylabel="training loss", yscale="log", title="training loss")
    step_ax.set(ylabel="|update| / |weights|", yscale="log", title="size of each step, per layer")
    dead_ax.set(xlabel="batch", ylabel="fraction of units", ylim=(-0.03, 1.03), title="dead units (held-out batch)")
    for ax in (loss_ax, step_ax, dead_ax):
        ax.grid(alpha=0.3)
        ax.tick_params(labelbottom=True)
        ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


# Figure 2's blocks, coloured by what the layer does.
_KIND_COLOURS = {"Conv2d": "#9ecae1", "LocalResponseNorm": "#e0e0e0", "MaxPool2d": "#a1d99b", "Linear": "#fdd0a2"}
_CROSS_COLOUR = "tab:red"


def _shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(n) for n in shape)


def _describe_layer(layer: nn.Module) -> str:
    """What a layer does, read off the module itself so the figure follows the code."""
    if isinstance(layer, nn.Conv2d):
        # Kernels as section 3.5 writes them, width × height × depth: the depth is what grouping halves.
        (kh, kw), (stride, _) = layer.kernel_size, layer.stride
        kernels = f"{layer.out_channels} kernels {kh}×{kw}×{layer.in_channels // layer.groups}"
        return kernels + (f", stride {stride}" if stride != 1 else "")
    if isinstance(layer, nn.MaxPool2d):
        return f"max-pool {layer.kernel_size}×{layer.kernel_size}, stride {layer.stride}"
    if isinstance(layer, LocalResponseNorm):
        return f"response normalisation, n = {layer.size}"
    if isinstance(layer, nn.Linear):
        return "fully connected"
    return type(layer).__name__


def _reads_both_halves(layer: nn.Module) -> bool:
    """Whether each half of the layer's outputs depends on both halves of its inputs (section 3.2)."""
    if isinstance(layer, nn.Linear):
        return True
    if isinstance(layer, (nn.Conv2d, LocalResponseNorm)):
        return layer.groups == 1
    # Max-pooling (and an Identity standing in for a switched-off LRN) works on each map by itself.
    return False


def plot_architecture(model: nn.Module, table: LayerTable | None = None) -> plt.Figure:
    """Figure 2 of the paper, drawn from ``model`` and its layer table (computed when not given).

    One row per layer, top to bottom, after the input image.  For ``AlexNet(groups=2)`` each
    layer is split into two half-width blocks, one per GPU, labelled with that GPU's share of the
    output; black arrows join a block to the one below it on the same GPU, and red arrows cross
    between the columns where a layer reads the maps of both GPUs.  The right-hand column is the
    whole layer's output shape, as in the layer table.
    """
    table = layer_table(model) if table is None else table
    columns = getattr(model, "groups", 1)
    if columns not in (1, 2):
        raise ValueError(f"draws one column or two (groups 1 or 2), got groups={columns}")
    # Section 3.2: "we put half of the kernels (or neurons) on each GPU".
    for row in table:
        if row.output_shape[0] % columns:
            raise ValueError(f"{row.name}'s {row.output_shape[0]} outputs do not split over {columns} GPUs")

    rows = len(table) + 1
    step, height = 1.0, 0.5  # a row's pitch and a block's height, in data units: the gap shows the arrows
    # x from 0 to 12: layer names and what each layer does on the left, the blocks, the output shapes on the right.
    centres = [5.15, 7.85] if columns == 2 else [6.5]
    width = 2.5 if columns == 2 else 5.2
    fig, ax = plt.subplots(figsize=(COLUMN_INCHES, 0.55 * rows + (1.5 if columns == 2 else 1.2)))  # 1.5: the legend
    ax.set(xlim=(0, 12), ylim=(-(rows - 1) * step - 0.55, 1.05))
    ax.axis("off")

    def top(i: int) -> float:
        return -i * step + height / 2

    def bottom(i: int) -> float:
        return -i * step - height / 2

    def arrow(start, end, colour, gid):
        patch = FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color=colour, lw=1.6,
                                shrinkA=0, shrinkB=0, zorder=1)
        patch.set_gid(gid)
        ax.add_patch(patch)

    header = dict(fontsize=11, fontweight="bold", va="center")
    ax.text(0.1, 0.75, "layer", ha="left", **header)
    ax.text(11.9, 0.75, "output (C×H×W)", ha="right", **header)
    for g, x in enumerate(centres):
        ax.text(x, 0.75, f"GPU {g + 1}" if columns == 2 else "one GPU", ha="center", **header)

    # The input: the whole image goes to every GPU.
    input_shape = (3, model.input_size, model.input_size)
    span = (centres[0] - width / 2, centres[-1] + width / 2)
    ax.add_patch(Rectangle((span[0], -height / 2), span[1] - span[0], height, fc="white", ec="0.3", zorder=2))
    ax.text(sum(span) / 2, 0, f"image {_shape_text(input_shape)}", ha="center", va="center", fontsize=10)
    ax.text(0.1, 0, "input", ha="left", va="center", fontsize=10, fontweight="bold")
    ax.text(11.9, 0, _shape_text(input_shape), ha="right", va="center", fontsize=10)

    for i, row in enumerate(table, start=1):
        layer = getattr(model, row.name)
        y = -i * step
        share = (row.output_shape[0] // columns, *row.output_shape[1:])
        for x in centres:
            ax.add_patch(Rectangle((x - width / 2, y - height / 2), width, height, zorder=2,
                                   fc=_KIND_COLOURS.get(row.kind, "white"), ec="0.3"))
            ax.text(x, y, _shape_text(share), ha="center", va="center", fontsize=10, zorder=3)
        ax.text(0.1, y + 0.13, row.name, ha="left", va="center", fontsize=10, fontweight="bold")
        ax.text(0.1, y - 0.2, _describe_layer(layer), ha="left", va="center", fontsize=9, color="0.25")
        ax.text(11.9, y, _shape_text(row.output_shape), ha="right", va="center", fontsize=10)
        cross = i > 1 and columns == 2 and _reads_both_halves(layer)
        for g, x in enumerate(centres):
            arrow((x, bottom(i - 1)), (x, top(i)), "0.2", f"own:{row.name}")
            if cross:
                arrow((centres[1 - g], bottom(i - 1)), (x, top(i)), _CROSS_COLOUR, f"cross:{row.name}")

    if columns == 2:
        handles = [Line2D([], [], color="0.2", lw=1.6, label="reads the maps of its own GPU only"),
                   Line2D([], [], color=_CROSS_COLOUR, lw=1.6, label="reads both GPUs' maps: the GPUs communicate")]
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=1, fontsize=10, frameon=False)
    fig.tight_layout()
    return fig


def plot_descent_paths(loss: Callable[[Tensor], Tensor], paths: dict[str, Tensor],
                       minimum: Sequence[float] = (0.0, 0.0)) -> plt.Figure:
    """Paths of two-weight descents (``paths``: label -> (steps + 1, 2) points) over the contours of ``loss``.

    ``loss`` is evaluated on a stacked grid, ``loss(torch.stack([x, y]))``, so it should index
    its argument as ``w[0]`` and ``w[1]``.  Above: one panel per path, all on the same grid and
    at equal scale in both directions, so that every step meets the contours at its true angle.
    Below: each path's distance to ``minimum`` per step.
    """
    points = torch.cat(list(paths.values()))
    centre = torch.tensor(minimum, dtype=points.dtype)
    low, high = points.amin(dim=0), points.amax(dim=0)
    margin = 0.06 * (high - low).max()
    x = torch.linspace(low[0] - margin, high[0] + margin, 400, dtype=torch.float64)
    y = torch.linspace(low[1] - margin, high[1] + margin, 200, dtype=torch.float64)
    grid_y, grid_x = torch.meshgrid(y, x, indexing="ij")
    values = loss(torch.stack([grid_x, grid_y]))
    # Levels halving from ring to ring: evenly spaced levels would leave the floor of the ravine empty.
    top = values.max().item()
    levels = [top * 0.5 ** k for k in range(14, 0, -1)]

    # The paths one above the other at the column's width, the distances under them.
    fig = plt.figure(figsize=(COLUMN_INCHES, 2.2 * len(paths) + 3.0), constrained_layout=True)
    grid = fig.add_gridspec(len(paths) + 1, 1, height_ratios=(1,) * len(paths) + (1.25,))
    distance_ax = fig.add_subplot(grid[len(paths), 0])
    for row, (label, path) in enumerate(paths.items()):
        ax = fig.add_subplot(grid[row, 0])
        ax.contour(grid_x.numpy(), grid_y.numpy(), values.numpy(), levels=levels, colors="0.75", linewidths=0.8)
        ax.plot(path[:, 0], path[:, 1], "o-", color=f"C{row}", ms=3, lw=1.2)
        ax.plot(*path[0], "ks", ms=6)
        ax.plot(*path[-1], "o", color=f"C{row}", ms=8, mec="k")
        ax.plot(*minimum, "k*", ms=12)
        ax.set(aspect="equal", ylabel="$w_2$")
        ax.set_title(f"{label}: {len(path) - 1} steps", fontsize=10)
        ax.tick_params(labelsize=9)
        distance_ax.plot((path - centre).norm(dim=1), color=f"C{row}", label=label)
    ax.set_xlabel("$w_1$")
    fig.suptitle("square: start    star: minimum    large dot: where the path ends", fontsize=10)
    distance_ax.set(xlabel="step", ylabel="distance to the minimum", yscale="log", title="distance to the minimum")
    distance_ax.grid(alpha=0.3)
    distance_ax.legend(fontsize=9)
    distance_ax.tick_params(labelsize=9)
    return fig


def plot_train_and_test_error(runs: dict[str, dict], ax: plt.Axes | None = None) -> plt.Axes:
    """Each run's training error (dashed) and test error (solid) per epoch, a run's two lines in one colour.

    ``runs`` as for :func:`plot_runs`.  Sharing the colour keeps a run's two curves together, so that the gap
    between them, the overfitting that dropout (section 4.2) fights, reads at a glance.  Returns the axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
    plot_runs({f"{label}, training": run for label, run in runs.items()}, "train_error", ax, "--")
    ax.set_prop_cycle(None)  # the test lines restart the colours, so each matches its run's training line
    plot_runs({f"{label}, test": run for label, run in runs.items()}, "val_top1_error", ax)
    ax.set(ylabel="top-1 error (%)")
    return ax
