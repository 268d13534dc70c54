"""The fault runs: the short one belongs to the suite; the long one only to `make fault`.

`fault_long` tests are deselected unless HUIBAO_FAULT_LONG=1 (what `make fault` sets), so
`make test` stays within its time budget.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fault_long: the long fault run (make fault; HUIBAO_FAULT_LONG=1 to select)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("HUIBAO_FAULT_LONG") == "1":
        return
    long = [item for item in items if item.get_closest_marker("fault_long")]
    if long:
        config.hook.pytest_deselected(items=long)
        items[:] = [item for item in items if not item.get_closest_marker("fault_long")]
