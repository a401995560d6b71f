"""Fixtures shared by the experiment tests."""

from __future__ import annotations

import pytest

from experiments import _common as C
from tests.inference.synthetic_runs import tiny_catalog


@pytest.fixture
def tiny(monkeypatch):
    """The tiny synthetic catalog, standing in for the energy-inference catalog of every experiment."""
    cat = tiny_catalog()
    monkeypatch.setattr(C, "energy_inference_catalog", lambda path=None: cat)
    return cat
