"""Shared test set-up: ``--run-slow`` and the location of the measured data beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Measured data shipped beside the repository (``../shared/data``); CI has it too.
SHARED_DATA = Path(os.environ.get("WATTSCAPE_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ``../shared/data``; tests that need it fail loudly when it is missing."""
    if not SHARED_DATA.is_dir():
        raise FileNotFoundError(f"measured data not found at {SHARED_DATA} (set WATTSCAPE_SHARED_DATA)")
    return SHARED_DATA
