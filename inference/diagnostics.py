"""Convergence diagnostics of a fit: r_hat, ESS bulk/tail, divergences, BFMI; saved beside the posterior."""

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


def diagnostics_table(idata: az.InferenceData, var_names: list[str] | None = None) -> pd.DataFrame:
    """One row per scalar parameter: mean, sd, r_hat, ess_bulk, ess_tail (``az.summary``)."""
    post = idata.posterior
    names = var_names or [v for v in post.data_vars if v not in SKIP]
    # one chain (the fast path): no r_hat/ESS, only moments
    kind = "all" if post.sizes["chain"] > 1 else "stats"
    return az.summary(idata, var_names=names, kind=kind, round_to="none")


def diagnostics_summary(idata: az.InferenceData, table: pd.DataFrame | None = None) -> dict[str, Any]:
    """Headline figures: max r_hat, min ESS bulk/tail, divergences, min BFMI, draws, chains, sampler."""
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
