"""Samplers and diagnostics on small models with known posteriors."""

from __future__ import annotations

import json

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from wattscape.inference.diagnostics import (
    curvature_directions,
    diagnostics_summary,
    free_parameter_labels,
    save_diagnostics,
    unconstrained_draws,
    widest_directions,
)
from wattscape.inference.fit import ADVI_N_MC, fit_advi_jax, sample


@pytest.fixture(scope="module")
def normal_model():
    """y ~ Normal(mu, 2) with a flat-ish prior: the posterior of mu is Normal(mean(y), 2/sqrt(n))."""
    y = np.random.default_rng(0).normal(3.0, 2.0, 400)
    with pm.Model(coords={"obs": np.arange(y.size)}) as model:
        mu = pm.Normal("mu", 0.0, 100.0)
        pm.Normal("y", mu, 2.0, observed=y, dims="obs")
    return model, y


def test_fast_path_recovers_known_posterior(normal_model):
    model, y = normal_model
    idata = fit_advi_jax(model, iterations=3000, draws=2000, random_seed=1, progressbar=False)
    post = idata.posterior["mu"]
    assert post.dims == ("chain", "draw")
    assert abs(float(post.mean()) - y.mean()) < 0.05
    assert abs(float(post.std()) / (2 / np.sqrt(y.size)) - 1) < 0.25
    assert np.isfinite(idata.attrs["advi_final_loss"])
    assert idata.attrs["advi_iterations"] == 3000 and idata.attrs["advi_n_mc"] == ADVI_N_MC


def test_fast_path_settings_reach_the_fit_and_are_recorded(normal_model):
    model, y = normal_model
    idata = sample(
        model, "fast", draws=500, random_seed=3, progressbar=False, advi_iterations=1500, advi_n_mc=3
    )
    assert (idata.attrs["advi_iterations"], idata.attrs["advi_n_mc"]) == (1500, 3)
    assert abs(float(idata.posterior["mu"].mean()) - y.mean()) < 0.05


@pytest.fixture(scope="module")
def line_model():
    """y ~ Normal(a + b·x, 1), x far from 0: a and b are strongly anti-correlated a posteriori (known
    Gaussian: mean and covariance of least squares under the wide priors)."""
    rng = np.random.default_rng(4)
    x = rng.uniform(4.0, 6.0, 50)
    y = 1.0 + 0.5 * x + rng.normal(0.0, 1.0, x.size)
    with pm.Model() as model:
        a = pm.Normal("a", 0.0, 100.0)
        b = pm.Normal("b", 0.0, 100.0)
        pm.Normal("y", a + b * x, 1.0, observed=y)
    design = np.c_[np.ones_like(x), x]
    cov = np.linalg.inv(design.T @ design)
    return model, np.linalg.solve(design.T @ design, design.T @ y), cov


def test_full_rank_family_recovers_a_correlated_posterior(line_model):
    model, mean, cov = line_model
    sd, rho = np.sqrt(np.diag(cov)), cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    assert rho < -0.95  # the case mean field cannot represent
    full = fit_advi_jax(
        model, family="fullrank", iterations=60_000, draws=4000, random_seed=0, progressbar=False
    )
    a, b = (full.posterior[v].values.ravel() for v in ("a", "b"))
    assert full.attrs["advi_family"] == "fullrank"
    assert np.all(np.abs(np.array([a.mean(), b.mean()]) - mean) < 0.15 * sd)
    np.testing.assert_allclose([a.std(), b.std()], sd, rtol=0.2)
    assert abs(np.corrcoef(a, b)[0, 1] - rho) < 0.03
    # mean field, same steps: the marginal sds shrink towards the conditional ones (× sqrt(1 − rho²))
    diag = fit_advi_jax(model, family="meanfield", draws=4000, random_seed=0, progressbar=False)
    assert diag.posterior["a"].values.std() < 0.5 * sd[0]


def test_unknown_advi_family_is_refused(normal_model):
    with pytest.raises(ValueError, match="unknown ADVI family 'lowrank'"):
        fit_advi_jax(normal_model[0], family="lowrank", iterations=10, progressbar=False)


def test_numpyro_and_diagnostics(normal_model, tmp_path):
    model, y = normal_model
    idata = sample(model, "numpyro", draws=300, tune=300, chains=2, random_seed=2, progressbar=False)
    assert idata.attrs["sampler"] == "numpyro"
    assert idata.attrs["dense_mass"] == 0  # diagonal metric by default (see sample's docstring)
    summary = save_diagnostics(idata, tmp_path / "post.nc")
    assert summary["divergences"] == 0
    assert summary["max_r_hat"] < 1.05 and summary["min_ess_bulk"] > 100
    assert summary["min_bfmi"] is not None and summary["min_bfmi"] > 0.3
    # one well-scaled parameter: short trajectories, none cut at the depth limit
    assert 1 <= summary["mean_tree_depth"] < 5 and summary["tree_depth_limit_share"] == 0.0
    on_disk = json.loads((tmp_path / "post.diagnostics.json").read_text())
    assert on_disk["chains"] == 2 and (tmp_path / "post.diagnostics.csv").is_file()
    assert abs(float(idata.posterior["mu"].mean()) - y.mean()) < 0.05


def test_fast_result_has_no_nuts_diagnostics(normal_model):
    model, _ = normal_model
    idata = sample(model, "fast", draws=200, random_seed=0, progressbar=False, advi_iterations=500)
    summary = diagnostics_summary(idata)
    assert summary["divergences"] is None and summary["sampler"] == "fast"
    assert summary["mean_tree_depth"] is None and summary["tree_depth_limit_share"] is None


def test_tree_depth_reads_each_samplers_stats():
    import xarray as xr
    from wattscape.inference.diagnostics import tree_depth

    depth = xr.DataArray(np.array([[3, 10, 10, 4]]), dims=("chain", "draw"))
    assert tree_depth(xr.Dataset({"tree_depth": depth})) == (6.75, 0.5)  # numpyro: at the limit 10
    assert tree_depth(xr.Dataset({"tree_depth": depth}), limit=4) == (6.75, 0.75)
    flag = xr.DataArray(np.array([[False, True, False, False]]), dims=("chain", "draw"))
    assert tree_depth(xr.Dataset({"depth": depth, "maxdepth_reached": flag})) == (6.75, 0.25)  # nutpie
    assert tree_depth(xr.Dataset({"tree_depth": depth, "reached_max_treedepth": flag}))[1] == 0.25  # PyMC
    assert tree_depth(xr.Dataset({"diverging": flag})) == (None, None) and tree_depth(None) == (None, None)


def test_unknown_sampler(normal_model):
    with pytest.raises(ValueError, match="unknown sampler"):
        sample(normal_model[0], "gibbs")


@pytest.fixture(scope="module")
def correlated_model():
    """A log-transformed scale beside a bivariate normal of known covariance (sds 2, 0.5; correlation 0.9)."""
    sd, corr = np.array([2.0, 0.5]), 0.9
    cov = np.array([[1.0, corr], [corr, 1.0]]) * np.outer(sd, sd)
    with pm.Model() as model:
        pm.HalfNormal("s", 1.0)
        pm.MvNormal("x", mu=np.zeros(2), cov=cov)
    return model, sd, corr


def test_unconstrained_draws_apply_each_transform(correlated_model):
    model, _, _ = correlated_model
    post = xr.Dataset(
        {
            "s": (("chain", "draw"), np.array([[1.0, np.e]])),
            "x": (("chain", "draw", "x_dim_0"), np.array([[[1.0, 2.0], [3.0, 4.0]]])),
        }
    )
    assert free_parameter_labels(model) == ["s_log__", "x[0]", "x[1]"]
    with pm.Model(coords={"task": ["a", "b"], "state": ["idle", "busy"]}) as named:
        pm.HalfNormal("sd", 1.0, dims=("task",))
        pm.Normal("m", 0.0, 1.0, dims=("task", "state"))
    assert free_parameter_labels(named) == [
        "sd_log__[a]",
        "sd_log__[b]",
        "m[a,idle]",
        "m[a,busy]",
        "m[b,idle]",
        "m[b,busy]",
    ]
    np.testing.assert_allclose(unconstrained_draws(model, post), [[0.0, 1.0, 2.0], [1.0, 3.0, 4.0]])
    with pytest.raises(KeyError, match=r"\['x'\]"):
        unconstrained_draws(model, post.drop_vars("x"))


def test_curvature_directions_known_hessian(correlated_model):
    """Whitened by the true sds, −H of the normal part is the inverse correlation matrix: eigenvalues
    1/(1 − ρ) along x[0] − x[1] and 1/(1 + ρ); the log-scale of HalfNormal(1) at s = 1 has curvature 2."""
    model, sd, corr = correlated_model
    draws = np.column_stack([np.zeros(4), np.random.default_rng(1).normal(size=(4, 2))])
    df = curvature_directions(model, draws, scale=np.array([1.0, *sd]), n_points=2, n_directions=3)
    assert len(df) == 6 and sorted(df["point"].unique()) == df["point"].unique().tolist()
    first = df[df["point"] == df["point"].iloc[0]]
    np.testing.assert_allclose(first["eigenvalue"], [1 / (1 - corr), 2.0, 1 / (1 + corr)], rtol=1e-8)
    np.testing.assert_allclose(first["step_limit"].iloc[0], 2 * np.sqrt(1 - corr), rtol=1e-8)
    assert first["loadings"].iloc[0].startswith("x[") and "s_log__ +0.00" in first["loadings"].iloc[0]
    with pytest.raises(ValueError, match="unconstrained"):
        curvature_directions(model, draws[:, :2])
    with pytest.raises(ValueError, match="positive"):
        curvature_directions(model, draws, scale=np.array([1.0, 0.0, 1.0]))


def test_widest_directions_find_a_shared_component():
    """Two columns sharing one factor (correlation 0.96) beside an independent one: the widest whitened
    direction is their sum, sd √(1 + 0.96)."""
    rng = np.random.default_rng(2)
    f, e = rng.normal(size=(2, 20000))
    draws = np.column_stack([f + 0.2 * rng.normal(size=f.size), f + 0.2 * rng.normal(size=f.size), e])
    wide = widest_directions(draws, ["a", "b", "c"], n_directions=2, n_loadings=2)
    assert wide["sd"].iloc[0] == pytest.approx(np.sqrt(1 + 1 / 1.04), rel=0.01)
    assert set(wide["loadings"].iloc[0].replace("-", "+").split(", ")) == {"a +0.71", "b +0.71"}
    assert wide["sd"].iloc[1] == pytest.approx(1.0, rel=0.02)


def _fit_like(seed: int, chains: int = 2, draws: int = 5, model_id: str = "m1", data=(0.0, 1.0, 2.0)):
    import arviz as az

    r = np.random.default_rng(seed)
    idata = az.from_dict(
        posterior={"a": r.normal(size=(chains, draws)), "b": r.normal(size=(chains, draws, 3))},
        sample_stats={"diverging": np.zeros((chains, draws), bool)},
    )
    idata.add_groups(fit_data=xr.Dataset({"x": ("k", np.asarray(data))}))
    idata.attrs.update({"model_id": model_id, "sampling_time_s": 10.0 + seed})
    return idata


def test_combine_chains_stacks_the_chains_of_separate_fits():
    """Two fits of two chains each: four chains, renumbered, every draw where it was; the data kept once;
    the sampling times summed; the parts named."""
    from wattscape.inference.fit import combine_chains

    a, b = _fit_like(0), _fit_like(1)
    out = combine_chains([a, b], sources=["a.nc", "b.nc"])
    assert out.posterior.sizes["chain"] == 4 and out.sample_stats.sizes["chain"] == 4
    np.testing.assert_array_equal(out.posterior.chain.values, [0, 1, 2, 3])
    np.testing.assert_array_equal(out.posterior["a"].values[:2], a.posterior["a"].values)
    np.testing.assert_array_equal(out.posterior["b"].values[2:], b.posterior["b"].values)
    assert out.fit_data.equals(a.fit_data)
    assert out.attrs["model_id"] == "m1" and out.attrs["sampling_time_s"] == 21.0
    assert [p["source"] for p in json.loads(out.attrs["combined_from"])] == ["a.nc", "b.nc"]


@pytest.mark.parametrize(
    ("other", "message"),
    [
        (dict(model_id="m2"), "b.nc: model id 'm2'"),
        (dict(data=(0.0, 1.0, 3.0)), "b.nc: its 'fit_data' differs"),
        (dict(draws=6), "b.nc: 6 draws in 'posterior'"),
    ],
)
def test_combine_chains_refuses_fits_of_another_model_or_data(other, message):
    from wattscape.inference.fit import combine_chains

    with pytest.raises(ValueError, match=message):
        combine_chains([_fit_like(0), _fit_like(1, **other)], sources=["a.nc", "b.nc"])
    with pytest.raises(ValueError, match="two or more"):
        combine_chains([_fit_like(0)])
