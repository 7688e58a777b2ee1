"""The figures' data of a trained checkpoint (alexnet_lib.artifacts), made by a committed command."""

import numpy as np
import pytest
import torch

from alexnet_lib.artifacts import NEIGHBOURS, QUERY_IMAGES, TOP5_IMAGES, export_artifacts, load_artifacts
from alexnet_lib.checkpoint import load_checkpoint
from alexnet_lib.cli import main
from alexnet_lib.config import TrainConfig, build_model
from alexnet_lib.data import build_data
from alexnet_lib.evaluate import embeddings
from alexnet_lib.train import train

pytestmark = pytest.mark.usefixtures("few_threads")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    config = TrainConfig(model="cifar-net", dataset="digits", epochs=1, batch_size=16, limit=160, val_limit=50,
                         progress=False, output_dir=str(out))
    train(config)
    return out / "checkpoint.pt"


def test_artifacts_match_a_direct_computation(run, tmp_path):
    written = export_artifacts(run, tmp_path / "a.npz", progress=False)
    loaded = load_artifacts(tmp_path / "a.npz")
    assert set(loaded) == set(written)
    state = load_checkpoint(run)
    assert np.array_equal(loaded["c1_filters"], state["model"]["conv1.weight"].numpy())
    confusion = loaded["confusion"]
    assert confusion.shape == (10, 10) and confusion.sum() == 50  # val_limit test images, each counted once
    assert np.allclose(loaded["per_class_error"], 1 - confusion.diagonal() / confusion.sum(axis=1))
    assert loaded["top5_classes"].shape == (TOP5_IMAGES, 5)
    assert np.all(np.diff(loaded["top5_probabilities"], axis=1) <= 0)  # most probable first
    assert loaded["neighbour_images"].shape == (QUERY_IMAGES, NEIGHBOURS, 3, 8, 8)
    # The neighbours are the nearest training images in the embedding, found here by brute force.
    config = TrainConfig.from_dict(state["config"])
    data = build_data("digits", input_size=32, batch_size=16, limit=160, val_limit=50, augment=False)
    model = build_model(config, 10)
    model.load_state_dict(state["model"])
    bank, _ = embeddings(model, [(data.train.dataset.data.images, data.train.dataset.data.labels)],
                         data.eval_transform, progress=False)
    queries = model.eval().embed(data.eval_transform(torch.from_numpy(loaded["query_images"]))).detach()
    distances = ((queries[:, None, :] - bank[None]) ** 2).sum(-1).sqrt()
    assert np.allclose(np.sort(distances.numpy(), axis=1)[:, :NEIGHBOURS], loaded["neighbour_distances"], rtol=1e-4)
    assert np.array_equal(data.train.dataset.data.images[loaded["neighbour_indices"]].numpy(),
                          loaded["neighbour_images"])


def test_figure_4_from_the_artifacts(run, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from alexnet_lib.plotting import plot_neighbours, plot_top5

    a = export_artifacts(run, tmp_path / "a.npz", progress=False)
    classes = [str(c) for c in a["classes"]]
    left = plot_top5(a["top5_images"], a["top5_labels"], a["top5_classes"], a["top5_probabilities"], classes)
    bars = [ax for ax in left.axes if ax.patches]
    assert len(bars) == TOP5_IMAGES and all(len(ax.patches) == 5 for ax in bars)
    # The true class is red wherever it is among the five.
    for ax, truth, top in zip(bars, a["top5_labels"], a["top5_classes"]):
        red = [i for i, patch in enumerate(ax.patches) if patch.get_facecolor()[:3] == matplotlib.colors.to_rgb("tab:red")]
        assert red == [i for i, c in enumerate(top) if c == truth]
    right = plot_neighbours(a["query_images"], a["neighbour_images"], a["query_labels"], a["neighbour_labels"], classes)
    assert sum(bool(ax.images) for ax in right.axes) == QUERY_IMAGES * (NEIGHBOURS + 1)
    matplotlib.pyplot.close("all")


def test_the_artifacts_command(run, tmp_path, capsys):
    assert main(["artifacts", str(run), "--output", str(tmp_path / "b.npz")]) == 0
    assert "wrote" in capsys.readouterr().out and load_artifacts(tmp_path / "b.npz")["epoch"] == 1
