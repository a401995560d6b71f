"""Replay of a measured run's own workload through the generator (open loop, ``PROTOCOL.md`` "Driving").

For one run and one configuration's parameter draws (``wattscape.models.params`` contract):

* **timeline** — the logged inferences are served one at a time (the offline ``generate`` runs of
  energy-inference: one batch of ``batch`` sequences per inference).  ``drive="open"`` (PROTOCOL.md,
  "Driving", the default): the calls arrive at their logged start times (*open loop*), as a serving system
  sees requests.  ``drive="closed"`` (stricter, ours): where the log says when each call returned, the
  client is replayed in *closed loop*: the next call is issued the logged think time after the previous one
  returns (its predicted end), so not even the start times of an offline loop (which follow the measured
  runtimes) set the timeline; without end times it falls back to open loop.  Each runs for a
  *predicted* runtime ``(prefill_overhead_s + prefill_s_per_token·prompt·batch + prefill_attn_s·batch·prompt²
  + output·(itl_base_s + itl_per_seq_s·batch) + itl_ctx_s·batch·output·(prompt + output/2) +
  itl_ctx2_s·batch·output·(prompt² + prompt·output + output²/3)) · exp(dwell_sigma·z)``
  (``prefill_attn_s``: attention over the prompt; ``itl_ctx_s``, ``itl_ctx2_s``: decode step cost per
  context token and per squared context token; each 0 when the parameters have none; the fitted dwell
  likelihood: ``log runtime ~ Normal(log expected, dwell_sigma)``; ``output`` = the logged output-token
  limit).  ``z`` is drawn once per workload cell (the same prompt, output and batch) and shared by its calls:
  the runtime misfit is a function of the workload, not noise per call (measured on the 13 logged runs:
  log-runtime residual sd 0.11 between cells of a run, 0.018 between calls of one cell), and independent
  per-call draws would both average out over a run (intervals too narrow) and, in open loop, open idle gaps
  between back-to-back calls that the measurement never had.  In open loop an inference starts at
  ``max(arrival, previous end)``; the GPUs are idle otherwise, except over a gap shorter than
  ``dims.MIN_IDLE_S`` (0.5 s), where the inference's level holds, as the labelling counted it.  Measured
  runtimes, timing and power are never inputs.  With ``idle/prefill/decode`` parameters the first
  ``prefill / (prefill + decode)`` of a runtime is prefill, the rest decode; with ``idle/active`` the whole
  inference is one active segment.
* **segment levels** — per inference (and per idle stretch): mixture component ``k ~ Cat(level_weight)``,
  level ``level_max_w · sigmoid(level_logit_loc[k] + level_logit_slope·(x − covariate_ref) +
  level_logit_scale[k]·z)`` when the parameters carry the logit link (a fitted PowerModel's do), else the
  tangent ``level_loc[k] + level_slope·(x − covariate_ref) + level_scale[k]·z`` clipped at 0 (``x`` = log2
  batch, mean context ``prompt + output/2`` and output tokens; idle stretches at the reference).  The
  tangent is exact only near the reference: over the measured prompt sweeps (9 to 2,117 tokens) it put
  short-prompt inferences up to twice their level.  Like the runtime noise, the component and ``z`` of a
  level are drawn once per workload cell and shared by its calls: what the covariates leave unexplained is
  a property of the workload, not noise per call (measured on the 13 logged runs: sd of log power 0.01-0.15
  between calls of one cell, 0.24-0.43 between the cell means of a run), and independent draws per call
  would average out over a run (run-energy intervals too narrow) and shorten the autocorrelation.  The
  fitted level is the mean over the configuration's GPUs, so the total is ``n_gpus × level``.  Level
  series are exact bin means: level changes are scatter-added at the segment boundaries onto the run's own
  (possibly irregular) sample grid and cumulated, as in :mod:`wattscape.generation.simulate`.
* **residual** — an AR(1) per GPU with stationary sd ``resid_scale`` and coefficient ``ar_coef`` per
  ``ar_step_s``; only the total is needed, so the ``n_gpus`` independent processes are drawn as one AR(1)
  with summed variance (DESIGN.md).  A fitted model's ``resid_scale`` is the GPU-mean's sd × √n_gpus, so
  this total has the measured variance, cross-GPU correlation included (``inference.stats``); a negative
  (anti-persistent) fitted coefficient is generated as white noise (coefficient clipped at 0).  Per
  sample, variance and coefficient are those of the state in force,
  weighted by the active fraction of the sample's bin; the coefficient is raised to ``bin / ar_step_s``.
* **meter kernel** — a causal moving average over ``meter_window_s`` when that window is longer than the
  sample period (:func:`wattscape.generation.simulate.meter_kernel`); no-op otherwise.

The numerics are pure ``jax.jit`` functions vmapped over draws with explicit ``jax.random`` keys; every
array entering them is cast to float32/int32, so results do not depend on JAX's 64-bit mode (which PyMC's
numpyro sampler switches on).

Output: ``power`` (draw, time), W, total over the configuration's GPUs, on ``run.time``; every sample is
produced (excluded samples too).
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from wattscape.models import dims as D

from .simulate import DECODE_I, IDLE_I, PREFILL_I, block_var_factor, meter_kernel, state_index_map

_N_COV = len(D.COVARIATES)


class ReplayParams(NamedTuple):
    """Per-draw parameters of one configuration for the replay; leading dim = draw, per-state arrays in the
    order (idle, prefill, decode) of ``simulate.SIM_STATES`` (prefill and decode map to ``active``)."""

    loc: jax.Array  # (draw, 3, K) W
    scale: jax.Array  # (draw, 3, K) W
    cumw: jax.Array  # (draw, 3, K) cumulative mixture weights
    slope: jax.Array  # (draw, 3, n_cov) W per unit log2
    cov_ref: jax.Array  # (draw, n_cov)
    resid_var: jax.Array  # (draw, 3) W² per GPU
    ar_coef: jax.Array  # (draw, 3) per ar_step_s
    prefill_s_per_token: jax.Array  # (draw,)
    prefill_overhead_s: jax.Array  # (draw,)
    itl_base_s: jax.Array  # (draw,)
    itl_per_seq_s: jax.Array  # (draw,)
    itl_ctx_s: jax.Array  # (draw,) decode step time per sequence per context token (0 if absent)
    itl_ctx2_s: jax.Array  # (draw,) decode step time per sequence per context token² (0 if absent)
    prefill_attn_s: jax.Array  # (draw,) prefill time per sequence per prompt token² (0 if absent)
    dwell_sigma: jax.Array  # (draw,) log-normal sd of an inference's runtime
    lg_loc: jax.Array  # (draw, 3, K) logit-link level location (zeros without the logit variables)
    lg_scale: jax.Array  # (draw, 3, K) logit-link level sd
    lg_slope: jax.Array  # (draw, 3, n_cov) logit-link slope per unit log2
    max_w: jax.Array  # (draw,) W: the level is max_w · sigmoid(...)


def replay_arrays(params: xr.Dataset) -> tuple[ReplayParams, bool, bool]:
    """The parameter dataset as float32 JAX arrays, whether it has separate prefill/decode states and
    whether it carries the logit-link levels (used then instead of the tangent)."""
    from wattscape.models.params import LOGIT_LEVEL_VARS, validate_config_params

    validate_config_params(params)
    idx = state_index_map(params)

    def per_state(name: str) -> np.ndarray:
        return np.asarray(params[name].values, dtype=np.float64)[:, idx]

    w = per_state("level_weight")
    w = w / w.sum(-1, keepdims=True)
    n_d = params.sizes[D.DRAW]
    ref = np.asarray(params.attrs.get("covariate_ref", [0.0] * _N_COV), dtype=np.float64)
    f32 = partial(jnp.asarray, dtype=jnp.float32)
    logit = all(v in params for v in LOGIT_LEVEL_VARS)
    p = ReplayParams(
        loc=f32(per_state("level_loc")),
        scale=f32(per_state("level_scale")),
        cumw=f32(np.cumsum(w, -1)),
        slope=f32(per_state("level_slope")),
        cov_ref=f32(np.broadcast_to(ref, (n_d, _N_COV))),
        resid_var=f32(per_state("resid_scale") ** 2),
        ar_coef=f32(np.clip(per_state("ar_coef"), 0.0, 0.999999)),
        prefill_s_per_token=f32(params["prefill_s_per_token"].values),
        prefill_overhead_s=f32(params["prefill_overhead_s"].values),
        itl_base_s=f32(params["itl_base_s"].values),
        itl_per_seq_s=f32(params["itl_per_seq_s"].values),
        itl_ctx_s=f32(params["itl_ctx_s"].values if "itl_ctx_s" in params else np.zeros(n_d)),
        itl_ctx2_s=f32(params["itl_ctx2_s"].values if "itl_ctx2_s" in params else np.zeros(n_d)),
        prefill_attn_s=f32(params["prefill_attn_s"].values if "prefill_attn_s" in params else np.zeros(n_d)),
        dwell_sigma=f32(per_state("dwell_sigma")[:, DECODE_I]),
        lg_loc=f32(per_state("level_logit_loc") if logit else np.zeros_like(per_state("level_loc"))),
        lg_scale=f32(per_state("level_logit_scale") if logit else np.zeros_like(per_state("level_loc"))),
        lg_slope=f32(per_state("level_logit_slope") if logit else np.zeros_like(per_state("level_slope"))),
        max_w=f32(params["level_max_w"].values if logit else np.zeros(n_d)),
    )
    return p, bool(idx[PREFILL_I] != idx[DECODE_I]), logit


# --- pure JAX numerics (one draw; vmapped below) ------------------------------------------------------
def _levels(p: ReplayParams, key, state: int, cov, logit: bool = False, cell=None):
    """Segment levels (n,) W per GPU of segments in ``state``: mixture component, covariates, noise; ≥ 0.

    ``logit``: on the logit link, ``max_w · sigmoid(lg_loc[k] + lg_slope·(x − x0) + lg_scale[k]·z)``;
    else the tangent ``loc[k] + slope·(x − x0) + scale[k]·z``.  ``cell`` (n,) int: segments of one
    workload cell share their component and noise draw (None: one draw per segment)."""
    n = cov.shape[0]
    ku, kz = jax.random.split(key)
    u = jax.random.uniform(ku, (n,), jnp.float32)
    z = jax.random.normal(kz, (n,), jnp.float32)
    if cell is not None:
        u, z = u[cell], z[cell]
    cumw = p.cumw[state]
    k = jnp.sum(u[:, None] > cumw[None, :-1], axis=1).astype(jnp.int32)
    if logit:
        eta = p.lg_loc[state][k] + (cov - p.cov_ref[None, :]) @ p.lg_slope[state]
        return p.max_w * jax.nn.sigmoid(eta + p.lg_scale[state][k] * z)
    loc, sd = p.loc[state][k], p.scale[state][k]
    mu = loc + (cov - p.cov_ref[None, :]) @ p.slope[state]
    return jnp.maximum(mu + sd * z, 0.0)


def _bin_means(times, values, init, edges):
    """Exact bin means over ``[edges[i], edges[i+1])`` of a step function: ``init`` until the first time,
    then ``values[j]`` from ``times[j]`` on (times sorted).  Scatter-add of the changes + cumsum."""
    n_bins = edges.shape[0] - 1
    delta = values - jnp.concatenate([jnp.reshape(init, (1,)), values[:-1]])
    i = jnp.searchsorted(edges, times, side="right").astype(jnp.int32) - 1
    ic = jnp.clip(i, 0, n_bins - 1)
    width = jnp.maximum(edges[ic + 1] - edges[ic], 1e-9)
    f = jnp.clip((times - edges[ic]) / width, 0.0, 1.0)  # 0 for changes before the grid
    i = jnp.where(i >= n_bins, n_bins, ic)  # changes after the grid land in a dropped overflow bin
    a = jax.ops.segment_sum(delta, i, num_segments=n_bins + 1)[:n_bins]
    b = jax.ops.segment_sum(delta * f, i, num_segments=n_bins + 1)[:n_bins]
    return init + jnp.cumsum(a) - b


def _timeline(p: ReplayParams, key, arrival, gap, pre_time, dec_work, cell, closed: bool):
    """Start, prefill end and end (s) of each inference served one at a time.

    Open loop: ``end_j = max(a_j, end_{j-1}) + run_j`` (max-plus recursion).  Closed loop (a client that
    issues the next call when the previous one returns, as the offline ``generate`` scripts do):
    ``start_j = end_{j-1} + gap_j`` with the client's think time ``gap_j`` (``gap_0`` = first arrival).
    ``cell``: workload-cell index of each inference (< N); its calls share one runtime noise draw.
    """
    z = jax.random.normal(key, arrival.shape, jnp.float32)[cell]
    noise = jnp.exp(p.dwell_sigma * z)
    pre = (p.prefill_overhead_s + pre_time) * noise
    run = pre + dec_work * noise
    c = jnp.cumsum(run)
    if closed:
        end = c + jnp.cumsum(gap)
    else:
        # end_j = max(a_j, end_{j-1}) + run_j  ⇔  end = C + cummax(a − C_prev), C = cumsum(run)
        end = c + jax.lax.cummax(arrival - (c - run), axis=0)
    start = end - run
    return start, start + pre, end


def _idle_onset(start, end, min_idle_s: float = D.MIN_IDLE_S):
    """When each inference's idle stretch begins: its end, or the next start when the gap is shorter
    than ``min_idle_s`` (the labelling's rule, :data:`wattscape.models.dims.MIN_IDLE_S`: such a gap was
    fitted as part of the active segment, so the level holds over it).  Measured on the 13 logged runs,
    in-sample (shipped posterior): without the hold their 10-50 ms logged gaps fell to the idle level and
    the median run-energy error was 1.13 %, with it 0.49 %.  Starts never precede the previous end.
    """
    nxt = jnp.concatenate([start[1:], jnp.full((1,), jnp.inf, start.dtype)])
    return jnp.where(nxt - end < min_idle_s, nxt, end)


def _ar1(phi, sd, z):
    """``r_t = φ_t r_{t−1} + sqrt(1 − φ_t²) sd_t z_t``, ``r_0 = sd_0 z_0`` (float32 scan carry)."""
    innov = jnp.sqrt(jnp.maximum(1.0 - phi**2, 0.0)) * sd * z

    def step(r, x):
        ph, e = x
        r = (ph * r + e).astype(jnp.float32)
        return r, r

    r0 = (sd[0] * z[0]).astype(jnp.float32)
    _, rest = jax.lax.scan(step, r0, (phi[1:], innov[1:]))
    return jnp.concatenate([r0[None], rest])


@partial(jax.jit, static_argnames=("phases", "meter_k", "var_m", "closed", "logit"))
def replay_draw(
    key,
    p: ReplayParams,
    arrival,
    gap,
    prompt,
    output,
    batch,
    cell,
    edges,
    n_gpus,
    ar_step_s,
    *,
    phases: bool,
    meter_k: int,
    var_m: float,
    closed: bool = False,
    logit: bool = False,
):
    """One draw: total power on the grid and the inference timeline.

    Parameters
    ----------
    key : jax.random key
    p : ReplayParams of one draw (no draw dim)
    arrival, prompt, output, batch : (N,) float32 inferences sorted by arrival (s from the first sample)
    gap : (N,) float32 client think time before each inference (closed loop; ``gap[0]`` = first arrival)
    cell : (N,) int32 workload cell of each inference (same prompt, output, batch: shared runtime noise)
    edges : (T + 1,) float32 bin edges (s): sample ``i`` is the mean over ``[edges[i], edges[i+1])``
    n_gpus : float32 GPUs of the configuration
    ar_step_s : float32 time step of ``ar_coef`` (s)
    phases : separate prefill and decode levels (``idle/prefill/decode`` parameters)
    meter_k : samples of the meter's moving average (≤ 1: none)
    var_m : median bin width / ``ar_step_s`` (variance factor of block means)
    closed : closed-loop timeline (next call when the previous returns) instead of open-loop arrivals
    logit : segment levels on the logit link (``lg_*`` fields) instead of the tangent

    Returns
    -------
    power (T,), start (N,), prefill_end (N,), end (N,)
    """
    k_t, k_a, k_p, k_i, k_0, k_r = jax.random.split(key, 6)
    context = D.context_tokens(prompt, output)  # the mean context over the decode steps
    cov = jnp.log2(jnp.maximum(jnp.stack([batch, context, output], -1), 1.0))
    pre_time = p.prefill_s_per_token * prompt * batch + p.prefill_attn_s * batch * prompt**2
    dec_work = output * (
        p.itl_base_s
        + p.itl_per_seq_s * batch
        + p.itl_ctx_s * batch * context
        + p.itl_ctx2_s * batch * D.context_tokens_sq(prompt, output)
    )
    s, f, e = _timeline(p, k_t, arrival, gap, pre_time, dec_work, cell, closed)
    idle_on = _idle_onset(s, e)
    ref = jnp.broadcast_to(p.cov_ref, cov.shape)
    lv_dec = _levels(p, k_a, DECODE_I, cov, logit, cell)
    lv_pre = _levels(p, k_p, PREFILL_I, cov, logit, cell) if phases else lv_dec
    lv_idle = _levels(p, k_i, IDLE_I, ref, logit)  # the idle stretch after each inference
    lv_0 = _levels(p, k_0, IDLE_I, ref[:1], logit)[0]  # before the first
    n = arrival.shape[0]
    times = jnp.stack([s, f, idle_on], 1).reshape(3 * n)
    level = _bin_means(times, jnp.stack([lv_pre, lv_dec, lv_idle], 1).reshape(3 * n), lv_0, edges)
    busy = jnp.tile(jnp.array([1.0, 1.0, 0.0], jnp.float32), n)
    w = jnp.clip(_bin_means(times, busy, jnp.float32(0.0), edges), 0.0, 1.0)  # active fraction per bin
    # residual: the state in force weighted by the active fraction (prefill and decode alike when phases
    # are separate: the decode parameters, which hold for nearly all of an inference)
    width = edges[1:] - edges[:-1]
    phi_i, phi_a = p.ar_coef[IDLE_I], p.ar_coef[DECODE_I]
    phi_step = (1.0 - w) * phi_i + w * phi_a
    phi = phi_step ** (width / ar_step_s)
    var = ((1.0 - w) * p.resid_var[IDLE_I] + w * p.resid_var[DECODE_I]) * n_gpus
    vf = block_var_factor(phi_step, var_m)
    z = jax.random.normal(k_r, width.shape, jnp.float32)
    resid = _ar1(phi.astype(jnp.float32), jnp.sqrt(var * vf).astype(jnp.float32), z)
    total = meter_kernel(n_gpus * level + resid, meter_k)
    return jnp.maximum(total, 0.0).astype(jnp.float32), s, f, e


@partial(jax.jit, static_argnames=("phases", "meter_k", "var_m", "closed", "logit"))
def replay_draws(
    keys,
    p: ReplayParams,
    arrival,
    gap,
    prompt,
    output,
    batch,
    cell,
    edges,
    n_gpus,
    ar_step_s,
    *,
    phases,
    meter_k,
    var_m,
    closed=False,
    logit=False,
):
    """:func:`replay_draw` vmapped over draws (leading dim of ``keys`` and of every array of ``p``)."""
    f = partial(replay_draw, phases=phases, meter_k=meter_k, var_m=var_m, closed=closed, logit=logit)
    return jax.vmap(f, in_axes=(0, 0, None, None, None, None, None, None, None, None, None))(
        keys, p, arrival, gap, prompt, output, batch, cell, edges, n_gpus, ar_step_s
    )


# --- thin wrappers (numpy / xarray) -------------------------------------------------------------------
def run_config(run: xr.Dataset) -> dict[str, Any]:
    """The ``ServingConfig`` fields of a measured run, from its attributes.

    ``precision`` defaults to the one the fit assumes for runs that do not say
    (``inference.stats.DEFAULT_PRECISION``), so the run's own configuration is found in the posterior.
    """
    from wattscape.inference.stats import DEFAULT_PRECISION

    a = run.attrs
    missing = [k for k in ("llm", "params_b", "gpu_model", "n_gpus") if k not in a]
    if missing:
        raise KeyError(f"run {a.get('run_id')!r} lacks the attribute(s) {missing} needed to replay it")
    n = int(a["n_gpus"])
    return {
        "llm": str(a["llm"]),
        "params_b": float(a["params_b"]),
        "active_params_b": float(a.get("active_params_b") or a["params_b"]),
        "gpu_model": str(a["gpu_model"]),
        "n_gpus": n,
        "split": str(a.get("split") or (D.SPLIT_NONE if n == 1 else D.SPLIT_LAYER)),
        "tensor_parallel": int(a.get("tensor_parallel") or 1),
        "precision": str(a.get("precision") or DEFAULT_PRECISION),
    }


#: Ways of driving the replay (see the module docstring): open loop (PROTOCOL.md) or closed loop.
DRIVES = ("open", "closed")


def _inputs(run: xr.Dataset, requests: pd.DataFrame, drive: str = "open"):
    """Float32 inference arrays (sorted by start, s from the first sample) and the bin edges of the grid."""
    if drive not in DRIVES:
        raise ValueError(f"drive must be one of {DRIVES}, got {drive!r}")
    time = np.asarray(run[D.TIME].values).astype("datetime64[ns]")
    if time.size < 2:
        raise ValueError(f"run {run.attrs.get('run_id')!r} has fewer than 2 samples: nothing to replay")
    need = ["start", "prompt_tokens", "output_tokens"]
    missing = [c for c in need if c not in requests.columns]
    if missing:
        raise KeyError(f"requests of run {run.attrs.get('run_id')!r} lack the column(s) {missing}")
    req = requests[requests["start"].notna()].sort_values("start", kind="stable")
    if len(req) == 0:
        raise ValueError(f"run {run.attrs.get('run_id')!r}: no request with a start time to replay")
    t = (time - time[0]) / np.timedelta64(1, "s")
    dt = float(np.median(np.diff(t)))
    edges = np.append(t, t[-1] + dt)
    arrival = (pd.to_datetime(req["start"]).to_numpy(dtype="datetime64[ns]") - time[0]) / np.timedelta64(
        1, "s"
    )
    batch = req["batch_size"].to_numpy(float) if "batch_size" in req else np.ones(len(req))
    cols = [arrival, req["prompt_tokens"].to_numpy(float), req["output_tokens"].to_numpy(float), batch]
    for name, c in zip(("start", "prompt_tokens", "output_tokens", "batch_size"), cols, strict=True):
        if not np.all(np.isfinite(c)):
            raise ValueError(f"requests of run {run.attrs.get('run_id')!r}: non-finite {name!r}")
    # closed loop when the log says when each call returned: the client's think time between calls is
    # workload (kept); when the next call starts is then decided by the predicted runtimes, not the log's
    end = pd.to_datetime(req["end"]).to_numpy(dtype="datetime64[ns]") if "end" in req else None
    closed = drive == "closed" and end is not None and not np.isnat(end).any()
    gap = np.zeros(len(req))
    gap[0] = arrival[0]
    if closed:
        ends = (end - time[0]) / np.timedelta64(1, "s")
        gap[1:] = np.maximum(arrival[1:] - ends[:-1], 0.0)
    f32 = partial(jnp.asarray, dtype=jnp.float32)
    _, cell = np.unique(np.stack(cols[1:], axis=1), axis=0, return_inverse=True)
    cell = jnp.asarray(cell.reshape(-1), dtype=jnp.int32)
    return (f32(cols[0]), f32(gap), *(f32(c) for c in cols[1:]), cell, f32(edges)), time, dt, closed


def _run(params: xr.Dataset, run: xr.Dataset, requests: pd.DataFrame, seed: int, drive: str = "open"):
    p, phases, logit = replay_arrays(params)
    (arr, gap, pr, ou, bs, cell, edges), time, dt, closed = _inputs(run, requests, drive)
    n_draw = params.sizes[D.DRAW]
    meter_k = round(float(params.attrs.get("meter_window_s", 0.0)) / dt)
    var_m = float(dt / float(params.attrs["ar_step_s"]))
    n_gpus = jnp.float32(int(run.attrs.get("n_gpus", params.attrs["n_gpus"])))
    keys = jax.random.split(jax.random.key(int(seed)), n_draw)
    ar_step = jnp.float32(float(params.attrs["ar_step_s"]))
    out = replay_draws(
        keys,
        p,
        arr,
        gap,
        pr,
        ou,
        bs,
        cell,
        edges,
        n_gpus,
        ar_step,
        phases=phases,
        meter_k=meter_k,
        var_m=var_m,
        closed=closed,
        logit=logit,
    )
    return [np.asarray(o) for o in out], time


def replay_params(
    params: xr.Dataset, run: xr.Dataset, requests: pd.DataFrame, *, seed: int = 0, drive: str = "open"
) -> xr.DataArray:
    """Total power of ``run``'s logged workload under a configuration's parameter draws.

    Parameters
    ----------
    params : xr.Dataset
        Configuration parameter draws (``wattscape.models.params`` contract).
    run : xr.Dataset
        The measured run (or its workload window): its ``time`` grid and ``n_gpus`` attribute are used;
        its power is not.
    requests : pd.DataFrame
        The run's inference log: ``start`` (UTC), ``prompt_tokens``, ``output_tokens`` (the logged limit)
        and ``batch_size`` (1 when absent).
    seed : int
        Seed of the ``jax.random`` key (same seed, same output).
    drive : {"open", "closed"}
        Open loop at the logged start times (PROTOCOL.md) or closed loop on the logged think times.

    Returns
    -------
    xr.DataArray
        ``power`` (draw, time), W, total over the configuration's GPUs, on ``run.time``.
    """
    (power, *_), time = _run(params, run, requests, seed, drive)
    da = xr.DataArray(
        power.astype(np.float64),
        dims=[D.DRAW, D.TIME],
        coords={D.DRAW: params[D.DRAW].values, D.TIME: time},
        name=D.POWER,
    )
    da.attrs = {
        D.UNITS: D.WATT,
        "n_gpus": int(run.attrs.get("n_gpus", params.attrs["n_gpus"])),
        "config": "{llm} on {n_gpus}x {gpu_model}".format(
            **{k: params.attrs.get(k) for k in ("llm", "n_gpus", "gpu_model")}
        ),
        "generator": "wattscape.generation.replay",
        "drive": drive,
        "seed": int(seed),
    }
    return da


def replay_timeline(
    params: xr.Dataset, run: xr.Dataset, requests: pd.DataFrame, *, seed: int = 0, drive: str = "open"
) -> xr.Dataset:
    """The replayed inference timeline behind :func:`replay_params` (same seed and drive, same draws).

    Returns
    -------
    xr.Dataset
        ``start``, ``prefill_end``, ``end`` (draw, request) as UTC datetime64, requests in start order.
    """
    (_, s, f, e), time = _run(params, run, requests, seed, drive)
    t0 = time[0]

    def utc(x):
        return t0 + np.round(np.asarray(x, np.float64) * 1e9).astype("timedelta64[ns]")

    dims = (D.DRAW, "request")
    return xr.Dataset(
        {"start": (dims, utc(s)), "prefill_end": (dims, utc(f)), "end": (dims, utc(e))},
        coords={D.DRAW: params[D.DRAW].values},
    )


def config_params_for(model: Any, run: xr.Dataset, n_draws: int, seed: int) -> xr.Dataset:
    """Parameter draws for ``run``'s configuration: a PowerModel's ``config_params`` or a given Dataset
    (its first ``n_draws`` draws)."""
    if isinstance(model, xr.Dataset):
        return model.isel({D.DRAW: slice(0, int(n_draws))}) if n_draws else model
    if not hasattr(model, "config_params"):
        raise TypeError(
            "replay needs a PowerModel (with config_params) or a parameter Dataset, "
            f"got {type(model).__name__}"
        )
    return model.config_params(run_config(run), n_draws, seed)


def replay_run(
    model: Any,
    run: xr.Dataset,
    requests: pd.DataFrame,
    *,
    n_draws: int = 100,
    seed: int = 0,
    drive: str = "open",
) -> xr.DataArray:
    """Replay a measured run's own workload through a fitted model.

    Parameters
    ----------
    model : PowerModel or xr.Dataset
        A fitted :class:`wattscape.models.hierarchical.PowerModel` (its ``config_params`` for the run's
        configuration, from the run's attributes) or configuration parameter draws.
    run, requests : the measured run and its inference log (see :func:`replay_params`).
    n_draws : int
        Posterior-predictive draws.
    seed : int
        Seed of the parameter draws and of the replay.
    drive : {"open", "closed"}
        Open loop at the logged start times (PROTOCOL.md, default) or closed loop on the logged think
        times (the runtimes of the replay set when each call starts).

    Returns
    -------
    xr.DataArray
        ``power`` (draw, time), W, total over the configuration's GPUs, on ``run.time``; attrs ``units``,
        ``config`` (the ServingConfig fields, JSON), ``n_gpus``.
    """
    params = config_params_for(model, run, n_draws, seed)
    da = replay_params(params, run, requests, seed=seed, drive=drive)
    try:
        da.attrs["config"] = json.dumps(run_config(run))
    except KeyError:
        pass
    return da
