"""Convergence diagnostics of a fit: r_hat, ESS bulk/tail, divergences, BFMI, tree depth; saved beside the
posterior.  And the sampler's geometry: the stiffest directions of the log posterior in the space a diagonal
metric whitens (:func:`curvature_directions`), which set the NUTS step size."""

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


# --- sampler geometry -------------------------------------------------------------------------------
def free_parameter_labels(model) -> list[str]:
    """Labels of the flat unconstrained vector NUTS moves in: ``model.value_vars`` in order, each raveled
    (C order), with transformed names (``sigma_log__``); an entry of a variable with dims is named by its
    coordinates (``b_task[mlenergy-v3:gpqa]``, ``x[a,b]``), one without by its flat index (``x[0]``)."""
    import itertools

    labels: list[str] = []
    point = model.initial_point()
    for value in model.value_vars:
        shape = point[value.name].shape
        size = int(np.prod(shape))
        dims = model.named_vars_to_dims.get(model.values_to_rvs[value].name)
        if size == 1 and not shape:
            labels.append(value.name)
        elif dims and len(dims) == len(shape) and all(model.coords.get(d) is not None for d in dims):
            grid = itertools.product(*(model.coords[d] for d in dims))
            labels += [f"{value.name}[{','.join(map(str, c))}]" for c in grid]
        else:
            labels += [f"{value.name}[{i}]" for i in range(size)]
    return labels


def unconstrained_draws(model, posterior) -> np.ndarray:
    """Posterior draws mapped to the unconstrained space the sampler moves in.

    Parameters
    ----------
    model : pm.Model
        The model the posterior was drawn from.
    posterior : xr.Dataset
        ``idata.posterior`` with every free variable of ``model`` (constrained values, as PyMC stores them).

    Returns
    -------
    np.ndarray
        (chain · draw, n_free) in the order of :func:`free_parameter_labels`.
    """
    import pytensor

    missing = [rv.name for rv in model.free_RVs if rv.name not in posterior]
    if missing:
        raise KeyError(f"posterior lacks free variables {missing}")
    outs = []
    for rv in model.free_RVs:
        transform = model.rvs_to_transforms.get(rv)
        outs.append(transform.forward(rv, *rv.owner.inputs) if transform is not None else rv)
    forward = pytensor.function(model.free_RVs, outs, on_unused_input="ignore")
    stacked = {
        rv.name: posterior[rv.name].stack(sample=("chain", "draw")).transpose("sample", ...).values
        for rv in model.free_RVs
    }
    n = next(iter(stacked.values())).shape[0]
    rows = []
    for i in range(n):
        values = forward(*(stacked[rv.name][i] for rv in model.free_RVs))
        rows.append(np.concatenate([np.ravel(v) for v in values]))
    return np.asarray(rows, dtype=float)


def curvature_directions(
    model,
    draws: np.ndarray,
    *,
    scale: np.ndarray | None = None,
    n_points: int = 10,
    n_directions: int = 3,
    n_loadings: int = 6,
    seed: int = 0,
) -> pd.DataFrame:
    """Stiffest directions of the log posterior, in the space a diagonal NUTS metric whitens.

    At ``n_points`` draws, the Hessian ``H`` of the log density (unconstrained, JAX) is scaled by the
    metric, ``Hw = S H S`` with ``S = diag(scale)``, and eigendecomposed.  The largest eigenvalue
    ``λ_max`` of ``−Hw`` bounds the stable leapfrog step, ``ε < 2 / √λ_max`` (a step near half of that is
    typical at an acceptance of 0.9 in many dimensions), so the rows say which combination of parameters
    sets the step size; with trajectories of ``2**10 − 1`` steps at that step, the widest directions
    (posterior sd in units of ``scale``) decide whether NUTS stops at its depth limit.

    Parameters
    ----------
    model : pm.Model
        The model.
    draws : np.ndarray
        (n_draws, n_free) unconstrained draws (:func:`unconstrained_draws`).
    scale : np.ndarray, optional
        (n_free,) the metric's standard deviations; default the sd of ``draws`` (what a well-adapted
        diagonal metric estimates).
    n_points, n_directions, n_loadings : int
        Draws evaluated, eigen-directions kept per draw (largest first), parameters named per direction.
    seed : int
        Picks the draws.

    Returns
    -------
    pd.DataFrame
        One row per (point, rank): ``point`` (draw index), ``rank`` (0 = stiffest), ``eigenvalue``,
        ``step_limit`` (``2 / √eigenvalue``), ``loadings`` (the largest components, ``name ±weight``).
    """
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree
    from pymc.sampling.jax import get_jaxified_logp

    draws = np.asarray(draws, dtype=float)
    labels = free_parameter_labels(model)
    if draws.ndim != 2 or draws.shape[1] != len(labels):
        raise ValueError(f"draws must be (n_draws, {len(labels)}) unconstrained values, got {draws.shape}")
    scale = draws.std(axis=0) if scale is None else np.asarray(scale, dtype=float)
    if scale.shape != (len(labels),) or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError("scale must be positive and finite, one per free parameter")
    point = model.initial_point()
    shapes = [point[v.name].shape for v in model.value_vars]
    rng = np.random.default_rng(seed)
    picks = rng.choice(draws.shape[0], size=min(n_points, draws.shape[0]), replace=False)
    with jax.enable_x64(True):  # curvatures span orders of magnitude: float32 would blur them
        _, unravel = ravel_pytree([jnp.zeros(s, dtype=jnp.float64) for s in shapes])
        logp = get_jaxified_logp(model)
        hessian = jax.jit(jax.hessian(lambda z: logp(unravel(z))))
        stiffness = {
            int(i): -np.asarray(hessian(jnp.asarray(draws[i], dtype=jnp.float64))) * np.outer(scale, scale)
            for i in sorted(picks)
        }
    rows = []
    for i, h in stiffness.items():
        w, v = np.linalg.eigh(0.5 * (h + h.T))
        for rank in range(min(n_directions, len(w))):
            lam = float(w[-1 - rank])
            rows.append(
                {
                    "point": i,
                    "rank": rank,
                    "eigenvalue": lam,
                    "step_limit": float(2 / np.sqrt(lam)) if lam > 0 else np.inf,
                    "loadings": _loadings(v[:, -1 - rank], labels, n_loadings),
                }
            )
    return pd.DataFrame(rows)


def widest_directions(
    draws: np.ndarray, labels: list[str], *, n_directions: int = 3, n_loadings: int = 6
) -> pd.DataFrame:
    """Widest directions of the draws whitened by their own sds (√ eigenvalues of their correlation matrix):
    the ridges a diagonal metric leaves long, which NUTS trajectories must cross before they turn.

    Parameters
    ----------
    draws : np.ndarray
        (n_draws, n_free) unconstrained draws (:func:`unconstrained_draws`); with fewer draws than
        parameters the largest sds come out inflated.
    labels : list of str
        One per column (:func:`free_parameter_labels`).
    n_directions, n_loadings : int
        Directions kept (widest first), parameters named per direction.

    Returns
    -------
    pd.DataFrame
        One row per direction: ``rank``, ``sd`` (in units of each parameter's sd), ``loadings``.
    """
    z = (draws - draws.mean(0)) / draws.std(0)
    w, v = np.linalg.eigh(np.corrcoef(z, rowvar=False))
    return pd.DataFrame(
        [
            {
                "rank": rank,
                "sd": float(np.sqrt(max(w[-1 - rank], 0.0))),
                "loadings": _loadings(v[:, -1 - rank], labels, n_loadings),
            }
            for rank in range(min(n_directions, len(w)))
        ]
    )


def _loadings(vec: np.ndarray, labels: list[str], n: int) -> str:
    """The ``n`` largest components of a direction, as ``name ±weight``."""
    return ", ".join(f"{labels[j]} {vec[j]:+.2f}" for j in np.argsort(-np.abs(vec))[:n])
