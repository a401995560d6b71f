"""Tests of ``wattscape.inference.evaluate`` with a stand-in generator and a tiny synthetic catalog."""

from __future__ import annotations

import argparse

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from wattscape.inference import baselines as B
from wattscape.inference import evaluate as E
from wattscape.models import dims as D

from tests.inference.synthetic_runs import tiny_catalog
from wattscape.cli.evaluate import parse_period


def standin_generator(run: xr.Dataset, requests: pd.DataFrame, n_draws: int, seed: int) -> xr.DataArray:
    """Workload-driven stand-in: per-GPU idle/active levels from the run's card, AR(1) noise per draw."""
    rng = np.random.default_rng(seed)
    codes = B.phases_from_requests(run[D.TIME].values, requests)
    idle = 32.0 if "PCIe" in run.attrs["gpu_model"] else 55.0
    sxm = 315.0 if run.attrs["n_gpus"] == 1 else 141.5
    active = {"A100-SXM4-40GB": sxm}.get(run.attrs["gpu_model"], 235.0)
    level = np.where(codes == D.STATE_CODES[D.ACTIVE], active, idle)
    n = level.size
    noise = np.zeros((n_draws, n))
    e = rng.standard_normal((n_draws, n)) * 5.0
    for k in range(1, n):
        noise[:, k] = 0.8 * noise[:, k - 1] + e[:, k]
    scale = rng.normal(1.0, 0.02, (n_draws, 1))
    total = (level[None, :] * scale + noise) * run.attrs["n_gpus"]
    return xr.DataArray(total, dims=[D.DRAW, D.TIME], coords={D.TIME: run[D.TIME].values}, name=D.POWER)


def _idata_fitted_on(run_ids):
    post = xr.Dataset({"x": ((D.CHAIN, D.DRAW), np.zeros((1, 5)))})
    fit = xr.Dataset({"n": ((D.RUN,), np.ones(len(run_ids)))}, coords={D.RUN: list(run_ids)})
    return az.InferenceData(posterior=post, fit_data=fit)


def test_evaluate_writes_tables_with_model_and_baselines(tmp_path):
    cat = tiny_catalog()
    table = E.evaluate(
        None, cat, tmp_path, generator=standin_generator, n_draws=20, seed=1, periods_s=(1.0, 5.0),
        progress=False,
    )
    assert list(table.columns[: len(E.CSV_COLUMNS)]) == list(E.CSV_COLUMNS)
    assert len(table) == 4 * 5 * 2  # runs x methods x periods
    assert set(table["method"]) == set(E.DEFAULT_METHODS)
    model = table[table["method"] == E.MODEL]
    base = table[table["method"] != E.MODEL]
    assert model["energy_q50_j"].notna().all() and base["energy_q50_j"].isna().all()
    # the stand-in knows the levels: it beats the nameplate by far
    one_s = table[table["period_s"] == 1.0].groupby("method")["energy_error_pct"].median()
    assert one_s["model"] < 3.0 < one_s["tdp"]
    assert one_s["model"] < one_s["splitwise"]
    acf = table[table["period_s"] == 1.0].groupby("method")["acf_r2"].median()
    assert acf["model"] > 0.5
    csv = pd.read_csv(tmp_path / "accuracy.csv")
    assert len(csv) == len(table)
    assert csv.loc[csv["method"] == "tdp", "energy_q05_j"].isna().all()
    md = (tmp_path / "accuracy.md").read_text()
    assert "## period 1 s" in md and "| tdp |" in md and "energy_in_90" in md


def test_baselines_only_without_a_model(tmp_path):
    cat = tiny_catalog()
    table = E.evaluate(None, cat, None, methods=B.BASELINES, runs=["pcie-7b", "sxm-7b-a"], progress=False)
    assert set(table["run_id"]) == {"pcie-7b", "sxm-7b-a"}
    mean_rows = table[table["method"] == "mean"]
    assert mean_rows.set_index("run_id").loc["sxm-7b-a", "detail"].startswith("pool=configuration")
    assert not (tmp_path / "accuracy.csv").exists()


def test_refuses_runs_the_posterior_saw(tmp_path):
    cat = tiny_catalog()
    idata = _idata_fitted_on(["sxm-7b-a", "elsewhere"])
    assert E.fitted_run_ids(idata) == {"sxm-7b-a", "elsewhere"}
    with pytest.raises(E.SeenRunsError, match="sxm-7b-a"):
        E.evaluate(idata, cat, tmp_path, generator=standin_generator, progress=False)
    assert not (tmp_path / "accuracy.csv").exists()
    # unseen runs only: fine; allow_seen: fine
    E.evaluate(idata, cat, None, generator=standin_generator, runs=["pcie-7b"], n_draws=5, progress=False)
    t = E.evaluate(
        idata, cat, None, generator=standin_generator, runs=["sxm-7b-a"], n_draws=5, allow_seen=True,
        methods=("model", "tdp"), progress=False,
    )
    assert len(t) == 2


def test_fitted_run_ids_tolerates_attrs_and_models():
    post = xr.Dataset({"x": ((D.CHAIN, D.DRAW), np.zeros((1, 3)))}, attrs={"fitted_run_ids": "a; b"})
    assert E.fitted_run_ids(az.InferenceData(posterior=post)) == {"a", "b"}
    fit = xr.Dataset({"n": ((D.CONFIG,), [1])}, attrs={"run_ids": '["c", "d"]'})
    assert E.fitted_run_ids(az.InferenceData(posterior=post, fit_data=fit)) == {"a", "b", "c", "d"}

    class Model:
        fitted_run_ids = ("e",)
        idata = _idata_fitted_on(["f"])

    assert E.fitted_run_ids(Model()) == {"e", "f"}
    assert E.fitted_run_ids(object()) == set()


def test_generator_errors_are_clear():
    cat = tiny_catalog()

    def bad(run, req, n, seed):
        return xr.DataArray(np.full((n, run.sizes[D.TIME]), np.nan), dims=[D.DRAW, D.TIME])

    with pytest.raises(ValueError, match="non-finite"):
        E.evaluate_runs(cat, generator=bad, runs=["pcie-7b"], methods=("model",), progress=False)
    with pytest.raises(ValueError, match="needs a generator"):
        E.evaluate_runs(cat, runs=["pcie-7b"], progress=False)
    with pytest.raises(KeyError, match="not in the catalog"):
        E.evaluate_runs(cat, runs=["nope"], methods=("tdp",), progress=False)


def test_parse_period():
    assert parse_period("1s") == 1.0
    assert parse_period("250ms") == 0.25
    assert parse_period("15min") == 900.0
    assert parse_period("native") is None
    with pytest.raises(argparse.ArgumentTypeError):
        parse_period("fast")


def test_runs_without_requests_are_skipped(tmp_path):
    cat = tiny_catalog()
    ds, req = cat._runs["pcie-7b"]
    cat._runs["pcie-7b"] = (ds, req.iloc[:0])
    table = E.evaluate(None, cat, tmp_path, runs=["pcie-7b"], methods=("tdp",), progress=False)
    assert len(table) == 0 and table.attrs["skipped"] == ["pcie-7b"]
    assert "No run scored" in (tmp_path / "accuracy.md").read_text()


def test_one_run_catalog_scores_what_it_can_and_says_what_it_could_not(tmp_path):
    """A catalog of one run (a run directory ingested alone): the mean and replay baselines have no
    training run; they are left out with a note naming the run, the others are scored."""
    from tests.inference.synthetic_runs import TinyCatalog, make_run

    cat = TinyCatalog({"only": make_run("only", gpu_model="A100-SXM4-40GB", active_w=300, idle_w=55, seed=5)})
    table = E.evaluate(None, cat, tmp_path, methods=B.BASELINES, progress=False)
    assert set(table["method"]) == {"tdp", "splitwise"}
    assert any("only: mean not scored" in n for n in table.attrs["unscored"])
    assert "replay not scored" in (tmp_path / "accuracy.md").read_text()
