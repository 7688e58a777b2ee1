"""Test-session hooks for the unit tests and the notebooks (pytest --nbval) alike.

Without CIFAR-10 under the data root, everything that needs it is skipped as one group, with one
line saying why and how to get the data: the tests marked ``cifar10`` and every cell of the
notebooks in NEEDS_CIFAR10, whose stored outputs are CIFAR-10's (on the digits fallback they
would differ).  The other notebooks run on data that scikit-learn ships.
"""

from __future__ import annotations

import pytest

from alexnet_lib.data import find_cifar10, resolve_data_root

NEEDS_CIFAR10 = ("01_data.ipynb", "03_relu_vs_tanh.ipynb", "12_training_cifar10.ipynb")


def _missing_cifar10() -> str | None:
    """Why CIFAR-10 can't be used and how to get it, or None when it is there."""
    root = resolve_data_root()
    if find_cifar10(root) is not None:
        return None
    return (f"CIFAR-10 is not under the data root {root}: get it with `python -m alexnet_lib data` "
            "(make test runs it) or set ALEXNET_DATA to a folder that holds it")


def _skip_reason() -> str:
    # Short, since pytest -ra repeats it once per file; the summary line below says it all once.
    return f"needs CIFAR-10, not under {resolve_data_root()}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cifar10: needs real CIFAR-10 under the data root (skipped without it)")


def pytest_report_header(config: pytest.Config) -> str:
    reason = _missing_cifar10()
    if reason:
        return f"data: {reason}; the tests and notebooks that need it are skipped"
    return f"data: CIFAR-10 under {resolve_data_root()}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _missing_cifar10() is None:
        return
    for item in items:
        if item.get_closest_marker("cifar10") or item.path.name in NEEDS_CIFAR10:
            item.add_marker(pytest.mark.skip(reason=_skip_reason()))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    reason = _missing_cifar10()
    skipped = [report for report in terminalreporter.stats.get("skipped", [])
               if isinstance(report.longrepr, tuple) and report.longrepr[2] == f"Skipped: {_skip_reason()}"]
    if reason and skipped:
        terminalreporter.write_line(f"{len(skipped)} tests and notebook cells skipped: {reason}")
