"""``wattscape evaluate`` through the CLI, on a tiny synthetic catalog."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from wattscape.models import dims as D

from tests.inference.synthetic_runs import tiny_catalog
from wattscape.cli import main


@pytest.fixture
def posterior_nc(tmp_path, monkeypatch):
    import wattscape.inference.catalog as catalog_mod

    cat = tiny_catalog()
    monkeypatch.setattr(catalog_mod, "load_catalog", lambda path: cat)
    post = xr.Dataset({"x": ((D.CHAIN, D.DRAW), np.zeros((1, 4)))})
    fit = xr.Dataset({"n": ((D.RUN,), [1.0])}, coords={D.RUN: ["sxm-7b-a"]})
    path = tmp_path / "posterior.nc"
    az.InferenceData(posterior=post, fit_data=fit).to_netcdf(str(path))
    return path


def test_cli_refuses_seen_runs_then_scores_unseen(posterior_nc, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["evaluate", str(posterior_nc), "CAT", "--out", str(out), "--methods", "tdp", "mean", "--quiet"]
    assert main(argv) == 1
    assert "fitted on 1 of the runs" in capsys.readouterr().err
    assert not (out / "accuracy.csv").exists()
    assert main([*argv, "--runs", "pcie-7b", "sxm-70b-4", "--period", "1s", "--period", "5s"]) == 0
    table = pd.read_csv(out / "accuracy.csv")
    assert set(table["run_id"]) == {"pcie-7b", "sxm-70b-4"}
    assert set(table["period_s"]) == {1.0, 5.0}
    md = (out / "accuracy.md").read_text()
    assert md.startswith("Command: `wattscape evaluate")
    assert main([*argv, "--allow-seen"]) == 0
    assert "sxm-7b-a" in set(pd.read_csv(out / "accuracy.csv")["run_id"])


def test_cli_model_method_needs_a_fitted_model(posterior_nc, tmp_path, capsys):
    out = str(tmp_path / "e")
    argv = ["evaluate", str(posterior_nc), "CAT", "--out", out, "--runs", "pcie-7b", "--quiet"]
    assert main(argv) == 1
    assert "needs a fitted PowerModel" in capsys.readouterr().err
