"""Convergence diagnostics of a fit: r_hat, ESS bulk/tail, divergences, BFMI, tree depth; saved beside the
posterior."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pandas as pd

from wattscape.io import atomic_path

#: Deterministic or derived variables left out of the table (functions of the free ones).
SKIP = ("eta",)

#: NUTS tree-depth limit of the samplers used here (numpyro, nutpie and PyMC all default to 10): a draw at
#: the limit took 2**10 - 1 leapfrog steps and its trajectory was cut short, the sign of a posterior with
#: directions far longer than the step size (a ridge or a funnel), which costs time before it costs r_hat.
MAX_TREE_DEPTH = 10


def tree_depth(stats, limit: int = MAX_TREE_DEPTH) -> tuple[float | None, float | None]:
    """Mean NUTS tree depth and the share of draws whose tree reached ``limit``.

    Parameters
    ----------
    stats : xr.Dataset or None
        ``sample_stats`` of a fit: numpyro and PyMC write ``tree_depth`` (PyMC also
        ``reached_max_treedepth``), nutpie ``depth`` and ``maxdepth_reached``.
    limit : int
        Depth limit used when the sampler wrote no flag of its own.

    Returns
    -------
    (mean depth, share at the limit), each None when the fit has no tree depths (ADVI).
    """
    if stats is None:
        return None, None
    name = next((v for v in ("tree_depth", "depth") if v in stats), None)
    if name is None:
        return None, None
    depth = np.asarray(stats[name].values, dtype=float)
    flag = next((v for v in ("reached_max_treedepth", "maxdepth_reached") if v in stats), None)
    at_limit = np.asarray(stats[flag].values, dtype=bool) if flag else depth >= limit
    return float(depth.mean()), float(at_limit.mean())


def diagnostics_table(idata: az.InferenceData, var_names: list[str] | None = None) -> pd.DataFrame:
    """One row per scalar parameter: mean, sd, r_hat, ess_bulk, ess_tail (``az.summary``)."""
    post = idata.posterior
    names = var_names or [v for v in post.data_vars if v not in SKIP]
    # one chain (the fast path): no r_hat/ESS, only moments
    kind = "all" if post.sizes["chain"] > 1 else "stats"
    return az.summary(idata, var_names=names, kind=kind, round_to="none")


def diagnostics_summary(idata: az.InferenceData, table: pd.DataFrame | None = None) -> dict[str, Any]:
    """Headline figures: max r_hat, min ESS bulk/tail, divergences, min BFMI, mean tree depth and the share
    of draws at the depth limit (:func:`tree_depth`), draws, chains, sampler."""
    table = diagnostics_table(idata) if table is None else table
    post = idata.posterior
    out: dict[str, Any] = {
        "sampler": str(idata.attrs.get("sampler", "")),
        "sampling_time_s": float(idata.attrs.get("sampling_time_s", np.nan)),
        "chains": int(post.sizes["chain"]),
        "draws": int(post.sizes["draw"]),
        "n_parameters": len(table),
    }
    has = "r_hat" in table and len(table) and np.isfinite(table["r_hat"]).any()
    out["max_r_hat"] = float(np.nanmax(table["r_hat"])) if has else None
    out["min_ess_bulk"] = float(np.nanmin(table["ess_bulk"])) if has else None
    out["min_ess_tail"] = float(np.nanmin(table["ess_tail"])) if has else None
    out["worst_r_hat_parameter"] = str(table["r_hat"].idxmax()) if has else ""
    out["worst_ess_parameter"] = str(table["ess_bulk"].idxmin()) if has else ""
    stats = idata.get("sample_stats")
    if stats is not None and "diverging" in stats:
        out["divergences"] = int(stats["diverging"].sum())
    else:
        out["divergences"] = None
    if stats is not None and "energy" in stats:
        out["min_bfmi"] = float(np.min(az.bfmi(idata)))
    else:
        out["min_bfmi"] = None
    out["mean_tree_depth"], out["tree_depth_limit_share"] = tree_depth(stats)
    return out


def save_diagnostics(idata: az.InferenceData, posterior_path: str | Path) -> dict[str, Any]:
    """Write ``<posterior>.diagnostics.csv`` (per parameter) and ``.diagnostics.json`` (headline) beside
    the posterior file."""
    posterior_path = Path(posterior_path)
    table = diagnostics_table(idata)
    summary = diagnostics_summary(idata, table)
    stem = posterior_path.with_suffix("")
    with atomic_path(f"{stem}.diagnostics.csv") as tmp:
        table.to_csv(tmp)
    with atomic_path(f"{stem}.diagnostics.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    return summary
