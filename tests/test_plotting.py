"""The figures drawn from the library: Figure 2 from the layer table, descent paths of PaperSGD, and the seed-by-seed
comparisons of the recorded experiments."""

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from alexnet_lib import AlexNet, layer_table  # noqa: E402
from alexnet_lib.optim import descent_path  # noqa: E402
from alexnet_lib import stats  # noqa: E402
from alexnet_lib.plotting import (  # noqa: E402
    COLUMN_INCHES, filter_grid, image_grid, plot_architecture, plot_arm_comparison, plot_arm_curves, plot_descent_paths,
    plot_figure1, plot_overfitting, plot_seed_values, plot_train_and_test_error)

# Notebook 10's ravine: f(w) = (a w1² + b w2²) / 2 and the settings its figure uses.
A, B, LR, STEPS, START = 1.0, 100.0, 0.018, 60, (-10.0, 1.0)


def ravine(w):
    return 0.5 * (A * w[0] ** 2 + B * w[1] ** 2)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


# --- descent_path ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_descent_path_is_the_papers_update(momentum):
    # A tilted quadratic, so that the two weights' gradients mix.
    h = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    target = torch.tensor([0.5, -1.0], dtype=torch.float64)
    lr, steps = 0.1, 12
    path = descent_path(lambda w: 0.5 * (w - target) @ h @ (w - target), [2.0, 1.0], lr, momentum, steps)
    w, v = torch.tensor([2.0, 1.0], dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    expected = [w.clone()]
    for _ in range(steps):
        v = momentum * v - lr * (h @ (w - target))  # section 5, without weight decay
        w = w + v
        expected.append(w.clone())
    assert path.shape == (steps + 1, 2)
    assert torch.allclose(path, torch.stack(expected), rtol=0, atol=1e-12)


def test_descent_path_applies_no_weight_decay():
    # A flat loss: with the paper's default decay the weights would shrink.
    path = descent_path(lambda w: 0 * w.sum(), [1.0, -2.0], lr=0.1, momentum=0.9, steps=5)
    assert torch.equal(path[-1], path[0])


def test_in_the_ravine_sgd_zigzags_and_momentum_ends_closer():
    sgd = descent_path(ravine, START, LR, 0.0, STEPS)
    heavy = descent_path(ravine, START, LR, 0.9, STEPS)
    # Plain SGD crosses the floor of the ravine at every one of its first steps ...
    assert all(sgd[k, 1] * sgd[k + 1, 1] < 0 for k in range(5))
    # ... and crawls along it: still far from the minimum, on the starting side.
    assert sgd[-1, 0] < -1
    assert heavy[-1].norm() < sgd[-1].norm() / 5


def test_plot_descent_paths_draws_every_path():
    paths = {"SGD": descent_path(ravine, START, LR, 0.0, 10), "momentum": descent_path(ravine, START, LR, 0.9, 10)}
    fig = plot_descent_paths(ravine, paths)
    assert len(fig.axes) == len(paths) + 1
    for ax, path in zip(fig.axes[1:], paths.values()):
        assert torch.allclose(torch.as_tensor(ax.lines[0].get_xydata()), path)
    distances = [torch.as_tensor(line.get_ydata()) for line in fig.axes[0].lines]
    assert [len(d) for d in distances] == [11, 11]
    assert torch.allclose(distances[1], paths["momentum"].norm(dim=1))


# --- Figure 2 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{"groups": 2}, {"groups": 2, "input_size": 131, "num_classes": 10},
                                    {"groups": 1, "num_classes": 10}])
def test_architecture_labels_every_shape_from_the_layer_table(kwargs):
    torch.manual_seed(0)
    model = AlexNet(**kwargs)
    table = layer_table(model)
    labels = texts(plot_architecture(model, table))
    size = model.input_size
    assert f"3×{size}×{size}" in labels
    for row in table:
        assert "×".join(map(str, row.output_shape)) in labels, row.name
        half = (row.output_shape[0] // model.groups, *row.output_shape[1:])
        assert labels.count("×".join(map(str, half))) >= model.groups, row.name
        assert row.name in labels


def test_architecture_marks_the_layers_that_read_both_gpus():
    torch.manual_seed(0)
    fig = plot_architecture(AlexNet(groups=2))
    gids = [p.get_gid() or "" for p in fig.axes[0].patches]
    crossing = {gid.split(":")[1] for gid in gids if gid.startswith("cross:")}
    # Section 3.5: C3 and the fully connected layers read both GPUs; C2, C4 and C5 only their own.
    assert crossing == {"C3", "F1", "F2", "F3"}
    assert sum(gid == "cross:C3" for gid in gids) == 2
    assert "reads the maps of its own GPU only" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_architecture_one_column_has_no_crossings_and_readable_text():
    torch.manual_seed(0)
    fig = plot_architecture(AlexNet(groups=1))
    assert not [p for p in fig.axes[0].patches if (p.get_gid() or "").startswith("cross:")]
    assert min(t.get_fontsize() for t in fig.axes[0].texts) >= 9


@pytest.mark.parametrize("groups", [1, 2])
def test_architecture_fits_the_column_and_no_label_runs_into_a_block(groups):
    from alexnet_lib.plotting import COLUMN_INCHES

    torch.manual_seed(0)
    fig = plot_architecture(AlexNet(groups=groups))
    # Drawn no wider than the book's column, so it is not shrunk (see COLUMN_INCHES), with text of at least 9 pt.
    assert fig.get_figwidth() <= COLUMN_INCHES
    assert min(t.get_fontsize() for t in fig.axes[0].texts) >= 9
    renderer = fig.canvas.get_renderer()
    blocks = [p.get_window_extent(renderer) for p in fig.axes[0].patches if not p.get_gid()]
    left, right = min(b.x0 for b in blocks), max(b.x1 for b in blocks)
    figure = fig.bbox
    for text in fig.axes[0].texts:
        box = text.get_window_extent(renderer)
        assert figure.x0 <= box.x0 and box.x1 <= figure.x1, text.get_text()
        # The layer names and descriptions end left of the blocks, the output shapes start right of them.
        if text.get_ha() == "left":
            assert box.x1 < left, text.get_text()
        if text.get_ha() == "right":
            assert box.x0 > right, text.get_text()


# --- recorded comparisons ----------------------------------------------------------------------------------


def test_seed_values_show_every_seed_and_the_mean_with_its_interval():
    values = {"with LRN": [0.20, 0.22, 0.21], "without LRN": [0.25]}
    ax = plot_seed_values(values)
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert [list(line.get_ydata()) for line in dots] == [pytest.approx([20, 22, 21]), pytest.approx([25])]
    # The interval's bar: the caps sit at 100 x describe's 95% interval; one seed gets its mean and no bar.
    low, high = stats.describe(values["with LRN"])["ci95"]
    caps = sorted(y for line in ax.lines if line.get_marker() == "_" for y in line.get_ydata())
    assert caps == pytest.approx([100 * low, 100 * high])
    means = [line for line in ax.lines if line.get_marker() == "s"]
    assert [line.get_ydata()[0] for line in means] == pytest.approx([21, 25])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["with LRN\n(n=3)", "without LRN\n(n=1)"]


def test_arm_curves_draw_each_seed_in_its_arms_colour_and_style():
    def history(errors):
        return [{"epoch": i + 1, "clean_train_error": e} for i, e in enumerate(errors)]

    runs = {"relu": [history([0.5, 0.3]), history([0.6, 0.2])], "tanh": [history([0.7, 0.6, 0.5])]}
    ax = plot_arm_curves(runs, "clean_train_error", styles={"tanh": "--"})
    assert len(ax.lines) == 3
    assert [line.get_linestyle() for line in ax.lines] == ["-", "-", "--"]
    assert ax.lines[0].get_color() == ax.lines[1].get_color() != ax.lines[2].get_color()
    assert list(ax.lines[2].get_ydata()) == pytest.approx([70, 60, 50])
    # One legend entry per arm, not per seed.
    assert [t.get_text() for t in ax.legend().get_texts()] == ["relu", "tanh"]


def test_arm_comparison_draws_the_curves_and_the_finished_runs_test_errors():
    def run(errors, test):
        return {"history": [{"epoch": i + 1, "val_top1_error": e} for i, e in enumerate(errors)],
                "analysis": None if test is None else {"ten_crop_top1_error": test}}

    arms = {"with LRN": [run([0.5, 0.4], 0.38), run([0.6, 0.45], 0.41)], "without LRN": [run([0.55], None)]}
    curves_ax, seeds_ax = plot_arm_comparison(arms).axes
    assert len(curves_ax.lines) == 3 and list(curves_ax.lines[2].get_ydata()) == pytest.approx([55])
    # The unfinished run has no test error yet: one arm shows two seeds, the other none.
    dots = [list(line.get_ydata()) for line in seeds_ax.lines if line.get_marker() == "o"]
    assert dots == [pytest.approx([38, 41]), []]
    assert (curves_ax.get_ylabel(), seeds_ax.get_ylabel()) == ("validation top-1 error (%)",
                                                              "test, ten-crop top-1 error (%)")


def test_figure1_draws_relu_solid_tanh_dashed_and_the_target():
    def run(errors):
        return {"history": [{"epoch": i + 1, "clean_train_error": e} for i, e in enumerate(errors)]}

    ax = plot_figure1({"relu": [run([0.4, 0.2]), run([0.45, 0.24])], "tanh": [run([0.6, 0.5, 0.3])]}, 0.25)
    curves = [line for line in ax.lines if line.get_label() != "25%"]
    assert [line.get_linestyle() for line in curves] == ["-", "-", "--"]
    (target,) = [line for line in ax.lines if line.get_label() == "25%"]
    assert list(target.get_ydata()) == pytest.approx([25, 25]) and target.get_linestyle() == ":"
    assert ax.get_ylabel() == "training error (%)"


def test_overfitting_pairs_each_arms_training_and_test_lines_in_one_colour():
    def run(train, test):
        return {"history": [{"epoch": 1, "clean_train_error": train, "test_top1_error": test}]}

    ax = plot_overfitting({"dropout 0.5": [run(0.3, 0.4)], "no dropout": [run(0.1, 0.45), run(0.12, 0.44)]})
    lines = ax.get_lines()
    assert [line.get_linestyle() for line in lines] == ["--", "--", "--", "-", "-", "-"]
    assert [list(line.get_ydata()) for line in lines[3:]] == [pytest.approx([40]), pytest.approx([45]),
                                                               pytest.approx([44])]
    assert lines[0].get_color() == lines[3].get_color() != lines[1].get_color() == lines[4].get_color()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "dropout 0.5, training", "no dropout, training", "dropout 0.5, test", "no dropout, test"]


# --- plot_train_and_test_error --------------------------------------------------------------------------


def test_train_and_test_error_share_a_colour_per_run():
    runs = {arm: {"history": [{"epoch": e, "train_error": train / e, "val_top1_error": test + e / 100}
                              for e in (1, 2, 3)]}
            for arm, train, test in (("dropout", 0.6, 0.3), ("no dropout", 0.4, 0.35))}
    ax = plot_train_and_test_error(runs)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines) == ["dropout, training", "no dropout, training", "dropout, test", "no dropout, test"]
    for arm, train, test in (("dropout", 0.6, 0.3), ("no dropout", 0.4, 0.35)):
        training, testing = lines[f"{arm}, training"], lines[f"{arm}, test"]
        assert training.get_color() == testing.get_color()
        assert (training.get_linestyle(), testing.get_linestyle()) == ("--", "-")
        assert list(training.get_xdata()) == [1, 2, 3]
        assert list(training.get_ydata()) == pytest.approx([100 * train / e for e in (1, 2, 3)])
        assert list(testing.get_ydata()) == pytest.approx([100 * (test + e / 100) for e in (1, 2, 3)])
    assert lines["dropout, test"].get_color() != lines["no dropout, test"].get_color()
    assert ax.get_ylabel() == "top-1 error (%)"


# --- image grids ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", [4, 8, 12])
def test_image_grid_fits_the_column_and_keeps_its_layout(columns):
    images = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8)
    fig = image_grid(images, labels=range(12), classes=[f"class {i}" for i in range(12)], columns=columns, title="t")
    assert fig.get_size_inches()[0] <= COLUMN_INCHES + 1e-9
    assert sum(bool(ax.images) for ax in fig.axes) == 12
    assert len({round(ax.get_position().x0, 3) for ax in fig.axes}) == columns  # still `columns` pictures per row
    if columns == 4:  # a narrow grid keeps its pictures' full size
        assert fig.get_size_inches()[0] == pytest.approx(4 * 1.4)
    # The title stays clear of the first row's captions, however small the pictures became.
    renderer = fig.canvas.get_renderer()
    title_bottom = fig._suptitle.get_window_extent(renderer).y0
    assert all(ax.title.get_window_extent(renderer).y1 <= title_bottom for ax in fig.axes)


def test_filter_grid_fits_the_column():
    fig = filter_grid(torch.randn(96, 3, 11, 11), columns=16)
    assert fig.get_size_inches()[0] <= COLUMN_INCHES + 1e-9
    assert sum(bool(ax.images) for ax in fig.axes) == 96
