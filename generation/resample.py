"""Resampling a site trace to any period (100 ms … 1 h) that conserves energy exactly.

Power values are bin means, so a trace is a piecewise-constant function of time.  The resampled value of a
new bin is the exact integral of that function over the bin divided by its width: cumulative energy at the
old bin edges, linearly interpolated at the new edges (exact for a piecewise-constant function), differenced.
The last new bin may be shorter than the period; its width is kept in ``interval``, so
``Σ power × interval`` — the energy — is unchanged to float64 rounding, up- or down-sampling alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from wattscape.models import dims as D

from .aggregate import add_bands, power_vars


def _edges(ds: xr.Dataset) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.asarray(ds["interval"].values, np.float64))])


def resample(ds: xr.Dataset, period_s: float, quantiles=None) -> xr.Dataset:
    """Resample every power variable (and ``pue``, time-weighted) of a site trace to ``period_s``.

    Parameters
    ----------
    ds : xr.Dataset
        A site trace with an ``interval`` variable (s) along ``time``.
    period_s : float
        New bin width in seconds (> 0).
    quantiles : sequence of float, optional
        Quantiles of the recomputed bands (default: those of the input, else ``dims.DEFAULT_QUANTILES``).
    """
    if period_s <= 0:
        raise ValueError(f"period_s must be positive, got {period_s}")
    old = _edges(ds)
    total = old[-1]
    n_new = int(np.ceil(total / period_s - 1e-9))
    new = np.minimum(np.arange(n_new + 1) * float(period_s), total)
    new[-1] = total
    width = np.diff(new)
    # position of each new edge among the old bins (old bins may differ only in the last one)
    j = np.clip(np.searchsorted(old, new, side="right") - 1, 0, len(old) - 2)
    frac = (new - old[j]) / np.diff(old)[j]
    t0 = pd.Timestamp(ds[D.TIME].values[0])
    times = pd.DatetimeIndex(t0 + pd.to_timedelta(new[:-1], unit="s"))
    names = [*power_vars(ds), "pue"]
    out = {}
    for v in names:
        da = ds[v]
        ax = da.dims.index(D.TIME)
        x = np.moveaxis(np.asarray(da.values, np.float64), ax, -1)
        w = np.diff(old)
        cum = np.concatenate([np.zeros((*x.shape[:-1], 1)), np.cumsum(x * w, axis=-1)], axis=-1)
        e_new = cum[..., j] + frac * (x[..., j] * w[j])
        vals = np.diff(e_new, axis=-1) / width
        out[v] = (da.dims, np.moveaxis(vals, -1, ax), da.attrs)
    keep = {v: ds[v] for v in ds.data_vars if D.TIME not in ds[v].dims}
    coords = {c: ds.coords[c] for c in ds.coords if c != D.TIME and D.TIME not in ds.coords[c].dims}
    coords[D.TIME] = times
    res = xr.Dataset(
        {**out, **keep, "interval": ((D.TIME,), width, {D.UNITS: D.SECOND, "long_name": "bin width"})},
        coords=coords,
        attrs={**ds.attrs, "dt_s": float(period_s)},
    )
    res[D.TIME].attrs["timezone"] = "UTC"
    if quantiles is None:
        quantiles = ds[D.QUANTILE].values if D.QUANTILE in ds.coords else D.DEFAULT_QUANTILES
    return add_bands(res.drop_vars([v for v in res.data_vars if v.endswith(D.BAND_SUFFIX)]), quantiles)
