"""A synthetic site trace in the generator's output form, for tests and for developing the analyses.

Not a model of anything measured: a diurnal, Azure-like traffic curve shared by every server (with a
per-draw scale and phase, standing in for posterior and traffic uncertainty), per-server AR(1)
activity around it, per-GPU power between idle (12 % of TDP) and an active level (78 % of TDP), and
host power that follows activity.  Real analyses use ``wattscape.generation``'s site generator.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy.signal import lfilter
from wattscape.models import dims as D


def example_site_trace(
    *,
    n_rows: int = 2,
    racks_per_row: int = 4,
    servers_per_rack: int = 4,
    gpus_per_server: int = 8,
    gpu_tdp_w: float = 700.0,
    host_w: float = 1000.0,
    pue: float = 1.3,
    hours: float = 24.0,
    period_s: float = 60.0,
    n_draws: int = 10,
    with_servers: bool = True,
    start: str = "2026-01-01T00:00:00",
    seed: int = 0,
) -> xr.Dataset:
    """Build a synthetic site trace with the variables, dims, nameplates and bands of a generated one.

    Parameters
    ----------
    n_rows, racks_per_row, servers_per_rack, gpus_per_server : int
        Topology of the site.
    gpu_tdp_w, host_w : float
        GPU TDP and non-GPU (host) power per server at full load, W.
    pue : float
        Power usage effectiveness: ``facility_power = it_power * pue``.
    hours, period_s : float
        Horizon and sampling period.
    n_draws : int
        Number of posterior-like draws.
    with_servers : bool
        Also store ``server_power(draw, time, server)``.
    start : str
        UTC start time.
    seed : int
        Seed of the numpy generator.

    Returns
    -------
    xr.Dataset
        ``facility_power``, ``it_power``, ``row_power``, ``rack_power`` (and ``server_power``), W;
        ``<level>_nameplate``; ``<var>_band(quantile, time[, level])``; attrs ``period_s``, ``pue``,
        ``gpus_per_server``, ``gpu_tdp_w``, ``host_power_w``, ``scenario``, ``model_id``.
    """
    rng = np.random.default_rng(seed)
    n_racks = n_rows * racks_per_row
    n_srv = n_racks * servers_per_rack
    nt = round(hours * 3600 / period_s)
    t_h = np.arange(nt) * period_s / 3600.0
    # Shared diurnal traffic per draw: trough before dawn, broad afternoon peak, draw-level scale/phase.
    scale = np.exp(rng.normal(0.0, 0.06, (n_draws, 1)))
    phase = rng.normal(0.0, 0.5, (n_draws, 1))
    h = t_h[None, :] - phase
    u = 0.58 + 0.22 * np.sin(2 * np.pi * (h - 9.0) / 24.0) + 0.06 * np.sin(4 * np.pi * (h - 7.0) / 24.0)
    u = np.clip(u * scale, 0.05, 0.97)
    # Per-server activity: AR(1) around the shared curve (correlation time ~ 5 min), built rack by rack
    # so that a big site without per-server output never holds (draw, server, time) arrays.
    phi = np.exp(-period_s / 300.0)
    idle, active = 0.12 * gpu_tdp_w, 0.78 * gpu_tdp_w
    rack_of = np.repeat(np.arange(n_racks), servers_per_rack)
    row_of_rack = np.repeat(np.arange(n_rows), racks_per_row)
    rack = np.zeros((n_draws, nt, n_racks), np.float32)
    srv_all = np.zeros((n_draws, nt, n_srv), np.float32) if with_servers else None
    for r in range(n_racks):
        eps = rng.normal(0.0, 0.18 * np.sqrt(1 - phi**2), (n_draws, servers_per_rack, nt))
        act = np.clip(u[:, None, :] + lfilter([1.0], [1.0, -phi], eps, axis=-1), 0.0, 1.0)
        gpu = idle + (active - idle) * act
        srv = gpus_per_server * gpu + host_w * (0.6 + 0.3 * act)
        srv += rng.normal(0.0, 0.01 * host_w, srv.shape)
        rack[:, :, r] = srv.sum(axis=1)
        if srv_all is not None:
            srv_all[:, :, r * servers_per_rack : (r + 1) * servers_per_rack] = np.transpose(srv, (0, 2, 1))
    rack64 = rack.astype(np.float64)
    row = rack64.reshape(n_draws, nt, n_rows, racks_per_row).sum(axis=-1)  # racks are numbered row by row
    it = row.sum(-1)
    fac = it * pue

    time = pd.date_range(start, periods=nt, freq=pd.Timedelta(seconds=period_s)).values
    srv_names = [f"srv{i:04d}" for i in range(n_srv)]
    rack_names = [f"rack{i:03d}" for i in range(n_racks)]
    row_names = [f"row{i:02d}" for i in range(n_rows)]
    w = {D.UNITS: D.WATT}
    srv_np = gpus_per_server * gpu_tdp_w + host_w
    coords = {
        D.DRAW: np.arange(n_draws),
        D.TIME: (D.TIME, time, {"timezone": "UTC"}),
        D.RACK: rack_names,
        D.ROW: row_names,
        "row_of_rack": (D.RACK, np.asarray(row_names)[row_of_rack]),
    }
    data = {
        D.FACILITY_POWER: ((D.DRAW, D.TIME), fac.astype(np.float32), w),
        D.IT_POWER: ((D.DRAW, D.TIME), it.astype(np.float32), w),
        D.ROW_POWER: ((D.DRAW, D.TIME, D.ROW), row.astype(np.float32), w),
        D.RACK_POWER: ((D.DRAW, D.TIME, D.RACK), rack, w),
        "rack" + D.NAMEPLATE_SUFFIX: ((D.RACK,), np.full(n_racks, servers_per_rack * srv_np), w),
        "row" + D.NAMEPLATE_SUFFIX: ((D.ROW,), np.full(n_rows, racks_per_row * servers_per_rack * srv_np), w),
        "it" + D.NAMEPLATE_SUFFIX: ((), n_srv * srv_np, w),
        "facility" + D.NAMEPLATE_SUFFIX: ((), n_srv * srv_np * pue, w),
    }
    if with_servers:
        coords[D.SERVER] = srv_names
        coords["rack_of_server"] = (D.SERVER, np.asarray(rack_names)[rack_of])
        data[D.SERVER_POWER] = ((D.DRAW, D.TIME, D.SERVER), srv_all, w)
        data["server" + D.NAMEPLATE_SUFFIX] = ((D.SERVER,), np.full(n_srv, srv_np), w)
    ds = xr.Dataset(data, coords=coords)
    q = list(D.DEFAULT_QUANTILES)
    for name in (D.FACILITY_POWER, D.IT_POWER, D.ROW_POWER, D.RACK_POWER):
        band = ds[name].quantile(q, dim=D.DRAW).astype(np.float32)
        band.attrs = dict(w)
        ds[name + D.BAND_SUFFIX] = band
    ds.attrs.update(
        period_s=float(period_s),
        pue=float(pue),
        n_servers=int(n_srv),
        n_gpus=int(n_srv * gpus_per_server),
        servers_per_rack=int(servers_per_rack),
        gpus_per_server=int(gpus_per_server),
        gpu_tdp_w=float(gpu_tdp_w),
        gpu_idle_w=float(idle),
        host_power_w=float(host_w),
        scenario="synthetic-example",
        model_id="synthetic",
        note="synthetic fixture (wattscape.generation.planning.synthetic), not a fitted model",
    )
    return ds
