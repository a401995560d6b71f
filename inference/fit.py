"""Samplers: numpyro NUTS (default), nutpie, PyMC NUTS, and a fast approximate path (ADVI in JAX).

All return ``arviz.InferenceData`` with ``posterior`` and (for NUTS) ``sample_stats``.  Multi-chain
numpyro runs chains in parallel on CPU devices when JAX was started with enough host devices
(:func:`set_host_devices` must run before JAX is imported), sequentially otherwise.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from typing import Any

import arviz as az
import numpy as np
import pymc as pm
import xarray as xr
from wattscape.models import dims as D

SAMPLERS = ("numpyro", "nutpie", "pymc", "fast")
#: Reparameterised draws per step of the fast path's ELBO gradient (PyMC's ADVI default too).  On the
#: leave-one-run-out fold of ``llama-2-7b-A100-PCIe-40GB-x1-20240403-145250`` one draw and four reach
#: about the same loss after 20,000 steps (-137,963 and -137,975) and posterior medians a median 0.13
#: posterior sd apart, in 34-45 s instead of 89 s on 2 cores (``python benchmarks/advi.py``).  Over the 13
#: leave-one-run-out folds the median energy error moved from 4.9 % to 5.3 %, inside its bootstrap interval.
ADVI_N_MC = 1
#: Optimisation steps of the fast path (the loss of that fold is flat from about 4,000).
ADVI_ITERATIONS = 20_000
#: Variational families of the fast path: a diagonal Gaussian over the unconstrained parameters
#: (``"meanfield"``) or one with a full covariance (``"fullrank"``, a Cholesky factor: with ~450 free
#: parameters, ~100,000 more variational parameters).  Mean field is the default: on the fold of
#: ``benchmarks/advi.py`` (``python benchmarks/advi.py --families meanfield fullrank --n-mc 1 4``) full rank
#: widens the pooled sds that mean field collapses (``b_gpu_card_sigma`` 0.10-0.13 vs 0.018; the full NUTS
#: fit 0.21) but ends at a worse loss after 20,000 steps (-136,399 and -137,392 with 1 and 4 draws a
#: step, vs -137,963) in 1.9-2.6x the time; over the 13 leave-one-run-out folds (``--fit fast-fullrank``
#: of ``experiments.accuracy`` and ``experiments.calibration``; the model before ``itl_ctx2``) it gave a
#: median energy error of 5.4 % (mean field 5.3 %), ACF R² 0.70 (0.77), run-energy coverage 0.77 at 90 %
#: and 0.31 at 50 % (0.69 and 0.15), PIT mean 0.77 (0.70).  Either family fits the model's pooled effects
#: centred (``wattscape.models.hierarchical.FIT_LAYOUTS``: non-centred, mean field pulled their sds to
#: zero); a low-rank family (diagonal + rank 10, as numpyro's ``AutoLowRankMultivariateNormal``) on the
#: non-centred layout did not help (leave-Llama-2-13b-out fold: loss -136,347 vs -137,243, the same
#: collapsed sds; with its factor at the full step size it diverged) and was not kept.
ADVI_FAMILIES = ("meanfield", "fullrank")
ADVI_FAMILY = "meanfield"
#: Step size of the full-rank factor's off-diagonal entries relative to the others: Adam moves every
#: entry by about the step size, and the ~100,000 of them at the full step size blew the covariance up.
ADVI_OFF_DIAGONAL_RATE = 0.01


def set_host_devices(n: int) -> None:
    """Ask XLA for ``n`` CPU devices (parallel numpyro chains); only effective before JAX is imported."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={int(n)}".strip()


def sample(
    model: pm.Model,
    sampler: str = "numpyro",
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    random_seed: int = 0,
    target_accept: float = 0.9,
    progressbar: bool = True,
    advi_iterations: int = ADVI_ITERATIONS,
    advi_n_mc: int = ADVI_N_MC,
    advi_family: str = ADVI_FAMILY,
    dense_mass: bool = False,
    **kwargs: Any,
) -> az.InferenceData:
    """Sample the posterior of ``model``.

    Parameters
    ----------
    model : pm.Model
        The model (built by ``PowerModel.build_model``).
    sampler : {"numpyro", "nutpie", "pymc", "fast"}
        NUTS backend; ``"fast"`` fits ADVI (family ``advi_family``) for ``advi_iterations`` steps and
        draws ``draws`` samples from the approximation (one chain; no convergence diagnostics).
    draws, tune, chains : int
        Per-chain draws and tuning steps; number of chains.
    random_seed : int
        Seed.
    target_accept : float
        NUTS target acceptance.
    progressbar : bool
        Show progress.
    advi_iterations : int
        Optimisation steps of the fast path.
    advi_n_mc : int
        Draws per step of the fast path's gradient.
    advi_family : {"meanfield", "fullrank"}
        Variational family of the fast path (:data:`ADVI_FAMILIES`).
    dense_mass : bool
        numpyro only: adapt a dense mass matrix instead of a diagonal one.  Off by default: with the
        power model's ~450 free parameters a dense metric estimated from the tuning draws is noise, and the
        chains do not meet (measured on the leave-one-run-out fold of
        ``falcon-7b-A100-PCIe-40GB-x1-20240403-170604``, 2 chains × (500 + 500) draws: dense max r̂ 2.09,
        min bulk ESS 2.7, tree depth 10 on every draw, 240 s; diagonal max r̂ 1.04, min bulk ESS 42, no
        divergences, 183 s).  The adapted diagonal matches the posterior variances (same fold: ratio
        0.52-1.89, median 0.98), so the small step (0.0036-0.0038) and the depth limit are the posterior's
        geometry (``benchmarks/geometry.py`` names its stiffest and widest directions); a dense metric
        fixed from 1,000 posterior draws of that fold, shrunk 1-10 % to its diagonal, lifted the step only
        to 0.0065 (depth 10 in 91-97 % of draws, 5-16 divergences).  nutpie's low-rank modified mass
        matrix (same fold, current parameterisation) takes steps of 0.045-0.054 and trees of mean depth
        8.6, but diverges in 2-3.5 % of draws at target acceptance 0.8-0.9 and left a chain stuck at 0.95.
    **kwargs
        Passed to ``pm.sample``.

    Returns
    -------
    az.InferenceData
        With attrs ``sampler`` and ``sampling_time_s``.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    start = time.perf_counter()
    with model:
        if sampler == "fast":
            idata = fit_advi_jax(
                model,
                iterations=advi_iterations,
                n_mc=advi_n_mc,
                family=advi_family,
                draws=draws,
                random_seed=random_seed,
                progressbar=progressbar,
            )
        else:
            opts: dict[str, Any] = {}
            if sampler == "numpyro":
                import jax

                method = "parallel" if jax.local_device_count() >= chains else "sequential"
                opts["nuts_sampler_kwargs"] = {
                    "chain_method": method,
                    "nuts_kwargs": {"dense_mass": dense_mass},
                }
            elif sampler == "nutpie":
                opts["nuts_sampler_kwargs"] = {"low_rank_modified_mass_matrix": True}
            with warnings.catch_warnings():
                # nutpie/numpyro may warn about experimental features; not errors of ours
                warnings.simplefilter("ignore", FutureWarning)
                idata = pm.sample(
                    draws=draws,
                    tune=tune,
                    chains=chains,
                    random_seed=random_seed,
                    target_accept=target_accept,
                    nuts_sampler=sampler,
                    progressbar=progressbar,
                    **opts,
                    **kwargs,
                )
    idata.attrs["sampler"] = sampler
    if sampler == "numpyro":
        idata.attrs["dense_mass"] = int(bool(dense_mass))
    idata.attrs["sampling_time_s"] = round(time.perf_counter() - start, 2)
    return idata


#: Groups of ``InferenceData`` that carry one entry per chain; :func:`combine_chains` stacks them.
CHAIN_GROUPS = ("posterior", "sample_stats")


def combine_chains(parts, sources=None) -> az.InferenceData:
    """Chains of separate sampling runs of one model on the same data, as one ``InferenceData``.

    Runs with other seeds (or on other machines) add chains: more of the posterior explored, and r̂ / ESS
    computed across all of them.  ``arviz.concat(..., dim="chain")`` needs a ``chain`` dim in every group,
    which ``fit_data`` has not, so the chain groups are stacked here and the rest kept once.

    Parameters
    ----------
    parts : sequence of az.InferenceData
        Two or more fits.  Their ``model_id`` attrs must agree, and every group without chains
        (``fit_data``) must be identical.
    sources : sequence of str, optional
        Names of the parts (their files) for error messages.

    Returns
    -------
    az.InferenceData
        ``posterior`` and ``sample_stats`` concatenated along ``chain`` (chains renumbered 0..n-1), the other
        groups and the attrs of the first part, plus ``combined_from`` (each part's source and chains) and
        ``sampling_time_s`` (the sum of the parts').

    Raises
    ------
    ValueError
        Fewer than two parts, another model id, other fit data, a missing chain group, or a different number
        of draws, naming the part.
    """
    parts = list(parts)
    names = list(sources) if sources is not None else [f"part {k}" for k in range(len(parts))]
    if len(parts) < 2:
        raise ValueError(f"combine_chains needs two or more fits, got {len(parts)}")
    first = parts[0]
    for name, part in zip(names[1:], parts[1:], strict=True):
        if part.attrs.get("model_id") != first.attrs.get("model_id"):
            raise ValueError(
                f"{name}: model id {part.attrs.get('model_id')!r} differs from {names[0]}'s "
                f"{first.attrs.get('model_id')!r}"
            )
        for group in first.groups():
            if group in CHAIN_GROUPS:
                continue
            if group not in part.groups() or not part[group].equals(first[group]):
                raise ValueError(f"{name}: its {group!r} differs from {names[0]}'s (another data set?)")
    stacked = {}
    for group in CHAIN_GROUPS:
        pieces, start = [], 0
        for name, part in zip(names, parts, strict=True):
            if group not in part.groups():
                raise ValueError(f"{name}: no {group!r} group")
            ds = part[group]
            got, want = ds.sizes[D.DRAW], first[group].sizes[D.DRAW]
            if got != want:
                raise ValueError(f"{name}: {got} draws in {group!r}, {names[0]} has {want}")
            n = ds.sizes[D.CHAIN]
            pieces.append(ds.assign_coords({D.CHAIN: np.arange(start, start + n)}))
            start += n
        stacked[group] = xr.concat(pieces, dim=D.CHAIN, combine_attrs="drop_conflicts")
    others = {g: first[g] for g in first.groups() if g not in CHAIN_GROUPS}
    out = az.InferenceData(**stacked, **others)
    out.attrs.update(first.attrs)
    out.attrs["combined_from"] = json.dumps(
        [{"source": n, "chains": p.posterior.sizes[D.CHAIN]} for n, p in zip(names, parts, strict=True)]
    )
    out.attrs["sampling_time_s"] = round(sum(float(p.attrs.get("sampling_time_s", 0.0)) for p in parts), 2)
    return out


def _advi_scale(params):
    """The Cholesky factor of the Gaussian's covariance: ``diag(exp(log_sd))`` (mean-field, ``off`` None)
    plus the strictly lower triangle of ``off`` (full rank)."""
    import jax.numpy as jnp

    _, log_sd, off = params
    if off is None:
        return None
    return jnp.tril(off, -1) + jnp.diag(jnp.exp(log_sd))


def _advi_draw(params, eps):
    """Reparameterised draws ``mu + L eps`` of the variational Gaussian (``eps``: (..., d))."""
    import jax.numpy as jnp

    mu, log_sd, _ = params
    scale = _advi_scale(params)
    if scale is None:
        return mu + jnp.exp(log_sd) * eps
    return mu + eps @ scale.T


def _advi_step_fn(logp_fn, n_mc: int, lr: float):
    """A pure, jit-able Adam step on the negative ELBO of a Gaussian (reparameterised): mean-field, or full
    rank when the parameters carry the lower triangle ``off`` (its entropy is still ``Σ log_sd``: the
    diagonal of a Cholesky factor)."""
    import jax
    import jax.numpy as jnp

    def neg_elbo(params, key):
        mu, log_sd, _ = params
        z = _advi_draw(params, jax.random.normal(key, (n_mc, *mu.shape)))
        return -(jnp.mean(jax.vmap(logp_fn)(z)) + jnp.sum(log_sd))

    grad = jax.value_and_grad(neg_elbo)

    def step(carry, key):
        params, m, v, t = carry
        loss, g = grad(params, key)
        # a draw in a region of zero density gives inf/nan: skip that step rather than poison the state
        ok = jnp.isfinite(loss) & jnp.all(
            jnp.asarray([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(g)])
        )
        g = jax.tree.map(lambda a: jnp.where(ok, a, 0.0), g)
        t1 = t + ok.astype(t.dtype)
        m1 = jax.tree.map(lambda a, b: 0.9 * a + 0.1 * b, m, g)
        v1 = jax.tree.map(lambda a, b: 0.999 * a + 0.001 * b * b, v, g)
        tt = jnp.maximum(t1, 1.0)
        rates = (lr, lr, None if params[2] is None else lr * ADVI_OFF_DIAGONAL_RATE)
        update = jax.tree.map(
            lambda r, a, b: r * (a / (1 - 0.9**tt)) / (jnp.sqrt(b / (1 - 0.999**tt)) + 1e-8), rates, m1, v1
        )
        new = jax.tree.map(lambda p, u: p - u, params, update)
        keep = lambda a, b: jax.tree.map(lambda x, y: jnp.where(ok, x, y), a, b)  # noqa: E731
        return (keep(new, params), keep(m1, m), keep(v1, v), t1), jnp.where(ok, loss, jnp.nan)

    return step


def fit_advi_jax(
    model: pm.Model,
    *,
    iterations: int = ADVI_ITERATIONS,
    draws: int = 1000,
    random_seed: int = 0,
    n_mc: int = ADVI_N_MC,
    family: str = ADVI_FAMILY,
    learning_rate: float = 0.01,
    progressbar: bool = True,
) -> az.InferenceData:
    """ADVI on the model's JAX log density: the fast approximate path (quick looks, CI, held-out folds).

    Optimises a Gaussian over the unconstrained parameters with Adam (``n_mc`` reparameterised draws per
    step, in ``jax.lax.scan`` chunks), then maps ``draws`` samples back through the model's transforms
    and deterministics.  ``family="meanfield"``: a diagonal covariance; ``"fullrank"``: a full one (its
    Cholesky factor; starts diagonal).  No convergence diagnostics: use NUTS for results.

    Returns
    -------
    az.InferenceData
        ``posterior`` (one chain) with the model's dims and coords; attrs ``advi_final_loss``,
        ``advi_iterations``, ``advi_n_mc`` and ``advi_family``.
    """
    if family not in ADVI_FAMILIES:
        raise ValueError(f"unknown ADVI family {family!r}; choose one of {ADVI_FAMILIES}")
    import jax
    import jax.numpy as jnp
    import numpy as np
    from pymc.sampling.jax import get_jaxified_graph
    from pymc.util import get_default_varnames
    from tqdm.auto import tqdm

    value_vars = model.value_vars
    point = model.initial_point(random_seed=random_seed)
    shapes = [np.shape(point[v.name]) for v in value_vars]
    sizes = [int(np.prod(s)) for s in shapes]
    splits = np.cumsum(sizes)[:-1]
    x0 = jnp.concatenate([jnp.ravel(jnp.asarray(point[v.name], dtype=float)) for v in value_vars])
    # the model's joint log density (with Jacobians) as a JAX function of the unconstrained values
    logp_graph = get_jaxified_graph(inputs=value_vars, outputs=[model.logp()])

    def unflatten(z):
        return [jnp.reshape(part, shape) for part, shape in zip(jnp.split(z, splits), shapes, strict=True)]

    def logp_flat(z):
        return logp_graph(*unflatten(z))[0]

    step = jax.jit(
        lambda carry, keys: jax.lax.scan(_advi_step_fn(logp_flat, n_mc, learning_rate), carry, keys)
    )
    off = jnp.zeros((x0.size, x0.size), dtype=x0.dtype) if family == "fullrank" else None
    params = (x0, jnp.full_like(x0, -2.0), off)
    carry = (
        params,
        jax.tree.map(jnp.zeros_like, params),
        jax.tree.map(jnp.zeros_like, params),
        jnp.zeros((), dtype=x0.dtype),  # typed like the state it becomes: a weak type retraces the scan
    )
    key = jax.random.PRNGKey(random_seed)
    chunk = 500
    losses = []
    with tqdm(total=iterations, desc="ADVI", disable=not progressbar) as bar:
        for start in range(0, iterations, chunk):
            n = min(chunk, iterations - start)
            key, sub = jax.random.split(key)
            carry, loss = step(carry, jax.random.split(sub, n))
            losses.append(np.asarray(loss))
            bar.update(n)
            bar.set_postfix(loss=float(np.nanmean(losses[-1][-50:])))
    params, *_ = carry
    key, sub = jax.random.split(key)
    z = _advi_draw(params, jax.random.normal(sub, (draws, x0.size)))
    outputs = list(get_default_varnames(model.unobserved_value_vars, include_transformed=False))
    fn = get_jaxified_graph(inputs=value_vars, outputs=outputs)
    values = jax.jit(jax.vmap(lambda zz: fn(*unflatten(zz))))(z)  # one compile, not one per op
    dims = {name: list(d) for name, d in model.named_vars_to_dims.items()}
    posterior = {v.name: np.asarray(val)[None] for v, val in zip(outputs, values, strict=True)}
    idata = az.from_dict(
        posterior=posterior,
        coords={k: list(v) for k, v in model.coords.items()},
        dims={k: v for k, v in dims.items() if k in posterior},
    )
    idata.attrs["advi_final_loss"] = float(np.nanmean(losses[-1][-100:]))
    idata.attrs["advi_iterations"] = int(iterations)
    idata.attrs["advi_n_mc"] = int(n_mc)
    idata.attrs["advi_family"] = family
    return idata
