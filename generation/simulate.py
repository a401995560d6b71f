"""Pure, jitted JAX emissions: state segments → per-GPU or aggregated power on a time grid.

The generator works on **segments**, not time steps: a TP group (GPUs that switch state together) has a
sequence of contiguous segments ``[start_j, start_{j+1})``, each with a state (idle / prefill / decode) and
workload covariates (``log2`` batch occupancy, mean context ``prompt + output / 2``, output tokens).
Emission model (one configuration, one posterior draw, see ``wattscape.models.params``):

* **segment level** of a TP group in segment ``j``: mixture component ``k ~ Cat(level_weight[s])`` and,
  on the **logit link** when the parameters carry it (``models.params.LOGIT_LEVEL_VARS``; a fitted
  ``PowerModel``'s do),
  ``L = level_max_w · sigmoid(level_logit_loc[s, k] + level_logit_slope[s]·(x_j − x_ref) +
  level_logit_scale[s, k]·z_j)`` — bounded by ``level_max_w`` at any workload, the same form as
  ``replay._levels`` — else on the **tangent** (linear) form
  ``L = level_loc[s, k] + level_slope[s]·(x_j − x_ref) + level_scale[s, k]·z_j`` (exact only near
  ``x_ref``: it over-states levels far from it and can exceed TDP).  ``L`` is **shared by every GPU of
  the group** (they run the same batch step; the fitted level is the mean over a run's GPUs, see
  ``inference.stats``), so the group sum is ``n L`` (sd ``n·level_scale`` on the tangent); GPUs of a
  group differ only through their residuals.  Levels are drawn once per segment (one sigmoid per
  segment, never per time step);
* **residual**: one AR(1) process per GPU on the output grid, ``r_t = φ r_{t−1} + sqrt(1−φ²) σ_t ε_t`` with
  ``σ_t²`` the time-weighted ``resid_scale[s]²`` over bin ``t`` and ``φ`` *shared by the configuration*
  (the mean of ``ar_coef`` over states, raised to ``dt / ar_step_s``).  When the output step ``dt`` is longer
  than ``ar_step_s`` the variance is that of a block mean of the fine AR(1) (factor :func:`block_var_factor`);
  the lag structure is then approximated by an AR(1) at ``dt`` (exact variance, residual ≤ a few % of power);
* **meter kernel**: a causal moving average over ``meter_window_s`` on the output grid when that window is
  longer than ``dt`` (no-op otherwise: a block mean over ``dt`` already averages at least as much);
* **power cap** (optional, W per GPU): segment levels are clipped at the cap, and the work above it takes
  longer: prefill and decode dwell times are stretched by ``max(1, E[level_s]/cap) ** cap_time_exponent``
  (exponent 1: compute-bound work keeps its energy and takes longer; 0: no slow-down, energy lost);
  ``E[level_s]`` is the mixture mean at the reference workload on the link the parameters carry
  (:func:`mean_levels`).  See :func:`cap_stretch`.

Power values are **bin means** over ``[t_i, t_i + dt)``: a segment boundary inside a bin is split by its
exact fraction (scatter-add of level changes, then cumsum), so energy is exact on any grid.

Aggregation-aware path (:func:`request_grid`, :func:`aggregate_levels`): when only sums over GPUs are
wanted, the group sum ``n L`` (e.g. ``n (μ_k + slope·x + σ_k z)`` on the tangent) is drawn directly per
segment, the level changes of
all groups are scatter-added onto each target's grid (rack, row or facility) in one scatter, and the summed
residual is drawn once per target as one AR(1) with innovation variance = sum of the GPUs' variances (a sum
of independent AR(1) processes with a shared coefficient is one AR(1)).  Exact in distribution; cost ∝
segments + targets × steps, never GPUs × steps.  With a power cap the shared level is clipped:
``n min(L, cap)``.  The per-GPU path (:func:`request_gpu_power`, :func:`gpu_emissions`) scatters one level
series per group and adds independent per-GPU residuals, so both paths have the same distribution.

Randomness: explicit ``jax.random`` keys.  Bulk noise uses :func:`fast_uniform` / :func:`fast_normal`, a
counter-based generator (two rounds of a 32-bit avalanche hash keyed by 64 bits drawn from the
``jax.random`` key, then ``erfinv``) that runs ~7× faster than ``jax.random.normal`` on CPU; same key, same
numbers.

:func:`naive_markov_scan` is the naive per-step ``lax.scan`` Markov simulator kept for benchmarks and
equivalence checks.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from wattscape.models import dims as D

#: Internal state order of serving segments (index into the per-state parameter arrays below).
SIM_STATES = (D.IDLE, D.PREFILL, D.DECODE)
IDLE_I, PREFILL_I, DECODE_I = 0, 1, 2
_N_COV = len(D.COVARIATES)


# --- fast counter-based random numbers -------------------------------------------------------------------
def _hash32(x: jax.Array) -> jax.Array:
    """32-bit avalanche hash (xorshift-multiply, "lowbias32" constants)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    n = int(np.prod(shape)) if shape else 1
    if n >= 2**32:
        raise ValueError(f"fast random block of {n} numbers exceeds 2**32; split the work into chunks")
    seed = jax.random.bits(key, (2,), jnp.uint32)
    i = jax.lax.iota(jnp.uint32, n).reshape(shape)
    return _hash32(_hash32(i ^ seed[0]) + seed[1])


def fast_uniform(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Uniform(0, 1) float32 on a 2**-23 lattice (cell midpoints: never 0 or 1), from a ``jax.random`` key."""
    return ((_bits(key, shape) >> 9).astype(jnp.float32) + 0.5) * (1.0 / 8388608.0)


def fast_normal(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Standard normal float32 (inverse CDF of a 2**-23 lattice of midpoints; tails cut near ±5.2)."""
    u = ((_bits(key, shape) >> 9).astype(jnp.float32) + 0.5) * (2.0 / 8388608.0) - 1.0
    return jnp.float32(np.sqrt(2.0)) * jax.scipy.special.erfinv(u)


# --- parameters as arrays ---------------------------------------------------------------------------------
class EmissionParams(NamedTuple):
    """Per-draw parameters of one configuration, per internal state (``SIM_STATES``); leading dim = draw."""

    loc: jax.Array  # (draw, 3, K) W
    scale: jax.Array  # (draw, 3, K) W
    cumw: jax.Array  # (draw, 3, K) cumulative weights
    slope: jax.Array  # (draw, 3, n_cov) W per unit log2
    cov_ref: jax.Array  # (draw, n_cov)
    resid_var: jax.Array  # (draw, 3) W^2
    ar_coef: jax.Array  # (draw,) shared AR(1) coefficient per ar_step_s
    prefill_s_per_token: jax.Array  # (draw,)
    prefill_overhead_s: jax.Array  # (draw,)
    itl_base_s: jax.Array  # (draw,)
    itl_per_seq_s: jax.Array  # (draw,)
    dwell_sigma: jax.Array  # (draw, 3)
    # logit-link levels (``models.params.LOGIT_LEVEL_VARS``); without them lg_loc and lg_scale have 0
    # components (a static shape, so jitted code branches on it at trace time: see :func:`has_logit`)
    lg_loc: jax.Array  # (draw, 3, K) logit-link level location, or (draw, 3, 0)
    lg_scale: jax.Array  # (draw, 3, K) logit-link level sd, or (draw, 3, 0)
    lg_slope: jax.Array  # (draw, 3, n_cov) logit-link slope per unit log2 (zeros without the link)
    max_w: jax.Array  # (draw,) W: the level is max_w · sigmoid(...) (zeros without the link)


def state_index_map(params: xr.Dataset) -> np.ndarray:
    """Index into ``params.state`` of each of ``SIM_STATES`` (prefill and decode map to ``active``)."""
    names = [str(s) for s in params[D.STATE].values]
    out = []
    for s in SIM_STATES:
        if s in names:
            out.append(names.index(s))
        elif s != D.IDLE and D.ACTIVE in names:
            out.append(names.index(D.ACTIVE))
        else:
            raise ValueError(f"parameters have states {names}: cannot map generator state {s!r}")
    return np.asarray(out)


def emission_params(params: xr.Dataset, draws: np.ndarray | None = None) -> EmissionParams:
    """Turn a configuration's parameter dataset (``models.params`` contract) into JAX arrays.

    Parameters
    ----------
    params : xr.Dataset
        Follows :func:`wattscape.models.params.validate_config_params`.
    draws : array of int, optional
        Positions along ``draw`` to keep (default all).

    Returns
    -------
    EmissionParams
        float32 arrays with a leading ``draw`` dim.  When ``params`` carries the logit-link level variables
        (``models.params.LOGIT_LEVEL_VARS``) they fill ``lg_loc``, ``lg_scale``, ``lg_slope`` and ``max_w``
        and every segment level uses that link (:func:`has_logit`); else ``lg_loc`` and ``lg_scale`` have
        no components and levels use the tangent (``loc``, ``slope``, ``scale``).
    """
    from wattscape.models.params import LOGIT_LEVEL_VARS, validate_config_params

    validate_config_params(params)
    if draws is not None:
        params = params.isel({D.DRAW: np.asarray(draws)})
    idx = state_index_map(params)

    def per_state(name: str) -> np.ndarray:
        return np.asarray(params[name].values, dtype=np.float64)[:, idx]

    w = per_state("level_weight")
    w = w / w.sum(-1, keepdims=True)
    n_d = params.sizes[D.DRAW]
    ref = np.asarray(params.attrs.get("covariate_ref", [0.0] * _N_COV), dtype=np.float64)
    f32 = partial(jnp.asarray, dtype=jnp.float32)
    logit = all(v in params for v in LOGIT_LEVEL_VARS)
    none_k = np.zeros((n_d, len(SIM_STATES), 0))
    return EmissionParams(
        loc=f32(per_state("level_loc")),
        scale=f32(per_state("level_scale")),
        cumw=f32(np.cumsum(w, -1)),
        slope=f32(per_state("level_slope")),
        cov_ref=f32(np.broadcast_to(ref, (n_d, _N_COV))),
        resid_var=f32(per_state("resid_scale") ** 2),
        ar_coef=f32(np.asarray(params["ar_coef"].values).mean(-1)),
        prefill_s_per_token=f32(params["prefill_s_per_token"].values),
        prefill_overhead_s=f32(params["prefill_overhead_s"].values),
        itl_base_s=f32(params["itl_base_s"].values),
        itl_per_seq_s=f32(params["itl_per_seq_s"].values),
        dwell_sigma=f32(per_state("dwell_sigma")),
        lg_loc=f32(per_state("level_logit_loc") if logit else none_k),
        lg_scale=f32(per_state("level_logit_scale") if logit else none_k),
        lg_slope=f32(per_state("level_logit_slope") if logit else np.zeros_like(per_state("level_slope"))),
        max_w=f32(params["level_max_w"].values if logit else np.zeros(n_d)),
    )


def take_draw(p: EmissionParams, i: int) -> EmissionParams:
    """One draw (leading dim removed)."""
    return EmissionParams(*(a[i] for a in p))


def has_logit(p: EmissionParams) -> bool:
    """Whether ``p`` carries the logit-link levels (static: read from a shape, so usable under ``jit``)."""
    return p.lg_loc.shape[-1] > 0


def _level_tables(p: EmissionParams) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Location, sd and slope of the segment level on its link scale: logit link if present, else tangent."""
    return (p.lg_loc, p.lg_scale, p.lg_slope) if has_logit(p) else (p.loc, p.scale, p.slope)


def _link(p: EmissionParams, eta: jax.Array) -> jax.Array:
    """Segment level (W) from its value on the link scale: ``max_w · sigmoid(eta)``, or ``eta`` (tangent)."""
    return p.max_w * jax.nn.sigmoid(eta) if has_logit(p) else eta


#: Gauss–Hermite nodes and weights (probabilists', weights summing to 1) for E[f(Z)], Z ~ N(0, 1).
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(40)
_GH_W = _GH_W / _GH_W.sum()


def mean_levels(p: EmissionParams) -> jax.Array:
    """Mixture mean level per state at the reference workload, (..., 3) W.

    On the logit link ``Σ_k w_k · max_w · E[sigmoid(lg_loc_k + lg_scale_k Z)]`` (40-node Gauss–Hermite,
    exact to float32 for any sd a fit gives); on the tangent ``Σ_k w_k loc_k``.
    """
    w = jnp.diff(p.cumw, axis=-1, prepend=0.0)
    if not has_logit(p):
        return (w * p.loc).sum(-1)
    x, gw = jnp.asarray(_GH_X, jnp.float32), jnp.asarray(_GH_W, jnp.float32)
    e = (jax.nn.sigmoid(p.lg_loc[..., None] + p.lg_scale[..., None] * x) * gw).sum(-1)  # (..., 3, K)
    return p.max_w[..., None] * (w * e).sum(-1)


def cap_stretch(p: EmissionParams, cap_w: float | None, exponent: float = 1.0) -> jax.Array:
    """Dwell-time stretch factor per state under a per-GPU power cap, (..., 3); 1 where the cap does not bind.

    Work whose mean level ``E[L_s]`` exceeds the cap runs at the cap for ``(E[L_s]/cap) ** exponent`` times
    as long: with ``exponent = 1`` (compute-bound) the energy of that work is unchanged and only its time
    grows; with ``exponent = 0`` time is unchanged and the energy above the cap is simply lost.
    """
    m = mean_levels(p)
    if cap_w is None:
        return jnp.ones_like(m)
    return jnp.maximum(1.0, m / cap_w) ** exponent


def block_var_factor(phi_step: jax.Array, m: float) -> jax.Array:
    """Variance of the mean of ``m`` consecutive AR(1) values over the stationary variance (1 for m ≤ 1)."""
    if m <= 1.0:
        return jnp.ones_like(phi_step)
    r = jnp.clip(phi_step, 0.0, 0.999999)
    s = r * (m * (1.0 - r) - (1.0 - r**m)) / (1.0 - r) ** 2
    return (m + 2.0 * s) / m**2


def resid_grid_params(p: EmissionParams, dt: float, ar_step_s: float) -> tuple[jax.Array, jax.Array]:
    """AR coefficient on the output grid and the variance factor of its block means."""
    phi = jnp.clip(p.ar_coef, 0.0, 0.999999)
    return phi ** (dt / ar_step_s), block_var_factor(phi, dt / ar_step_s)


# --- segment levels ------------------------------------------------------------------------------------
def _per_state(table, state):
    """``table[..., state]`` of a per-state table (last dim 3) by selects (faster than a gather on CPU)."""
    return jnp.where(state == 0, table[..., 0], jnp.where(state == 1, table[..., 1], table[..., 2]))


def _component_stats(p: EmissionParams, key, state, cov):
    """Mean and sd of the per-GPU segment level on its link scale (W on the tangent, logits on the logit
    link; :func:`_link` turns ``mean + sd z`` into the level), given a drawn component; shapes like
    ``state``."""
    loc_t, sd_t, slope_t = _level_tables(p)
    u = fast_uniform(key, state.shape)
    n_k = loc_t.shape[-1]
    cumw = [_per_state(p.cumw[:, k], state) for k in range(n_k - 1)]
    k = sum((u > c).astype(jnp.int32) for c in cumw) if n_k > 1 else jnp.zeros(state.shape, jnp.int32)
    loc = _per_state(loc_t[:, 0], state)
    sd = _per_state(sd_t[:, 0], state)
    for j in range(1, n_k):
        loc = jnp.where(k == j, _per_state(loc_t[:, j], state), loc)
        sd = jnp.where(k == j, _per_state(sd_t[:, j], state), sd)
    slope = sum(_per_state(slope_t[:, c], state) * (cov[..., c] - p.cov_ref[c]) for c in range(_N_COV))
    return loc + slope, sd


def group_levels(p, key, state, cov, n_gpu, cap_w=None, max_gpus=8):
    """Sum over the ``n_gpu`` GPUs of a TP group of their (shared) segment level, per segment (W).

    The GPUs of a group share one level ``L`` (see the module docstring), so the sum is ``n_gpu · L`` —
    ``n μ + n σ z`` on the tangent, ``n max_w sigmoid(η + σ z)`` on the logit link — and with a cap
    ``n_gpu · min(L, cap)``.  ``max_gpus`` is unused (kept for callers).
    """
    del max_gpus
    k1, k2 = jax.random.split(key)
    mu, sd = _component_stats(p, k1, state, cov)
    lv = _link(p, mu + sd * fast_normal(k2, state.shape))
    if cap_w is not None:
        lv = jnp.minimum(lv, cap_w)
    return n_gpu.astype(jnp.float32) * lv


def gpu_levels(p, key, state, cov, n_gpu: int, cap_w=None):
    """Per-GPU segment levels (..., S, n_gpu) W: one level per segment, shared by the GPUs of the group."""
    k1, k2 = jax.random.split(key)
    mu, sd = _component_stats(p, k1, state, cov)
    lv = _link(p, mu + sd * fast_normal(k2, state.shape))
    lv = lv if cap_w is None else jnp.minimum(lv, cap_w)
    return jnp.broadcast_to(lv[..., None], (*lv.shape, n_gpu))


# --- scatter of level changes onto a grid -------------------------------------------------------------------
def scatter_steps(start, values, rows, n_rows: int, n_steps: int, dt: float, exact=None):
    """Bin means of piecewise-constant series on a grid, from contiguous segments (all time-major).

    Parameters
    ----------
    start : (S, ...) float
        Start (s) of segment ``j`` of each sequence; segments are contiguous and ordered along axis 0, the
        first starts at 0, each lasts until the next start (the last until the end of the grid).
    values : (S, ..., V) float
        Value of each segment (V quantities scattered together, e.g. level and variance).
    rows : (...) int
        Output row of each sequence (several sequences may share one row: their values add up; rows
        ``>= n_rows`` are dropped).
    n_rows, n_steps, dt : output grid ``(n_steps, n_rows, V)`` of bins ``[i dt, (i+1) dt)``.
    exact : sequence of bool, optional
        Per quantity: ``True`` (default) gives exact time-weighted bin means; ``False`` gives the value in
        force at the end of each bin (one scatter instead of two; used for residual variances).

    Returns
    -------
    (n_steps, n_rows, V) float32.  A change ``Δ`` at ``t = (i + f) dt`` adds ``Δ`` to ``A[i]`` and ``Δ f``
    to ``B[i]``; the bin mean is ``cumsum(A)[i] − B[i]`` — exact, one index per change.
    """
    n_v = values.shape[-1]
    exact = (True,) * n_v if exact is None else tuple(exact)
    prev = jnp.concatenate([jnp.zeros_like(values[:1]), values[:-1]], axis=0)
    delta = values - prev
    x = jnp.clip(start / dt, 0.0, n_steps + 1.0)
    i = jnp.floor(x)
    f = x - i
    r = rows.astype(jnp.int32)
    idx = jnp.where(r < n_rows, i.astype(jnp.int32) * n_rows + r, -1).reshape(-1)
    size = (n_steps + 2) * n_rows
    out = []
    for v in range(n_v):
        a = jax.ops.segment_sum(delta[..., v].reshape(-1), idx, num_segments=size).reshape(
            n_steps + 2, n_rows
        )
        m = _cumsum0(a)
        if exact[v]:
            m = m - jax.ops.segment_sum((delta[..., v] * f).reshape(-1), idx, num_segments=size).reshape(
                n_steps + 2, n_rows
            )
        out.append(m[:n_steps])
    return jnp.stack(out, -1)


def scan0(op, x):
    """Inclusive scan along axis 0 of a tall (time-major) array: a ``lax.scan`` over rows carrying one vector
    (on CPU about 3× faster than ``associative_scan`` and 4× faster than ``cumsum`` for these shapes)."""

    def step(c, v):
        c = op(c, v)
        return c, c

    return jnp.concatenate([x[:1], jax.lax.scan(step, x[0], x[1:], unroll=8)[1]], axis=0)


def _cumsum0(x):
    """Cumulative sum along axis 0 (time) of a grid."""
    if x.shape[1] == 1:
        return jnp.cumsum(x[:, 0])[:, None]
    return jax.lax.associative_scan(jnp.add, x, axis=0)


# --- AR(1) on the grid ----------------------------------------------------------------------------------
def ar1_filter(e: jax.Array, phi, block: int = 32) -> jax.Array:
    """``y_t = phi y_{t-1} + e_t`` along axis 0 (time-major, y_{-1} = 0), exact, blocked for speed.

    ``phi`` is a scalar shared by all series.  Within blocks of ``block`` steps the recursion is one
    lower-triangular Toeplitz matmul; the carries between blocks are an associative scan over blocks.
    """
    n = e.shape[0]
    lead = e.shape[1:]
    pad = (-n) % block
    ep = jnp.pad(e, [(0, pad)] + [(0, 0)] * len(lead))
    nb = (n + pad) // block
    phi = jnp.asarray(phi, e.dtype)
    powers = phi ** jnp.arange(block + 1, dtype=e.dtype)
    k = jnp.arange(block)
    lag = k[:, None] - k[None, :]
    m = jnp.where(lag >= 0, powers[jnp.clip(lag, 0, block)], 0.0)  # (L, L)
    eb = ep.reshape(nb, block, -1)
    yl = jnp.einsum("ij,bjl->bil", m, eb)
    end = yl[:, -1]  # (nb, lanes)
    a = jnp.full_like(end, powers[block])

    def comb(x, y):
        return x[0] * y[0], y[0] * x[1] + y[1]

    carry = jax.lax.associative_scan(comb, (a, end), axis=0)[1]
    prev = jnp.concatenate([jnp.zeros_like(carry[:1]), carry[:-1]], axis=0)
    y = yl + prev[:, None, :] * powers[1:, None]
    return y.reshape(nb * block, *lead)[:n]


def ar1_residual(key, innov_var, phi_dt, var_factor):
    """AR(1) residual (T, ...), time-major, with stationary variance ``innov_var * var_factor``."""
    e = fast_normal(key, innov_var.shape) * jnp.sqrt(jnp.maximum(innov_var, 0.0) * var_factor)
    scale = jnp.sqrt(1.0 - phi_dt**2)
    # innovations scaled by sqrt(1 - phi^2), the first value drawn from the stationary distribution
    e = e * jnp.where(jnp.arange(e.shape[0]) == 0, 1.0, scale).reshape((-1,) + (1,) * (e.ndim - 1))
    return ar1_filter(e, phi_dt)


def meter_kernel(x: jax.Array, k: int) -> jax.Array:
    """Causal moving average over ``k`` samples along axis 0 (mean of those available at the start)."""
    if k <= 1:
        return x
    c = jnp.cumsum(x, axis=0)
    shifted = jnp.concatenate([jnp.zeros_like(c[:k]), c[:-k]], axis=0)
    count = jnp.minimum(jnp.arange(1, x.shape[0] + 1), k).astype(x.dtype)
    return (c - shifted) / count.reshape((-1,) + (1,) * (x.ndim - 1))


# --- the two emission paths ---------------------------------------------------------------------------
@partial(jax.jit, static_argnames=("n_rows", "n_steps", "dt", "cap_w", "max_gpus"))
def aggregate_levels(
    key, p: EmissionParams, start, state, cov, n_gpu, rows, *, n_rows, n_steps, dt, cap_w=None, max_gpus=8
):
    """Aggregation-aware path, one draw: summed segment levels and residual innovation variances per row.

    Parameters
    ----------
    key : jax.random key
    p : EmissionParams of one draw (no draw dim)
    start, state, cov : (S, G), (S, G), (S, G, n_cov) time-major segments of G TP groups
    n_gpu, rows : (G,) GPUs per group and the output row each group adds to

    Returns
    -------
    (n_steps, n_rows, 2): bin-mean sum of GPU levels (W) and sum of the GPUs' residual variances (W²).
    Add :func:`ar1_residual` of the second, drawn once per row, to the first.
    """
    lvl = group_levels(p, key, state, cov, n_gpu[None, :], cap_w, max_gpus)
    var = _per_state(p.resid_var, state) * n_gpu[None, :].astype(jnp.float32)
    return scatter_steps(start, jnp.stack([lvl, var], -1), rows, n_rows, n_steps, dt, exact=(True, False))


def _kind_levels(p: EmissionParams, key, state: int, shape, cov_terms, cap_w):
    """Shared (per-GPU) levels of segments that all have the same ``state`` (scalar parameters: no gathers).

    Multiply by the GPUs of the group for the group sum (the level is shared, see the module docstring).
    Logit link or tangent as ``p`` carries (:func:`has_logit`); ``cov_terms`` None: at the reference workload.
    """
    k1, k2 = jax.random.split(key)
    loc_t, sd_t, slope_t = _level_tables(p)
    n_k = loc_t.shape[-1]
    loc, sd = loc_t[state, 0], sd_t[state, 0]
    if n_k > 1:
        u = fast_uniform(k1, shape)
        loc, sd = jnp.full(shape, loc), jnp.full(shape, sd)
        for j in range(1, n_k):
            hit = u > p.cumw[state, j - 1]
            loc = jnp.where(hit, loc_t[state, j], loc)
            sd = jnp.where(hit, sd_t[state, j], sd)
    if cov_terms is not None:
        loc = loc + sum(slope_t[state, c] * (cov_terms[c] - p.cov_ref[c]) for c in range(_N_COV))
    lv = _link(p, loc + sd * fast_normal(k2, shape))
    return lv if cap_w is None else jnp.minimum(lv, cap_w)


def _request_levels(key, p: EmissionParams, occ, prompt, output, cap_w):
    """Shared (per-GPU) levels (N, G) of the prefill, decode and idle segment of every request, and (1, G) of
    the idle stretch before the first request (see :func:`_request_scatter`)."""
    n, g = occ.shape
    kp, kd, ki, k0 = jax.random.split(key, 4)
    ctx = D.context_tokens(prompt, output)
    cov = (jnp.log2(occ), jnp.log2(jnp.maximum(ctx, 1.0)), jnp.log2(jnp.maximum(output, 1.0)))
    lp = _kind_levels(p, kp, PREFILL_I, (n, g), cov, cap_w)
    ld = _kind_levels(p, kd, DECODE_I, (n, g), cov, cap_w)
    li = _kind_levels(p, ki, IDLE_I, (n, g), None, cap_w)
    l0 = _kind_levels(p, k0, IDLE_I, (1, g), None, cap_w)
    return lp, ld, li, l0


def _request_updates(p: EmissionParams, lp, ld, li, l0, s, f, e, rows, n_gpu, n_rows, n_steps, dt):
    """Scatter indices and ``(change, change × bin fraction, variance change)`` triples of the 3 N level
    changes, and those of every group's start (idle at time 0, bin 0 of its row).

    Written per boundary kind and stacked once at the end: XLA then computes the triples in one loop
    (stacking the changes first makes it materialise them, about 1.5× slower on CPU).
    """
    g = s.shape[1]
    nf = jnp.float32(n_gpu)
    li_prev = jnp.concatenate([l0, li[:-1]], axis=0)
    rv = p.resid_var * nf
    size = (n_steps + 2) * n_rows
    r = rows.astype(jnp.int32)
    triples, idx = [], []
    for change, t, dvar in (
        (lp - li_prev, s, rv[PREFILL_I] - rv[IDLE_I]),  # idle → prefill at s
        (ld - lp, f, rv[DECODE_I] - rv[PREFILL_I]),  # prefill → decode at f
        (li - ld, e, rv[IDLE_I] - rv[DECODE_I]),  # decode → idle at e
    ):
        x = jnp.clip(t / dt, 0.0, n_steps + 1.0)
        i = jnp.floor(x)
        triples.append(jnp.stack([nf * change, nf * change * (x - i), jnp.broadcast_to(dvar, t.shape)], -1))
        idx.append(jnp.where(r < n_rows, i.astype(jnp.int32) * n_rows + r, size))  # rows >= n_rows: dropped
    first = jnp.stack([nf * l0[0], jnp.zeros(g), jnp.broadcast_to(rv[IDLE_I], (g,))], -1)
    return (
        jnp.stack(triples).reshape(-1, 3),
        jnp.stack(idx).reshape(-1),
        first,
        jnp.where(r < n_rows, r, size),
    )


def _updates_to_grid(upd, idx, first, first_idx, n_rows, n_steps):
    """One scatter of the change triples, then one cumulative sum: (n_steps, n_rows, 2) bin means of the
    level sums and end-of-bin residual variance sums."""
    size = (n_steps + 2) * n_rows
    acc = jax.ops.segment_sum(upd, idx, num_segments=size)
    # same dtype as the scatter (float64 `first` under jax_enable_x64, which a PyMC/numpyro fit turns on)
    acc = acc.at[first_idx].add(first.astype(acc.dtype), mode="drop").reshape(n_steps + 2, n_rows, 3)
    cum = _cumsum0(acc[..., 0::2].reshape(n_steps + 2, -1)).reshape(n_steps + 2, n_rows, 2)
    return jnp.stack([cum[:n_steps, :, 0] - acc[:n_steps, :, 1], cum[:n_steps, :, 1]], -1)


def _request_scatter(
    key, p: EmissionParams, s, f, e, occ, prompt, output, rows, n_gpu, n_rows, n_steps, dt, cap_w
):
    """Bin means of the summed levels and summed residual variances of request-form segments, per row.

    The three segments of request ``i`` of a group (prefill ``[s, f)``, decode ``[f, e)``, idle from ``e``)
    have fixed states, so their levels are drawn with scalar parameters; the level and variance changes at
    the ``3 N`` boundaries go onto the grid in **one** scatter of ``(change, change × bin fraction, variance
    change)`` triples, then one cumulative sum.  ``n_gpu`` GPUs share each group's level.  Returns
    (n_steps, n_rows, 2) float32: level sums (W, exact bin means) and residual variance sums (W², the value
    in force at the end of each bin).  Traceable (used inside one program by :func:`request_gpu_power`);
    :func:`request_grid` runs its three stages as separate programs.
    """
    levels = _request_levels(key, p, occ, prompt, output, cap_w)
    upd = _request_updates(p, *levels, s, f, e, rows, n_gpu, n_rows, n_steps, dt)
    return _updates_to_grid(*upd, n_rows, n_steps)


_request_levels_jit = jax.jit(_request_levels, static_argnames=("cap_w",))
_request_updates_jit = jax.jit(_request_updates, static_argnames=("n_gpu", "n_rows", "n_steps", "dt"))
_updates_to_grid_jit = jax.jit(_updates_to_grid, static_argnames=("n_rows", "n_steps"))


def request_grid(
    key,
    p: EmissionParams,
    s,
    f,
    e,
    occ,
    prompt,
    output,
    rows,
    *,
    n_gpu: int,
    n_rows,
    n_steps,
    dt,
    cap_w=None,
    max_gpus=8,
):
    """Aggregation-aware path fed by per-request serving times (``serving.serve_requests``), one draw.

    Same distribution as :func:`aggregate_levels` on the interleaved segments, without materialising them
    (see :func:`_request_scatter`).  ``s, f, e, occ, prompt, output`` are (N, G), time-major; ``rows`` (G,)
    the output row of each group (``>= n_rows``: dropped); ``n_gpu`` the GPUs per group, the same for all
    groups of a call (one server type); ``max_gpus`` is unused (kept for callers).  Returns
    (n_steps, n_rows, 2), time-major: level sums (W) and residual variance sums (W²).

    Runs as three jitted programs (levels → change triples → scatter and cumulative sum), dispatched
    asynchronously: on CPU, XLA fuses the single program badly and it runs about 1.4× slower.  It also
    works inside ``jit`` (the stages are then inlined into the caller's program, at that cost).
    """
    del max_gpus
    levels = _request_levels_jit(key, p, occ, prompt, output, cap_w=cap_w)
    upd = _request_updates_jit(p, *levels, s, f, e, rows, n_gpu=n_gpu, n_rows=n_rows, n_steps=n_steps, dt=dt)
    return _updates_to_grid_jit(*upd, n_rows=n_rows, n_steps=n_steps)


@partial(jax.jit, static_argnames=("dt", "ar_step_s"))
def row_residual(key, p: EmissionParams, var, *, dt, ar_step_s):
    """Summed AR(1) residual (n_steps, n_rows) of rows whose summed innovation variances are ``var``."""
    phi, vf = resid_grid_params(p, dt, ar_step_s)
    return ar1_residual(key, var, phi, vf)


def _gpu_power(key, p, lvl, var, n_gpu, dt, ar_step_s, meter_k):
    """Per-GPU power (n_steps, G, n_gpu) from the shared level (n_steps, G) and residual variance of a GPU."""
    n_steps, g = lvl.shape
    phi_dt, vf = resid_grid_params(p, dt, ar_step_s)
    var = jnp.broadcast_to(var[:, :, None], (n_steps, g, n_gpu)).reshape(n_steps, g * n_gpu)
    resid = ar1_residual(key, var, phi_dt, vf).reshape(n_steps, g, n_gpu)
    return meter_kernel(lvl[:, :, None] + resid, meter_k)


@partial(jax.jit, static_argnames=("n_gpu", "n_steps", "dt", "ar_step_s", "meter_k", "cap_w"))
def request_gpu_power(
    key,
    p: EmissionParams,
    s,
    f,
    e,
    occ,
    prompt,
    output,
    *,
    n_gpu,
    n_steps,
    dt,
    ar_step_s,
    meter_k=1,
    cap_w=None,
):
    """Per-GPU path fed by per-request serving times, one draw: power (n_steps, G, n_gpu) W.

    One level series per group (its GPUs share the level, exact bin means, :func:`_request_scatter` with
    one row per group), plus an independent AR(1) residual per GPU, then the meter kernel.
    """
    g = s.shape[1]
    k1, k2 = jax.random.split(key)
    grid = _request_scatter(k1, p, s, f, e, occ, prompt, output, jnp.arange(g), 1, g, n_steps, dt, cap_w)
    return _gpu_power(k2, p, grid[..., 0], grid[..., 1], n_gpu, dt, ar_step_s, meter_k)


@partial(jax.jit, static_argnames=("n_gpu", "n_steps", "dt", "ar_step_s", "meter_k", "cap_w"))
def gpu_emissions(
    key, p: EmissionParams, start, state, cov, *, n_gpu, n_steps, dt, ar_step_s, meter_k=1, cap_w=None
):
    """Per-GPU path on interleaved segments, one draw: power (n_steps, G, n_gpu) W.

    Every GPU of a group shares its segments and its segment levels (one scatter per group); residuals
    are independent per GPU.
    """
    g = state.shape[1]
    k1, k2 = jax.random.split(key)
    lv = group_levels(p, k1, state, cov, jnp.ones((g,), jnp.int32), cap_w)  # (S, G): the shared level
    var = _per_state(p.resid_var, state)
    grid = scatter_steps(start, jnp.stack([lv, var], -1), jnp.arange(g), g, n_steps, dt, exact=(True, False))
    return _gpu_power(k2, p, grid[..., 0], grid[..., 1], n_gpu, dt, ar_step_s, meter_k)


# --- the naive per-step Markov simulator (benchmark baseline) ---------------------------------------------
@partial(jax.jit, static_argnames=("n_gpus", "n_steps", "dt"))
def naive_markov_scan(key, p: EmissionParams, mean_dwell_s, transition, *, n_gpus, n_steps, dt):
    """Naive per-step simulation: a ``lax.scan`` over time steps, Markov state switching per GPU per step.

    Each step and GPU: leave the state with probability ``dt / mean_dwell``, pick the next state from the
    embedded chain ``transition`` (3×3, no self-loops), redraw the mixture level on entry, and add a per-step
    AR(1) residual.  ``jax.random`` numbers are drawn inside the scan, one key split per step.  Returns
    (n_gpus, n_steps) W.  Kept as the baseline of ``benchmarks/generate.py``.
    """
    leave = jnp.clip(dt / mean_dwell_s, 0.0, 1.0)
    phi = jnp.clip(p.ar_coef, 0.0, 0.999)
    cumt = jnp.cumsum(transition, -1)
    ref = p.cov_ref
    loc_t, sd_t, slope_t = _level_tables(p)

    def step(carry, k):
        s, level, r = carry
        ku, kn, kc, kz, ke = jax.random.split(k, 5)
        go = jax.random.uniform(ku, (n_gpus,)) < leave[s]
        nxt = (jax.random.uniform(kn, (n_gpus,))[:, None] > cumt[s][:, :-1]).sum(-1)
        s2 = jnp.where(go, nxt, s)
        kk = (jax.random.uniform(kc, (n_gpus,))[:, None] > p.cumw[s2][:, :-1]).sum(-1)
        loc = jnp.take_along_axis(loc_t[s2], kk[:, None], -1)[:, 0]
        sd = jnp.take_along_axis(sd_t[s2], kk[:, None], -1)[:, 0]
        new = _link(p, loc + sd * jax.random.normal(kz, (n_gpus,)) + (slope_t[s2] * 0.0 * ref).sum(-1))
        level = jnp.where(go, new, level)
        r = phi * r + jnp.sqrt(1 - phi**2) * jnp.sqrt(p.resid_var[s2]) * jax.random.normal(ke, (n_gpus,))
        # keep the carry's dtypes fixed whether or not 64-bit mode is on (PyMC's JAX samplers switch it on)
        s2, level, r = s2.astype(jnp.int32), level.astype(jnp.float32), r.astype(jnp.float32)
        return (s2, level, r), level + r

    s0 = jnp.zeros((n_gpus,), jnp.int32)
    init = (s0, _link(p, loc_t[s0, 0]).astype(jnp.float32), jnp.zeros((n_gpus,), jnp.float32))
    _, out = jax.lax.scan(step, init, jax.random.split(key, n_steps))
    return out.T
