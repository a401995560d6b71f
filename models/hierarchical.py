"""The hierarchical power model (PyMC), in the manner of pymc-marketing's model classes.

What is modelled (see DESIGN.md, "The model"; priors in :mod:`wattscape.models.config`)
-----------------------------------------------------------------------------------------
Per-GPU power ``P`` of a configuration ``c`` (llm ``l``, exact card ``g``, parallel layout ``p``) in
state ``s`` lives on the logit scale of ``P / (max_frac · TDP_g)``::

    eta[c, s] = base[s] + x_c · beta[:, s] + [s busy] (b_llm[l] + b_gpu[g] + b_par[p] + b_cfg[c])
                + [s idle] b_gpu_idle[g] + [s busy] [p is a layer split] b_layer · log2(n_gpus)

with ``x_c`` the standardised configuration covariates (log parameters, log active fraction, log TDP,
log FLOP/byte, fp8, log2 GPUs) so that never-seen levels borrow strength.  Under a layer (pipeline) split
of ``n`` GPUs the GPUs take turns, so the busy level is a duty cycle of that one-GPU level
(``layer_duty_cycle``, :func:`layer_split_eta`): ``f = f_idle + (sigmoid(eta_busy) − f_idle) / n``, and
``b_layer`` is what the data add to it.  The effects are partially
pooled normals (sds shared across levels) and a new level draws from its population, hence wider
intervals.  The busy card effect is well informed (tens of segments or summary rows per card), so it
is centred with a zero-avoiding Gamma sd; the idle card effect, seen on few cards, the configuration
effect (most configurations have one run), the LLM effect (a small population sd that an LLM with one
configuration trades against ``b_cfg``: centred, it mixed in a funnel with ``b_llm_sigma``) and the
layout effect (~9 layouts, several in one configuration: centred, ``b_par`` or its sd was the
worst-mixed parameter in five leave-one-run-out folds) are non-centred for NUTS (the fast path fits every
effect centred: :data:`FIT_LAYOUTS`); ``models/config.py`` has the measurements.  The covariate slopes
and the mean of the effects overlap linearly (a ridge the sampler's adapted diagonal metric copes with; a
dense metric did worse, see :func:`wattscape.inference.fit.sample`).
The card effects on the levels and on the latencies (``models.config.CARD_EFFECTS``: ``b_gpu``,
``b_gpu_idle``, ``itl_gpu``, ``prefill_gpu``, ``attn_gpu``, ``ctx_gpu``) nest in the card's GPU generation,
``b_gpu[g] = b_gpu_gen[generation of g] + b_gpu_card[g]``: a card nobody measured keeps what its
generation showed on other cards, plus a card's deviation (see ``models/config.py``).

Evidence enters at three levels, each reduced to sufficient statistics (``wattscape.inference.stats``):

* **segments** (one inference, one idle stretch; also each logged inference that no trace covers, its
  level the logged GPU energy / runtime, :func:`wattscape.inference.stats.log_call_runs`):
  ``logit(level_j / max_frac) ~ Normal(eta[c, s] + [s busy] b_run[run] +
  (level_slope[s] [+ b_layer_slope for a layer split] [+ b_slope_gpu, b_context_slope_gpu]) · (x_j - ref)
  [+ offset_k],
  exp(log_level_scale[s] + level_group_dev[run, s]))``
  (a K = 2 mixture with ordered offsets when ``n_components == 2``; default K = 1), the group
  deviation only for (run, state) pairs with at least ``min_group_segments`` segments (the groups'
  deviations here and below are centred and sampled as the groups' own values, ``loc[s] + dev``, see
  :func:`_state_pooled_dev`);
* **within-segment residual** of the GPU-mean power (fraction of TDP): Gaussian AR(1) with coefficient
  ``tanh(ar_atanh[s] + ar_group_dev[run, s])``, conditional likelihood written exactly from the lag
  products (n, Σe², Σe e₋₁, Σe₋₁²), stationary sd ``exp(log_resid_scale[s] + resid_group_dev[run, s])``;
  the generators' per-GPU ``resid_scale`` is that sd × √n_gpus (independent GPU residuals with the
  measured variance of the total);
* **configuration summaries** (ML.ENERGY v3, LLM-Inference-Bench, average power of ``n`` GPUs serving
  saturated at a batch): ``logit(avg_power / (n · TDP · max_frac)) ~ Normal(eta[c, active] +
  (level_slope[active, batch] + b_slope_gpu[g]) · (log2 batch - ref) + b_task[t], sigma_summary[src])``;
  their median inter-token latency informs the per-token latency;
* **dwell times**: ``log(runtime_j) ~ Normal(log(prefill_overhead + prefill_s_per_token[c] · prompt ·
  batch + prefill_attn[c] · batch · prompt² + output · (itl_base[c] + itl_per_seq[c] · batch) +
  itl_ctx[c] · batch · output · (prompt + output / 2) + itl_ctx2[c] · batch · output · (prompt² +
  prompt · output + output² / 3)), dwell_sigma[active] · exp(dwell_group_dev[run,
  active]))`` (the run's own dwell sd on the level groups, pooled per state like theirs).  Each rate is a
  roofline of the configuration (:func:`wattscape.models.hardware.latency_rooflines`: weight bytes /
  memory bandwidth for a decode step, 2 · active parameters / FLOP/s for a prompt token) times a pooled
  efficiency with crossed effects, so a configuration nobody measured keeps what its LLM and its card
  showed elsewhere:
  ``log itl_base[c] = roof_decode[c] + log_itl_base + x_c · beta_itl + itl_llm[l] + itl_gpu[g] +
  itl_par[p] + itl_cfg[c]`` (the layout effect nested in its split kind, ``itl_par[p] =
  itl_par_kind[kind of p] + itl_par_layout[p]``, so a new GPU count keeps what its kind showed),
  ``log prefill_s_per_token[c] = roof_prefill[c] + log_prefill_s_per_token +
  prefill_gpu[g]``, ``itl_per_seq = itl_base · e^log_itl_per_seq_ratio``, ``log itl_ctx[c] =
  roof_decode[c] + w_l + log_itl_ctx + ctx_gpu[g] + ctx_llm[l]`` (each decode step attends over the whole
  context, so runtime grows superlinearly with the output length; ``output`` is the log's output-token
  limit; ``w_l`` = :func:`wattscape.models.hardware.context_traffic_ratio`, the LLM's attention width per
  weight, when ``context_layout`` is on), ``log itl_ctx2[c] = roof_decode[c] + w_l + log_itl_ctx2 +
  ctx2_llm[l]`` (the step's cost per squared
  context token: the mean of (prompt + k)² over the decode steps), ``log prefill_attn[c] =
  roof_prefill[c] + a_l + log_prefill_attn + attn_llm[l] + attn_gpu[g]`` (attention over the prompt;
  ``a_l`` = :func:`wattscape.models.hardware.attention_score_ratio`, the LLM's attention-score elements
  per active parameter, when ``attention_layout`` is on); idle stretches are log-normal.  Transitions of
  the embedded chain (no self-loops) are conjugate Dirichlet–multinomial, computed exactly from the counts.

The meter kernel: ``config_params`` carries ``meter_window_s`` of the card's generation (the averaging
window of nvidia-smi ``power.draw``; values and sources in ``models/config.py``); the generator applies
it.  The measured traces are fitted as the meter reported them (100 ms samples).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from . import dims as D
from .config import (
    CONFIG_COVARIATE,
    LEVEL_GROUP,
    RESID_GROUP,
    SOURCE,
    TASK,
    config_from_dict,
    config_hash,
    config_to_dict,
    meter_window_s,
    model_config_from,
)
from .hardware import attention_score_ratio, context_traffic_ratio
from .params import validate_config_params

_TINY = 1e-4
#: Version of how the model's free variables are laid out (the same distribution, another parameterisation);
#: part of the model id, so a posterior sampled in another layout is refused and cached fits are refitted.
#: 2: the (run, state) groups' own values are sampled (``*_group_log_scale``, ``ar_group_atanh``) and
#: their deviations are deterministics (1: the deviations were the free variables).
PARAMETERISATION = 2
#: How each fit lays out the pooled effects (``idata.attrs["effects_layout"]``): NUTS as ``models/config.py``
#: says (``"config"``: the effects with few or weakly informed levels non-centred, for the sampler's
#: geometry), the fast (mean-field ADVI) path with every pooled effect centred (``"centred"``, the same
#: distribution: :func:`centred_config`).  Non-centred, a mean-field Gaussian keeps each offset near its
#: N(0, 1) prior, so any population sd above zero adds noise to the effects and the ELBO pulls the sd to
#: zero; the covariate slopes then take what the effects should (measured on the leave-Llama-2-13b-out
#: fold, seed 6: decode-step slopes ``beta_itl`` [-0.17, 0.43, 0.11, -0.31, 0.26, -0.28] non-centred,
#: [-0.58, 0.17, 0.06, -0.29, 0.51, -0.05] centred, [-0.60, 0.15, 0.04, -0.25, 0.50, 0.02] in the full NUTS
#: fit; ``b_llm_sigma`` 0.006 / 0.028, NUTS 0.13; ``b_par_sigma`` 0.013 / 0.034, NUTS 0.13; final loss
#: -137,243 / -137,220).  Centred, the effects are free variables that the data place, and each sd follows
#: their spread.  Over the 13 leave-one-run-out folds (``python -m experiments.accuracy``,
#: ``experiments.calibration``) centred against non-centred: median energy error 2.15 % / 2.47 %, 90 %
#: run-energy coverage 12 / 11 of 13, 50 % coverage 5 / 4 of 13, median ACF R² 0.81 / 0.87 (the median
#: run, Mixtral, 0.81 / 0.87; four of the five runs below zero rose); leave-one-LLM-out 12.4 % / 11.3 % (the
#: Llama-2 runs closer, falcon-7b further: as with NUTS folds, a held-out falcon-7b loses its quadratic
#: context cost).
FIT_LAYOUTS = {"fast": "centred"}
DEFAULT_LAYOUT = "config"


def centred_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with every non-centred pooled prior centred: the same distributions, with the effects
    themselves (not their offsets) as the free variables."""
    from pymc_extras.prior import Prior

    out = dict(config)
    for key, value in config.items():
        if isinstance(value, Prior) and not value.centered:
            out[key] = Prior(value.distribution, centered=True, dims=value.dims, **value.parameters)
    return out


def _version() -> str:
    from wattscape import __version__

    return __version__


def _logit(p):
    return np.log(p) - np.log1p(-p)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


#: Bounds of a level fraction before its logit in :func:`layer_split_eta` (keeps the logit finite).
_FRAC_EPS = 1e-6


def layer_split_eta(eta, idle_col: int | None, n_split, busy, lib=np):
    """Levels of a layer (pipeline) split from those of one GPU running the same model: a duty cycle.

    Under a layer split the GPUs take turns (each runs its layers, then waits for the next one's), so a
    GPU's mean power is its idle level plus ``1/n`` of the single-GPU busy excess::

        f_split = f_idle + (f_busy - f_idle) / n,    f = sigmoid(eta)  (fraction of max_frac · TDP)

    and the returned busy logit is ``logit(f_split)``.  Configurations with ``n_split == 1`` (any other
    layout) keep ``eta`` as it is; idle is unchanged.

    Parameters
    ----------
    eta : array (config, state) or (draw, state)
        Logit levels of one GPU running the configuration's model alone (a NumPy or PyTensor array).
    idle_col : int or None
        Column of the idle state (None: no idle state, ``f_idle = 0``).
    n_split : array (config,) or (draw,)
        Number of GPUs of a layer split, 1 for any other layout.
    busy : array (state,)
        1 for busy states, 0 for idle.
    lib : module
        ``numpy`` or ``pytensor.tensor``.

    Returns
    -------
    array like ``eta``
    """
    n = np.asarray(n_split, dtype=float)[:, None]
    on = (n > 1) & (np.asarray(busy)[None, :] > 0)
    f = _sigmoid(eta) if lib is np else pt.sigmoid(eta)
    f_idle = f[:, idle_col : idle_col + 1] if idle_col is not None else 0.0
    f_split = lib.clip(f_idle + (f - f_idle) / n, _FRAC_EPS, 1.0 - _FRAC_EPS)
    split = lib.log(f_split) - lib.log1p(-f_split)
    return lib.where(on, split, eta)


def _state_pooled_dev(
    cfg: Mapping[str, Any], name: str, group_state: np.ndarray, dim: str, loc, value_name: str
):
    """Deviations ``name`` (dim) of (run, state) groups from their state's ``loc``, ``Normal(0, sigma[state
    of the group])``, sampled as the groups' own values (centred on ``loc``).

    ``value_name`` is the free variable ``loc[state] + deviation ~ Normal(loc[state], sigma[state])``;
    ``name`` is the deterministic deviation (what the generators read).  Each group's value is pinned by
    its data (thousands of lag pairs or tens of segments), so with the deviation free the sampler met a
    ridge, ``loc`` moving against every deviation at once (measured, falcon-7b 170604 NUTS fold: the
    posterior correlation matrix's smallest eigenvalue 7e-5, along ``log_resid_scale`` and the
    ``resid_group_dev``; tree depth 10 on every draw).  ``sigma`` is the model variable ``{name}_sigma``
    (dims state) from the prior ``cfg["{name}_sigma"]``: one population per state (``Prior`` cannot index
    a parent's dim, hence the explicit ``pm.Normal``).
    """
    state = np.asarray(group_state, dtype=int)
    sigma = cfg[f"{name}_sigma"].create_variable(f"{name}_sigma")
    value = pm.Normal(value_name, mu=loc[state], sigma=sigma[state], dims=dim)
    return pm.Deterministic(name, value - loc[state], dims=dim)


def _nested_effect(
    cfg: Mapping[str, Any], name: str, parent: str, child: str, parent_index: np.ndarray, dim: str
):
    """Effect ``name`` (dims ``dim``) nested in a coarser factor: ``name[i] = parent[parent_index[i]] +
    child[i]``, the parent effect from the prior ``cfg[parent]``, the level's deviation from the prior
    ``cfg[name]`` created as ``child``; ``name`` itself is the deterministic total, so a fitted level reads
    as it would flat."""
    top = cfg[parent].create_variable(parent)
    dev = cfg[name].create_variable(child)
    return pm.Deterministic(name, top[np.asarray(parent_index, dtype=int)] + dev, dims=dim)


def _card_effect(cfg: Mapping[str, Any], name: str, card_generation: np.ndarray):
    """Card effect ``name`` (dims gpu_model) nested in the GPU generation of each card.

    ``name[g] = name_gen[card_generation[g]] + name_card[g]``: the generation effect from the prior
    ``cfg["{name}_gen"]`` (dims gpu_generation), the card's deviation from the prior ``cfg[name]`` created
    as ``{name}_card``; ``name`` itself is the deterministic total, so a fitted card reads as before.
    """
    return _nested_effect(cfg, name, f"{name}_gen", f"{name}_card", card_generation, D.GPU_MODEL)


def _parallel_kinds(layouts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The split kinds of parallel-layout labels (``"layer3"`` → ``"layer"``; sorted coords) and each
    layout's index into them."""
    kinds = [str(lab).rstrip("0123456789") for lab in layouts]
    labels = sorted(set(kinds))
    return labels, np.array([labels.index(k) for k in kinds], dtype=int)


def _card_generations(cards: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The GPU generations of ``cards`` (sorted coords) and each card's index into them."""
    from wattscape.models.hardware import gpu_spec

    gens = [str(gpu_spec(str(c))["generation"]) for c in cards]
    labels = sorted(set(gens))
    return labels, np.array([labels.index(g) for g in gens], dtype=int)


def _config_llm_ratio(ds: xr.Dataset, ratio, *, active: bool) -> np.ndarray:
    """(config,) ``ratio(llm, params_b)`` of each configuration's LLM (``hardware.attention_score_ratio``,
    ``hardware.context_traffic_ratio``), with its active parameters when ``active`` (its total where it has
    none), else its total parameters."""
    llms = [str(v) for v in ds[D.LLM].values]
    params = ds["config_params_b"].values.astype(float)
    if active:
        act = ds["config_active_params_b"].values.astype(float)
        params = np.where(np.isfinite(act) & (act > 0), act, params)
    pairs = zip(ds["config_llm"].values, params, strict=True)
    return np.array([ratio(llms[int(i)], float(b)) for i, b in pairs], dtype=float)


def _config_rooflines(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(config,) log decode-step and log prefill-per-token rooflines of the fit data's configurations."""
    from wattscape.models.hardware import gpu_spec, latency_rooflines

    gpus = [str(g) for g in ds[D.GPU_MODEL].values]
    out = [
        latency_rooflines(
            float(ds["config_params_b"].values[c]),
            float(ds["config_active_params_b"].values[c]),
            gpu_spec(gpus[int(ds["config_gpu_model"].values[c])]),
            str(ds["config_precision"].values[c]),
            int(ds["config_n_gpus"].values[c]),
            int(ds["config_tensor_parallel"].values[c]),
        )
        for c in range(ds.sizes[D.CONFIG])
    ]
    arr = np.array(out, dtype=float).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def _layer_covariate(parallel_labels: Sequence[str], n_gpus: Sequence[int]) -> np.ndarray:
    """log2 GPU count of each configuration with a layer (pipeline) split, 0 for any other layout."""
    return np.array(
        [
            np.log2(max(int(n), 1)) if str(lab).startswith(D.SPLIT_LAYER) else 0.0
            for lab, n in zip(parallel_labels, n_gpus, strict=True)
        ]
    )


@dataclass
class ServingConfig:
    """A serving configuration to predict: what ``--llm/--gpu/--n-gpus`` describe.

    ``split`` defaults to tensor parallel when ``n_gpus > 1`` (expert parallel for MoE models when
    ``tensor_parallel`` is 1).
    """

    llm: str
    params_b: float
    gpu_model: str
    n_gpus: int = 1
    active_params_b: float | None = None
    precision: str = "bfloat16"
    split: str | None = None
    tensor_parallel: int | None = None
    task: str | None = None  # e.g. "mlenergy-v3:lm-arena-chat"; None = a new task from the population

    def resolved(self) -> ServingConfig:
        active = self.active_params_b if self.active_params_b else self.params_b
        tp = self.tensor_parallel
        split = self.split
        if split is None:
            if self.n_gpus <= 1:
                split = D.SPLIT_NONE
            elif tp is not None and tp < self.n_gpus and active < self.params_b:
                split = D.SPLIT_EXPERT
            else:
                split = D.SPLIT_TENSOR
        if tp is None:
            tp = self.n_gpus if split == D.SPLIT_TENSOR else 1
        return ServingConfig(
            self.llm,
            float(self.params_b),
            self.gpu_model,
            int(self.n_gpus),
            float(active),
            self.precision,
            split,
            int(tp),
            self.task,
        )


class PowerModel:
    """Bayesian hierarchical model of per-GPU power of LLM inference.

    Parameters
    ----------
    model_config : dict, path or None
        Overrides of :func:`wattscape.models.config.default_model_config` (dict or YAML/JSON file).
    sampler_config : dict or None
        Defaults of :meth:`fit` (``draws``, ``tune``, ``chains``, ``target_accept``, ``sampler``).
    """

    _model_type = "wattscape.PowerModel"

    def __init__(
        self,
        model_config: Mapping[str, Any] | str | Path | None = None,
        sampler_config: Mapping[str, Any] | None = None,
    ):
        self.model_config = model_config_from(model_config)
        self.sampler_config = {
            "draws": 1000,
            "tune": 1000,
            "chains": 2,
            "target_accept": 0.9,
            "sampler": "numpyro",
            **dict(sampler_config or {}),
        }
        self.model: pm.Model | None = None
        self.fit_data = None
        self.idata: az.InferenceData | None = None
        k = int(self.model_config["n_components"])
        if k not in (1, 2):
            raise ValueError(f"model_config['n_components'] must be 1 or 2, got {k}")

    # --- identity ---------------------------------------------------------------------------
    @property
    def version(self) -> str:
        return _version()

    @property
    def id(self) -> str:
        """Model id: hash of the model configuration, the package version, the fit-data format and the
        parameterisation (:data:`PARAMETERISATION`)."""
        from wattscape.inference.stats import FIT_DATA_FORMAT

        return config_hash(
            self.model_config,
            f"{self.version}/fit-data-{FIT_DATA_FORMAT}/parameterisation-{PARAMETERISATION}",
        )

    # --- group accessors --------------------------------------------------------------------
    def _group(self, name: str) -> xr.Dataset:
        if self.idata is None or name not in self.idata.groups():
            raise RuntimeError(f"the model has no {name!r} group yet: call fit() first")
        return self.idata[name]

    @property
    def posterior(self) -> xr.Dataset:
        return self._group("posterior")

    @property
    def posterior_predictive(self) -> xr.Dataset:
        return self._group("posterior_predictive")

    @property
    def prior(self) -> xr.Dataset:
        return self._group("prior")

    @property
    def prior_predictive(self) -> xr.Dataset:
        return self._group("prior_predictive")

    @property
    def fit_result(self) -> xr.Dataset:
        return self.posterior

    # --- model ------------------------------------------------------------------------------
    @property
    def states(self) -> tuple[str, ...]:
        return tuple(self.model_config["states"])

    def _active_index(self) -> int:
        st = self.states
        return st.index(D.ACTIVE) if D.ACTIVE in st else st.index(D.DECODE)

    def _groups(self, ds: xr.Dataset) -> dict[str, Any]:
        """(run, state) pairs with their own level sd / residual sd, and each segment's level group."""
        states = self.states
        runs = [str(r) for r in ds[D.RUN].values]
        seg_run, seg_state = ds["seg_run"].values, ds["seg_state"].values
        counts = np.zeros((len(runs), len(states)), dtype=int)
        np.add.at(counts, (seg_run, seg_state), 1)

        def pooled(qualifies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            # a state gets groups only where two runs or more qualify: a lone group's deviation and the
            # pooled value of its state are one quantity (a ridge that a chain can wander along)
            qualifies = qualifies & (qualifies.sum(axis=0) >= 2)[None, :]
            return np.nonzero(qualifies)

        lr, ls = pooled(counts >= int(self.model_config["min_group_segments"]))
        index = -np.ones_like(counts)
        index[lr, ls] = np.arange(lr.size)
        rr, rs = pooled(ds["lag_n"].values >= int(self.model_config["min_group_lags"]))
        return {
            "level_labels": [f"{runs[r]}|{states[s]}" for r, s in zip(lr, ls, strict=True)],
            "level_run": lr,
            "level_state": ls,
            "seg_group": index[seg_run, seg_state] if seg_run.size else np.zeros(0, dtype=int),
            "resid_labels": [f"{runs[r]}|{states[s]}" for r, s in zip(rr, rs, strict=True)],
            "resid_run": rr,
            "resid_state": rs,
        }

    def build_model(self, fit_data) -> pm.Model:
        """Build the PyMC model on :class:`wattscape.inference.stats.FitData` (or its ``xr.Dataset``).

        Returns
        -------
        pm.Model
            Also stored as ``self.model``.
        """
        ds = fit_data.ds if hasattr(fit_data, "ds") else fit_data
        states = tuple(str(s) for s in ds[D.STATE].values)
        if states != self.states:
            raise ValueError(f"fit data states {states} differ from model_config states {self.states}")
        self.fit_data = ds
        cfg = self.model_config
        max_frac = float(cfg["max_frac"])
        ref = np.asarray(cfg["covariate_ref"], dtype=float)
        n_s = len(states)
        a_idx = self._active_index()
        idle = np.array([s == D.IDLE for s in states])
        slope_mask = np.where(idle[:, None], 0.0, 1.0) * np.ones((n_s, len(D.COVARIATES)))
        batch_mask = np.where(idle, 0.0, 1.0)
        coords = {
            d: [str(v) for v in ds[d].values]
            for d in (
                D.CONFIG,
                D.LLM,
                D.GPU_MODEL,
                D.PARALLEL,
                TASK,
                SOURCE,
                D.STATE,
                D.COVARIATE,
                CONFIG_COVARIATE,
            )
        }
        coords[D.GPU_GENERATION], card_gen = _card_generations(coords[D.GPU_MODEL])
        coords[D.PARALLEL_KIND], par_kind = _parallel_kinds(coords[D.PARALLEL])
        coords[D.SEGMENT] = np.arange(ds.sizes[D.SEGMENT])
        coords[D.RUN] = [str(r) for r in ds[D.RUN].values]
        coords["summary"] = np.arange(ds.sizes["summary"])
        coords[D.COMPONENT] = np.arange(int(cfg["n_components"]))
        groups = self._groups(ds)
        coords[LEVEL_GROUP] = groups["level_labels"]
        coords[RESID_GROUP] = groups["resid_labels"]
        busy = np.where(idle, 0.0, 1.0)
        x_cfg = ds["config_x"].values
        c_llm, c_gpu, c_par = (
            ds["config_llm"].values,
            ds["config_gpu_model"].values,
            ds["config_parallel"].values,
        )
        layer_x = _layer_covariate(
            [coords[D.PARALLEL][i] for i in c_par], ds["config_n_gpus"].values
        )  # (config,) log2 GPUs of layer splits, else 0
        layer_on = (layer_x > 0).astype(float)  # (config,) 1 for a layer split
        idle_col = int(np.flatnonzero(idle)[0]) if idle.any() else None

        with pm.Model(coords=coords) as model:
            base = cfg["base"].create_variable("base")
            beta = cfg["beta"].create_variable("beta")
            b_llm = cfg["b_llm"].create_variable("b_llm")
            b_gpu = _card_effect(cfg, "b_gpu", card_gen)
            b_gpu_idle = _card_effect(cfg, "b_gpu_idle", card_gen)
            b_par = cfg["b_par"].create_variable("b_par")
            b_layer = cfg["b_layer"].create_variable("b_layer")
            b_cfg = cfg["b_cfg"].create_variable("b_cfg")
            # LLM and layout effects move the busy states only; idle depends on the card and covariates
            eta = (
                base[None, :]
                + pt.dot(x_cfg, beta)
                + b_gpu_idle[c_gpu][:, None] * (1 - busy)[None, :]
                + (b_llm[c_llm] + b_par[c_par] + b_gpu[c_gpu] + b_layer * layer_x + b_cfg)[:, None]
                * busy[None, :]
            )
            if cfg.get("layer_duty_cycle", False):  # a layer split's GPUs take turns
                eta = layer_split_eta(eta, idle_col, np.exp2(layer_x), busy, lib=pt)
            eta = pm.Deterministic("eta", eta, dims=(D.CONFIG, D.STATE))
            level_slope = cfg["level_slope"].create_variable("level_slope") * slope_mask
            b_slope_gpu = cfg["b_slope_gpu"].create_variable("b_slope_gpu")
            b_context_gpu = cfg["b_context_slope_gpu"].create_variable("b_context_slope_gpu")
            b_layer_slope = cfg["b_layer_slope"].create_variable("b_layer_slope")

            # segments ------------------------------------------------------------------------
            n_seg = ds.sizes[D.SEGMENT]
            if n_seg:
                s_run = ds["seg_run"].values
                s_cfg = ds["run_config"].values[s_run]
                s_state = ds["seg_state"].values
                dx = ds["seg_x"].values - ref[None, :]
                slope_j = level_slope[s_state]
                b_run = cfg["b_run"].create_variable("b_run")
                mu_j = (
                    eta[s_cfg, s_state]
                    + b_run[s_run] * busy[s_state]
                    + (slope_j * dx).sum(axis=1)
                    + (b_slope_gpu[c_gpu[s_cfg]] * batch_mask[s_state] * dx[:, 0])
                    + (b_context_gpu[c_gpu[s_cfg]] * busy[s_state] * dx[:, 1])
                    + (layer_on[s_cfg] * batch_mask[s_state]) * pt.dot(dx, b_layer_slope)
                )
                log_level_scale = cfg["log_level_scale"].create_variable("log_level_scale")
                log_sd_j = log_level_scale[s_state]
                if groups["level_labels"]:
                    dev = _state_pooled_dev(
                        cfg,
                        "level_group_dev",
                        groups["level_state"],
                        LEVEL_GROUP,
                        log_level_scale,
                        "level_group_log_scale",
                    )
                    dev_j = pt.concatenate([pt.zeros(1), dev])[groups["seg_group"] + 1]  # -1: no own group
                    log_sd_j = log_sd_j + dev_j
                sd_j = pt.exp(log_sd_j)
                y_seg = _logit(np.clip(ds["seg_level"].values / max_frac, _TINY, 1 - _TINY))
                if int(cfg["n_components"]) == 1:
                    pm.Normal("seg_obs", mu=mu_j, sigma=sd_j, observed=y_seg, dims=D.SEGMENT)
                else:
                    gap = cfg["component_gap"].create_variable("component_gap")
                    weight = pm.Dirichlet(
                        "level_weight", a=np.full((n_s, 2), 2.0), dims=(D.STATE, D.COMPONENT)
                    )
                    # ordered offsets with weighted mean zero: eta stays the mean level of a state
                    offsets = pt.stack([-weight[:, 1] * gap, weight[:, 0] * gap], axis=1)
                    pm.Deterministic("component_offset", offsets, dims=(D.STATE, D.COMPONENT))
                    pm.NormalMixture(
                        "seg_obs",
                        w=weight[s_state],
                        mu=mu_j[:, None] + offsets[s_state],
                        sigma=sd_j[:, None],
                        observed=y_seg,
                        dims=D.SEGMENT,
                    )

            # within-segment AR(1) residual -------------------------------------------------------
            ar_atanh = cfg["ar_atanh"].create_variable("ar_atanh")
            pm.Deterministic("ar_coef", pt.tanh(ar_atanh), dims=D.STATE)
            log_resid_scale = cfg["log_resid_scale"].create_variable("log_resid_scale")
            lag_n = ds["lag_n"].values
            if ds.sizes[D.RUN] and lag_n.sum() > 0:
                log_sd = pt.zeros(lag_n.shape) + log_resid_scale[None, :]  # (run, state)
                atanh_phi = pt.zeros(lag_n.shape) + ar_atanh[None, :]
                if groups["resid_labels"]:
                    at = (groups["resid_run"], groups["resid_state"])
                    dev_r = _state_pooled_dev(
                        cfg,
                        "resid_group_dev",
                        groups["resid_state"],
                        RESID_GROUP,
                        log_resid_scale,
                        "resid_group_log_scale",
                    )
                    log_sd = pt.inc_subtensor(log_sd[at], dev_r)
                    dev_a = _state_pooled_dev(
                        cfg, "ar_group_dev", groups["resid_state"], RESID_GROUP, ar_atanh, "ar_group_atanh"
                    )
                    atanh_phi = pt.inc_subtensor(atanh_phi[at], dev_a)
                sd = pt.exp(log_sd)
                phi = pt.tanh(atanh_phi)  # (run, state)
                var_innov = sd**2 * (1 - phi**2)
                quad = ds["lag_ee"].values - 2 * phi * ds["lag_el"].values + phi**2 * ds["lag_ll"].values
                ll = -0.5 * lag_n * pt.log(2 * np.pi * var_innov) - quad / (2 * var_innov)
                pm.Potential("ar_loglik", pt.sum(pt.where(lag_n > 0, ll, 0.0)))

            # latency and dwell times -----------------------------------------------------------
            log_itl_base = cfg["log_itl_base"].create_variable("log_itl_base")
            beta_itl = cfg["beta_itl"].create_variable("beta_itl")
            itl_cfg = cfg["itl_cfg"].create_variable("itl_cfg")
            itl_llm = cfg["itl_llm"].create_variable("itl_llm")
            itl_gpu = _card_effect(cfg, "itl_gpu", card_gen)
            itl_par = _nested_effect(cfg, "itl_par", "itl_par_kind", "itl_par_layout", par_kind, D.PARALLEL)
            roof_dec, roof_pf = _config_rooflines(ds)
            log_ratio = cfg["log_itl_per_seq_ratio"].create_variable("log_itl_per_seq_ratio")
            log_itl_cfg = pm.Deterministic(
                "log_itl_cfg",
                roof_dec
                + log_itl_base
                + pt.dot(x_cfg, beta_itl)
                + itl_llm[c_llm]
                + itl_gpu[c_gpu]
                + itl_par[c_par]
                + itl_cfg,
                dims=D.CONFIG,
            )
            itl_base = pt.exp(log_itl_cfg)  # (config,) decode step at batch 1, s
            itl_per_seq = itl_base * pt.exp(log_ratio)
            log_ctx = cfg["log_itl_ctx"].create_variable("log_itl_ctx")
            ctx_gpu = _card_effect(cfg, "ctx_gpu", card_gen)
            # s per step, per sequence, per context token; on the decode roofline, not on itl_base (relative
            # to that, the decode-step effects would move it too)
            # the LLM's attention width per weight shifts the roofline of both context terms (a held-out
            # LLM keeps what its layers and heads imply)
            ctx_x = 0.0
            if cfg["context_layout"]:
                ctx_x = _config_llm_ratio(ds, context_traffic_ratio, active=False)
            ctx_llm = cfg["ctx_llm"].create_variable("ctx_llm")
            itl_ctx = pt.exp(roof_dec + ctx_x + log_ctx + ctx_gpu[c_gpu] + ctx_llm[c_llm])
            log_ctx2 = cfg["log_itl_ctx2"].create_variable("log_itl_ctx2")
            ctx2_llm = cfg["ctx2_llm"].create_variable("ctx2_llm")
            itl_ctx2 = pt.exp(roof_dec + ctx_x + log_ctx2 + ctx2_llm[c_llm])
            log_pf_eff = cfg["log_prefill_s_per_token"].create_variable("log_prefill_s_per_token")
            pf_gpu = _card_effect(cfg, "prefill_gpu", card_gen)
            log_pf_tok = pm.Deterministic(
                "log_prefill_cfg", roof_pf + log_pf_eff + pf_gpu[c_gpu], dims=D.CONFIG
            )
            log_attn = cfg["log_prefill_attn"].create_variable("log_prefill_attn")
            attn_llm = cfg["attn_llm"].create_variable("attn_llm")
            # s per sequence per prompt token² (attention over the prompt)
            attn_gpu = _card_effect(cfg, "attn_gpu", card_gen)
            # on the prompt-token roofline, not on log_prefill_cfg: relative to the linear cost, the card
            # effects of the two terms traded against each other (full fit: r̂ 1.3 on prefill_gpu)
            # the LLM's attention-score elements per active parameter shift the roofline (a held-out LLM
            # keeps what its layers and heads imply)
            attn_x = 0.0
            if cfg["attention_layout"]:
                attn_x = _config_llm_ratio(ds, attention_score_ratio, active=True)
            log_pf_attn = roof_pf + attn_x + log_attn + attn_llm[c_llm] + attn_gpu[c_gpu]
            log_pf_over = cfg["log_prefill_overhead_s"].create_variable("log_prefill_overhead_s")
            dwell_sigma = cfg["dwell_sigma"].create_variable("dwell_sigma")
            log_dwell_sd_j = None
            if n_seg:
                log_dwell_sd_j = pt.log(dwell_sigma)[s_state]
                if groups["level_labels"]:  # the runs' own dwell sds, on the level groups
                    ddev = _state_pooled_dev(
                        cfg,
                        "dwell_group_dev",
                        groups["level_state"],
                        LEVEL_GROUP,
                        pt.log(dwell_sigma),
                        "dwell_group_log_sigma",
                    )
                    own = pt.concatenate([pt.zeros(1), ddev])[groups["seg_group"] + 1]  # -1: no own group
                    log_dwell_sd_j = log_dwell_sd_j + own
            log_idle_dwell = cfg["log_idle_dwell"].create_variable("log_idle_dwell")
            if n_seg:
                dur = ds["seg_duration_s"].values
                xw = ds["seg_x"].values
                act = (~idle[s_state]) & np.isfinite(dur) & (dur > 0)
                if act.any():
                    # the covariates hold the mean context (prompt + output / 2): the prompt is recovered
                    b, out = 2.0 ** xw[act, 0], 2.0 ** xw[act, 2]
                    pr = np.maximum(2.0 ** xw[act, 1] - out / 2, 1.0)
                    cj = s_cfg[act]
                    expect = (
                        pt.exp(log_pf_over)
                        + pt.exp(log_pf_tok[cj]) * pr * b
                        + pt.exp(log_pf_attn[cj]) * b * pr**2
                        + out * (itl_base[cj] + itl_per_seq[cj] * b)
                        + itl_ctx[cj] * b * out * D.context_tokens(pr, out)  # mean over the decode steps
                        + itl_ctx2[cj] * b * out * D.context_tokens_sq(pr, out)
                    )
                    pm.Normal(
                        "dwell_active_obs",
                        mu=pt.log(expect),
                        sigma=pt.exp(log_dwell_sd_j[act]),
                        observed=np.log(dur[act]),
                    )
                idl = idle[s_state] & np.isfinite(dur) & (dur > 0)
                if idl.any():
                    pm.Normal(
                        "dwell_idle_obs",
                        mu=log_idle_dwell,
                        sigma=pt.exp(log_dwell_sd_j[idl]),
                        observed=np.log(dur[idl]),
                    )

            # configuration summaries -----------------------------------------------------------
            n_sum = ds.sizes["summary"]
            if n_sum:
                b_task = cfg["b_task"].create_variable("b_task")
                sigma_summary = cfg["sigma_summary"].create_variable("sigma_summary")
                sc = ds["sum_config"].values
                dxb = ds["sum_log2_batch"].values - ref[0]
                mu_sum = (
                    eta[sc, a_idx]
                    + (level_slope[a_idx, 0] + b_slope_gpu[c_gpu[sc]] + layer_on[sc] * b_layer_slope[0]) * dxb
                    + (b_task[ds["sum_task"].values])
                )
                y_sum = _logit(np.clip(ds["sum_frac"].values / max_frac, _TINY, 1 - _TINY))
                pm.Normal(
                    "summary_obs",
                    mu=mu_sum,
                    sigma=sigma_summary[ds["sum_source"].values],
                    observed=y_sum,
                    dims="summary",
                )
                itl = ds["sum_itl_s"].values
                has = np.isfinite(itl) & (itl > 0)
                if has.any():
                    sigma_itl = cfg["sigma_itl_summary"].create_variable("sigma_itl_summary")
                    ci = sc[has]
                    bi = ds["sum_batch"].values[has]
                    pm.Normal(
                        "itl_obs",
                        mu=pt.log(itl_base[ci] + itl_per_seq[ci] * bi),
                        sigma=sigma_itl,
                        observed=np.log(itl[has]),
                    )
        self.model = model
        return model

    # --- fitting ------------------------------------------------------------------------------
    def fit(
        self,
        fit_data,
        sampler: str | None = None,
        *,
        draws: int | None = None,
        tune: int | None = None,
        chains: int | None = None,
        random_seed: int = 0,
        progressbar: bool = True,
        **kwargs,
    ) -> az.InferenceData:
        """Fit the model; returns ``InferenceData`` with ``posterior``, ``sample_stats``, ``fit_data``.

        Parameters
        ----------
        fit_data : FitData or xr.Dataset
            Sufficient statistics (``wattscape.inference.stats``).
        sampler : {"numpyro", "nutpie", "pymc", "fast"}
            NUTS backend, or ``"fast"``: ADVI (mean-field) for quick looks and CI.
        draws, tune, chains : int
            Defaults from ``sampler_config``.
        random_seed : int
            Seed of the sampler.
        progressbar : bool
            Show progress.
        **kwargs
            Passed to :func:`wattscape.inference.fit.sample`.
        """
        from wattscape.inference.fit import sample

        sc = self.sampler_config
        sampler = sampler or sc["sampler"]
        layout = FIT_LAYOUTS.get(sampler, DEFAULT_LAYOUT)
        model = self._build(fit_data, layout)
        idata = sample(
            model,
            sampler=sampler,
            draws=draws or sc["draws"],
            tune=tune or sc["tune"],
            chains=chains or sc["chains"],
            random_seed=random_seed,
            progressbar=progressbar,
            target_accept=kwargs.pop("target_accept", sc["target_accept"]),
            **kwargs,
        )
        idata.attrs["effects_layout"] = layout
        self.idata = idata
        self._attach(idata)
        return idata

    def _build(self, fit_data, layout: str) -> pm.Model:
        """:meth:`build_model` with the pooled effects laid out as ``layout`` says (:data:`FIT_LAYOUTS`)."""
        if layout == DEFAULT_LAYOUT:
            return self.build_model(fit_data)
        if layout != "centred":
            raise ValueError(f"unknown effects layout {layout!r}; known: {DEFAULT_LAYOUT!r}, 'centred'")
        saved = self.model_config
        self.model_config = centred_config(saved)
        try:
            return self.build_model(fit_data)
        finally:
            self.model_config = saved

    def _attach(self, idata: az.InferenceData) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if "fit_data" in idata.groups():
                del idata.fit_data
            idata.add_groups(fit_data=self.fit_data)
        idata.attrs.update(self._attrs())

    def _attrs(self) -> dict[str, str]:
        return {
            "model_type": self._model_type,
            "model_id": self.id,
            "version": self.version,
            "model_config": json.dumps(config_to_dict(self.model_config)),
            "sampler_config": json.dumps(self.sampler_config),
        }

    def sample_prior_predictive(
        self, fit_data=None, samples: int = 200, random_seed: int = 0
    ) -> az.InferenceData:
        """Prior and prior-predictive draws (observed variables keep their named dims)."""
        if fit_data is not None or self.model is None:
            if fit_data is None:
                raise RuntimeError("no fit data: pass fit_data or call build_model() first")
            self.build_model(fit_data)
        with self.model, warnings.catch_warnings():
            # the AR(1) Potential is a likelihood term: ignoring it in the prior predictive is correct
            warnings.filterwarnings("ignore", message="The effect of Potentials", category=UserWarning)
            prior = pm.sample_prior_predictive(draws=samples, random_seed=random_seed)
        if self.idata is None:
            self.idata = prior
        else:
            self.idata.extend(prior, join="right")
        return prior

    def sample_posterior_predictive(
        self, random_seed: int = 0, progressbar: bool = False
    ) -> az.InferenceData:
        """Posterior-predictive draws of the observed sufficient statistics (after :meth:`fit`)."""
        posterior = self.posterior
        if self.model is None:  # in the layout the posterior was fitted in: its free variables
            self._build(self.idata.fit_data, str(self.idata.attrs.get("effects_layout", DEFAULT_LAYOUT)))
        with self.model, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The effect of Potentials", category=UserWarning)
            pp = pm.sample_posterior_predictive(
                az.InferenceData(posterior=posterior), random_seed=random_seed, progressbar=progressbar
            )
        self.idata.extend(pp, join="right")
        return pp

    # --- save / load -------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted ``InferenceData`` (with ``fit_data`` and model id) to NetCDF, atomically."""
        from wattscape.io import atomic_path

        if self.idata is None:
            raise RuntimeError("nothing to save: call fit() first")
        self.idata.attrs.update(self._attrs())
        with atomic_path(path) as tmp:
            self.idata.to_netcdf(str(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(path, 0o666 & ~umask)  # an ordinary, readable file (the temporary file was private)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> PowerModel:
        """Load a saved model; refuses a file whose model id does not match its configuration + this version.

        Raises
        ------
        ValueError
            When the file is not a wattscape model or its id differs from the one this package computes.
        """
        idata = az.from_netcdf(str(path))
        return cls.from_idata(idata, source=str(path))

    @classmethod
    def from_idata(cls, idata: az.InferenceData, source: str = "<idata>") -> PowerModel:
        attrs = dict(getattr(idata, "attrs", {}) or {})
        if attrs.get("model_type") != cls._model_type:
            raise ValueError(f"{source}: not a {cls._model_type} posterior (attrs: {sorted(attrs)})")
        config = config_from_dict(json.loads(attrs["model_config"]))
        try:
            model = cls(config, json.loads(attrs.get("sampler_config", "{}")))
        except KeyError as err:  # a variable this version no longer has
            raise ValueError(
                f"{source}: saved by another model version (model id {attrs.get('model_id')!r}, version "
                f"{attrs.get('version')}): {err.args[0]}; refit with this version"
            ) from err
        if model.id != attrs.get("model_id"):
            raise ValueError(
                f"{source}: model id {attrs.get('model_id')!r} (version {attrs.get('version')}) "
                f"does not match "
                f"this model {model.id!r} (version {model.version}); refit with this version"
            )
        model.idata = idata
        model.fit_data = idata.fit_data if "fit_data" in idata.groups() else None
        return model

    # --- predictions -------------------------------------------------------------------------
    def _draws(self, n_draws: int | None, seed: int) -> tuple[xr.Dataset, np.random.Generator]:
        """``n_draws`` posterior draws (chain and draw flattened into ``draw``) and the generator used."""
        post = self.posterior
        rng = np.random.default_rng(seed)
        n_chain, n_draw = post.sizes[D.CHAIN], post.sizes[D.DRAW]
        total = n_chain * n_draw
        flat = (
            np.arange(total) if n_draws is None else rng.choice(total, size=n_draws, replace=n_draws > total)
        )
        ci, di = np.divmod(flat, n_draw)
        post = post.isel({D.CHAIN: xr.DataArray(ci, dims="_d"), D.DRAW: xr.DataArray(di, dims="_d")})
        post = post.drop_vars([D.CHAIN, D.DRAW], errors="ignore").rename({"_d": D.DRAW})
        return post.assign_coords({D.DRAW: np.arange(flat.size)}), rng

    def _effect(
        self,
        post: xr.Dataset,
        name: str,
        dim: str,
        level: str,
        rng: np.random.Generator,
        other_dims: tuple[str, ...] = (),
        prior_key: str | None = None,
    ) -> np.ndarray:
        """Posterior of effect ``name`` at ``level`` (draw, *other_dims), or, for an unseen level, a draw
        from its population ``Normal(mu, sigma)`` (hyperparameters from the posterior, else from the prior
        ``model_config[prior_key or name]``)."""
        if name in post and level in [str(v) for v in post[name][dim].values]:
            return post[name].sel({dim: level}).transpose(D.DRAW, *other_dims).values
        n = post.sizes[D.DRAW]
        template = xr.DataArray(
            np.zeros((n, *[post.sizes[d] for d in other_dims])), dims=(D.DRAW, *other_dims)
        )
        prior = self.model_config[prior_key or name]

        def hyper(key: str, default: float) -> np.ndarray:
            var = f"{name}_{key}"
            if var in post:
                return (post[var] + template).transpose(D.DRAW, *other_dims).values
            value = prior.parameters.get(key, default)
            return np.broadcast_to(np.asarray(value, dtype=float), template.shape)

        return hyper("mu", 0.0) + hyper("sigma", 1.0) * rng.standard_normal(template.shape)

    def _nested(
        self,
        post: xr.Dataset,
        name: str,
        dim: str,
        level: str,
        parent: tuple[str, str, str],
        child: str,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """(draw,) nested effect ``name`` (:func:`_nested_effect`) at ``level``.

        A fitted level reads its posterior.  A new one is its parent's effect (``parent`` = (variable, dim,
        level): the posterior where the parent level was fitted, else a draw from the parents'
        population) plus a draw of a level's deviation (sd ``{child}_sigma``).  Posteriors fitted before
        the nesting have no parent variable: a new level then draws from the population of all levels, as
        they were fitted.
        """
        top, top_dim, top_level = parent
        if top not in post or level in [str(v) for v in post[name][dim].values]:
            return self._effect(post, name, dim, level, rng)
        return self._effect(post, top, top_dim, top_level, rng) + self._effect(
            post, child, dim, level, rng, prior_key=name
        )

    def _card(
        self, post: xr.Dataset, name: str, card: str, generation: str, rng: np.random.Generator
    ) -> np.ndarray:
        """(draw,) card effect ``name`` (one of ``CARD_EFFECTS``) of ``card``, of GPU ``generation``: its
        generation's effect ``{name}_gen`` plus the card's deviation ``{name}_card`` (:meth:`_nested`)."""
        return self._nested(
            post, name, D.GPU_MODEL, card, (f"{name}_gen", D.GPU_GENERATION, generation), f"{name}_card", rng
        )

    def _group_dev(
        self, post: xr.Dataset, name: str, dim: str, cid: str, rng: np.random.Generator
    ) -> np.ndarray:
        """(draw, state) deviation of a configuration: the mean over its runs' groups; 0 where its runs were
        fitted without a group in that state (the pooled state value then describes them) or where the
        state has no groups (fewer than two runs qualified); else (a new configuration) a draw from the
        state's population, sd ``{name}_sigma`` of that state."""
        n, states = post.sizes[D.DRAW], self.states
        out = np.zeros((n, len(states)))
        labels = [str(v) for v in post[name][dim].values] if name in post else []
        run_cfg = {}
        if self.fit_data is not None and D.RUN in self.fit_data.dims:
            cfgs = [str(c) for c in self.fit_data[D.CONFIG].values]
            run_cfg = {
                str(r): cfgs[i]
                for r, i in zip(self.fit_data[D.RUN].values, self.fit_data["run_config"].values, strict=True)
            }
        for j, state in enumerate(states):
            mine = [
                lab
                for lab in labels
                if lab.endswith(f"|{state}") and run_cfg.get(lab.rsplit("|", 1)[0]) == cid
            ]
            in_state = [lab for lab in labels if lab.endswith(f"|{state}")]
            if mine:
                out[:, j] = post[name].sel({dim: mine}).mean(dim).values
            elif cid in run_cfg.values() or not in_state:
                continue  # fitted (or described) by the pooled state value: deviation 0
            else:
                sigma = post[f"{name}_sigma"].sel({D.STATE: state})
                out[:, j] = sigma.values * rng.standard_normal(n)
        return out

    def _config_quantities(self, config: ServingConfig, n_draws: int | None, seed: int) -> dict[str, Any]:
        """Per-draw arrays of one configuration (known levels reuse their effects, new ones draw)."""
        from wattscape.inference.stats import DEFAULT_PRECISION, config_covariates, config_id, parallel_label
        from wattscape.models.hardware import gpu_spec, latency_rooflines

        cfg = config.resolved()
        spec = gpu_spec(cfg.gpu_model)
        tdp = float(spec["tdp_w"])
        post, rng = self._draws(n_draws, seed)
        n = post.sizes[D.DRAW]
        x = config_covariates(cfg.params_b, cfg.active_params_b, spec, cfg.precision, cfg.n_gpus)
        beta = post["beta"].transpose(D.DRAW, CONFIG_COVARIATE, D.STATE).values
        par = parallel_label(cfg.split, cfg.n_gpus, cfg.tensor_parallel)
        busy = np.array([s != D.IDLE for s in self.states], dtype=float)
        gname = spec.get("name", cfg.gpu_model)
        gen = str(spec.get("generation", ""))
        cid = config_id(cfg.llm, gname, par, cfg.precision or DEFAULT_PRECISION)
        seen = cid in [str(c) for c in post[D.CONFIG].values]

        def cfg_effect(name):
            if seen:
                return post[name].sel({D.CONFIG: cid}).transpose(D.DRAW, ...).values
            other = tuple(d for d in post[name].dims if d not in (D.DRAW, D.CONFIG))
            return self._effect(post, name, D.CONFIG, "__new__", rng, other)

        busy_eff = (
            self._effect(post, "b_llm", D.LLM, cfg.llm, rng)
            + self._effect(post, "b_par", D.PARALLEL, par, rng)
            + self._card(post, "b_gpu", gname, gen, rng)
        )
        if "b_cfg" in post:  # absent from posteriors of package versions before it
            busy_eff = busy_eff + cfg_effect("b_cfg").reshape(n)
        if "b_run" in post:  # a new run of the configuration
            busy_eff = busy_eff + self._effect(post, "b_run", D.RUN, "__new__", rng).reshape(n)
        layer_x = _layer_covariate([par], [cfg.n_gpus])[0]
        if "b_layer" in post:
            busy_eff = busy_eff + post["b_layer"].values.reshape(n) * layer_x
        idle_eff = self._card(post, "b_gpu_idle", gname, gen, rng)
        eta = (
            post["base"].transpose(D.DRAW, D.STATE).values
            + np.einsum("k,dks->ds", x, beta)
            + idle_eff[:, None] * (1 - busy)[None, :]
            + busy_eff[:, None] * busy[None, :]
        )
        if self.model_config.get("layer_duty_cycle", False) and layer_x > 0:
            idle_col = self.states.index(D.IDLE) if D.IDLE in self.states else None
            eta = layer_split_eta(eta, idle_col, np.full(n, 2.0**layer_x), busy)
        slope_gpu = self._effect(post, "b_slope_gpu", D.GPU_MODEL, spec.get("name", cfg.gpu_model), rng)
        if cfg.task is None:
            task_eff = self._effect(post, "b_task", TASK, "__new__", rng) if "b_task" in post else np.zeros(n)
        else:
            task_eff = self._effect(post, "b_task", TASK, cfg.task, rng)
        slope = post["level_slope"].transpose(D.DRAW, D.STATE, D.COVARIATE).values.copy()
        idle = np.array([s == D.IDLE for s in self.states])
        slope[:, idle, :] = 0.0
        slope[:, ~idle, 0] += slope_gpu.reshape(n, 1)
        slope[:, ~idle, 1] += self._effect(post, "b_context_slope_gpu", D.GPU_MODEL, gname, rng).reshape(n, 1)
        if "b_layer_slope" in post and _layer_covariate([par], [cfg.n_gpus])[0] > 0:
            slope[:, ~idle, :] += post["b_layer_slope"].transpose(D.DRAW, D.COVARIATE).values[:, None, :]

        def eff(name, dim, level):
            return self._effect(post, name, dim, level, rng).reshape(n)

        def card(name):
            return self._card(post, name, gname, gen, rng).reshape(n)

        roof_dec, roof_pf = latency_rooflines(
            cfg.params_b,
            cfg.active_params_b,
            spec,
            cfg.precision or DEFAULT_PRECISION,
            cfg.n_gpus,
            cfg.tensor_parallel or 1,
        )
        if seen:
            log_itl = post["log_itl_cfg"].sel({D.CONFIG: cid}).values.reshape(n)
            log_pf = post["log_prefill_cfg"].sel({D.CONFIG: cid}).values.reshape(n)
        else:
            log_itl = (
                roof_dec
                + post["log_itl_base"].values
                + post["beta_itl"].transpose(D.DRAW, ...).values @ x
                + eff("itl_llm", D.LLM, cfg.llm)
                + card("itl_gpu")
                + self._nested(
                    post,
                    "itl_par",
                    D.PARALLEL,
                    par,
                    ("itl_par_kind", D.PARALLEL_KIND, _parallel_kinds([par])[0][0]),
                    "itl_par_layout",
                    rng,
                ).reshape(n)
                + cfg_effect("itl_cfg").reshape(n)
            )
            log_pf = roof_pf + post["log_prefill_s_per_token"].values + card("prefill_gpu")
        itl_base = np.exp(log_itl)
        ctx_x = (
            context_traffic_ratio(cfg.llm, float(cfg.params_b))
            if self.model_config.get("context_layout", False)
            else 0.0
        )
        log_ctx = roof_dec + ctx_x + post["log_itl_ctx"].values + card("ctx_gpu")
        if "ctx_llm" in post:  # absent from posteriors of package versions before it
            log_ctx = log_ctx + eff("ctx_llm", D.LLM, cfg.llm)
        itl_ctx2 = np.zeros(n)
        if "ctx2_llm" in post:
            itl_ctx2 = np.exp(
                roof_dec + ctx_x + post["log_itl_ctx2"].values + eff("ctx2_llm", D.LLM, cfg.llm)
            )
        active = cfg.active_params_b if cfg.active_params_b and cfg.active_params_b > 0 else cfg.params_b
        layout = self.model_config["attention_layout"]
        log_attn = (
            roof_pf
            + (attention_score_ratio(cfg.llm, float(active)) if layout else 0.0)
            + post["log_prefill_attn"].values
            + eff("attn_llm", D.LLM, cfg.llm)
            + card("attn_gpu")
        )
        return {
            "cfg": cfg,
            "spec": spec,
            "tdp": tdp,
            "post": post,
            "rng": rng,
            "n": n,
            "eta": eta,
            "slope": slope,
            "task": task_eff.reshape(n),
            "seen": seen,
            "config_id": cid,
            "level_sd": np.exp(
                post["log_level_scale"].transpose(D.DRAW, D.STATE).values
                + self._group_dev(post, "level_group_dev", LEVEL_GROUP, cid, rng)
            ),
            # the log-normal population of a new configuration has a long right tail; a power bounded in
            # [0, max_frac·TDP] has sd at most max_frac/2 of TDP (Popoviciu), so draws stop there.  A loose
            # bound: measured samples pass max_frac·TDP by up to 20 %, but measured GPU-mean residual sds
            # are 0.02-0.18 of TDP (a leave-one-card-out fast fold drew 463 W for a 250 W card)
            "resid_sd": np.minimum(
                np.exp(
                    post["log_resid_scale"].transpose(D.DRAW, D.STATE).values
                    + self._group_dev(post, "resid_group_dev", RESID_GROUP, cid, rng)
                ),
                0.5 * float(self.model_config["max_frac"]),
            ),
            "ar_coef": np.tanh(
                post["ar_atanh"].transpose(D.DRAW, D.STATE).values
                + self._group_dev(post, "ar_group_dev", RESID_GROUP, cid, rng)
            ),
            "dwell_sd": post["dwell_sigma"].transpose(D.DRAW, D.STATE).values
            * np.exp(self._group_dev(post, "dwell_group_dev", LEVEL_GROUP, cid, rng)),
            "itl_base": itl_base,
            "itl_per_seq": itl_base * np.exp(post["log_itl_per_seq_ratio"].values),
            "itl_ctx": np.exp(log_ctx),
            "itl_ctx2": itl_ctx2,
            "prefill_s_per_token": np.exp(log_pf),
            "prefill_attn": np.exp(log_attn),
        }

    def linearisation_workload(self) -> np.ndarray:
        """Workload (log2 batch, context, output tokens) at which :meth:`config_params` linearises levels.

        The duration-weighted mean workload of the fitted busy segments (where the measured energy is
        spent), else the model's ``covariate_ref``.  Linearising at ``covariate_ref`` (256 context / 256
        output tokens) while the measured runs sit near 128 / 32 put the tangent far from the data, on the
        flat part of the logistic curve.  Measured on the 13 energy-inference runs (replayed
        duration-weighted busy level vs measured): median error +3 % at this point, +5 % at the unweighted
        mean workload.
        """
        ref = np.asarray(self.model_config["covariate_ref"], dtype=float)
        fd = self.fit_data
        if fd is None or "seg_x" not in fd or fd.sizes.get(D.SEGMENT, 0) == 0:
            return ref
        states = [str(s) for s in fd[D.STATE].values]
        busy = np.array([states[i] != D.IDLE for i in fd["seg_state"].values], dtype=bool)
        x = fd["seg_x"].values[busy]
        w = fd["seg_duration_s"].values[busy]
        ok = np.isfinite(x).all(axis=1) & np.isfinite(w) & (w > 0)
        return (x[ok] * w[ok, None]).sum(axis=0) / w[ok].sum() if ok.any() else ref

    def config_params(
        self,
        config: ServingConfig | Mapping[str, Any],
        n_draws: int = 100,
        seed: int = 0,
        covariate_ref: Sequence[float] | None = None,
    ) -> xr.Dataset:
        """Posterior parameter draws of one configuration in the form of ``models.params``.

        Levels are linearised around the workload ``x0`` (``covariate_ref``; default
        :meth:`linearisation_workload`, returned in the attrs as ``covariate_ref``): with
        ``z = eta + slope · (x0 - model ref)``, ``level_loc = max_frac · TDP · sigmoid(z + offset_k)``,
        ``level_scale`` and ``level_slope`` are the logit-scale values times ``max_frac · TDP ·
        sigmoid'(z)``.  The exact link comes beside this tangent: ``level_logit_loc = z + offset_k``,
        ``level_logit_scale``, ``level_logit_slope`` (logit scale) and ``level_max_w = max_frac · TDP``
        (see ``models.params``).  Unseen LLMs, cards or layouts draw their effect from the population.
        Transitions: posterior Dirichlet(alpha + pooled counts) rows, no self-loops.  ``itl_ctx_s``: the
        decode-step time per sequence per context token (the runtime term ``itl_ctx_s · batch · output ·
        (prompt + output / 2)``); ``prefill_attn_s``: the prefill time per sequence per prompt token² (the
        runtime term ``prefill_attn_s · batch · prompt²``).

        Returns
        -------
        xr.Dataset
            Passes :func:`wattscape.models.params.validate_config_params`.
        """
        if isinstance(config, Mapping):
            config = ServingConfig(**config)
        q = self._config_quantities(config, n_draws, seed)
        post, rng, n, tdp = q["post"], q["rng"], q["n"], q["tdp"]
        mc = self.model_config
        max_frac = float(mc["max_frac"])
        states = self.states
        n_s, k = len(states), int(mc["n_components"])
        if k == 1:
            offsets = np.zeros((n, n_s, 1))
            weight = np.ones((n, n_s, 1))
        else:
            offsets = post["component_offset"].transpose(D.DRAW, D.STATE, D.COMPONENT).values
            weight = post["level_weight"].transpose(D.DRAW, D.STATE, D.COMPONENT).values
        ref = np.asarray(mc["covariate_ref"], dtype=float)
        x0 = self.linearisation_workload() if covariate_ref is None else np.asarray(covariate_ref, float)
        eta0 = q["eta"] + np.einsum("dsk,k->ds", q["slope"], x0 - ref)  # logit level at x0
        z = eta0[:, :, None] + offsets
        p = _sigmoid(z)
        loc = max_frac * tdp * p
        dpdz = max_frac * tdp * p * (1 - p)
        scale = dpdz * q["level_sd"][:, :, None]
        slope = max_frac * tdp * _sigmoid(eta0)[..., None] * (1 - _sigmoid(eta0))[..., None] * q["slope"]
        fd = self.idata.fit_data if self.idata is not None and "fit_data" in self.idata.groups() else None
        counts = np.zeros((n_s, n_s))
        if fd is not None and "transitions" in fd:
            counts = fd["transitions"].sum(D.RUN).values
        alpha = float(mc["transition_alpha"])
        trans = np.zeros((n, n_s, n_s))
        for i in range(n_s):
            others = [j for j in range(n_s) if j != i]
            if len(others) == 1:
                trans[:, i, others[0]] = 1.0
            else:
                trans[:, i, others] = rng.dirichlet(alpha + counts[i, others], size=n)
        cfg = q["cfg"]
        coords = {
            D.DRAW: np.arange(n),
            D.STATE: list(states),
            D.STATE_TO: list(states),
            D.COMPONENT: np.arange(k),
            D.COVARIATE: list(D.COVARIATES),
        }
        w, s1 = {D.UNITS: D.WATT}, {D.UNITS: "1"}
        ds = xr.Dataset(
            {
                "level_loc": ((D.DRAW, D.STATE, D.COMPONENT), loc, w),
                "level_scale": ((D.DRAW, D.STATE, D.COMPONENT), scale, w),
                "level_weight": ((D.DRAW, D.STATE, D.COMPONENT), weight, s1),
                "level_slope": ((D.DRAW, D.STATE, D.COVARIATE), slope, w),
                "ar_coef": ((D.DRAW, D.STATE), q["ar_coef"], s1),
                # the fitted sd is the GPU-mean's: n independent per-GPU residuals of sd σ·√n give the
                # total its measured variance (n·σ)²
                "resid_scale": ((D.DRAW, D.STATE), q["resid_sd"] * tdp * np.sqrt(cfg.n_gpus), w),
                "prefill_s_per_token": ((D.DRAW,), q["prefill_s_per_token"], {D.UNITS: D.SECOND}),
                "prefill_overhead_s": (
                    (D.DRAW,),
                    np.exp(post["log_prefill_overhead_s"].values),
                    {D.UNITS: D.SECOND},
                ),
                "itl_base_s": ((D.DRAW,), q["itl_base"], {D.UNITS: D.SECOND}),
                "itl_per_seq_s": ((D.DRAW,), q["itl_per_seq"], {D.UNITS: D.SECOND}),
                "itl_ctx_s": (
                    (D.DRAW,),
                    q["itl_ctx"],
                    {D.UNITS: D.SECOND, "long_name": "decode step time per sequence per context token"},
                ),
                "itl_ctx2_s": ((D.DRAW,), q["itl_ctx2"], {D.UNITS: D.SECOND}),
                "prefill_attn_s": (
                    (D.DRAW,),
                    q["prefill_attn"],
                    {D.UNITS: D.SECOND, "long_name": "prefill time per sequence per prompt token squared"},
                ),
                "level_logit_loc": ((D.DRAW, D.STATE, D.COMPONENT), z, s1),
                "level_logit_scale": (
                    (D.DRAW, D.STATE, D.COMPONENT),
                    np.broadcast_to(q["level_sd"][:, :, None], z.shape).copy(),
                    s1,
                ),
                "level_logit_slope": ((D.DRAW, D.STATE, D.COVARIATE), q["slope"], s1),
                "level_max_w": ((D.DRAW,), np.full(n, max_frac * tdp), w),
                "dwell_sigma": ((D.DRAW, D.STATE), q["dwell_sd"], s1),
                "transition": ((D.DRAW, D.STATE, D.STATE_TO), trans, s1),
                "idle_dwell_median_s": (
                    (D.DRAW,),
                    np.exp(post["log_idle_dwell"].values),
                    {D.UNITS: D.SECOND},
                ),
            },
            coords=coords,
            attrs={
                "llm": cfg.llm,
                "gpu_model": q["spec"].get("name", cfg.gpu_model),
                "n_gpus": cfg.n_gpus,
                "tensor_parallel": cfg.tensor_parallel,
                "split": cfg.split,
                "tdp_w": tdp,
                "ar_step_s": float(mc["ar_step_s"]),
                "meter_window_s": meter_window_s(mc, q["spec"].get("generation", "")),
                "covariate_ref": [float(v) for v in x0],
                "states": "/".join(states),
                "model_id": self.id,
                "seen_config": int(q["seen"]),
            },
        )
        return validate_config_params(ds)

    def predict_config(
        self,
        config: ServingConfig | Mapping[str, Any],
        batch: float | None = None,
        n_draws: int | None = 1000,
        seed: int = 0,
        source: str | None = None,
        include_noise: bool = True,
    ) -> xr.Dataset:
        """Posterior-predictive power of one configuration.

        Parameters
        ----------
        config : ServingConfig or dict
            The configuration (unseen levels draw from their populations).
        batch : float, optional
            Batch (occupancy) of saturated serving; default ``2**covariate_ref[0]``.
        n_draws : int or None
            Number of draws (None: all posterior draws).
        seed : int
            Seed.
        source : str, optional
            Summary source whose scatter ``sigma_summary`` is added (default: the first one fitted,
            preferring ``mlenergy-v3``).
        include_noise : bool
            Add the configuration-level scatter (a new measurement) rather than the mean only.

        Returns
        -------
        xr.Dataset
            ``active_power_w (draw)``: mean power of all ``n_gpus`` GPUs serving saturated at ``batch``
            (what ML.ENERGY reports); ``state_power_w (draw, state)``: per-GPU power of a sample in each
            state at the reference workload (segment scatter and residual included).
        """
        if isinstance(config, Mapping):
            config = ServingConfig(**config)
        q = self._config_quantities(config, n_draws, seed)
        post, rng, n, tdp = q["post"], q["rng"], q["n"], q["tdp"]
        mc = self.model_config
        max_frac = float(mc["max_frac"])
        ref = np.asarray(mc["covariate_ref"], dtype=float)
        a = self._active_index()
        b = float(batch) if batch else 2 ** ref[0]
        z = q["eta"][:, a] + q["slope"][:, a, 0] * (np.log2(max(b, 1.0)) - ref[0]) + q["task"]
        if include_noise and "sigma_summary" in post:
            sources = [str(s) for s in post[SOURCE].values]
            src = source or next((s for s in sources if s.startswith("mlenergy")), sources[0])
            z = z + post["sigma_summary"].sel({SOURCE: src}).values * rng.standard_normal(n)
        cfg = q["cfg"]
        active = cfg.n_gpus * max_frac * tdp * _sigmoid(z)
        zs = q["eta"] + q["level_sd"] * rng.standard_normal(q["eta"].shape)
        per_state = max_frac * tdp * _sigmoid(zs) + tdp * q["resid_sd"] * rng.standard_normal(zs.shape)
        per_state = np.maximum(per_state, 0.0)  # a meter never reads negative power
        return xr.Dataset(
            {
                "active_power_w": (
                    (D.DRAW,),
                    active,
                    {D.UNITS: D.WATT, "long_name": f"mean power of {cfg.n_gpus} GPUs at batch {b:g}"},
                ),
                "state_power_w": (
                    (D.DRAW, D.STATE),
                    per_state,
                    {D.UNITS: D.WATT, "long_name": "per-GPU power"},
                ),
            },
            coords={D.DRAW: np.arange(n), D.STATE: list(self.states)},
            attrs={
                "llm": cfg.llm,
                "gpu_model": q["spec"].get("name", cfg.gpu_model),
                "n_gpus": cfg.n_gpus,
                "batch": b,
                "seen_config": int(q["seen"]),
                "model_id": self.id,
            },
        )


def summarise_prediction(pred: xr.Dataset, quantiles: Sequence[float] = (0.05, 0.5, 0.95)) -> dict[str, Any]:
    """JSON-able summary of :meth:`PowerModel.predict_config`: mean and quantiles, W."""
    act = pred["active_power_w"].values
    out = {
        "llm": pred.attrs["llm"],
        "gpu_model": pred.attrs["gpu_model"],
        "n_gpus": int(pred.attrs["n_gpus"]),
        "batch": float(pred.attrs["batch"]),
        "seen_config": bool(pred.attrs["seen_config"]),
        "active_power_w": {
            "mean": float(act.mean()),
            **{f"q{round(q * 100):02d}": float(np.quantile(act, q)) for q in quantiles},
        },
        "state_power_w": {},
    }
    for s in pred[D.STATE].values:
        v = pred["state_power_w"].sel({D.STATE: s}).values
        out["state_power_w"][str(s)] = {
            "mean": float(v.mean()),
            **{f"q{round(q * 100):02d}": float(np.quantile(v, q)) for q in quantiles},
        }
    return out


def predictions_table(
    model: PowerModel, configs: pd.DataFrame, n_draws: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Predict every row of a table (columns llm, params_b, active_params_b, precision, gpu_model, n_gpus,
    batch; optional task, split, tensor_parallel); one row per configuration with mean/q05/q50/q95, W."""
    rows = []
    for r in configs.to_dict("records"):
        cfg = ServingConfig(
            llm=str(r["llm"]),
            params_b=float(r["params_b"]),
            gpu_model=str(r["gpu_model"]),
            n_gpus=int(r["n_gpus"]),
            active_params_b=float(r["active_params_b"]) if pd.notna(r.get("active_params_b")) else None,
            precision=str(r.get("precision") or "bfloat16"),
            split=r.get("split") if isinstance(r.get("split"), str) else None,
            tensor_parallel=int(r["tensor_parallel"]) if pd.notna(r.get("tensor_parallel", np.nan)) else None,
            task=r.get("task") if isinstance(r.get("task"), str) else None,
        )
        pred = model.predict_config(
            cfg, batch=float(r["batch"]) if pd.notna(r.get("batch")) else None, n_draws=n_draws, seed=seed
        )
        s = summarise_prediction(pred)
        rows.append(
            {
                **{k: r.get(k) for k in configs.columns},
                "seen_config": s["seen_config"],
                **{f"active_power_w_{k}": v for k, v in s["active_power_w"].items()},
            }
        )
    return pd.DataFrame(rows)
