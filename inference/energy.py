"""Energy of measured traces: one integration rule used everywhere.

Rule: power summed over a run's GPUs, missing samples (NaN) linearly interpolated in time per GPU (edges held
at the nearest value), integrated with the **trapezoid rule** over the sample times.  Whole-run energy runs
from the first to the last sample; the energy of an interval ``[a, b]`` interpolates the summed power
linearly at ``a`` and ``b``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from wattscape.models import dims as D


def seconds(time) -> np.ndarray:
    """Sample times as float seconds since the UNIX epoch."""
    return np.asarray(time).astype("datetime64[ns]").astype(np.int64) / 1e9


def filled_power(power: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """``power(gpu, time)`` with NaN replaced by linear interpolation in time (per GPU)."""
    p = np.asarray(power, dtype=np.float64)
    out = p.copy()
    for g in range(p.shape[0]):
        bad = ~np.isfinite(p[g])
        if bad.any() and (~bad).any():
            out[g, bad] = np.interp(t_s[bad], t_s[~bad], p[g, ~bad])
    return out


def total_power(ds: xr.Dataset) -> np.ndarray:
    """Power summed over GPUs at each sample (W), NaN interpolated."""
    t = seconds(ds[D.TIME].values)
    return filled_power(ds[D.POWER].transpose(D.GPU, D.TIME).values, t).sum(axis=0)


def trace_energy_j(ds: xr.Dataset) -> float:
    """Whole-run energy of all GPUs, J (trapezoid rule over the samples)."""
    t = seconds(ds[D.TIME].values)
    if len(t) < 2:
        return 0.0
    return float(np.trapezoid(total_power(ds), t))


def interval_energy_j(t_s: np.ndarray, power_w: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Energy (J) of a power series over intervals ``[a_k, b_k]`` (seconds), trapezoid rule.

    Intervals are clipped to the series' span.
    """
    t_s = np.asarray(t_s, dtype=np.float64)
    p = np.asarray(power_w, dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(t_s))])

    def cumulative(x: np.ndarray) -> np.ndarray:
        x = np.clip(x, t_s[0], t_s[-1])
        k = np.clip(np.searchsorted(t_s, x, side="right") - 1, 0, len(t_s) - 2)
        px = np.interp(x, t_s, p)
        return cum[k] + 0.5 * (p[k] + px) * (x - t_s[k])

    return cumulative(np.asarray(b, dtype=np.float64)) - cumulative(np.asarray(a, dtype=np.float64))
