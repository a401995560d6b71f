"""``benchmarks/geometry.py`` on the shipped posterior: it rebuilds the model and names both ends."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd

from tests.conftest import REPO


def _script():
    spec = importlib.util.spec_from_file_location("geometry", REPO / "benchmarks" / "geometry.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_geometry_of_the_shipped_posterior(tmp_path, capsys):
    shipped = REPO / "wattscape" / "data" / "posterior" / "posterior.nc"
    assert _script().main(["--posterior", str(shipped), "--points", "2", "--out-dir", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "benchmarks_geometry.csv", comment="#")
    stiff, wide = table[table["kind"] == "stiff"], table[table["kind"] == "wide"]
    assert len(stiff) == 6 and len(wide) == 3
    assert np.all(np.isfinite(stiff["eigenvalue"])) and np.all(stiff["eigenvalue"] > 0)
    # per point, ranks come largest first; the widest sd of a correlation matrix is at least 1
    for _, rows in stiff.groupby("point"):
        assert rows.sort_values("rank")["eigenvalue"].is_monotonic_decreasing
    assert wide["sd"].iloc[0] >= 1.0 and wide["sd"].is_monotonic_decreasing
    md = (tmp_path / "benchmarks_geometry.md").read_text()
    assert "posterior.nc" in md and "stable leapfrog step" in md
    assert "fewer draws than parameters" in md  # 200 shipped draws, ~450 parameters
    assert "| 0 |" in capsys.readouterr().out
