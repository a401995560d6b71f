"""Utility load characterisation of a site trace: profiles with bands, peak, load factor, ramps, LDC.

All figures are computed per posterior draw and summarised by their median and central 90 %
interval over draws, so each carries the model's uncertainty.  Definitions (``P_d(t)`` = facility
power of draw ``d`` averaged over non-overlapping intervals of the reporting period, 15 min unless
said otherwise):

- peak demand ``= max_t P_d(t)``;
- load factor ``= mean_t P_d(t) / max_t P_d(t)`` (energy over the horizon / (peak × horizon));
- ramp rate ``= |P_d(t + 1 min) − P_d(t)|`` of 1-min means, in MW per minute (at the native period,
  rescaled to per minute, when the trace is coarser than 1 min);
- load-duration curve: ``P_d`` sorted in decreasing order against the fraction of time;
- TDP overstatement ``= 100 × (facility nameplate / peak − 1)`` %: how far sizing the interconnection
  at nameplate (TDP × GPUs + host, × PUE) exceeds the peak the site draws.  The paper's facility day:
  1.19 MW vs 0.75 MW → 57.7 %.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from wattscape.models import dims as D

from .common import (
    SiteTraceError,
    bin_widths,
    check_site_trace,
    finite_values,
    interval,
    nameplate,
    period_s,
    window_mean,
)

#: Quantiles of the profile bands: 90 % (5–95) and 50 % (25–75) central intervals and the median.
PROFILE_QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
MW_PER_MIN = "MW/min"


def _seconds(period: str | float) -> float:
    if isinstance(period, (int, float)):
        return float(period)
    return pd.Timedelta(period).total_seconds()


def profile(
    ds: xr.Dataset,
    period: str | float = "15min",
    *,
    var: str = D.FACILITY_POWER,
    quantiles: tuple[float, ...] = PROFILE_QUANTILES,
) -> xr.Dataset:
    """Interval-mean profile of ``var`` with posterior bands.

    Parameters
    ----------
    ds : xr.Dataset
        Site trace.
    period : str or float
        Reporting interval (pandas offset such as ``"15min"``, ``"1h"``, or seconds).
    var : str
        Variable with dims (draw, time).
    quantiles : tuple of float
        Quantiles over draws of each interval mean.

    Returns
    -------
    xr.Dataset
        ``mean(time)`` (posterior mean of the interval mean, W), ``band(quantile, time)`` (W) and
        ``draws(draw, time)`` (W); coord ``interval_s(time)``; ``time`` = interval start (UTC).
        ``(mean * interval_s).sum()`` equals the posterior-mean energy of the trace, J.
    """
    check_site_trace(ds, (var,))
    da = ds[var]
    if set(da.dims) != {D.DRAW, D.TIME}:
        raise SiteTraceError(f"profile needs {var!r} with dims (draw, time), got {da.dims}")
    finite_values(da, var)
    dt = period_s(ds)
    w = window_mean(da.transpose(D.DRAW, D.TIME), _seconds(period), dt, bin_widths(ds))
    w.attrs = {D.UNITS: D.WATT}
    band = w.quantile(list(quantiles), dim=D.DRAW)
    band.attrs = {D.UNITS: D.WATT, "long_name": f"quantiles over draws of the {period} mean"}
    mean = w.mean(D.DRAW)
    mean.attrs = {D.UNITS: D.WATT, "long_name": f"posterior mean of the {period} mean"}
    return xr.Dataset(
        {"mean": mean, "band": band, "draws": w},
        attrs={"period": str(period), "period_s": _seconds(period), "variable": var},
    )


def peak_demand(ds: xr.Dataset, period: str | float = "15min") -> xr.DataArray:
    """Peak of the interval-mean facility power per draw (dims ``draw``), W."""
    p = profile(ds, period)["draws"]
    out = p.max(D.TIME)
    out.attrs = {D.UNITS: D.WATT, "long_name": f"peak {period} demand"}
    return out


def peak_time(ds: xr.Dataset, period: str | float = "15min") -> xr.DataArray:
    """Start of the interval in which each draw peaks (dims ``draw``)."""
    p = profile(ds, period)["draws"]
    return p[D.TIME].isel({D.TIME: p.argmax(D.TIME)})


def load_factor(ds: xr.Dataset, period: str | float = "15min") -> xr.DataArray:
    """Load factor (average / peak of the interval means, energy-weighted) per draw, 1."""
    p = profile(ds, period)["draws"]
    wts = p["interval_s"] / p["interval_s"].sum()
    out = (p * wts).sum(D.TIME) / p.max(D.TIME)
    out.attrs = {D.UNITS: "1", "long_name": f"load factor at {period}"}
    return out


def ramp_rates(ds: xr.Dataset, step: str | float = "1min") -> xr.DataArray:
    """Absolute ramp rates of facility power per draw, MW per minute (dims ``draw, time``).

    Ramps are differences of consecutive ``step`` means (or of native samples when the trace is
    coarser than ``step``), divided by the step length in minutes.
    """
    check_site_trace(ds)
    dt = period_s(ds)
    step_s = max(_seconds(step), dt)
    w = window_mean(ds[D.FACILITY_POWER].transpose(D.DRAW, D.TIME), step_s, dt, bin_widths(ds))
    full = w["interval_s"].values >= step_s - 1e-9
    w = w.isel({D.TIME: np.flatnonzero(full)})  # a trailing partial window is not a ramp
    if w.sizes[D.TIME] < 2:
        raise SiteTraceError(f"trace too short for ramps at {step}: fewer than 2 full windows")
    r = abs(w.diff(D.TIME)) / 1e6 / (step_s / 60.0)
    r = r.drop_vars("interval_s", errors="ignore")
    r.attrs = {D.UNITS: MW_PER_MIN, "long_name": f"|ramp| of {step_s:g} s means"}
    return r


def load_duration_curve(
    ds: xr.Dataset, period: str | float = "15min", quantiles: tuple[float, ...] = PROFILE_QUANTILES
) -> xr.DataArray:
    """Load-duration curve with bands: dims (quantile, ``fraction``) in W.

    Each draw's interval means are sorted in decreasing order and placed at the fraction of the
    horizon (0–1) for which the load is at least that value; bands are quantiles over draws at each
    rank.  Intervals are assumed of equal length (a trailing partial interval is dropped).
    """
    p = profile(ds, period)["draws"]
    full = p["interval_s"].values >= p["interval_s"].values.max() - 1e-9
    vals = np.sort(p.values[:, full], axis=1)[:, ::-1]
    n = vals.shape[1]
    frac = (np.arange(n) + 1) / n
    da = xr.DataArray(vals, dims=(D.DRAW, "fraction"), coords={D.DRAW: p[D.DRAW].values, "fraction": frac})
    out = da.quantile(list(quantiles), dim=D.DRAW)
    out.attrs = {D.UNITS: D.WATT, "long_name": f"load-duration curve of {period} means"}
    out["fraction"].attrs = {D.UNITS: "1", "long_name": "fraction of time load is at least this"}
    return out


def tdp_overstatement(ds: xr.Dataset, period: str | float = "15min") -> xr.DataArray:
    """How far the facility nameplate exceeds the peak demand, % per draw (dims ``draw``)."""
    npl = nameplate(ds, D.FACILITY)
    if npl is None:
        raise SiteTraceError("trace has no facility_nameplate (nor it_nameplate): cannot size by TDP")
    out = 100.0 * (float(npl) / peak_demand(ds, period) - 1.0)
    out.attrs = {D.UNITS: "%", "long_name": "TDP overstatement of peak demand"}
    return out


def summary_figures(ds: xr.Dataset, period: str | float = "15min", prob: float = 0.9) -> pd.DataFrame:
    """Headline utility figures with their central ``prob`` interval over draws.

    Returns
    -------
    pd.DataFrame
        Columns ``metric, unit, median, lo, hi`` (``lo``/``hi`` bound the ``prob`` interval); rows:
        peak demand (MW), its interval start, average demand (MW), energy (MWh), load factor,
        peak/average, ramp p50 and p99 (MW/min), facility nameplate (MW), TDP overstatement (%).
    """
    check_site_trace(ds)
    p = profile(ds, period)["draws"]
    peaks = p.max(D.TIME)
    wts = p["interval_s"] / p["interval_s"].sum()
    avg = (p * wts).sum(D.TIME)
    energy_mwh = (p * p["interval_s"]).sum(D.TIME) / 3.6e9
    ramps = ramp_rates(ds)
    r50 = ramps.quantile(0.5, dim=D.TIME)
    r99 = ramps.quantile(0.99, dim=D.TIME)
    rows = [
        ("peak demand", "MW", peaks.values / 1e6),
        ("average demand", "MW", avg.values / 1e6),
        ("energy", "MWh", energy_mwh.values),
        ("load factor", "1", (avg / peaks).values),
        ("peak / average", "1", (peaks / avg).values),
        ("ramp p50 (1-min)", MW_PER_MIN, r50.values),
        ("ramp p99 (1-min)", MW_PER_MIN, r99.values),
    ]
    npl = nameplate(ds, D.FACILITY)
    if npl is not None:
        rows.append(("facility nameplate (TDP)", "MW", np.array([float(npl) / 1e6])))
        rows.append(("TDP overstatement of peak", "%", 100.0 * (float(npl) / peaks.values - 1.0)))
    out = [
        dict(zip(("median", "lo", "hi"), interval(v, prob), strict=True), metric=m, unit=u)
        for m, u, v in rows
    ]
    df = pd.DataFrame(out, columns=["metric", "unit", "median", "lo", "hi"])
    t_peak = pd.DatetimeIndex(p[D.TIME].values[p.argmax(D.TIME).values])
    t_med = t_peak.sort_values()[len(t_peak) // 2]
    df.attrs.update(
        period=str(period),
        interval_prob=prob,
        peak_interval_start=str(t_med),
        peak_interval_start_lo=str(t_peak.min()),
        peak_interval_start_hi=str(t_peak.max()),
        n_draws=int(p.sizes[D.DRAW]),
    )
    return df


def load_characterisation(ds: xr.Dataset, period: str | float = "15min") -> dict[str, object]:
    """Every utility figure at once.

    Returns
    -------
    dict
        ``summary`` (:func:`summary_figures`), ``profile_15min`` and ``profile_1h``
        (:func:`profile`), ``ldc`` (:func:`load_duration_curve`), ``ramps`` (pooled ramp-rate
        quantiles over draws and time, MW/min, ``pd.Series``).
    """
    ramps = ramp_rates(ds)
    qs = [0.5, 0.9, 0.95, 0.99, 0.999]
    pooled = pd.Series(
        np.quantile(ramps.values.ravel(), qs), index=[f"p{100 * q:g}" for q in qs], name=MW_PER_MIN
    )
    return {
        "summary": summary_figures(ds, period),
        "profile_15min": profile(ds, "15min"),
        "profile_1h": profile(ds, "1h"),
        "ldc": load_duration_curve(ds, period),
        "ramps": pooled,
    }
