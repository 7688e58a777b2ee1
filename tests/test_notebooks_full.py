"""The full profile's code path (what a GPU reader runs), executed at tiny sizes.

The stored notebooks ran under the quick profile; nbval compares those.  Here each notebook whose
code depends on the profile runs once more in a fresh kernel with ``ALEXNET_PROFILE=full`` and
``ALEXNET_TINY=1`` (book.sizes: every full-profile branch, the quick sizes or smaller), and must run to
the end without an error.  Its outputs are not compared and nothing is written back.
"""

import json
import os
import pathlib

import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"


def _profile_dependent() -> list[str]:
    """The chapters whose code asks for the profile (the others run the same code under both)."""
    names = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        if "sizes(" in code or "is_quick(" in code:
            names.append(path.name)
    return names


def test_the_profile_dependent_chapters_are_found():
    # The sizes() calls are what the tiny run scales; a chapter that asks is_quick() without one would run
    # its full sizes here.
    names = _profile_dependent()
    assert "03_relu_vs_tanh.ipynb" in names and "12_training_cifar10.ipynb" in names
    for name in names:
        code = (NOTEBOOKS / name).read_text()
        assert "sizes(" in code, f"{name} asks for the profile but runs no sizes() call"


@pytest.mark.cifar10
@pytest.mark.parametrize("name", _profile_dependent())
def test_the_full_profile_runs_at_tiny_size(name, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("ALEXNET_PROFILE", "full")
    monkeypatch.setenv("ALEXNET_TINY", "1")
    # The kernel imports this checkout's alexnet_lib, as the notebooks' own tests do.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(NOTEBOOKS.parent), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
