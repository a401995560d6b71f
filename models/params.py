"""The contract between a fitted model and the generator: per-configuration parameter draws.

A fitted model (``wattscape.models``) turns its posterior into, for one serving configuration, an
``xr.Dataset`` of parameter draws in the form below; the generator (``wattscape.generation``) only ever
reads this form.  ``example_config_params`` builds one from physics-plausible values, for tests and for
developing against before a posterior exists.

Variables (dims; units)
-----------------------
level_loc      (draw, state, component; W)   mean per-GPU power level of a segment, mixture component k,
                                              at the reference workload (attrs ``covariate_ref``)
level_scale    (draw, state, component; W)   sd of segment levels within component k
level_weight   (draw, state, component; 1)   mixture weights, summing to 1 over component
level_slope    (draw, state, covariate; W)   change of the segment level per unit of each covariate
                                              (covariates in ``dims.COVARIATES``, log2 of workload)
ar_coef        (draw, state; 1)              AR(1) coefficient of the within-segment residual per
                                              ``attrs['ar_step_s']`` seconds
resid_scale    (draw, state; W)              stationary sd of the within-segment residual per GPU,
                                              GPUs independent (a fitted model gives σ_mean·√n_gpus:
                                              the total then has the measured variance)
prefill_s_per_token (draw; s)                prefill time per prompt token (whole batch)
prefill_overhead_s  (draw; s)                fixed prefill time
itl_base_s     (draw; s)                     decode inter-token latency at batch 1
itl_per_seq_s  (draw; s)                     added inter-token latency per sequence in the batch
dwell_sigma    (draw, state; 1)              log-normal multiplicative noise on dwell times
transition     (draw, state, state_to; 1)    embedded-chain transition probabilities (no self-loops)
itl_ctx_s      (draw; s)                     OPTIONAL (0 when absent): added decode-step time per
                                              sequence per context token; an inference adds
                                              ``itl_ctx_s · batch · output · (prompt + output / 2)``
itl_ctx2_s     (draw; s)                     OPTIONAL (0 when absent): added decode-step time per
                                              sequence per squared context token; an inference adds
                                              ``itl_ctx2_s · batch · output · (prompt² + prompt · output
                                              + output² / 3)``
prefill_attn_s (draw; s)                     OPTIONAL (0 when absent): prefill attention time per
                                              sequence per prompt token²; an inference adds
                                              ``prefill_attn_s · batch · prompt²``
level_logit_loc   (draw, state, component; 1)  OPTIONAL, all four or none: the level on its logit link,
level_logit_scale (draw, state, component; 1)  ``level = level_max_w · sigmoid(level_logit_loc[k] +
level_logit_slope (draw, state, covariate; 1)  level_logit_slope · (x − covariate_ref) +
level_max_w       (draw; W)                    level_logit_scale[k] · z)``; a generator that reads them uses
                                              them instead of the tangent (``level_loc``, ``level_slope``,
                                              ``level_scale``), which is exact only near ``covariate_ref``

Attributes: llm, gpu_model, n_gpus, tensor_parallel, tdp_w, ar_step_s, meter_window_s,
covariate_ref (list, same order as dims.COVARIATES), states (label set), model_id.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import dims as D

REQUIRED_VARS: dict[str, tuple[str, ...]] = {
    "level_loc": (D.DRAW, D.STATE, D.COMPONENT),
    "level_scale": (D.DRAW, D.STATE, D.COMPONENT),
    "level_weight": (D.DRAW, D.STATE, D.COMPONENT),
    "level_slope": (D.DRAW, D.STATE, D.COVARIATE),
    "ar_coef": (D.DRAW, D.STATE),
    "resid_scale": (D.DRAW, D.STATE),
    "prefill_s_per_token": (D.DRAW,),
    "prefill_overhead_s": (D.DRAW,),
    "itl_base_s": (D.DRAW,),
    "itl_per_seq_s": (D.DRAW,),
    "dwell_sigma": (D.DRAW, D.STATE),
    "transition": (D.DRAW, D.STATE, D.STATE_TO),
}
#: Variables a generator may read when present (absent = 0).
OPTIONAL_VARS: dict[str, tuple[str, ...]] = {
    "itl_ctx_s": (D.DRAW,),
    "itl_ctx2_s": (D.DRAW,),
    "prefill_attn_s": (D.DRAW,),
    "level_logit_loc": (D.DRAW, D.STATE, D.COMPONENT),
    "level_logit_scale": (D.DRAW, D.STATE, D.COMPONENT),
    "level_logit_slope": (D.DRAW, D.STATE, D.COVARIATE),
    "level_max_w": (D.DRAW,),
}
#: The logit-link level variables: present together or not at all.
LOGIT_LEVEL_VARS = ("level_logit_loc", "level_logit_scale", "level_logit_slope", "level_max_w")
REQUIRED_ATTRS = ("llm", "gpu_model", "n_gpus", "tensor_parallel", "tdp_w", "ar_step_s", "meter_window_s")


def validate_config_params(ds: xr.Dataset) -> xr.Dataset:
    """Check that ``ds`` follows the contract; return it unchanged or raise ``ValueError``."""
    problems = []
    for name, want in REQUIRED_VARS.items():
        if name not in ds:
            problems.append(f"missing variable {name!r}")
        elif tuple(ds[name].dims) != want:
            problems.append(f"{name!r} has dims {ds[name].dims}, expected {want}")
    for name, want in OPTIONAL_VARS.items():
        if name in ds and tuple(ds[name].dims) != want:
            problems.append(f"{name!r} has dims {ds[name].dims}, expected {want}")
    have = [v for v in LOGIT_LEVEL_VARS if v in ds]
    if have and len(have) != len(LOGIT_LEVEL_VARS):
        problems.append(f"logit-link level variables must come together: has {have} of {LOGIT_LEVEL_VARS}")
    problems += [f"missing attribute {a!r}" for a in REQUIRED_ATTRS if a not in ds.attrs]
    if not problems:
        for name in ds.data_vars:
            values = np.asarray(ds[name].values)
            if values.dtype.kind == "f" and not np.isfinite(values).all():
                bad = int((~np.isfinite(values)).sum())
                problems.append(f"{name!r} has {bad} non-finite value(s) (a broken posterior draw?)")
    if not problems and "resid_scale" in ds and "tdp_w" in ds.attrs and "n_gpus" in ds.attrs:
        # a residual sd beyond the configuration's nameplate is no power fluctuation: a stuck chain
        nameplate = float(ds.attrs["tdp_w"]) * int(ds.attrs["n_gpus"])
        worst = float(ds["resid_scale"].max())
        if worst > nameplate:
            problems.append(
                f"'resid_scale' reaches {worst:.4g} W, above the configuration's nameplate {nameplate:.4g} W "
                "(a broken posterior draw?)"
            )
    if "level_weight" in ds and not problems:
        total = ds["level_weight"].sum(D.COMPONENT)
        if not np.allclose(total, 1.0, atol=1e-5):
            problems.append("level_weight does not sum to 1 over component")
    if problems:
        raise ValueError("configuration parameters do not follow the contract: " + "; ".join(problems))
    return ds


def example_config_params(
    n_draws: int = 100,
    *,
    states: tuple[str, ...] = D.STATES_PHASES,
    tdp_w: float = 700.0,
    n_gpus: int = 8,
    tensor_parallel: int = 8,
    llm: str = "example-70b",
    gpu_model: str = "H100-SXM5-80GB",
    seed: int = 0,
) -> xr.Dataset:
    """Physics-plausible parameter draws for one configuration (tests and development only).

    Idle near 12 % of TDP, prefill near 85 %, decode near 55 %, with draw-to-draw spread.

    Parameters
    ----------
    n_draws : int
        Number of posterior-like draws.
    states : tuple of str
        State names, e.g. ``dims.STATES_PHASES`` or ``dims.STATES_ACTIVE``.
    tdp_w, n_gpus, tensor_parallel, llm, gpu_model : configuration description.
    seed : int
        Seed of the numpy generator.

    Returns
    -------
    xr.Dataset
        Follows the contract checked by :func:`validate_config_params`.
    """
    rng = np.random.default_rng(seed)
    frac = {D.IDLE: 0.12, D.PREFILL: 0.85, D.DECODE: 0.55, D.ACTIVE: 0.6}
    n_s, n_k = len(states), 2
    base = np.array([frac[s] for s in states]) * tdp_w
    loc = base[None, :, None] * np.array([0.92, 1.05])[None, None, :]
    loc = loc * np.exp(rng.normal(0, 0.03, (n_draws, 1, 1)))
    scale = np.broadcast_to(0.04 * base[None, :, None], (n_draws, n_s, n_k)).copy()
    weight = np.broadcast_to(np.array([0.4, 0.6]), (n_draws, n_s, n_k)).copy()
    slope = np.zeros((n_draws, n_s, len(D.COVARIATES)))
    for i, s in enumerate(states):
        if s != D.IDLE:
            slope[:, i, 0] = 0.03 * tdp_w  # +3 % of TDP per doubling of the batch
    trans = np.zeros((n_draws, n_s, n_s))
    for i in range(n_s):
        others = [j for j in range(n_s) if j != i]
        trans[:, i, others] = rng.dirichlet(np.ones(len(others)), size=n_draws)
    coords = {
        D.DRAW: np.arange(n_draws),
        D.STATE: list(states),
        D.STATE_TO: list(states),
        D.COMPONENT: np.arange(n_k),
        D.COVARIATE: list(D.COVARIATES),
    }
    ds = xr.Dataset(
        {
            "level_loc": ((D.DRAW, D.STATE, D.COMPONENT), loc, {D.UNITS: D.WATT}),
            "level_scale": ((D.DRAW, D.STATE, D.COMPONENT), scale, {D.UNITS: D.WATT}),
            "level_weight": ((D.DRAW, D.STATE, D.COMPONENT), weight, {D.UNITS: "1"}),
            "level_slope": ((D.DRAW, D.STATE, D.COVARIATE), slope, {D.UNITS: D.WATT}),
            "ar_coef": ((D.DRAW, D.STATE), rng.uniform(0.5, 0.7, (n_draws, n_s)), {D.UNITS: "1"}),
            "resid_scale": ((D.DRAW, D.STATE), np.tile(0.02 * base, (n_draws, 1)), {D.UNITS: D.WATT}),
            "prefill_s_per_token": ((D.DRAW,), rng.uniform(1e-4, 2e-4, n_draws), {D.UNITS: D.SECOND}),
            "prefill_overhead_s": ((D.DRAW,), np.full(n_draws, 0.02), {D.UNITS: D.SECOND}),
            "itl_base_s": ((D.DRAW,), rng.uniform(0.02, 0.03, n_draws), {D.UNITS: D.SECOND}),
            "itl_per_seq_s": ((D.DRAW,), np.full(n_draws, 2e-4), {D.UNITS: D.SECOND}),
            "dwell_sigma": ((D.DRAW, D.STATE), np.full((n_draws, n_s), 0.3), {D.UNITS: "1"}),
            "transition": ((D.DRAW, D.STATE, D.STATE_TO), trans, {D.UNITS: "1"}),
        },
        coords=coords,
        attrs={
            "llm": llm,
            "gpu_model": gpu_model,
            "n_gpus": n_gpus,
            "tensor_parallel": tensor_parallel,
            "tdp_w": tdp_w,
            "ar_step_s": 0.1,
            "meter_window_s": 0.1,
            "covariate_ref": [5.0, 9.0, 8.0],
            "states": "/".join(states),
            "model_id": "example",
        },
    )
    return validate_config_params(ds)
