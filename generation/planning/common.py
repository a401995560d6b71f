"""Shared helpers of the planning analyses: checking a site trace, reading its metadata, resampling.

A site trace is the ``xr.Dataset`` the generator writes (see ``wattscape.models.dims``, "site
traces"): ``facility_power(draw, time)`` in W including PUE, ``it_power(draw, time)``,
``row_power(draw, time, row)``, ``rack_power(draw, time, rack)``, optionally
``server_power(draw, time, server)`` and ``gpu_power``; nameplate figures ``<level>_nameplate``; bands
``<var>_band(quantile, time[, level])``; attributes such as ``period_s`` and ``pue``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from wattscape.models import dims as D

#: The power variable of each aggregation level.
POWER_VARS: dict[str, str] = {
    D.GPU: D.GPU_POWER,
    D.SERVER: D.SERVER_POWER,
    D.RACK: D.RACK_POWER,
    D.ROW: D.ROW_POWER,
    D.FACILITY: D.FACILITY_POWER,
}
#: Levels at which a power budget may be set.
BUDGET_LEVELS: tuple[str, ...] = (D.RACK, D.ROW, D.FACILITY)


class SiteTraceError(ValueError):
    """A site trace lacks something an analysis needs (the message says what and where)."""


def _where(ds: xr.Dataset) -> str:
    src = ds.encoding.get("source") or ds.attrs.get("scenario") or ds.attrs.get("scenario_name")
    return f" (trace {src})" if src else ""


def check_site_trace(ds: xr.Dataset, need: tuple[str, ...] = (D.FACILITY_POWER,)) -> xr.Dataset:
    """Check that ``ds`` is a site trace holding the variables in ``need``; return it unchanged.

    Raises
    ------
    SiteTraceError
        Naming each missing variable or wrong dims, and the trace it came from.
    """
    if not isinstance(ds, xr.Dataset):
        raise SiteTraceError(f"a site trace must be an xarray.Dataset, got {type(ds).__name__}")
    problems = []
    for name in need:
        if name not in ds:
            problems.append(f"missing variable {name!r}")
            continue
        dims = ds[name].dims
        if D.TIME not in dims or D.DRAW not in dims:
            problems.append(f"{name!r} has dims {dims}; expected ({D.DRAW!r}, {D.TIME!r}[, level])")
    if D.TIME in ds.coords and ds.sizes.get(D.TIME, 0) < 2:
        problems.append("fewer than 2 time steps")
    if problems:
        have = sorted(str(v) for v in ds.data_vars)
        raise SiteTraceError(
            "not a usable site trace"
            + _where(ds)
            + ": "
            + "; ".join(problems)
            + f". Variables present: {have}"
        )
    return ds


def finite_values(da: xr.DataArray, name: str | None = None) -> np.ndarray:
    """``da.values`` after checking that they are all finite; ``SiteTraceError`` saying where not."""
    vals = np.asarray(da.values)
    bad = ~np.isfinite(vals)
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad)), vals.shape)
        where = ", ".join(
            f"{d}={da[d].values[i] if d in da.coords else i}" for d, i in zip(da.dims, first, strict=True)
        )
        raise SiteTraceError(
            f"{name or da.name!r} has {int(bad.sum())} non-finite values (NaN/inf) of {vals.size}; "
            f"first at {where}"
        )
    return vals


def level_var(level: str) -> str:
    """Power variable of an aggregation level; ``ValueError`` naming the known levels otherwise."""
    try:
        return POWER_VARS[level]
    except KeyError:
        raise ValueError(f"unknown level {level!r}; known: {list(POWER_VARS)}") from None


def period_s(ds: xr.Dataset) -> float:
    """Sampling period of the trace in seconds.

    From attr ``period_s`` or ``dt_s``, else the median of the ``interval`` variable (bin widths), else
    the median step of the time coordinate.
    """
    for key in ("period_s", "dt_s"):
        if key in ds.attrs:
            return float(ds.attrs[key])
    if "interval" in ds and ds["interval"].dims == (D.TIME,):
        return float(np.median(ds["interval"].values))
    t = ds[D.TIME].values
    if np.issubdtype(t.dtype, np.datetime64):
        return float(np.median(np.diff(t)) / np.timedelta64(1, "s"))
    return float(np.median(np.diff(t)))


def bin_widths(ds: xr.Dataset) -> np.ndarray:
    """Width of each time bin in seconds: the ``interval`` variable when present, else the period."""
    if "interval" in ds and ds["interval"].dims == (D.TIME,):
        return np.asarray(ds["interval"].values, dtype=np.float64)
    return np.full(ds.sizes[D.TIME], period_s(ds))


def time_index(ds: xr.Dataset) -> pd.DatetimeIndex:
    """The time coordinate as UTC-naive timestamps (seconds since 1970 when numeric)."""
    t = ds[D.TIME].values
    if np.issubdtype(t.dtype, np.datetime64):
        return pd.DatetimeIndex(t)
    return pd.DatetimeIndex(pd.to_datetime(np.asarray(t, dtype=float), unit="s"))


def pue_factor(ds: xr.Dataset) -> xr.DataArray:
    """Facility/IT power ratio: ``facility_power / it_power`` when both exist, else attr ``pue`` (or 1)."""
    if D.FACILITY_POWER in ds and D.IT_POWER in ds:
        ratio = ds[D.FACILITY_POWER] / ds[D.IT_POWER].where(ds[D.IT_POWER] > 0)
        return ratio.fillna(float(ds.attrs.get("pue", 1.0)))
    return xr.DataArray(float(ds.attrs.get("pue", 1.0)))


def nameplate(ds: xr.Dataset, level: str) -> xr.DataArray | None:
    """Nameplate (TDP) figure of a level in W (``<level>_nameplate``), or ``None`` when absent."""
    name = level_var(level).replace("_power", "") + D.NAMEPLATE_SUFFIX
    if level == D.FACILITY and name not in ds and "it" + D.NAMEPLATE_SUFFIX in ds:
        return ds["it" + D.NAMEPLATE_SUFFIX] * float(ds.attrs.get("pue", 1.0))
    return ds[name] if name in ds else None


def window_mean(
    da: xr.DataArray, window_s: float, dt_s: float, widths: np.ndarray | None = None
) -> xr.DataArray:
    """Non-overlapping, time-weighted means over ``window_s`` along ``time``; the last may be partial.

    ``widths`` are the bin widths in s (default ``dt_s`` each).  The result carries coord
    ``interval_s`` (seconds each window covers), so that ``(mean * interval_s).sum()`` equals the
    energy of the input exactly.
    """
    nt = da.sizes[D.TIME]
    widths = np.full(nt, float(dt_s)) if widths is None else np.asarray(widths, dtype=np.float64)
    n = max(1, round(window_s / dt_s))
    if n == 1:
        return da.assign_coords(interval_s=(D.TIME, widths))
    starts = np.arange(0, nt, n)
    moved = da.transpose(D.TIME, ...)
    shape = (-1,) + (1,) * (moved.ndim - 1)
    sums = np.add.reduceat(moved.values.astype(np.float64) * widths.reshape(shape), starts, axis=0)
    span = np.add.reduceat(widths, starts)
    vals = sums / span.reshape(shape)
    coords = {k: v for k, v in moved.coords.items() if D.TIME not in v.dims}
    coords[D.TIME] = moved[D.TIME].values[starts]
    out = xr.DataArray(vals, dims=moved.dims, coords=coords, attrs=da.attrs, name=da.name)
    out = out.assign_coords(interval_s=(D.TIME, span))
    return out.transpose(*da.dims)


def draw_quantiles(da: xr.DataArray, quantiles) -> xr.DataArray:
    """Quantiles over ``draw`` with dim ``quantile``; keeps ``units``."""
    out = da.quantile(list(quantiles), dim=D.DRAW)
    out.attrs[D.UNITS] = da.attrs.get(D.UNITS, D.WATT)
    return out


def interval(values: np.ndarray, prob: float = 0.9) -> tuple[float, float, float]:
    """(median, lower, upper) of a central ``prob`` interval of ``values``."""
    lo, hi = (1 - prob) / 2, 1 - (1 - prob) / 2
    q = np.quantile(np.asarray(values, dtype=float), [0.5, lo, hi])
    return float(q[0]), float(q[1]), float(q[2])


def _gpu_from_attrs(ds: xr.Dataset) -> str | None:
    """The one GPU model named in the trace's attrs (``gpu_model``, ``configs``), if exactly one."""
    text = " ".join(str(ds.attrs.get(k, "")) for k in ("gpu_model", "configs", "scenario"))
    try:
        from wattscape.models.hardware import known_gpus
    except ImportError:  # pragma: no cover - hardware table not installed
        return None
    found = {g for g in known_gpus() if g in text}
    # a name contained in a longer found name (e.g. "H100-SXM5" in "H100-SXM5-80GB") is not a second GPU
    found = {g for g in found if not any(g != h and g in h for h in found)}
    return found.pop() if len(found) == 1 else None


def site_meta(ds: xr.Dataset) -> dict[str, float | None]:
    """Site figures the analyses need, from attrs with fallbacks (``None`` where unknown).

    Keys: ``n_servers``, ``n_gpus``, ``gpus_per_server``, ``gpu_tdp_w``, ``host_w`` (non-GPU power
    per server), ``gpu_idle_w``, ``servers_per_rack``.  Fallbacks: sizes of the ``server``/``rack``
    dims, ``n_gpus / n_servers``, the TDP of the one GPU model named in attrs (``gpu_model`` or
    ``configs``, via ``wattscape.models.hardware``), ``host = (it_nameplate − n_gpus × TDP) /
    n_servers``, the card's typical idle power.
    """
    a = ds.attrs

    def num(*keys):
        for k in keys:
            if k in a and a[k] is not None and str(a[k]) != "":
                try:
                    return float(a[k])
                except (TypeError, ValueError):
                    continue
        return None

    n_srv = num("n_servers") or (float(ds.sizes[D.SERVER]) if D.SERVER in ds.sizes else None)
    gps = num("gpus_per_server")
    n_gpus = num("n_gpus") or (gps * n_srv if gps and n_srv else None)
    if gps is None and n_gpus and n_srv and float(n_gpus / n_srv).is_integer():
        gps = n_gpus / n_srv
    tdp = num("gpu_tdp_w", "tdp_w")
    idle = num("gpu_idle_w")
    if tdp is None and "gpu" + D.NAMEPLATE_SUFFIX in ds:
        tdp = float(ds["gpu" + D.NAMEPLATE_SUFFIX].mean())
    gpu = _gpu_from_attrs(ds)
    if gpu is not None and (tdp is None or idle is None):
        from wattscape.models.hardware import gpu_spec

        spec = gpu_spec(gpu)
        tdp = tdp if tdp is not None else float(spec["tdp_w"])
        typical = spec.get("idle_w_typical")
        if idle is None and typical is not None and np.isfinite(float(typical)):
            idle = float(typical)
    host = num("host_power_w", "non_gpu_w")
    if host is None and tdp and n_gpus and n_srv and "it" + D.NAMEPLATE_SUFFIX in ds:
        host = (float(ds["it" + D.NAMEPLATE_SUFFIX]) - n_gpus * tdp) / n_srv
    spr = num("servers_per_rack")
    if spr is None and n_srv and D.RACK in ds.sizes:
        spr = n_srv / ds.sizes[D.RACK]
    return {
        "n_servers": n_srv,
        "n_gpus": n_gpus,
        "gpus_per_server": gps,
        "gpu_tdp_w": tdp,
        "host_w": host,
        "gpu_idle_w": idle,
        "servers_per_rack": spr,
    }
