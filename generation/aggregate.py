"""Streaming aggregation GPU → server → rack → row → facility, bands, and writing traces.

A site trace is an ``xr.Dataset`` with ``<level>_power`` variables of dims ``(draw, time[, level])`` (W,
float64), ``it_power`` and ``facility_power`` (``(draw, time)``, facility = IT × PUE), ``interval`` (time; s,
the width of each bin: power values are bin means, so energy = Σ power × interval), ``pue`` (time),
``<level>_nameplate`` (TDP figure) and ``<var>_band`` quantiles over draws.

The generator (``site.generate_site``) computes the finest level asked for, chunk by chunk of TP groups, and
this module sums it upwards in float64 (so facility = Σ servers × PUE holds to rounding), never holding
per-GPU arrays except when the ``gpu`` level itself is asked for.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from wattscape.models import dims as D

from wattscape.io import atomic_path

from .topology import Site

LEVEL_VAR = {D.GPU: D.GPU_POWER, D.SERVER: D.SERVER_POWER, D.RACK: D.RACK_POWER, D.ROW: D.ROW_POWER}
_ORDER = (D.GPU, D.SERVER, D.RACK, D.ROW, D.FACILITY)


def finest_level(levels) -> str:
    """The finest of the requested levels (``facility`` counts as the coarsest)."""
    return min(levels, key=_ORDER.index)


def up_index(site: Site, src: str, dst: str) -> np.ndarray:
    """Index at level ``dst`` of every element of level ``src`` (``src`` finer than ``dst``)."""
    if src == D.GPU:
        srv = np.repeat(
            np.arange(site.n_servers), [site.fleet[f].gpus_per_server for f in site.server_fleet()]
        )
        return srv if dst == D.SERVER else site.level_index(dst)[srv]
    if src == D.SERVER:
        return site.level_index(dst)
    if src == D.RACK:
        rr = site.rack_row()
        return rr if dst == D.ROW else np.zeros_like(rr)
    if src == D.ROW:
        return np.zeros(site.rows, np.int64)
    raise ValueError(f"cannot aggregate from {src} to {dst}")


def sum_up(x: np.ndarray, index: np.ndarray, n_out: int) -> np.ndarray:
    """Sum the last axis of ``x`` into ``n_out`` bins by ``index`` (float64)."""
    index = np.asarray(index)
    counts = np.bincount(index, minlength=n_out)[:n_out] if index.size else np.zeros(n_out, int)
    if index.size and np.all(np.diff(index) >= 0):  # sorted: GPUs of a server, servers of a rack, ...
        c = int(counts[0])
        if np.all(counts == c) and c * n_out == x.shape[-1]:  # equal blocks: one matrix-vector product
            if c == 1:
                return x.astype(np.float64)
            flat = x.reshape(-1, c).astype(np.float64, copy=False) @ np.ones(c)
            return flat.reshape(*x.shape[:-1], n_out)
        out = np.zeros((*x.shape[:-1], n_out), np.float64)
        first = np.searchsorted(index, np.arange(n_out))
        out[..., counts > 0] = np.add.reduceat(x.astype(np.float64, copy=False), first[counts > 0], axis=-1)
        return out
    out = np.zeros((*x.shape[:-1], n_out), np.float64)
    for k in range(n_out):  # few outputs: a masked sum per output stays vectorised over time
        sel = index == k
        if sel.any():
            out[..., k] = x[..., sel].sum(-1, dtype=np.float64)
    return out


def non_gpu_power(site: Site, level: str) -> np.ndarray:
    """Constant non-GPU power (W) of each element of ``level``."""
    per_server = np.array([site.fleet[f].non_gpu_w for f in site.server_fleet()], float)
    if level == D.GPU:
        return np.zeros(site.n_gpus)
    return np.bincount(site.level_index(level), per_server, minlength=site.level_size(level))


def nameplate(site: Site, level: str, tdp_by_type: list[float]) -> np.ndarray:
    """TDP figure of each element of ``level``: n_gpus × TDP + non-GPU power (W)."""
    per_server = np.array(
        [
            site.fleet[f].gpus_per_server * tdp_by_type[f] + site.fleet[f].non_gpu_w
            for f in site.server_fleet()
        ],
        float,
    )
    if level == D.GPU:
        return np.repeat(
            np.array([tdp_by_type[f] for f in site.server_fleet()]),
            [site.fleet[f].gpus_per_server for f in site.server_fleet()],
        )
    return np.bincount(site.level_index(level), per_server, minlength=site.level_size(level))


def build_dataset(
    site: Site,
    finest: np.ndarray,
    finest_lv: str,
    times: pd.DatetimeIndex,
    interval: np.ndarray,
    tdp_by_type: list[float],
    attrs: dict,
    quantiles=None,
    draw_ids=None,
) -> xr.Dataset:
    """The site trace from the finest level's GPU power ``finest`` (draw, time, n_finest), W.

    Non-GPU power is added at server level and above; coarser levels are float64 sums of finer ones.
    ``draw_ids`` labels the draws (default ``0 … n-1``).
    """
    pue = site.pue_at(times)
    data: dict[str, tuple] = {}
    draws = np.arange(finest.shape[0]) if draw_ids is None else np.asarray(draw_ids)
    coords: dict[str, object] = {D.TIME: (D.TIME, times, {"timezone": "UTC"}), D.DRAW: draws}
    chain = [lv for lv in _ORDER[_ORDER.index(finest_lv) :] if lv != D.FACILITY]
    cur = None
    if chain:  # per-GPU power has no non-GPU part: no copy
        cur = finest if finest_lv == D.GPU else finest + non_gpu_power(site, finest_lv)
    prev = None
    for lv in chain:
        if prev is not None:
            cur = sum_up(cur, up_index(site, prev, lv), site.level_size(lv))
            if prev == D.GPU:
                cur = cur + non_gpu_power(site, D.SERVER)
        prev = lv
        if lv in site.levels:
            data[LEVEL_VAR[lv]] = ((D.DRAW, D.TIME, lv), cur, {D.UNITS: D.WATT})
            coords[lv] = np.arange(site.level_size(lv))
    if cur is None:
        it = finest[..., 0] + non_gpu_power(site, D.FACILITY)[0]
    else:
        it = sum_up(cur, np.zeros(cur.shape[-1], np.int64), 1)[..., 0]
    data[D.IT_POWER] = ((D.DRAW, D.TIME), it, {D.UNITS: D.WATT, "long_name": "IT power (GPU + non-GPU)"})
    data[D.FACILITY_POWER] = ((D.DRAW, D.TIME), it * pue, {D.UNITS: D.WATT, "long_name": "IT power × PUE"})
    data["interval"] = ((D.TIME,), interval, {D.UNITS: D.SECOND, "long_name": "bin width"})
    data["pue"] = ((D.TIME,), pue, {D.UNITS: "1"})
    for lv in chain:
        if lv not in site.levels:
            continue
        data[lv + D.NAMEPLATE_SUFFIX] = ((lv,), nameplate(site, lv, tdp_by_type), {D.UNITS: D.WATT})
    it_np = nameplate(site, D.SERVER, tdp_by_type).sum()
    data["it" + D.NAMEPLATE_SUFFIX] = ((), it_np, {D.UNITS: D.WATT})
    data[D.FACILITY + D.NAMEPLATE_SUFFIX] = (
        (),
        it_np * float(np.max(pue)),
        {D.UNITS: D.WATT, "long_name": "IT nameplate × max PUE"},
    )
    q = np.asarray(quantiles or site.quantiles, float)
    for v in [v for v, entry in data.items() if entry[0][:2] == (D.DRAW, D.TIME)]:
        data[v + D.BAND_SUFFIX] = _band(data[v][0], data[v][1], q, v)
    coords[D.QUANTILE] = q
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _band(dims: tuple, values: np.ndarray, q: np.ndarray, name: str) -> tuple:
    """``(dims, values, attrs)`` of the quantiles ``q`` over the leading ``draw`` axis of ``values``.

    With one draw every quantile is that draw: a read-only broadcast view (no copy, no sort).
    """
    if dims[0] != D.DRAW:
        raise ValueError(f"band of {name}: draw must be the leading dim, got {dims}")
    if values.shape[0] == 1:
        band = np.broadcast_to(values[0], (len(q), *values.shape[1:]))
    else:
        band = np.quantile(values, q, axis=0)
    attrs = {D.UNITS: D.WATT, "long_name": f"quantiles of {name} over posterior draws"}
    return (D.QUANTILE, *dims[1:]), band, attrs


def power_vars(ds: xr.Dataset) -> list[str]:
    """Power variables of a site trace (those with a ``draw`` and a ``time`` dim)."""
    return [v for v in ds.data_vars if D.DRAW in ds[v].dims and D.TIME in ds[v].dims]


def add_bands(ds: xr.Dataset, quantiles=D.DEFAULT_QUANTILES) -> xr.Dataset:
    """Add ``<var>_band`` (quantile, time[, level]) over draws for every power variable.

    With a single draw every quantile is that draw: the band is then a read-only broadcast view of it
    (no copy, no sort).
    """
    q = np.asarray(quantiles, float)
    out = ds.drop_vars([v for v in ds.data_vars if v.endswith(D.BAND_SUFFIX)])
    bands = {}
    for v in power_vars(out):
        da = out[v].transpose(D.DRAW, ...)
        bands[v + D.BAND_SUFFIX] = _band(da.dims, da.values, q, v)
    return out.assign(bands).assign_coords({D.QUANTILE: q})


def energy(ds: xr.Dataset, var: str = D.FACILITY_POWER) -> xr.DataArray:
    """Energy (J) of a power variable over the whole trace: Σ power × interval."""
    e = (ds[var] * ds["interval"]).sum(D.TIME)
    e.attrs[D.UNITS] = D.JOULE
    return e


def write_trace(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a trace atomically: NetCDF (``.nc``) or Zarr (``.zarr``, a folder)."""
    path = Path(path)
    if path.suffix == ".zarr":
        with atomic_path(path, is_dir=True) as tmp:
            ds.to_zarr(str(tmp), mode="w", consolidated=False, zarr_format=3)
    else:
        enc = {v: {"zlib": True, "complevel": 1} for v in ds.data_vars if ds[v].ndim >= 2}
        with atomic_path(path) as tmp:
            ds.to_netcdf(str(tmp), engine="h5netcdf", encoding=enc)
    return path


def open_trace(path: str | os.PathLike, chunks=None) -> xr.Dataset:
    """Open a written trace (NetCDF or Zarr); ``chunks`` opens it lazily with Dask."""
    path = Path(path)
    if path.suffix == ".zarr":
        return xr.open_zarr(str(path), consolidated=False, chunks=chunks or {})
    return xr.open_dataset(str(path), engine="h5netcdf", chunks=chunks)
