"""Oversubscription of a power budget: how many servers (or racks) fit under it at risk ε.

Question
    A budget ``B`` (W) protects one rack, one row or the whole facility.  How many units (servers or
    racks) can be placed under it so that ``P(power exceeds B at any time within the horizon) ≤ ε``?

Method
    Risk is taken over posterior draws *and* traffic randomness, in the manner of the paper's "200
    random rack subsets" (PROTOCOL.md).  Sample ``s`` picks a posterior draw ``d`` (round robin) and a
    random order ``π_s`` of the site's units; the units under the budget when ``n`` are placed are the
    first ``n`` of that order.  Their summed power ``S_{s,n}(t)`` (W, × PUE for a facility budget)
    gives a peak curve ``peak_s(n) = max_t S_{s,n}(t)``, non-decreasing in ``n``.  Then

    - ``N_s = max{n : peak_s(n) ≤ B}`` is the count sample ``s`` tolerates, and
    - the answer ``n*(ε) = max{n : #{s : peak_s(n) > B} ≤ ε S}`` is an order statistic of ``N_s``;

    so ``n*`` is non-decreasing in ε and in ``B`` by construction.  Units keep the time alignment of
    their draw (shared diurnal traffic stays correlated).  When ``n`` exceeds the site's ``M`` units,
    the order is tiled (unit ``i`` reused as ``i + M``): copies are perfectly correlated, so counts
    beyond the site size are conservative.

Baselines beside the answer
    - TDP (nameplate) sizing: ``floor(B / unit nameplate)`` (× PUE at facility level);
    - mean-power sizing: ``floor(B / mean unit power)`` — it ignores peaks and over-admits.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm
from wattscape.models import dims as D

from .common import (
    BUDGET_LEVELS,
    SiteTraceError,
    bin_widths,
    check_site_trace,
    finite_values,
    level_var,
    nameplate,
    period_s,
    pue_factor,
    site_meta,
    window_mean,
)

#: Units counted under a budget at each level unless told otherwise: the first one the trace holds.
DEFAULT_UNIT: dict[str, tuple[str, ...]] = {
    D.RACK: (D.SERVER, D.GPU),
    D.ROW: (D.RACK, D.SERVER),
    D.FACILITY: (D.RACK, D.SERVER, D.ROW),
}
#: Default risk levels of the curve.
DEFAULT_EPSILONS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


def _check_level_unit(ds: xr.Dataset, level: str, unit: str | None) -> str:
    if level not in BUDGET_LEVELS:
        raise ValueError(f"unknown budget level {level!r}; known: {list(BUDGET_LEVELS)}")
    if unit is None:
        have = [u for u in DEFAULT_UNIT[level] if level_var(u) in ds]
        if not have:
            raise SiteTraceError(
                f"oversubscription at {level} level counts one of {list(DEFAULT_UNIT[level])}, but the trace "
                f"holds none of {[level_var(u) for u in DEFAULT_UNIT[level]]}; generate it with those levels"
            )
        unit = have[0]
    order = list(D.TOPOLOGY_LEVELS)
    if unit not in order[:-1]:
        raise ValueError(f"unknown unit {unit!r}; known: {order[:-1]}")
    if order.index(unit) >= order.index(level):
        raise ValueError(f"a {level} budget counts units below it, not {unit!r}")
    var = level_var(unit)
    if var not in ds:
        raise SiteTraceError(
            f"oversubscription at {level} level counting {unit}s needs {var!r}, which this trace lacks; "
            f"pass unit= one of the levels present ({[u for u in order[:-1] if level_var(u) in ds]})"
        )
    check_site_trace(ds, (var,))
    return unit


def unit_power(
    ds: xr.Dataset, level: str, unit: str | None = None, window_s: float | None = None
) -> xr.DataArray:
    """Power of each unit as seen by a ``level`` budget, dims (draw, time, ``unit``), W.

    At facility level the IT power of the unit is multiplied by the PUE (facility/IT ratio).  With
    ``window_s`` the power is first averaged over non-overlapping windows (partial ones dropped).
    """
    unit = _check_level_unit(ds, level, unit)
    da = ds[level_var(unit)].transpose(D.DRAW, D.TIME, unit)
    if level == D.FACILITY:
        da = da * pue_factor(ds)
        da = da.transpose(D.DRAW, D.TIME, unit)
    dt = period_s(ds)
    if window_s and window_s > dt * (1 + 1e-9):
        da = window_mean(da, window_s, dt, bin_widths(ds))
        full = da["interval_s"].values >= window_s - 1e-6
        da = da.isel({D.TIME: np.flatnonzero(full)}).drop_vars("interval_s")
    da.attrs = {D.UNITS: D.WATT}
    return da


def _tolerated_counts(
    units: np.ndarray, budget_w: float, n_samples: int, seed: int, max_n: int, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``N_s`` per sample and the draw each sample used.  ``units``: (draw, time, unit) in W.

    Units are added in blocks along the sample's order (cyclically past the site size) and the search
    stops at the first exceedance, so the cost grows with ``N_s``, not with the site size.
    """
    n_draws, nt, m = units.shape
    rng = np.random.default_rng(seed)
    counts = np.empty(n_samples, np.int64)
    draws = np.arange(n_samples) % n_draws
    blk = 8
    for s in tqdm(range(n_samples), desc="oversubscription", disable=not progress, leave=False):
        x = units[draws[s]]
        perm = rng.permutation(m)
        run = np.zeros(nt, np.float64)  # summed power of the units placed so far
        n_ok = max_n
        for j0 in range(0, max_n, blk):
            idx = perm[np.arange(j0, min(j0 + blk, max_n)) % m]
            c = np.cumsum(x[:, idx], axis=1, dtype=np.float64)
            c += run[:, None]
            over = np.flatnonzero(c.max(axis=0) > budget_w)
            if over.size:
                n_ok = j0 + int(over[0])  # units placed before the first exceedance
                break
            run = c[:, -1]
        counts[s] = n_ok
    return counts, draws


def _answer(counts: np.ndarray, epsilon: float) -> int:
    """Largest ``n`` with ``#{s : N_s < n} ≤ ε S``."""
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"epsilon must be in [0, 1), got {epsilon}")
    srt = np.sort(counts)
    k = math.floor(epsilon * len(srt) + 1e-12)
    return int(srt[min(k, len(srt) - 1)])


def peak_curves(
    ds: xr.Dataset,
    *,
    level: str = D.ROW,
    unit: str | None = None,
    n_max: int | None = None,
    n_samples: int = 200,
    window_s: float | None = None,
    seed: int = 0,
) -> xr.DataArray:
    """Peak power of the first ``n`` units of random orders: dims (``sample``, ``n``), W.

    For plots and checks; :func:`oversubscription` uses a faster early-stopping search.
    """
    da = unit_power(ds, level, unit, window_s)
    x = da.values.astype(np.float64)
    n_draws, _, m = x.shape
    n_max = n_max or m
    rng = np.random.default_rng(seed)
    out = np.empty((n_samples, n_max))
    for s in range(n_samples):
        xd = x[s % n_draws][:, rng.permutation(m)]
        k = math.ceil(n_max / m)
        cols = np.cumsum(np.concatenate([xd] * k, axis=1)[:, :n_max], axis=1)
        out[s] = cols.max(axis=0)
    return xr.DataArray(
        out,
        dims=(D.SAMPLE, "n"),
        coords={D.SAMPLE: np.arange(n_samples), "n": np.arange(1, n_max + 1)},
        attrs={D.UNITS: D.WATT, "level": level, "unit": da.dims[-1]},
    )


def _baselines(ds: xr.Dataset, da: xr.DataArray, level: str, unit: str, budget_w: float) -> dict:
    npl = nameplate(ds, unit)
    pue = float(pue_factor(ds).max()) if level == D.FACILITY else 1.0  # nameplate sizing takes the worst PUE
    unit_np = float(npl.mean()) * pue if npl is not None else float("nan")
    mean_w = float(da.mean())
    return {
        "unit_nameplate_w": unit_np,
        "unit_mean_w": mean_w,
        "n_tdp": int(np.floor(budget_w / unit_np + 1e-9)) if np.isfinite(unit_np) and unit_np > 0 else -1,
        "n_mean": int(np.floor(budget_w / mean_w + 1e-9)) if mean_w > 0 else -1,
    }


def oversubscription_curve(
    ds: xr.Dataset,
    budget_w: float,
    *,
    level: str = D.ROW,
    unit: str | None = None,
    epsilons: tuple[float, ...] = DEFAULT_EPSILONS,
    n_samples: int = 200,
    window_s: float | None = None,
    max_n: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """Units admissible under a budget at each risk level ε, beside nameplate and mean-power sizing.

    Parameters
    ----------
    ds : xr.Dataset
        Site trace.
    budget_w : float
        Power budget, W (facility budgets include PUE).
    level : {"rack", "row", "facility"}
        Where the budget applies.
    unit : str, optional
        Unit counted (default: the first the trace holds of :data:`DEFAULT_UNIT` — servers for a rack
        budget, racks (else servers) for a row budget, racks (else servers, else rows) for a facility).
    epsilons : tuple of float
        Risk levels: the allowed probability that power exceeds the budget at least once.
    n_samples : int
        Random (draw, unit order) samples; ε below ``1 / n_samples`` is not resolved.
    window_s : float, optional
        Averaging window of the budget's protection (e.g. 60 s); default: the trace's period.
    max_n : int, optional
        Largest count searched (default 100 × the number of units in the site).
    seed : int
        Seed of the unit orders.
    progress : bool
        Show a progress bar.

    Returns
    -------
    pd.DataFrame
        One row per ε: ``epsilon, n_units, n_tdp, n_mean, gain_vs_tdp_pct, p_exceed_at_n,
        p_exceed_at_tdp, p_exceed_at_mean, hit_max_n`` (+ ``n_servers`` / ``n_servers_tdp`` when units
        are racks or rows: the server count they hold on average).  ``attrs`` hold the budget (W),
        level, unit, window, sample count, unit nameplate and mean power (W), and the tolerated count
        of every sample (``tolerated_counts``).
    """
    if not np.isfinite(budget_w) or budget_w <= 0:
        raise ValueError(f"budget_w must be a positive number of watts, got {budget_w}")
    unit = _check_level_unit(ds, level, unit)
    da = unit_power(ds, level, unit, window_s)
    x = np.ascontiguousarray(finite_values(da, level_var(unit)), dtype=np.float32)
    m = x.shape[2]
    max_n = max_n or 100 * m
    counts, _ = _tolerated_counts(x, float(budget_w), n_samples, seed, max_n, progress)
    base = _baselines(ds, da, level, unit, float(budget_w))

    def p_exceed(n: int) -> float:
        return float(np.mean(counts < n)) if n > 0 else 0.0

    rows = []
    per_unit = None
    n_srv = site_meta(ds)["n_servers"]
    if unit in (D.RACK, D.ROW) and n_srv:
        per_unit = n_srv / m
    for eps in epsilons:
        n = _answer(counts, float(eps))
        row = {
            "epsilon": float(eps),
            "n_units": n,
            "n_tdp": base["n_tdp"],
            "n_mean": base["n_mean"],
            "gain_vs_tdp_pct": 100.0 * (n / base["n_tdp"] - 1.0) if base["n_tdp"] > 0 else float("nan"),
            "p_exceed_at_n": p_exceed(n),
            "p_exceed_at_tdp": p_exceed(base["n_tdp"]),
            "p_exceed_at_mean": p_exceed(base["n_mean"]),
            "hit_max_n": bool(n >= max_n),
        }
        if per_unit:
            row["n_servers"] = round(n * per_unit)
            row["n_servers_tdp"] = round(base["n_tdp"] * per_unit)
        rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs.update(
        budget_w=float(budget_w),
        level=level,
        unit=unit,
        window_s=float(window_s or period_s(ds)),
        n_samples=int(n_samples),
        n_site_units=int(m),
        unit_nameplate_w=base["unit_nameplate_w"],
        unit_mean_w=base["unit_mean_w"],
        tolerated_counts=counts,
    )
    return df


def oversubscription(
    ds: xr.Dataset,
    budget_w: float,
    *,
    level: str = D.ROW,
    unit: str | None = None,
    epsilon: float = 0.01,
    **kwargs,
) -> pd.Series:
    """The single answer at one ε: a row of :func:`oversubscription_curve` (same keyword arguments)."""
    df = oversubscription_curve(ds, budget_w, level=level, unit=unit, epsilons=(epsilon,), **kwargs)
    out = df.iloc[0].copy()
    out.attrs = dict(df.attrs)
    return out
