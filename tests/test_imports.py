"""The package's import graph runs one way: no module imports one above it."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "alexnet_lib"

# Lowest first.  A module may import only modules of lower layers; a new module is placed here.
LAYERS = (
    ("paper", "files", "runtime", "distributed", "provenance", "stats", "diagnostics"),
    ("lrn", "local", "optim", "checkpoint"),
    ("model",),
    ("cifar_net", "blog", "summary", "augment"),
    ("cifar_11pct",),
    ("data", "evaluate", "timing"),
    ("config",),
    ("train",),
    ("experiments", "artifacts"),
    ("cli", "plotting", "book"),
    ("__init__", "__main__"),
)


def imports(path: pathlib.Path) -> set[str]:
    """The package modules that ``path`` imports anywhere in it (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.update([node.module.split(".")[0]] if node.module else [alias.name for alias in node.names])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("alexnet_lib."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("alexnet_lib."))
    return found


def test_every_module_has_a_layer():
    placed = [name for layer in LAYERS for name in layer]
    assert len(placed) == len(set(placed))
    assert set(placed) == {path.stem for path in PACKAGE.glob("*.py")}


def test_no_module_imports_a_module_above_it():
    level = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    upward = [
        f"{path.stem} imports {name}"
        for path in sorted(PACKAGE.glob("*.py"))
        for name in sorted(imports(path))
        if level[name] >= level[path.stem]
    ]
    assert not upward


def test_networks_are_built_by_config_alone():
    # So the CLI, the experiments and the artifacts build a network without importing the training loop.
    assert [path.stem for path in PACKAGE.glob("*.py") if "def build_model(" in path.read_text()] == ["config"]
