"""Scoring a synthetic power trace against a measured one, as ``PROTOCOL.md`` defines it.

Everything here is pure numpy (xarray-aware where a series is prepared), so the model and every
baseline are scored by exactly the same code.

Series preparation (:func:`prepare_series`, :func:`common_length`)
    1. sum the power over the configuration's GPUs (each GPU's missing samples interpolated linearly in
       time first, leading/trailing gaps filled with the nearest sample);
    2. cut into **non-overlapping means** of ``period_s`` (1 s by default): window ``k`` holds the samples
       with ``t0 + k·P <= t < t0 + (k+1)·P`` where ``t0`` is the first sample time; the trailing partial
       window is dropped (a window is complete when ``t0 + (k+1)·P <= t_last + dt``, ``dt`` the median
       sample period); a window without any sample (period shorter than the meter's) is interpolated;
    3. truncate measured and synthetic to their common length;
    4. divide by the number of GPUs (W per GPU).

Metrics per run (x = measured, y = synthetic, both prepared as above, dt = the period)
    - energy error %          ``100·|Σy − Σx| / Σx`` (signed: ``100·(Σy − Σx) / Σx``);
    - ACF R²                  ``1 − Σ_k (a_x[k] − a_y[k])² / Σ_k (a_x[k] − mean_k a_x)²``, k = 1..60, with
                              the biased ACF ``a[k] = Σ_t c_t c_{t+k} / Σ_t c_t²``, ``c = x − mean(x)``;
    - ACF MAE                 ``mean_k |a_x[k] − a_y[k]|`` (ACF R² goes very negative when a_x is flat);
    - KS                      two-sample max distance of the ECDFs of the per-run window values;
    - NRMSE (range)           ``RMSE(y − x) / (max x − min x)``; NRMSE (mean) ``RMSE / mean x``;
    - P95 / P99 error %       ``100·|P_q(y) − P_q(x)| / P_q(x)``;
    - mean bias %             ``100·(mean y − mean x) / mean x`` (signed).

Posterior-predictive distributions (``y`` with a ``draw`` dim; ours, beyond the paper)
    The point estimate of run energy is the posterior-predictive median over draws; every trace-shape
    metric (ACF, KS, NRMSE, quantile errors) is computed per draw and its median over draws is reported
    (a pointwise median trace would be smoothed and lose the variance and autocorrelation being scored).
    Central ``level`` intervals are the equal-tailed ``(1−level)/2`` and ``(1+level)/2`` quantiles over
    draws; coverage is the fraction of held-out quantities inside their interval; the PIT of a measured
    value is ``(#{draws < x} + ½·#{draws = x}) / n_draws``.  Three diagnostics of the ACF, not PROTOCOL.md
    figures: the R² of the pointwise median of the draws' ACFs (:func:`acf_r2_of_median_acf`: the shape
    error without the draw-to-draw spread), the R² the draws reach against each other
    (:func:`acf_r2_ceiling`: what a correct model would score) and the R² that stretches of the measured
    series reach against each other (:func:`acf_r2_between_parts`: how reproducible the measured ACF is).

Aggregation (:func:`aggregate`, :func:`summarize`)
    Median over repeats of a point, then over points: the median, the p90 and the worst point (in the
    "bad" direction of the metric: high for errors, low for ACF R² and for 1 − KS), with a 1,000-draw
    bootstrap 95 % percentile interval of the median over points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import xarray as xr
from wattscape.models import dims as D

#: Lags of the ACF comparison (1..60 windows; 1..60 s at the 1 s period).
ACF_MAX_LAG = 60

#: Metrics for which larger is better (their "p90" and "worst" look at the low end).
HIGHER_IS_BETTER = frozenset({"acf_r2", "one_minus_ks"})
#: Signed metrics: "p90" and "worst" look at the absolute value (the sign of the worst is kept).
SIGNED = frozenset({"energy_error_signed_pct", "mean_bias_pct"})

#: The per-run metric columns produced by :func:`score`, in order.
METRIC_COLUMNS = (
    "energy_error_pct",
    "energy_error_signed_pct",
    "acf_r2",
    "acf_mae",
    "ks",
    "nrmse_range",
    "nrmse_mean",
    "p95_error_pct",
    "p99_error_pct",
    "mean_bias_pct",
)


# --- series preparation ------------------------------------------------------------------------------
def _seconds(time: np.ndarray) -> np.ndarray:
    """Times as float seconds since the first sample (datetime64 or numeric input)."""
    time = np.asarray(time)
    if np.issubdtype(time.dtype, np.datetime64):
        return (time - time[0]) / np.timedelta64(1, "s")
    time = time.astype(float)
    return time - time[0]


def _fill_gaps(values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Linear interpolation in time across NaN samples along the last axis (edges: nearest sample)."""
    values = np.array(values, dtype=float)
    flat = values.reshape(-1, values.shape[-1])
    for row in flat:
        bad = ~np.isfinite(row)
        if bad.all():
            raise ValueError("a power series has no finite sample at all")
        if bad.any():
            row[bad] = np.interp(t[bad], t[~bad], row[~bad])
    return flat.reshape(values.shape)


def window_means(values: np.ndarray, t: np.ndarray, period_s: float) -> np.ndarray:
    """Non-overlapping means of ``values`` (last axis = time) over windows of ``period_s`` seconds.

    Parameters
    ----------
    values : ndarray (..., time)
        Gap-free samples.
    t : ndarray (time,)
        Seconds since the first sample, increasing.
    period_s : float
        Window length, s.

    Returns
    -------
    ndarray (..., n_windows)
        ``n_windows = floor((t_last − t0 + dt) / period_s)`` complete windows; the trailing partial one is
        dropped; empty windows are interpolated from their neighbours.
    """
    if period_s <= 0:
        raise ValueError(f"period_s must be positive, got {period_s}")
    t = np.asarray(t, dtype=float)
    dt = float(np.median(np.diff(t))) if t.size > 1 else period_s
    n_win = int(np.floor((t[-1] - t[0] + dt) / period_s + 1e-9))
    if n_win < 1:
        raise ValueError(f"series of {t[-1] - t[0] + dt:.3g} s is shorter than one {period_s} s window")
    idx = np.floor((t - t[0]) / period_s + 1e-9).astype(np.int64)
    keep = idx < n_win
    idx = idx[keep]
    vals = values[..., keep].reshape(-1, keep.sum())
    counts = np.bincount(idx, minlength=n_win).astype(float)
    out = np.empty((vals.shape[0], n_win))
    for i, row in enumerate(vals):
        sums = np.bincount(idx, weights=row, minlength=n_win)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i] = sums / counts
    empty = counts == 0
    if empty.any():
        centres = np.arange(n_win) + 0.5
        for row in out:
            row[empty] = np.interp(centres[empty], centres[~empty], row[~empty])
    return out.reshape((*values.shape[:-1], n_win))


def prepare_series(
    power: xr.DataArray,
    *,
    period_s: float | None = 1.0,
    n_gpus: int | None = None,
) -> xr.DataArray:
    """Measured or synthetic power → per-GPU window means, the series every metric is computed on.

    Parameters
    ----------
    power : xr.DataArray
        Power in W with a ``time`` dim (datetime64 or seconds) and optionally ``gpu`` (summed over) and
        any other dims (e.g. ``draw``) that are kept.
    period_s : float or None
        Window length in seconds; ``None`` keeps the native samples (only gap filling and division).
    n_gpus : int, optional
        Number of GPUs of the configuration; default the length of the ``gpu`` dim, else the ``n_gpus``
        attribute of ``power``, else 1.

    Returns
    -------
    xr.DataArray
        Dims (..., time) with ``time`` in seconds since the first sample (window starts), W per GPU.
    """
    if D.TIME not in power.dims:
        raise ValueError(f"power has dims {power.dims}; a {D.TIME!r} dim is required")
    if n_gpus is None:
        n_gpus = power.sizes.get(D.GPU) or int(power.attrs.get("n_gpus", 1))
    t = _seconds(power[D.TIME].values)
    other = [d for d in power.dims if d not in (D.TIME, D.GPU)]
    order = [*other, *([D.GPU] if D.GPU in power.dims else []), D.TIME]
    values = _fill_gaps(power.transpose(*order).values, t)
    if D.GPU in power.dims:
        values = values.sum(axis=-2)
    if period_s is None:
        out, grid = values, t
    else:
        out = window_means(values, t, period_s)
        grid = np.arange(out.shape[-1]) * period_s
    coords = {d: power[d].values for d in other if d in power.coords}
    coords[D.TIME] = grid
    da = xr.DataArray(out / n_gpus, dims=[*other, D.TIME], coords=coords, name=D.POWER)
    da.attrs = {D.UNITS: D.WATT, "per_gpu": True, "n_gpus": int(n_gpus), "period_s": period_s}
    da[D.TIME].attrs[D.UNITS] = D.SECOND
    return da


def common_length(*series: xr.DataArray) -> list[xr.DataArray]:
    """Truncate prepared series to their common (shortest) ``time`` length."""
    n = min(s.sizes[D.TIME] for s in series)
    return [s.isel({D.TIME: slice(0, n)}) for s in series]


# --- metrics on 1-D arrays ---------------------------------------------------------------------------
def _as1d(x) -> np.ndarray:
    x = np.asarray(x, dtype=float).ravel()
    if x.size == 0:
        raise ValueError("empty series")
    return x


def energy_error_pct(x, y, *, signed: bool = False) -> float:
    """Energy error %: ``100·|Σy − Σx| / Σx`` (``signed=True``: without the absolute value).

    ``x`` and ``y`` are on the same grid, so the window length cancels.
    """
    sx, sy = _as1d(x).sum(), _as1d(y).sum()
    err = 100.0 * (sy - sx) / sx
    return float(err if signed else abs(err))


def acf(x, max_lag: int = ACF_MAX_LAG) -> np.ndarray:
    """Biased autocorrelation ``a[k] = Σ_t c_t c_{t+k} / Σ_t c_t²``, ``c = x − mean(x)``, k = 1..max_lag.

    Lags at or beyond the series length are 0; a constant series (up to floating-point rounding) has
    ACF 0 at every lag.
    """
    x = _as1d(x)
    c = x - x.mean()
    denom = float(c @ c)
    out = np.zeros(max_lag)
    if denom <= 1e-20 * x.size * max(1.0, float(x.mean()) ** 2):  # constant up to rounding
        return out
    for k in range(1, min(max_lag, c.size - 1) + 1):
        out[k - 1] = float(c[:-k] @ c[k:]) / denom
    return out


def acf_r2(x, y, max_lag: int = ACF_MAX_LAG) -> float:
    """ACF R²: ``1 − Σ_k (a_x[k] − a_y[k])² / Σ_k (a_x[k] − mean_k a_x)²`` over lags 1..max_lag."""
    return _r2_of_acfs(acf(x, max_lag), acf(y, max_lag))


def _r2_of_acfs(ax: np.ndarray, ay: np.ndarray) -> float:
    """:func:`acf_r2` of two ACFs already computed (``ax`` in the place of the measured one)."""
    ss_tot = float(((ax - ax.mean()) ** 2).sum())
    ss_res = float(((ax - ay) ** 2).sum())
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else -np.inf
    return 1.0 - ss_res / ss_tot


def acf_mae(x, y, max_lag: int = ACF_MAX_LAG) -> float:
    """ACF MAE: ``mean_k |a_x[k] − a_y[k]|`` over lags 1..max_lag."""
    return float(np.abs(acf(x, max_lag) - acf(y, max_lag)).mean())


def _draw_acfs(ys, max_lag: int) -> np.ndarray:
    ys = np.asarray(ys, dtype=float)
    if ys.ndim != 2 or ys.shape[0] < 2:
        raise ValueError(f"need synthetic draws as a (draw, time) array of at least 2 draws, got {ys.shape}")
    if not np.isfinite(ys).all():
        raise ValueError("synthetic draws hold NaN or infinity")
    return np.stack([acf(row, max_lag) for row in ys])


def acf_r2_of_median_acf(x, ys, max_lag: int = ACF_MAX_LAG) -> float:
    """ACF R² of the measured ACF against the pointwise median of the draws' ACFs.

    ``1 − Σ_k (a_x[k] − m[k])² / Σ_k (a_x[k] − mean_k a_x)²`` with ``m[k] = median_d a_{y_d}[k]``.  Not
    PROTOCOL.md's figure, which scores each draw and takes the median of the scores: this one leaves out
    the draw-to-draw spread of the ACF and keeps its systematic shape error.

    Parameters
    ----------
    x : array (time,)
        Measured series.
    ys : array (draw, time)
        Synthetic draws on the same grid (at least 2).
    max_lag : int
        Largest lag.
    """
    return _r2_of_acfs(acf(x, max_lag), np.median(_draw_acfs(ys, max_lag), axis=0))


def acf_r2_ceiling(ys, max_lag: int = ACF_MAX_LAG) -> float:
    """The ACF R² a model's own draws reach against each other: what it would score if it were right.

    ``median_i median_{j≠i} R²(a_{y_i}, a_{y_j})``, where ``R²(a, b) = 1 − Σ_k (a[k] − b[k])² /
    Σ_k (a[k] − mean_k a)²``: each draw ``i`` in turn takes the place of the measured run and the other
    draws are scored against it as PROTOCOL.md scores synthetic draws against a measurement (median over
    draws).  If the measured run were one more draw of the model, its ACF R² would be distributed like
    the inner medians, so their median is the figure a correct model reaches; a measured score near it
    says the remaining gap to 1 is the model's own spread (parameters and process), not a shape error.

    Parameters
    ----------
    ys : array (draw, time)
        Synthetic draws (at least 2).
    max_lag : int
        Largest lag.
    """
    a = _draw_acfs(ys, max_lag)
    n = a.shape[0]
    inner = [np.median([_r2_of_acfs(a[i], a[j]) for j in range(n) if j != i]) for i in range(n)]
    return float(np.median(inner))


def acf_r2_between_parts(x, part_len: int, max_lag: int = ACF_MAX_LAG) -> float:
    """The ACF R² that stretches of one measured series reach against each other (no model involved).

    ``x`` is cut into ``m = ⌊n / part_len⌋`` consecutive parts of ``part_len`` values (the tail dropped) and
    the parts are scored against each other as :func:`acf_r2_ceiling` scores draws:
    ``median_i median_{j≠i} R²(a_{x_i}, a_{x_j})``.  If one stretch of a run does not predict the ACF of
    another stretch of the same run (same configuration, same workload stream), the ACF at that length is
    not a property of the configuration: scoring a model against it asks whether the model reproduces the
    slow changes of that one timeline.

    Parameters
    ----------
    x : array (time,)
        One measured series (e.g. 1 s means).
    part_len : int
        Values per part; more than ``max_lag + 1``, and at most half the series.
    max_lag : int
        Largest lag.

    Raises
    ------
    ValueError
        When ``x`` holds NaN or infinity, a part is too short for the lags, or fewer than 2 parts fit.
    """
    x = _as1d(x)
    if not np.isfinite(x).all():
        raise ValueError("measured series holds NaN or infinity")
    if part_len <= max_lag + 1:
        raise ValueError(f"parts of {part_len} values are too short for lags 1..{max_lag}")
    m = x.size // part_len
    if m < 2:
        raise ValueError(f"a series of {x.size} values holds fewer than 2 parts of {part_len}")
    return acf_r2_ceiling(x[: m * part_len].reshape(m, part_len), max_lag)


def ks_statistic(x, y) -> float:
    """Two-sample Kolmogorov–Smirnov statistic: ``max_v |F_x(v) − F_y(v)|`` of the empirical CDFs."""
    x, y = np.sort(_as1d(x)), np.sort(_as1d(y))
    v = np.concatenate([x, y])
    fx = np.searchsorted(x, v, side="right") / x.size
    fy = np.searchsorted(y, v, side="right") / y.size
    return float(np.max(np.abs(fx - fy)))


def nrmse_range(x, y) -> float:
    """``RMSE(y − x) / (max x − min x)`` (NaN when x is constant)."""
    x, y = _as1d(x), _as1d(y)
    span = x.max() - x.min()
    rmse = float(np.sqrt(np.mean((y - x) ** 2)))
    return rmse / span if span > 0 else float("nan")


def nrmse_mean(x, y) -> float:
    """``RMSE(y − x) / mean x``."""
    x, y = _as1d(x), _as1d(y)
    return float(np.sqrt(np.mean((y - x) ** 2)) / x.mean())


def quantile_error_pct(x, y, q: float) -> float:
    """``100·|P_q(y) − P_q(x)| / P_q(x)`` with ``q`` in [0, 1] (linear-interpolation quantiles)."""
    px, py = np.quantile(_as1d(x), q), np.quantile(_as1d(y), q)
    return float(100.0 * abs(py - px) / px)


def mean_bias_pct(x, y) -> float:
    """Signed mean bias %: ``100·(mean y − mean x) / mean x``."""
    x, y = _as1d(x), _as1d(y)
    return float(100.0 * (y.mean() - x.mean()) / x.mean())


def score_arrays(x, y, max_lag: int = ACF_MAX_LAG) -> dict[str, float]:
    """Every per-run metric of one synthetic series ``y`` against the measured ``x`` (same length)."""
    x, y = _as1d(x), _as1d(y)
    if x.size != y.size:
        raise ValueError(f"series lengths differ ({x.size} vs {y.size}); truncate with common_length")
    return {
        "energy_error_pct": energy_error_pct(x, y),
        "energy_error_signed_pct": energy_error_pct(x, y, signed=True),
        "acf_r2": acf_r2(x, y, max_lag),
        "acf_mae": acf_mae(x, y, max_lag),
        "ks": ks_statistic(x, y),
        "nrmse_range": nrmse_range(x, y),
        "nrmse_mean": nrmse_mean(x, y),
        "p95_error_pct": quantile_error_pct(x, y, 0.95),
        "p99_error_pct": quantile_error_pct(x, y, 0.99),
        "mean_bias_pct": mean_bias_pct(x, y),
    }


# --- posterior-predictive distributions --------------------------------------------------------------
def central_interval(samples, level: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed ``level`` interval: the ``(1−level)/2`` and ``(1+level)/2`` quantiles along ``axis``."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    lo, hi = np.quantile(np.asarray(samples, dtype=float), [(1 - level) / 2, (1 + level) / 2], axis=axis)
    return lo, hi


def covered(samples, truth, level: float, axis: int = 0) -> np.ndarray:
    """Whether ``truth`` lies inside the central ``level`` interval of ``samples`` (along ``axis``)."""
    lo, hi = central_interval(samples, level, axis)
    truth = np.asarray(truth, dtype=float)
    return (lo <= truth) & (truth <= hi)


def coverage(samples, truth, level: float, axis: int = 0) -> float:
    """Fraction of the ``truth`` values inside their central ``level`` interval of ``samples``."""
    return float(np.mean(covered(samples, truth, level, axis)))


def pit(samples, truth, axis: int = 0) -> np.ndarray:
    """Probability integral transform ``(#{s < x} + ½·#{s = x}) / n`` of ``truth`` under ``samples``."""
    s = np.moveaxis(np.asarray(samples, dtype=float), axis, 0)
    truth = np.asarray(truth, dtype=float)
    return ((s < truth).sum(0) + 0.5 * (s == truth).sum(0)) / s.shape[0]


def score(
    measured: xr.DataArray,
    synthetic: xr.DataArray,
    *,
    period_s: float | None = 1.0,
    n_gpus: int | None = None,
    levels: Iterable[float] = (0.5, 0.9),
    max_lag: int = ACF_MAX_LAG,
) -> dict[str, float]:
    """Prepare both series and compute every metric of ``synthetic`` against ``measured``.

    Parameters
    ----------
    measured : xr.DataArray
        ``power`` with dims ``(gpu, time)`` or ``(time,)``, W.
    synthetic : xr.DataArray
        Total power of the configuration (or per GPU, with a ``gpu`` dim), dims ``(time,)`` or
        ``(draw, time)``, W, on (or near) the measured time grid.
    period_s : float or None
        Window length (None: native samples).
    n_gpus : int, optional
        GPUs of the configuration (default: the measured ``gpu`` dim length).
    levels : iterable of float
        Interval levels reported for a synthetic series with draws.
    max_lag : int
        Largest ACF lag.

    Returns
    -------
    dict
        :data:`METRIC_COLUMNS`, plus ``energy_measured_j`` and, with draws, ``energy_q05_j``,
        ``energy_q50_j``, ``energy_q95_j``, ``energy_pit`` and for each level ``L`` (as percent ``p``)
        ``energy_in_<p>`` (1.0/0.0) and ``window_coverage_<p>`` (fraction of windows whose measured
        power lies in the central interval over draws), plus ``n_windows`` and ``n_draws``.
    """
    if n_gpus is None:
        n_gpus = measured.sizes.get(D.GPU) or int(measured.attrs.get("n_gpus", 1))
    x = prepare_series(measured, period_s=period_s, n_gpus=n_gpus)
    y = prepare_series(synthetic, period_s=period_s, n_gpus=n_gpus)
    extra = [d for d in y.dims if d != D.TIME]
    if len(extra) > 1:
        raise ValueError(f"synthetic series has dims {y.dims}; expected (time,) or (draw, time)")
    x, y = common_length(x, y)
    dt = float(period_s) if period_s is not None else float(np.median(np.diff(x[D.TIME].values)))
    xv = x.values
    out: dict[str, float] = {"n_windows": int(xv.size), "n_draws": 0}
    out["energy_measured_j"] = float(xv.sum() * dt * n_gpus)
    if not extra:
        out.update(score_arrays(xv, y.values, max_lag))
        return out
    yv = y.transpose(extra[0], D.TIME).values
    per_draw = pd.DataFrame([score_arrays(xv, row, max_lag) for row in yv])
    energies = yv.sum(axis=1) * dt * n_gpus
    med = float(np.median(energies))
    for col in METRIC_COLUMNS:
        out[col] = float(per_draw[col].median())
    out["energy_error_signed_pct"] = 100.0 * (med - out["energy_measured_j"]) / out["energy_measured_j"]
    out["energy_error_pct"] = abs(out["energy_error_signed_pct"])
    q05, q50, q95 = np.quantile(energies, [0.05, 0.5, 0.95])
    out.update(energy_q05_j=float(q05), energy_q50_j=float(q50), energy_q95_j=float(q95))
    out["energy_pit"] = float(pit(energies, out["energy_measured_j"]))
    for level in levels:
        tag = f"{round(100 * level)}"
        out[f"energy_in_{tag}"] = float(covered(energies, out["energy_measured_j"], level))
        out[f"window_coverage_{tag}"] = coverage(yv, xv, level, axis=0)
    out["n_draws"] = int(yv.shape[0])
    return out


# --- aggregation -------------------------------------------------------------------------------------
def bootstrap_median_ci(
    values, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the median: ``n_boot`` resamples with replacement, ``level``."""
    v = _as1d(values)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    meds = np.median(v[rng.integers(0, v.size, (n_boot, v.size))], axis=1)
    lo, hi = np.quantile(meds, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def aggregate(values, metric: str = "", *, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Median, p90, worst and bootstrap 95 % CI of the median of one metric over points.

    Parameters
    ----------
    values : array-like
        One value per point (already the median over repeats of that point); NaNs are ignored.
    metric : str
        Column name; decides the "bad" direction (:data:`HIGHER_IS_BETTER`, :data:`SIGNED`).
    n_boot, seed : bootstrap resamples and seed.

    Returns
    -------
    dict with ``n``, ``median``, ``ci_low``, ``ci_high``, ``p90``, ``worst``.
    """
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        nan = float("nan")
        return {"n": 0, "median": nan, "ci_low": nan, "ci_high": nan, "p90": nan, "worst": nan}
    lo, hi = bootstrap_median_ci(v, n_boot=n_boot, seed=seed)
    if metric in HIGHER_IS_BETTER:
        p90, worst = np.quantile(v, 0.10), v.min()
    elif metric in SIGNED:
        p90, worst = np.quantile(np.abs(v), 0.90), v[np.argmax(np.abs(v))]
    else:
        p90, worst = np.quantile(v, 0.90), v.max()
    return {
        "n": int(v.size),
        "median": float(np.median(v)),
        "ci_low": lo,
        "ci_high": hi,
        "p90": float(p90),
        "worst": float(worst),
    }


def summarize(
    table: pd.DataFrame,
    metrics: Iterable[str] = ("energy_error_pct", "acf_r2", "acf_mae", "ks", "nrmse_range"),
    *,
    by: str | list[str] = "method",
    point: str | list[str] = "run_id",
    repeat: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Aggregate a per-run table: median over repeats of a point, then :func:`aggregate` over points.

    Parameters
    ----------
    table : DataFrame
        One row per (group, point[, repeat]).
    metrics : iterable of str
        Metric columns to aggregate.
    by : str or list
        Columns that define a group (e.g. ``"method"`` or ``["method", "period_s"]``).
    point : str or list
        Columns that define a point (a run, or a configuration whose runs are repeats).
    repeat : str, optional
        Column naming repeats; rows of one point are reduced by their median first (done whenever
        several rows share a point, whatever this argument says — it only documents the table).

    Returns
    -------
    DataFrame
        One row per (group, metric) with ``n, median, ci_low, ci_high, p90, worst``.
    """
    by = [by] if isinstance(by, str) else list(by)
    point = [point] if isinstance(point, str) else list(point)
    metrics = [m for m in metrics if m in table.columns]
    per_point = table.groupby(by + point, sort=False, dropna=False)[metrics].median().reset_index()
    rows = []
    for key, grp in per_point.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        for m in metrics:
            stats_m = aggregate(grp[m], m, n_boot=n_boot, seed=seed)
            rows.append({**dict(zip(by, key, strict=True)), "metric": m, **stats_m})
    return pd.DataFrame(rows)


def markdown_table(summary: pd.DataFrame, *, by: str | list[str] = "method", digits: int = 3) -> str:
    """A Markdown table: one row per group, one column per metric, cells ``median [ci] (p90, worst)``."""
    by = [by] if isinstance(by, str) else list(by)

    def cell(r: Mapping) -> str:
        f = f"{{:.{digits}g}}"
        return (
            f"{f.format(r['median'])} [{f.format(r['ci_low'])}, {f.format(r['ci_high'])}]"
            f" (p90 {f.format(r['p90'])}, worst {f.format(r['worst'])})"
        )

    metrics = list(dict.fromkeys(summary["metric"]))
    header = "| " + " | ".join([*by, "n", *metrics]) + " |"
    lines = [header, "|" + "---|" * (len(by) + 1 + len(metrics))]
    for key, grp in summary.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        cells = {r["metric"]: cell(r) for r in grp.to_dict("records")}
        n = int(grp["n"].max())
        lines.append("| " + " | ".join([*map(str, key), str(n), *(cells.get(m, "") for m in metrics)]) + " |")
    return "\n".join(lines) + "\n"
