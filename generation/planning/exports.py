"""Exports of a site trace's facility load profile for utility and co-simulation tools.

Every export is built from :func:`~.load_profile.profile`: the point value of an interval is the
posterior *mean* of the interval-mean power (so the exported profile integrates to the trace's
posterior-mean energy exactly), bands are quantiles over draws.

- :func:`profile_csv` — timestamped CSV in kW: ``timestamp`` (UTC interval start, ISO 8601),
  ``interval_s``, ``mean_kw``, ``q05_kw``, ``q25_kw``, ``q50_kw``, ``q75_kw``, ``q95_kw``.
- :func:`vessim_csv` — a CSV that Vessim's trace signals read: first column a UTC timestamp (the
  index), one value column per series in **W with Vessim's sign convention (consumers negative)**;
  values hold until the next row (Vessim's default ``ffill``).  Load it with
  ``vessim.Trace.from_csv(path, anchor="<first timestamp>", column="datacenter")`` (newer Vessim) or
  ``vessim.HistoricalSignal(pd.read_csv(path, index_col=0, parse_dates=True)["datacenter"])``
  (older), and give it to ``vessim.Actor(name=..., signal=...)``.
- :func:`opendss_loadshape` — ``<name>_mult.csv`` (one multiplier per line, the mean profile divided
  by its peak) and ``<name>.dss`` with ``New Loadshape.<name> npts=… sinterval=… mult=(file=…)``;
  attach to a load whose ``kW`` is the peak written in the file's comment (``daily=<name>`` for a
  24-h shape, ``yearly=`` for 8760 h).  OpenDSS needs equal intervals: a trailing partial interval is
  dropped (said in the file).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from wattscape.models import dims as D

from wattscape.io import atomic_path

from .load_profile import PROFILE_QUANTILES, profile


def _qname(q: float) -> str:
    return f"q{round(100 * q):02d}"


def profile_frame(ds: xr.Dataset, period: str | float = "15min") -> pd.DataFrame:
    """The facility profile as a table in kW with band columns (see module docstring)."""
    p = profile(ds, period, quantiles=PROFILE_QUANTILES)
    ts = pd.DatetimeIndex(p[D.TIME].values)
    df = pd.DataFrame(
        {
            "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "interval_s": p["interval_s"].values.astype(float),
            "mean_kw": p["mean"].values / 1e3,
        }
    )
    for q in PROFILE_QUANTILES:
        df[f"{_qname(q)}_kw"] = p["band"].sel(quantile=q).values / 1e3
    df.attrs.update(period=str(period), units="kW", n_draws=int(p.sizes[D.DRAW]))
    return df


def profile_csv(ds: xr.Dataset, path: str | os.PathLike, period: str | float = "15min") -> pd.DataFrame:
    """Write the timestamped kW profile with band columns to ``path``; return the table."""
    df = profile_frame(ds, period)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.4f")
    return df


def vessim_csv(
    ds: xr.Dataset, path: str | os.PathLike, period: str | float = "15min", name: str = "datacenter"
) -> pd.DataFrame:
    """Write a Vessim trace CSV (timestamp index; W; consumption negative); return the table.

    Columns: ``name`` (posterior mean), ``name_q05`` and ``name_q95`` (band edges; with the negative
    sign the q95 column is the *more* negative one).
    """
    p = profile(ds, period, quantiles=(0.05, 0.95))
    idx = pd.DatetimeIndex(p[D.TIME].values, name="time")
    df = pd.DataFrame(
        {
            name: -p["mean"].values.astype(float),
            f"{name}_q05": -p["band"].sel(quantile=0.05).values.astype(float),
            f"{name}_q95": -p["band"].sel(quantile=0.95).values.astype(float),
        },
        index=idx,
    )
    with atomic_path(path) as tmp:
        df.to_csv(tmp, date_format="%Y-%m-%d %H:%M:%S", float_format="%.3f")
    return df


def opendss_loadshape(
    ds: xr.Dataset, out_dir: str | os.PathLike, name: str = "datacenter", period: str | float = "1h"
) -> dict[str, object]:
    """Write ``<name>_mult.csv`` and ``<name>.dss`` (a ``New Loadshape`` definition) into ``out_dir``.

    Returns
    -------
    dict
        ``dss`` and ``mult`` paths, ``peak_kw`` (the base the multipliers scale), ``sinterval``
        (s), ``npts``, ``mult`` (np.ndarray) and ``dropped_partial`` (bool).
    """
    out_dir = Path(out_dir)
    p = profile(ds, period, quantiles=(0.5,))
    interval = p["interval_s"].values
    full = interval >= interval.max() - 1e-9
    mean = p["mean"].values[full]
    peak_kw = float(mean.max()) / 1e3
    mult = mean / 1e3 / peak_kw
    sinterval = float(interval.max())
    mult_path = out_dir / f"{name}_mult.csv"
    dss_path = out_dir / f"{name}.dss"
    with atomic_path(mult_path) as tmp:
        np.savetxt(tmp, mult, fmt="%.6f")
    t0 = pd.Timestamp(p[D.TIME].values[0])
    lines = [
        f"! wattscape facility loadshape '{name}': posterior-mean {period} facility power incl. PUE",
        f"! start {t0.isoformat()}Z (UTC); multipliers are per unit of the peak {peak_kw:.3f} kW",
        f"! attach with: New Load.{name} bus1=<bus> kV=<kV> kW={peak_kw:.3f} pf=<pf> daily={name}",
    ]
    if not full.all():
        lines.append(f"! a trailing partial interval of {interval[~full][0]:g} s was dropped")
    lines.append(
        f"New Loadshape.{name} npts={len(mult)} sinterval={sinterval:g} "
        f"mult=(file={mult_path.name}) UseActual=no"
    )
    with atomic_path(dss_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return {
        "dss": dss_path,
        "mult": mult_path,
        "peak_kw": peak_kw,
        "sinterval": sinterval,
        "npts": len(mult),
        "mult_values": mult,
        "dropped_partial": bool(not full.all()),
    }


def export_all(ds: xr.Dataset, out_dir: str | os.PathLike, name: str = "datacenter") -> dict[str, Path]:
    """Write every export into ``out_dir``: profile CSVs (15 min, 1 h), Vessim CSV, OpenDSS loadshape."""
    out_dir = Path(out_dir)
    paths = {
        "profile_15min": out_dir / "profile_15min_kw.csv",
        "profile_1h": out_dir / "profile_1h_kw.csv",
        "vessim": out_dir / "vessim_15min_w.csv",
    }
    profile_csv(ds, paths["profile_15min"], "15min")
    profile_csv(ds, paths["profile_1h"], "1h")
    vessim_csv(ds, paths["vessim"], "15min", name)
    dss = opendss_loadshape(ds, out_dir, name, "1h")
    paths["opendss"] = dss["dss"]
    paths["opendss_mult"] = dss["mult"]
    return paths
