"""Traffic generators (wattscape.generation.traffic)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from wattscape.generation import traffic as T
from wattscape.models import dims as D


def test_poisson_and_diurnal_rates():
    arr = T.poisson_arrivals(T.constant_profile(2.0), 3600, seed=1)
    assert abs(len(arr) - 7200) < 5 * np.sqrt(7200)
    prof = T.diurnal_profile(1.0)
    assert prof.rates.mean() == pytest.approx(1.0)
    day = T.poisson_arrivals(prof, 86400, seed=2)
    hourly = np.bincount((day // 3600).astype(int), minlength=24)
    assert np.corrcoef(hourly, T.AZURE_DIURNAL_24H)[0, 1] > 0.95
    np.testing.assert_array_equal(day, T.poisson_arrivals(prof, 86400, seed=2))
    assert not np.array_equal(day[:100], T.poisson_arrivals(prof, 86400, seed=3)[:100])


def test_mmpp_is_bursty():
    arr = T.mmpp_arrivals((0.2, 5.0), (300.0, 60.0), 20000, seed=0)
    counts = np.bincount((arr // 60).astype(int))
    assert counts.var() / counts.mean() > 5  # over-dispersed vs Poisson (= 1)


def test_request_table_schema_and_replay():
    tab = T.request_table(np.array([0.0, 1.0, 3.0]), T.AZURE_CONV_TOKENS, start="2026-01-01", seed=0)
    assert list(tab.columns) == list(D.REQUEST_COLUMNS)
    rep = T.replay(tab, rate_scale=2.0, time_shift_s=10.0)
    rel = (rep["start"] - tab["start"].min()).dt.total_seconds().to_numpy()
    np.testing.assert_allclose(rel, [10.0, 10.5, 11.5])
    looped = T.replay(tab, duration_s=30.0, loop=True)
    assert len(looped) > 3 and (looped["start"] - looped["start"].min()).dt.total_seconds().max() < 30


def test_token_fit_recovers_distribution():
    tok = T.TokenDistribution(500.0, 0.8, 120.0, 0.6)
    p, o = tok.sample(50_000, seed=0)
    fit = T.fit_token_distribution(pd.DataFrame({"prompt_tokens": p, "output_tokens": o}))
    assert fit.prompt_median == pytest.approx(500, rel=0.02) and fit.output_sigma == pytest.approx(
        0.6, rel=0.03
    )


@pytest.mark.parametrize("policy", ["random", "round_robin"])
def test_group_arrivals_rate(policy):
    prof = T.constant_profile(10.0)
    inv, dl = T.inverse_table(prof, 1000.0)
    n = T.max_requests(prof, 1000.0, 10)
    arr = np.asarray(T.group_arrivals(jax.random.key(0), jnp.asarray(inv), dl, 10, n, policy))
    counts = np.isfinite(arr).sum(0)
    assert abs(counts.mean() - 1000) < 40
    assert np.all(np.diff(np.where(np.isfinite(arr), arr, 1e9), axis=0) >= 0)
    if policy == "round_robin":  # every 10th arrival of the site stream: far more regular than Poisson
        assert np.std(np.diff(arr[:, 0][np.isfinite(arr[:, 0])])) < 0.5 * 1.0
