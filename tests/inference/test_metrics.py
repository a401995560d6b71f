"""Known-answer tests of the scoring metrics (PROTOCOL.md formulas)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from wattscape.inference import metrics as M
from wattscape.models import dims as D


def _power(values, period_s=0.1, n_gpu=None, start="2024-01-01T00:00:00"):
    values = np.asarray(values, dtype=float)
    t = np.datetime64(start) + (np.arange(values.shape[-1]) * period_s * 1e9).astype("timedelta64[ns]")
    if values.ndim == 1:
        return xr.DataArray(values, dims=[D.TIME], coords={D.TIME: t})
    return xr.DataArray(values, dims=[D.GPU, D.TIME], coords={D.TIME: t, D.GPU: np.arange(values.shape[0])})


def test_window_means_drop_partial_and_average():
    # 25 samples at 0.1 s = 2.5 s: two complete 1 s windows, the half window dropped
    x = np.arange(25.0)
    out = M.window_means(x, np.arange(25) * 0.1, 1.0)
    np.testing.assert_allclose(out, [4.5, 14.5])


def test_prepare_series_sums_gpus_interpolates_and_divides():
    a = np.full(30, 100.0)
    b = np.full(30, 300.0)
    b[5] = np.nan  # a missing sample is interpolated, not dropped
    s = M.prepare_series(_power([a, b]), period_s=1.0)
    assert s.dims == (D.TIME,)
    assert s.sizes[D.TIME] == 3
    np.testing.assert_allclose(s.values, 200.0)  # (100 + 300) / 2 GPUs
    assert s.attrs[D.UNITS] == D.WATT


def test_prepare_series_keeps_draw_dim_and_fills_empty_windows():
    # 2 s samples at a 1 s period: every second window is empty and interpolated
    y = xr.DataArray(
        np.array([[0.0, 2.0, 4.0, 6.0]]), dims=[D.DRAW, D.TIME], coords={D.TIME: np.arange(4) * 2.0}
    )
    s = M.prepare_series(y, period_s=1.0, n_gpus=1)
    assert s.dims == (D.DRAW, D.TIME)
    np.testing.assert_allclose(s.values[0], [0, 1, 2, 3, 4, 5, 6, 6])


def test_identical_series_score_perfectly():
    rng = np.random.default_rng(1)
    x = 200 + 30 * rng.standard_normal(3000)
    r = M.score_arrays(x, x)
    assert r["energy_error_pct"] == 0
    assert r["acf_r2"] == pytest.approx(1.0)
    assert r["acf_mae"] == 0
    assert r["ks"] == 0
    assert r["nrmse_range"] == 0
    assert r["p95_error_pct"] == 0 and r["p99_error_pct"] == 0


def test_constant_offset_gives_known_energy_error():
    x = np.full(100, 200.0)
    y = x + 10.0
    assert M.energy_error_pct(x, y) == pytest.approx(5.0)
    assert M.energy_error_pct(x, x - 10, signed=True) == pytest.approx(-5.0)
    assert M.energy_error_pct(x, x - 10) == pytest.approx(5.0)
    assert M.mean_bias_pct(x, y) == pytest.approx(5.0)
    assert M.nrmse_mean(x, y) == pytest.approx(0.05)
    assert M.quantile_error_pct(x, y, 0.95) == pytest.approx(5.0)


def test_acf_of_ar1_matches_phi_power_k():
    rng = np.random.default_rng(0)
    phi, n = 0.8, 200_000
    e = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = e[0]
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    a = M.acf(x, 10)
    np.testing.assert_allclose(a, phi ** np.arange(1, 11), atol=0.02)


def test_acf_biased_definition_on_short_series():
    x = np.array([1.0, 2.0, 3.0])  # c = (-1, 0, 1), Σc² = 2
    np.testing.assert_allclose(M.acf(x, 3), [0.0, -0.5, 0.0])


def test_acf_r2_of_white_noise_against_ar1_is_poor():
    rng = np.random.default_rng(2)
    n = 5000
    e = rng.standard_normal(n)
    ar = np.empty(n)
    ar[0] = e[0]
    for t in range(1, n):
        ar[t] = 0.95 * ar[t - 1] + e[t]
    assert M.acf_r2(ar, rng.standard_normal(n)) < 0
    assert M.acf_mae(ar, rng.standard_normal(n)) > 0.2


def _ar1(rng, n, phi=0.9):
    e = rng.standard_normal(n)
    out = np.empty(n)
    out[0] = e[0]
    for t in range(1, n):
        out[t] = phi * out[t - 1] + e[t]
    return out


def test_acf_r2_of_median_acf_keeps_the_shape_and_drops_the_spread():
    rng = np.random.default_rng(3)
    x, z = _ar1(rng, 400), rng.standard_normal(400)
    # two of three draws have the measured ACF: the pointwise median is it, whatever the third is
    assert M.acf_r2_of_median_acf(x, np.stack([x, x + 5.0, z])) == pytest.approx(1.0)
    assert M.acf_r2_of_median_acf(x, np.stack([z, z, x])) == pytest.approx(M.acf_r2(x, z))


def test_acf_r2_ceiling_is_the_draws_scored_against_each_other():
    rng = np.random.default_rng(4)
    x, z = _ar1(rng, 400), rng.standard_normal(400)
    assert M.acf_r2_ceiling(np.stack([x, 2.0 * x, x - 1.0])) == pytest.approx(1.0)  # one ACF
    # draws (x, x, z): each x scores median(1, R²(x, z)); z scores R²(z, x) twice; the median is the former
    expected = 0.5 * (1.0 + M.acf_r2(x, z))
    assert M.acf_r2_ceiling(np.stack([x, x, z])) == pytest.approx(expected)


def test_acf_r2_ceiling_rises_with_the_length_of_the_draws():
    rng = np.random.default_rng(5)
    short = M.acf_r2_ceiling(np.stack([_ar1(rng, 150) for _ in range(20)]))
    long = M.acf_r2_ceiling(np.stack([_ar1(rng, 20_000) for _ in range(20)]))
    assert long > 0.95 and short < long - 0.1


def test_acf_r2_between_parts_scores_stretches_of_one_series_against_each_other():
    rng = np.random.default_rng(6)
    x, z = _ar1(rng, 400), rng.standard_normal(400)
    # parts are consecutive, the tail is dropped: (x, z) + 50 leftover values is scored like two draws
    both = np.concatenate([x, z, rng.standard_normal(50)])
    assert M.acf_r2_between_parts(both, 400) == pytest.approx(0.5 * (M.acf_r2(x, z) + M.acf_r2(z, x)))
    periodic = np.sin(2 * np.pi * np.arange(3000) / 37.0)
    assert M.acf_r2_between_parts(periodic, 1000) > 0.99  # a stationary shape repeats from part to part
    # an AR(1) stretch followed by a white-noise one: the measured ACF of one half says nothing of the other
    assert M.acf_r2_between_parts(np.concatenate([_ar1(rng, 2000), rng.standard_normal(2000)]), 2000) < 0


@pytest.mark.parametrize(
    ("x", "part_len", "match"),
    [
        (np.arange(500.0), 61, "too short for lags 1..60"),
        (np.arange(150.0), 100, "fewer than 2 parts of 100"),
        (np.r_[np.arange(300.0), np.nan], 100, "NaN"),
    ],
)
def test_acf_r2_between_parts_refuses_what_it_cannot_score(x, part_len, match):
    with pytest.raises(ValueError, match=match):
        M.acf_r2_between_parts(x, part_len)


@pytest.mark.parametrize(
    ("ys", "match"),
    [
        (np.ones((1, 50)), "at least 2 draws"),
        (np.ones(50), "at least 2 draws"),
        (np.full((2, 5), np.nan), "NaN"),
    ],
)
def test_acf_diagnostics_refuse_what_they_cannot_score(ys, match):
    with pytest.raises(ValueError, match=match):
        M.acf_r2_ceiling(ys)
    with pytest.raises(ValueError, match=match):
        M.acf_r2_of_median_acf(np.arange(50.0), ys)


def test_ks_of_disjoint_samples_is_one():
    assert M.ks_statistic(np.arange(10.0), np.arange(10.0) + 100) == 1.0
    assert M.ks_statistic([1.0, 2.0], [2.0, 3.0]) == pytest.approx(0.5)


def test_nrmse_range_known_value():
    x = np.array([0.0, 10.0, 0.0, 10.0])
    y = x + np.array([1.0, -1.0, 1.0, -1.0])
    assert M.nrmse_range(x, y) == pytest.approx(0.1)


def test_score_with_draws_gives_intervals_and_coverage():
    rng = np.random.default_rng(3)
    meas = _power(np.full(600, 250.0))
    draws = 250 * (1 + 0.02 * rng.standard_normal((200, 600)))
    syn = xr.DataArray(draws, dims=[D.DRAW, D.TIME], coords={D.TIME: meas[D.TIME].values})
    r = M.score(meas, syn, period_s=1.0)
    assert r["n_draws"] == 200 and r["n_windows"] == 60
    assert r["energy_measured_j"] == pytest.approx(250 * 60)
    assert r["energy_q05_j"] < r["energy_measured_j"] < r["energy_q95_j"]
    assert r["energy_in_90"] == 1.0
    assert 0.8 < r["window_coverage_90"] <= 1.0
    assert r["energy_error_pct"] < 0.5


def test_score_gpu_dim_and_total_synthetic_agree():
    meas = _power([np.full(100, 100.0), np.full(100, 200.0)])
    syn = _power(np.full(100, 330.0))  # total over 2 GPUs: 10 % too high
    r = M.score(meas, syn, period_s=1.0)
    assert r["energy_error_pct"] == pytest.approx(10.0)
    assert r["energy_measured_j"] == pytest.approx(300.0 * 10)


def test_coverage_and_pit():
    s = np.arange(1, 101, dtype=float)  # 1..100
    assert M.coverage(s[:, None] * np.ones((1, 3)), [50.0, 2.0, 1000.0], 0.9) == pytest.approx(1 / 3)
    assert M.pit(s, 50.0) == pytest.approx(0.495)
    lo, hi = M.central_interval(s, 0.5)
    assert lo == pytest.approx(25.75) and hi == pytest.approx(75.25)


def test_calibrated_draws_have_uniform_pit():
    rng = np.random.default_rng(4)
    truth = rng.standard_normal(2000)
    samples = rng.standard_normal((500, 2000))
    p = M.pit(samples, truth)
    counts, _ = np.histogram(p, bins=10, range=(0, 1))
    assert counts.min() > 140 and counts.max() < 260
    assert M.coverage(samples, truth, 0.9) == pytest.approx(0.9, abs=0.03)


def test_bootstrap_interval_contains_median_and_aggregate_directions():
    rng = np.random.default_rng(5)
    v = rng.exponential(5.0, 50)
    lo, hi = M.bootstrap_median_ci(v, seed=1)
    assert lo <= np.median(v) <= hi
    a = M.aggregate(v, "energy_error_pct")
    assert a["worst"] == v.max() and a["median"] == pytest.approx(np.median(v))
    b = M.aggregate([0.9, 0.5, 0.99], "acf_r2")
    assert b["worst"] == 0.5
    c = M.aggregate([1.0, -7.0, 3.0], "energy_error_signed_pct")
    assert c["worst"] == -7.0


def test_summarize_takes_median_over_repeats_first():
    table = pd.DataFrame(
        {
            "method": ["a"] * 4,
            "run_id": ["r1", "r1", "r1", "r2"],
            "energy_error_pct": [1.0, 2.0, 30.0, 4.0],
        }
    )
    s = M.summarize(table, ["energy_error_pct"])
    row = s.iloc[0]
    assert row["n"] == 2
    assert row["median"] == pytest.approx(3.0)  # median(2, 4)
    md = M.markdown_table(s)
    assert md.startswith("| method | n | energy_error_pct |")


def test_acf_of_constant_is_zero_even_with_rounding():
    y = np.repeat([100.0, 100.0 + 1e-12], 500)
    np.testing.assert_array_equal(M.acf(y, 5), 0.0)
    assert M.acf(np.repeat([100.0, 101.0], 500), 1)[0] > 0.99  # a real step is not "constant"
