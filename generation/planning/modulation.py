"""Power modulation what-ifs: a per-GPU power cap or a facility-level cap, as a table over cap levels.

Throughput cost proxy ("deferred work")
    Power above a unit's idle floor ``f`` is taken as a proxy of the work it serves: work rate
    ``w(P) = max(P − f, 0)^α`` (``α = perf_exponent``; ``α = 1``: work ∝ dynamic energy, the
    conservative default; ``α < 1`` models DVFS making capped GPUs more energy-efficient).  Under a
    cap ``C`` the unit serves at most ``w(C)``; demand above it is not lost but *deferred*: it joins a
    backlog ``B`` (work·s) that is served as soon as demand falls below the cap::

        served(t) = min(w_demand(t) + B(t)/dt, w(C))
        B(t + dt) = B(t) + (w_demand(t) − served(t)) · dt
        P_capped(t) = P(t) if nothing is deferred, else f + served(t)^(1/α)

    i.e. capped work is time-stretched at reduced power.  The table reports the peak after capping,
    the energy delivered within the horizon, the fraction of demanded work served within the horizon
    (the throughput proxy), the mean delay of work (Little's law: ``∫B dt / ∫w_demand dt``, s) and the
    share of time work is being deferred.  It ignores that capped requests may also miss latency
    targets and that users may abandon them; it knows nothing of batching changes under a cap.

Per-GPU cap
    Applied at the finest level the trace holds: ``gpu_power`` exactly; ``server_power``, ``rack_power``
    or ``row_power`` as a cap of ``n_gpus × c + non-GPU power`` on the unit's total, which assumes the
    GPUs of a unit run at one level: true of a tensor-parallel group, increasingly optimistic for racks
    and rows (one GPU's slack absorbs another's excess); the table's attrs say which level was used.
    (``wattscape.generation`` can also simulate a cap per GPU directly: fleet ``power_cap_w``.)
Facility cap
    The facility power is capped at ``C`` (W incl. PUE): IT power is capped at ``C / PUE(t)`` as one
    pool, as if an operator throttled all GPUs together.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm
from wattscape.models import dims as D

from .common import (
    SiteTraceError,
    bin_widths,
    check_site_trace,
    finite_values,
    interval,
    level_var,
    nameplate,
    period_s,
    pue_factor,
    site_meta,
)

DEFAULT_GPU_CAP_FRACS: tuple[float, ...] = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
DEFAULT_FACILITY_CAP_FRACS: tuple[float, ...] = (1.0, 0.95, 0.9, 0.85, 0.8)
#: Units per chunk in the capped simulation (bounds memory to chunk × time values).
_CHUNK_VALUES = 20_000_000


@partial(jax.jit, static_argnames=())
def defer_scan(demand, floor, cap, dt, alpha):
    """Capped power and backlog of the deferred-work proxy (pure, jit-compiled).

    Parameters
    ----------
    demand : array (time, batch)
        Uncapped power, W.
    floor : array (batch,)
        Idle floor of each unit, W.
    cap : array (time, batch)
        Cap, W (values below the floor act as the floor).
    dt : float
        Step, s.
    alpha : float
        Performance exponent of the work proxy.

    Returns
    -------
    (power, backlog) : arrays (time, batch)
        Delivered power (W) and the backlog after each step (work·s).
    """
    inv = 1.0 / alpha

    def step(backlog, inp):
        d, c = inp
        w_d = jnp.maximum(d - floor, 0.0) ** alpha
        w_c = jnp.maximum(c - floor, 0.0) ** alpha
        served = jnp.minimum(w_d + backlog / dt, w_c)
        untouched = (backlog <= 0.0) & (w_d <= w_c)
        served = jnp.where(untouched, w_d, served)
        p = jnp.where(untouched, d, floor + jnp.maximum(served, 0.0) ** inv)
        new = backlog + (w_d - served) * dt
        new = jnp.where(new > 1e-5 * (w_c + 1.0) * dt, new, 0.0)  # float residue of a drained backlog
        return new, (p, new)

    _, (p, b) = jax.lax.scan(step, jnp.zeros_like(floor), (demand, cap))
    return p, b


def _finest_units(ds: xr.Dataset) -> tuple[xr.DataArray, float, float, str]:
    """(unit power (draw, time, unit), GPUs per unit, constant non-GPU power per unit, unit level).

    The finest of gpu, server, rack and row present; GPUs and non-GPU power are spread evenly over the
    units of a level (a homogeneous fleet; a mixed fleet gets its average).
    """
    meta = site_meta(ds)
    if D.GPU_POWER in ds:
        return ds[D.GPU_POWER].transpose(D.DRAW, D.TIME, D.GPU), 1.0, 0.0, D.GPU
    n_gpus, n_srv, host = meta["n_gpus"], meta["n_servers"], meta["host_w"]
    if n_gpus is None or n_srv is None or host is None:
        raise SiteTraceError(
            "a per-GPU cap needs gpu_power, or the numbers of GPUs and servers and the non-GPU power per "
            f"server (attrs n_gpus, n_servers, host_power_w / non_gpu_w, or it_nameplate + a known GPU); "
            f"found {meta}"
        )
    for level in (D.SERVER, D.RACK, D.ROW):
        var = level_var(level)
        if var in ds:
            m = ds.sizes[level]
            return ds[var].transpose(D.DRAW, D.TIME, level), n_gpus / m, host * n_srv / m, level
    raise SiteTraceError("a per-GPU cap needs gpu_power, server_power, rack_power or row_power in the trace")


#: Idle floor as a share of nameplate when the card's idle power is unknown (DESIGN: idle ≈ 10–20 % TDP).
IDLE_SHARE_OF_NAMEPLATE = 0.15


def _floor(x: np.ndarray, per_unit_idle_w: float | None, nameplate_w: float | None) -> np.ndarray:
    """Idle floor per (draw, unit), W, never above the unit's lowest power in the trace.

    ``n_gpus × idle + non-GPU`` when known, else :data:`IDLE_SHARE_OF_NAMEPLATE` × nameplate, else the
    1st percentile over time.
    """
    lowest = x.min(axis=1)
    if per_unit_idle_w is not None:
        return np.minimum(np.full(lowest.shape, per_unit_idle_w), lowest)
    if nameplate_w is not None and np.isfinite(nameplate_w):
        return np.minimum(np.full(lowest.shape, IDLE_SHARE_OF_NAMEPLATE * nameplate_w), lowest)
    return np.quantile(x, 0.01, axis=1)


def _run(demand: np.ndarray, floor: np.ndarray, cap: np.ndarray, dt: float, alpha: float):
    """Run the scan over (draw, time, unit) in chunks; return per-draw sums over units (time) and totals."""
    n_draws, nt, m = demand.shape
    chunk = max(1, _CHUNK_VALUES // max(nt * n_draws, 1))
    p_sum = np.zeros((n_draws, nt))
    backlog_int = np.zeros(n_draws)
    final = np.zeros(n_draws)
    deferring = np.zeros(n_draws)
    work = np.zeros(n_draws)
    for u0 in range(0, m, chunk):
        d = demand[:, :, u0 : u0 + chunk]
        k = d.shape[2]
        f = floor[:, u0 : u0 + chunk]
        c = np.broadcast_to(cap[:, :, u0 : u0 + chunk] if cap.shape[2] > 1 else cap, d.shape)
        dd = np.moveaxis(d, 1, 0).reshape(nt, n_draws * k)
        cc = np.moveaxis(c, 1, 0).reshape(nt, n_draws * k)
        p, b = defer_scan(
            jnp.asarray(dd, jnp.float32),
            jnp.asarray(f.reshape(-1), jnp.float32),
            jnp.asarray(cc, jnp.float32),
            float(dt),
            float(alpha),
        )
        p = np.asarray(p, np.float64).reshape(nt, n_draws, k)
        b = np.asarray(b, np.float64).reshape(nt, n_draws, k)
        p_sum += p.sum(axis=2).T
        backlog_int += b.sum(axis=(0, 2)) * dt
        final += b[-1].sum(axis=1)
        deferring += (b > 0).mean(axis=0).sum(axis=1)
        wd = np.maximum(dd.reshape(nt, n_draws, k) - f[None], 0.0) ** alpha
        work += wd.sum(axis=(0, 2)) * dt
    return p_sum, backlog_int, final, deferring / m, work


def _row(kind, cap_value, cap_unit, frac, it_capped, pue, widths, base, backlog_int, final, deferring, work):
    fac = it_capped * pue
    peak = fac.max(axis=1)
    energy = (fac * widths).sum(axis=1) / 3.6e9  # MWh
    served = np.where(work > 0, 1.0 - final / np.where(work > 0, work, 1.0), 1.0)
    delay = np.where(work > 0, backlog_int / np.where(work > 0, work, 1.0), 0.0)
    pk = interval(peak / 1e3)
    loss = interval(100.0 * (1.0 - served))
    return {
        "cap_kind": kind,
        "cap": cap_value,
        "cap_unit": cap_unit,
        "cap_frac": frac,
        "peak_kw": pk[0],
        "peak_kw_lo": pk[1],
        "peak_kw_hi": pk[2],
        "peak_change_pct": 100.0 * (np.median(peak) / np.median(base["peak"]) - 1.0),
        "energy_mwh": float(np.median(energy)),
        "energy_change_pct": 100.0 * (np.median(energy) / np.median(base["energy"]) - 1.0),
        "throughput_loss_pct": loss[0],
        "throughput_loss_pct_hi": loss[2],
        "mean_delay_s": float(np.median(delay)),
        "time_deferring_pct": float(np.median(100.0 * deferring)),
    }


def modulation_table(
    ds: xr.Dataset,
    *,
    gpu_caps_w: tuple[float, ...] | None = None,
    facility_caps_w: tuple[float, ...] | None = None,
    idle_w: float | None = None,
    perf_exponent: float = 1.0,
    progress: bool = False,
) -> pd.DataFrame:
    """Effect of power caps on facility peak, energy and served throughput (deferred-work proxy).

    Parameters
    ----------
    ds : xr.Dataset
        Site trace.
    gpu_caps_w : tuple of float, optional
        Per-GPU caps, W (default: 100, 90, …, 50 % of attr ``gpu_tdp_w``; skipped when unknown).
        Pass ``()`` to skip per-GPU caps.
    facility_caps_w : tuple of float, optional
        Facility caps, W incl. PUE (default: 100, 95, …, 80 % of the median uncapped peak).
        Pass ``()`` to skip.
    idle_w : float, optional
        Per-GPU idle power for the floor (default: attr ``gpu_idle_w`` or the card's typical idle
        power; else the floor is 15 % of the unit's nameplate), never above the unit's lowest power.
    perf_exponent : float
        ``α`` of the work proxy (module docstring).
    progress : bool
        Show a progress bar.

    Returns
    -------
    pd.DataFrame
        One row per (cap kind, level): ``cap_kind`` ("none", "gpu", "facility"), ``cap``, ``cap_unit``,
        ``cap_frac`` (of TDP or of the uncapped peak), facility ``peak_kw`` with 90 % interval
        (``peak_kw_lo``, ``peak_kw_hi``) and ``peak_change_pct``, ``energy_mwh`` within the horizon and
        ``energy_change_pct``, ``throughput_loss_pct`` (demanded work not served within the horizon,
        median; ``_hi`` = 95th percentile), ``mean_delay_s``, ``time_deferring_pct``.
    """
    check_site_trace(ds, (D.FACILITY_POWER,))
    if perf_exponent <= 0:
        raise ValueError(f"perf_exponent must be positive, got {perf_exponent}")
    dt = period_s(ds)
    pue = np.broadcast_to(
        np.asarray(
            pue_factor(ds).transpose(*[d for d in (D.DRAW, D.TIME) if d in pue_factor(ds).dims]).values, float
        ),
        (ds.sizes[D.DRAW], ds.sizes[D.TIME]),
    )
    fac0 = finite_values(ds[D.FACILITY_POWER].transpose(D.DRAW, D.TIME), D.FACILITY_POWER).astype(np.float64)
    it0 = fac0 / pue
    widths = bin_widths(ds)
    base = {"peak": fac0.max(axis=1), "energy": (fac0 * widths).sum(axis=1) / 3.6e9}
    meta = site_meta(ds)
    idle_w = idle_w if idle_w is not None else meta["gpu_idle_w"]
    rows = [
        _row(
            "none",
            np.nan,
            "",
            1.0,
            it0,
            pue,
            widths,
            base,
            np.zeros(len(fac0)),
            np.zeros(len(fac0)),
            np.zeros(len(fac0)),
            np.ones(len(fac0)),
        )
    ]
    tdp = meta["gpu_tdp_w"]
    cap_level = None
    if gpu_caps_w is None:
        gpu_caps_w = tuple(f * float(tdp) for f in DEFAULT_GPU_CAP_FRACS if f < 1.0) if tdp else ()
    if gpu_caps_w:
        units, n_gpus, host, cap_level = _finest_units(ds)
        x = finite_values(units, level_var(cap_level)).astype(np.float32)
        npl = nameplate(ds, cap_level)
        per_unit_idle = n_gpus * float(idle_w) + host if idle_w is not None else None
        floor = _floor(x, per_unit_idle, float(npl.mean()) if npl is not None else None)
        # units not in the finest level (e.g. storage) are left uncapped: keep the remainder as is.
        rest = it0 - x.sum(axis=2, dtype=np.float64)
        for c in tqdm(gpu_caps_w, desc="per-GPU caps", disable=not progress, leave=False):
            cap = np.full((1, 1, 1), n_gpus * c + host, np.float32)
            p_sum, bint, final, deferring, work = _run(x, floor, cap, dt, perf_exponent)
            frac = c / float(tdp) if tdp else np.nan
            rows.append(
                _row(
                    "gpu",
                    float(c),
                    "W per GPU",
                    frac,
                    p_sum + rest,
                    pue,
                    widths,
                    base,
                    bint,
                    final,
                    deferring,
                    work,
                )
            )
    if facility_caps_w is None:
        med_peak = float(np.median(base["peak"]))
        facility_caps_w = tuple(f * med_peak for f in DEFAULT_FACILITY_CAP_FRACS if f < 1.0)
    if facility_caps_w:
        it3 = it0[:, :, None]
        site_idle = None
        if idle_w is not None and None not in (meta["n_gpus"], meta["n_servers"], meta["host_w"]):
            site_idle = meta["n_gpus"] * float(idle_w) + meta["host_w"] * meta["n_servers"]
        it_npl = ds["it" + D.NAMEPLATE_SUFFIX] if "it" + D.NAMEPLATE_SUFFIX in ds else None
        floor = _floor(it3, site_idle, float(it_npl) if it_npl is not None else None)
        for c in tqdm(facility_caps_w, desc="facility caps", disable=not progress, leave=False):
            cap = (float(c) / pue)[:, :, None]
            p_sum, bint, final, deferring, work = _run(it3, floor, cap, dt, perf_exponent)
            rows.append(
                _row(
                    "facility",
                    float(c) / 1e3,
                    "kW facility",
                    float(c) / float(np.median(base["peak"])),
                    p_sum,
                    pue,
                    widths,
                    base,
                    bint,
                    final,
                    deferring,
                    work,
                )
            )
    df = pd.DataFrame(rows)
    df.attrs.update(
        proxy="deferred work: power above the idle floor ~ work^(1/alpha); capped work waits in a backlog",
        perf_exponent=float(perf_exponent),
        period_s=dt,
        gpu_cap_resolution=cap_level or "",
        units="peak kW incl. PUE at the trace period; energy MWh incl. PUE within the horizon",
    )
    return df
