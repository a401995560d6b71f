"""Model configuration: priors (``pymc_extras.prior.Prior``) and structural settings of the power model.

The configuration is a plain ``dict``: prior entries are :class:`~pymc_extras.prior.Prior` objects with
named dims (non-centred where they pool), structural entries are numbers or tuples.  Any entry can be
overridden from a dict or a YAML file (priors written as ``Prior.to_dict()`` dicts)::

    cfg = model_config_from({"b_llm": {"dist": "Normal", "kwargs": {"mu": 0, "sigma": {"dist":
        "HalfNormal", "kwargs": {"sigma": 0.2}, "dims": ["state"]}}, "dims": ["llm", "state"],
        "centered": False}, "n_components": 2})

Scale
-----
Per-GPU power ``P`` of a card with nameplate ``tdp_w`` is modelled on the logit scale of
``P / (max_frac * tdp_w)``: ``eta = logit(P / (max_frac * tdp_w))``.  The physics priors follow from it:
idle near 10–20 % of TDP (``logit(0.12/1.05) ≈ -2.0``), active below ``max_frac`` × TDP by construction.

Priors (dims)
-------------
base (state)                     location of a configuration's level at the reference workload
beta (config_covariate, state)   slopes on standardised configuration covariates
b_llm (llm)                      LLM effect on the busy (non-idle) states, pooled sd
b_gpu (gpu_model)                exact-card effect on busy states: ``b_gpu_gen`` of the card's GPU
                                 generation (fixed sd) + the card's deviation ``b_gpu_card`` (pooled sd)
b_gpu_idle (gpu_model)           exact-card effect on idle, nested the same way (card part non-centred)
itl_gpu, prefill_gpu, attn_gpu,  exact-card effects on the latencies, nested the same way
ctx_gpu (gpu_model)
ctx_llm (llm)                    LLM effect on the decode context cost, pooled sd
ctx2_llm (llm)                   LLM effect on the decode cost per squared context token, pooled sd
dwell_group_dev (level_group)    log deviation of a (run, state)'s dwell sd, sd ``dwell_group_dev_sigma``
                                 (state); sampled as ``dwell_group_log_sigma``
b_run (run)                      busy-state effect of one run of its configuration, pooled sd; a
                                 prediction (a new run) draws it from the population
b_par (parallel)                 parallel-layout effect (split kind x GPU count) on busy states
b_layer                          busy-state effect per log2 GPU of a layer (pipeline) split, beyond
                                 the duty cycle (``layer_duty_cycle``: the GPUs take turns, so each one
                                 draws idle + 1/n of a single GPU's busy excess); shared by layer3,
                                 layer4, ...: a new layer count borrows it
b_layer_slope (covariate)        change of the busy workload slopes under a layer split
b_task (task)                    offset of a benchmark task (configuration summaries only), pooled
b_slope_gpu (gpu_model)          card-specific change of the log2-batch slope (active state)
b_context_slope_gpu (gpu_model)  card-specific change of the log2-context slope (busy states)
level_slope (state, covariate)   workload slope of a segment's level, per log2 unit of each covariate
log_level_scale (state)          log between-segment sd of levels (logit scale), pooled per state
level_group_dev (level_group)    log deviation of a (run, state) with enough segments, sd
                                 ``level_group_dev_sigma`` (state): one population per state
ar_atanh (state)                 atanh of the pooled AR(1) coefficient of the within-segment residual
                                 (``ar_coef`` = tanh(ar_atanh), a deterministic)
ar_group_dev (resid_group)       atanh deviation of a (run, state)'s AR(1) coefficient, sd
                                 ``ar_group_dev_sigma`` (state)
log_resid_scale (state)          log stationary residual sd (fraction of TDP), pooled per state
resid_group_dev (resid_group)    log deviation of a (run, state) with enough lag pairs, sd
                                 ``resid_group_dev_sigma`` (state)
                                 A state gets groups only where at least two runs qualify: a lone group
                                 and the pooled value of its state are one quantity (a ridge).  The
                                 three deviations are deterministics of the sampled group values
                                 ``level_group_log_scale``, ``ar_group_atanh``, ``resid_group_log_scale``
                                 (``models.hierarchical._state_pooled_dev``)
sigma_summary (source)           scatter of configuration-summary power around the model (logit scale)
itl_* / prefill_* / dwell_*      latency and dwell-time priors (log seconds, or log efficiency factors on
                                 the rooflines of ``hardware.latency_rooflines``; crossed ``itl_llm``,
                                 ``itl_gpu``, ``itl_par``, ``prefill_gpu``, ``ctx_gpu`` effects;
                                 ``itl_par`` = ``itl_par_kind`` of the split kind (fixed sd) + the
                                 layout's deviation ``itl_par_layout`` (pooled sd));
                                 log_itl_ctx + ctx_gpu + ctx_llm: log of the per-step cost of
                                 one context token of one sequence relative to the decode roofline
                                 (attention over the KV cache: decode steps slow down as the context
                                 grows, so runtime is superlinear in the output length), shifted by the
                                 LLM's attention width per weight when ``context_layout`` is on;
                                 log_itl_ctx2 + ctx2_llm: the same per squared context token (a step
                                 over a long context costs more per token);
                                 log_prefill_attn + attn_llm + attn_gpu: log of the prefill attention
                                 cost per sequence per prompt token² relative to the prompt-token
                                 compute roofline (shifted by the LLM's attention-score elements per
                                 active parameter when ``attention_layout`` is on)
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pymc_extras.prior import Prior

from . import dims as D

#: Dim of the configuration-level covariates.
CONFIG_COVARIATE = "config_covariate"
#: Configuration covariates (standardised before use): LLM size, MoE sparsity, card power and speed,
#: reduced precision, number of GPUs.
CONFIG_COVARIATES = (
    "log_params_b",
    "log_active_frac",
    "log_tdp_w",
    "log_flops_per_byte",
    "fp8",
    "log2_n_gpus",
)
#: Dims of the model beyond ``models.dims``.
TASK = "task"
SOURCE = "source"
LEVEL_GROUP = "level_group"  # (run, state) pairs with their own between-segment sd
RESID_GROUP = "resid_group"  # (run, state) pairs with their own residual sd
#: Card effects nested in the card's GPU generation: ``name[g] = name_gen[generation of g] + name_card[g]``,
#: the card deviation with the prior ``name``, the generation effect with the prior ``name_gen``.
CARD_EFFECTS = ("b_gpu", "b_gpu_idle", "itl_gpu", "prefill_gpu", "attn_gpu", "ctx_gpu")


def default_model_config() -> dict[str, Any]:
    """The default priors and structural settings.

    Returns
    -------
    dict
        Fresh copy; safe to modify.
    """
    state = (D.STATE,)
    generation = (D.GPU_GENERATION,)
    return {
        # --- structure -------------------------------------------------------------------------
        "states": D.STATES_ACTIVE,  # the label set the measured runs carry
        "n_components": 1,  # K of the per-state mixture over segment levels (1 or 2)
        # the prompt-attention cost sits on the prompt-token roofline shifted by the LLM's attention-score
        # elements per active parameter (hardware.attention_score_ratio).  Measured, fast leave-one-LLM-out
        # folds: 13.9 -> 11.4 % (falcon-7b, 71 query heads: -18.5 -> -11.4 %); its fitted attn_llm was +1.3
        "attention_layout": True,
        # the decode context costs (itl_ctx, itl_ctx2) sit on the decode roofline shifted by the LLM's
        # attention width per weight (hardware.context_traffic_ratio): a step reads its weights once and
        # the keys and values of every context token.  Without it the LLM effects carried the width
        # (full NUTS fit, ctx2_llm: Llama-2-7b/13b +1.1/+1.0, Mistral +0.4, Llama-2-70b -0.7, falcon-40b
        # -0.6, Mixtral -4.5), and a held-out LLM with little attention per weight drew the others' cost
        # (leave-Mixtral-out replayed its 2,139-token prompts at 2.6x their logged runtime, 0.65x with this
        # and the nesting of itl_par below).  With the layout
        # nesting of itl_par below, fast leave-one-LLM-out folds went from 12.4 % to 8.6 % (90 % coverage
        # 0.77 -> 0.92; python -m experiments.generalisation)
        "context_layout": True,
        # logit-scale upper bound, fraction of TDP: GPUs are power-capped at TDP, so averages over a
        # segment or a benchmark saturate just below it (largest measured here: 1.007 x TDP for a segment,
        # 0.99 x for an ML.ENERGY row); single 100 ms samples exceed it through the residual
        "max_frac": 1.05,
        # a layer (pipeline) split's busy level is a duty cycle of the level of one GPU running the same
        # model (hierarchical.layer_split_eta: idle + 1/n of the busy excess); b_layer is what the data
        # add to it.  Every layer-split run here is on one card (A100-SXM4-40GB), so with that card (or
        # the GPU count) held out, b_layer is its prior alone: on the logit scale alone (prior mean -0.5
        # per log2 GPU) the held-out layer runs came out at 1.7-2.6x their measured level
        # (results/error_split_card.md), since a single GPU running a 40-70B model is predicted near TDP,
        # where a logit shift moves the level little
        "layer_duty_cycle": True,
        "covariate_ref": (5.0, 8.0, 8.0),  # log2 batch 32, 256 context, 256 output tokens
        "ar_step_s": 0.1,  # sample period the AR coefficient refers to
        # averaging window of nvidia-smi power.draw by GPU generation (models/gpu_specs.csv), s: A100 (GA100)
        # and H100 average ~25 ms out of every 100 ms update (Yang, Adamek & Armour 2024, "Part-time power
        # measurements: nvidia-smi's lack of attention", arXiv:2312.02741); other Ampere and Ada parts
        # report a 1 s average (NVML nvmlDeviceGetPowerUsage); Volta and Blackwell: assumed 100 ms
        "meter_window_s": {
            "volta": 0.1,
            "ampere": 0.025,
            "hopper": 0.025,
            "blackwell": 0.1,
            "ada": 1.0,
            "default": 0.1,
        },
        "transition_alpha": 1.0,  # Dirichlet concentration of each row of the embedded chain
        # --- power levels ----------------------------------------------------------------------
        "base": Prior("Normal", mu=[-2.0, 0.5], sigma=[0.5, 0.8], dims=state),
        "beta": Prior("Normal", mu=0.0, sigma=0.3, dims=(CONFIG_COVARIATE, D.STATE)),
        # Card effects are CENTRED with zero-avoiding Gamma sds: every level is well informed (each card and
        # task has tens of segments or summary rows); Gamma sds keep the funnel neck away.
        # The LLM effect is NON-CENTRED: its population sd is small (~0.14) beside the configuration
        # effect's (~0.35), and an LLM with one configuration trades b_llm against b_cfg, so centred it
        # sat in a funnel with b_llm_sigma (measured, NUTS folds, numpyro 2 x 500 draws: falcon-7b
        # 170604 r̂ 1.25 -> 1.08, bulk ESS of b_llm_sigma 6 -> 78; falcon-7b 113633 r̂ 1.12 -> 1.05, min
        # bulk ESS 14 -> 60; a zero-sum centred b_llm and b_par changed nothing, r̂ 1.22).
        "b_llm": Prior(
            "Normal", mu=0, sigma=Prior("Gamma", alpha=2.0, beta=6.0), dims=(D.LLM,), centered=False
        ),
        "b_gpu": Prior("Normal", mu=0, sigma=Prior("Gamma", alpha=2.0, beta=6.0), dims=(D.GPU_MODEL,)),
        # idle is seen on few cards (traces only): non-centred, since most levels are prior-only there
        "b_gpu_idle": Prior(
            "Normal", mu=0, sigma=Prior("HalfNormal", sigma=0.3), dims=(D.GPU_MODEL,), centered=False
        ),
        # the level card effects (CARD_EFFECTS) nest in the GPU generation: a card nobody measured keeps what
        # its generation showed on other cards (measured: the A100-SXM4-80GB run, held out, drew its card
        # effects from the population of all cards and its busy level came out 0.75x; the same run with the
        # A100-SXM4-40GB's effects was off by -3 %).  Non-centred, with a fixed sd about that of the card
        # effects fitted without the nesting (0.25): a generation has one to three cards here, so its effect
        # and its cards' deviations trade off, and a learnt generation sd traded off with the cards' sd
        # (measured, full fit: two chains on two splits of the V100's effect, r̂ 1.50, 198 divergences).
        "b_gpu_gen": Prior("Normal", mu=0, sigma=0.3, dims=generation, centered=False),
        "b_gpu_idle_gen": Prior("Normal", mu=0, sigma=0.3, dims=generation, centered=False),
        # The latency card effects (itl_gpu, prefill_gpu, attn_gpu, ctx_gpu) nest the same way, with fixed
        # generation sds on the log-time scale (the V100's prompts ran 19x slower than the A100s': log 2.9,
        # hence sd 1 for the prefill terms).  Flat, a held-out A100 card drew its latency effects from the
        # population of all cards, V100 included (measured, fast leave-one-GPU-card-out folds: median
        # 31.9 % flat, 17.4 % nested; A100-PCIe 17.3 -> 11.3 %, A100-SXM4-80GB 24.3 -> 12.4 %).  Rejected
        # once for poor mixing (r̂ 1.45, 93 divergences), measured with the dense NUTS metric that did not
        # converge on this model at all; with the diagonal metric the full fit gives max r̂ 1.05, min bulk
        # ESS 56, no divergences (results/benchmarks_fit.md).
        "itl_gpu_gen": Prior("Normal", mu=0, sigma=0.5, dims=generation, centered=False),
        "prefill_gpu_gen": Prior("Normal", mu=0, sigma=1.0, dims=generation, centered=False),
        "attn_gpu_gen": Prior("Normal", mu=0, sigma=1.0, dims=generation, centered=False),
        "ctx_gpu_gen": Prior("Normal", mu=0, sigma=0.5, dims=generation, centered=False),
        # The layout effect is NON-CENTRED: ~9 layouts, several seen in one configuration only, so centred
        # its population sd sat in a funnel once the (run, state) groups mixed (measured, NUTS folds, numpyro
        # 2 x 500 draws: llama-2-7b 145250 r̂ 1.09 -> 1.02, min bulk ESS 25 -> 91; falcon-7b
        # 113633 r̂ 1.08 -> 1.03; over all 13 folds b_par or its sd is the worst-mixed parameter in none,
        # was 5).  With every busy effect non-centred and the groups' deviations free it had diverged
        # (tree depth 8-10): not so alone.
        "b_par": Prior(
            "Normal", mu=0, sigma=Prior("Gamma", alpha=2.0, beta=6.0), dims=(D.PARALLEL,), centered=False
        ),
        # what the crossed LLM + card + layout effects miss for one configuration (their interaction): the
        # held-out configurations missed their busy level by -55..+40 % with only the crossed effects, and
        # their intervals did not say so.  Non-centred: most configurations have one run.
        "b_cfg": Prior(
            "Normal", mu=0, sigma=Prior("Gamma", alpha=2.0, beta=8.0), dims=(D.CONFIG,), centered=False
        ),
        # one run of a configuration against another (another day, node or campaign): with the untraced logs
        # most configurations have several runs, whose busy levels differ beyond their workloads (Mistral-7B
        # on V100: two campaigns of one output sweep at 122 W and 204 W median).  A prediction is for a new
        # run, so it draws one from this population (models.hierarchical.PowerModel._config_quantities)
        "b_run": Prior(
            "Normal", mu=0, sigma=Prior("Gamma", alpha=2.0, beta=10.0), dims=(D.RUN,), centered=False
        ),
        # beyond the duty cycle (layer_duty_cycle); without it: Normal(-0.5, 0.5), each GPU busy ~1/n
        "b_layer": Prior("Normal", mu=0.0, sigma=0.3),
        # layer-split change of the busy workload slopes: the GPUs take turns, so a longer prompt raises each
        # GPU's level less (measured: the pooled prompt slope over-predicted the layer runs' long segments)
        "b_layer_slope": Prior("Normal", mu=0.0, sigma=0.2, dims=(D.COVARIATE,)),
        "b_task": Prior(
            "Normal",
            mu=Prior("Normal", mu=0, sigma=0.5),
            sigma=Prior("Gamma", alpha=2.0, beta=6.0),
            dims=(TASK,),
        ),
        "b_slope_gpu": Prior("Normal", mu=0, sigma=Prior("Gamma", alpha=2.0, beta=20.0), dims=(D.GPU_MODEL,)),
        # card-specific change of the busy context slope (measured per run on the prompt sweeps: 0.34-0.36
        # logit per doubling on V100, 0.39-0.47 on A100)
        "b_context_slope_gpu": Prior(
            "Normal", mu=0, sigma=Prior("Gamma", alpha=2.0, beta=20.0), dims=(D.GPU_MODEL,), centered=False
        ),
        "level_slope": Prior("Normal", mu=0.0, sigma=0.3, dims=(D.STATE, D.COVARIATE)),
        "component_gap": Prior("HalfNormal", sigma=0.5, dims=(D.STATE,)),
        "log_level_scale": Prior("Normal", mu=-1.0, sigma=1.0, dims=state),
        # group deviations are centred: each group has many segments, so its sd is well informed
        # (non-centred makes a ridge).  Their population sd is one per state (busy groups spread from
        # 7 W to 49 W of residual sd; one sd shared with idle drew held-out idle residuals of kilowatts),
        # with a zero-avoiding Gamma prior (few groups; a centred group at sd 0 is a funnel)
        "level_group_dev_sigma": Prior("Gamma", alpha=2.0, beta=4.0, dims=state),
        "sigma_summary": Prior("HalfNormal", sigma=0.3, dims=(SOURCE,)),
        # --- within-segment residual -----------------------------------------------------------
        # the AR(1) coefficient per (run, state) group, pooled on the atanh scale: measured at the native
        # ~100 ms period it is -0.44 to 0.13 on most runs but 0.3-0.85 on some (V100, the output sweep),
        # and a single pooled value (0.46) doubled the variance of 1 s means of the white-noise runs.  On
        # (-1, 1), not (0, 1): a logit link left the anti-persistent runs a flat tail towards 0 (r̂ 1.46)
        "ar_atanh": Prior("Normal", mu=0.2, sigma=0.5, dims=state),
        "ar_group_dev_sigma": Prior("Gamma", alpha=2.0, beta=4.0, dims=state),
        "log_resid_scale": Prior("Normal", mu=-3.5, sigma=1.5, dims=state),
        "resid_group_dev_sigma": Prior("Gamma", alpha=2.0, beta=2.0, dims=state),
        "min_group_segments": 5,  # a (run, state) gets its own level sd from this many segments
        "min_group_lags": 50,  # ... and its own residual sd from this many lag pairs
        # --- latency and dwell times (log seconds) -----------------------------------------------
        # a configuration's decode step at batch 1 is its weight-read roofline (weights / memory bandwidth,
        # hardware.latency_rooflines) times an efficiency factor: log_itl_base + beta_itl·x + crossed LLM,
        # card and layout effects + a configuration residual.  A held-out configuration keeps the effects of
        # its LLM and card seen elsewhere (measured: a pooled per-configuration effect alone put held-out
        # runtimes 20-65 % off).  Non-centred: many levels are seen through summaries only.
        "log_itl_base": Prior("Normal", mu=1.0, sigma=1.0),
        "beta_itl": Prior("Normal", mu=0.0, sigma=0.3, dims=(CONFIG_COVARIATE,)),
        "itl_llm": Prior(
            "Normal", mu=0, sigma=Prior("Gamma", alpha=2.0, beta=4.0), dims=(D.LLM,), centered=False
        ),
        "itl_gpu": Prior(
            "Normal", mu=0, sigma=Prior("Gamma", alpha=2.0, beta=4.0), dims=(D.GPU_MODEL,), centered=False
        ),
        "itl_par": Prior(
            "Normal", mu=0, sigma=Prior("Gamma", alpha=2.0, beta=4.0), dims=(D.PARALLEL,), centered=False
        ),
        # the layout effect on the decode step nests in the split kind (none, tensor, layer, expert) like
        # a card in its generation: ``itl_par[p] = itl_par_kind[kind of p] + itl_par_layout[p]``, so a GPU
        # count nobody measured keeps what its kind showed at other counts.  Flat, a held-out layer split
        # drew from the population of all layouts (full NUTS fit: layer3 +0.55, layer4 +0.46 against
        # none1 -0.03, expert8 -0.99): leave-Llama-2-70b-out (the only layer4) replayed its short-prompt
        # calls at 0.59-0.67x their logged runtime (0.73-0.79x nested).  Fixed sd, as for the generations: a
        # kind has one to three layouts here
        "itl_par_kind": Prior("Normal", mu=0, sigma=0.5, dims=(D.PARALLEL_KIND,), centered=False),
        "itl_cfg": Prior(
            "Normal", mu=0, sigma=Prior("Gamma", alpha=2.0, beta=8.0), dims=(D.CONFIG,), centered=False
        ),
        # prefill: the compute roofline (2 · active parameters FLOP per token / dense FLOP/s) times an
        # efficiency factor with a card effect (HF generate's eager attention: 19x slower prompts on V100
        # than A100), no LLM effect: with LLM effects on both the prefill and the context cost, which both
        # scale with prompt × batch in a prompt sweep, the two formed a ridge (NUTS folds: r̂ up to 1.9 on
        # log_prefill_cfg, up to 97 divergences).  Context cost (decode attention per sequence per context
        # token): on the decode roofline, with a card effect of fixed sd (centred, no hyperprior).  Only one
        # run sweeps the output length (falcon-7b on A100-PCIe, 8 to 2,048 tokens); elsewhere the cost is
        # linear in the prompt like the prefill cost, so pooled card effects on both formed a ridge (full
        # fit: r̂ 1.36 on log_prefill_cfg[V100], 1.32 on ctx_gpu[V100]); without a card effect that run's
        # runtime fell to 0.60x in-sample.  Its runtime grows faster than this term allows from 1,024 to
        # 2,048 output tokens (4.3x): the longest outputs run at about 0.67x the prediction in-sample, with
        # or without an LLM effect on this cost (tried; not kept).
        "prefill_gpu": Prior(
            "Normal", mu=0, sigma=Prior("Gamma", alpha=2.0, beta=4.0), dims=(D.GPU_MODEL,), centered=False
        ),
        # prefill attention: HF generate's attention over the prompt costs batch · prompt² (score matrix per
        # layer and head), the part of a prompt sweep that a per-token cost misses (measured: falcon-7b at
        # 2,050 prompt tokens ran 1.5-1.9x the linear prediction, Llama-2 1.1-1.2x).  Log ratio (per
        # sequence per prompt token) to the prompt-token compute roofline, with an LLM effect (the attention
        # layout: heads, multi-query) and a card effect (a 250 W PCIe card throttles on long prompts);
        # identified by the curvature within one run's prompt sweep.  On the roofline, not on the fitted
        # per-token cost: relative to that, the card effects of the two terms traded against each other.
        "log_prefill_attn": Prior("Normal", mu=-6.0, sigma=2.0),
        "attn_llm": Prior(
            "Normal", mu=0, sigma=Prior("Gamma", alpha=2.0, beta=2.0), dims=(D.LLM,), centered=False
        ),
        "attn_gpu": Prior(
            "Normal", mu=0, sigma=Prior("Gamma", alpha=2.0, beta=4.0), dims=(D.GPU_MODEL,), centered=False
        ),
        "ctx_gpu": Prior("Normal", mu=0, sigma=0.5, dims=(D.GPU_MODEL,)),
        # the LLM's own context cost: with the untraced logs (output sweeps of 8 to 4,096 tokens on six
        # LLMs, inference.stats.log_call_runs) the decode slow-down with output length differs by LLM
        # (falcon-7b, both A100 cards: log-runtime residual +0.45 at 2,048 and +0.94 at 4,096 tokens without
        # it; the Llama-2 and Mistral sweeps near 0); with one sweep only (before those logs) it was not
        # identified (above)
        "ctx_llm": Prior(
            "Normal", mu=0, sigma=Prior("Gamma", alpha=2.0, beta=2.0), dims=(D.LLM,), centered=False
        ),
        # a decode step's cost per squared context token (per sequence, on the decode roofline), with an LLM
        # effect: in the untraced logs (batch 32, 8-64 output tokens) every runtime is linear in the output
        # but the step time grows faster than the context, 0.031 / 0.067 / 0.13 / 0.33 s at ~40 / 550 /
        # 1,060 / 2,080 tokens for falcon-7b on A100-SXM4-40GB (Llama-2-7b nearly linear): a step that
        # re-reads the whole context costs more per token as the context outgrows the caches.  Without it
        # leave-one-run-out replayed those runs' 2,048-token prompts at 0.74-0.87x their logged runtime
        # and the 2,048-token outputs of falcon-7b at 0.72x; with it the median held-out energy error went
        # from 5.3 % to 2.5 % (``python -m experiments.accuracy``)
        "log_itl_ctx2": Prior("Normal", mu=-16.0, sigma=2.0),
        "ctx2_llm": Prior(
            "Normal", mu=0, sigma=Prior("Gamma", alpha=2.0, beta=2.0), dims=(D.LLM,), centered=False
        ),
        "log_itl_per_seq_ratio": Prior("Normal", mu=-4.0, sigma=1.5),
        # HF generate without a paged/flash kernel: measured on the 824 segments, a pooled ratio of about
        # e^-9 per context token per sequence relative to itl_base (itself about e^1 times the decode
        # roofline) cut the log-runtime rmse 0.44 -> 0.19
        "log_itl_ctx": Prior("Normal", mu=-7.0, sigma=2.0),
        "log_prefill_s_per_token": Prior("Normal", mu=1.0, sigma=1.5),  # log efficiency vs the roofline
        "log_prefill_overhead_s": Prior("Normal", mu=-3.0, sigma=1.5),
        "sigma_itl_summary": Prior("HalfNormal", sigma=0.3),
        "log_idle_dwell": Prior("Normal", mu=0.0, sigma=2.0),
        "dwell_sigma": Prior("Gamma", alpha=2.0, beta=2.0, dims=state),  # zero-avoiding: few idle stretches
        # a (run, state) group's log deviation of the dwell sd (the level groups), centred like the level
        # groups' sds: the runtime misfit differs by run (log-runtime residual sd 0.03-0.05 on the V100 and
        # falcon-40b sweeps, 0.31-0.35 on Mixtral's, whose long outputs end early), and one pooled sd
        # opened idle gaps in the open-loop replay of every well-predicted run (held-out busy time 0.97x)
        "dwell_group_dev_sigma": Prior("Gamma", alpha=2.0, beta=2.0, dims=state),
    }


def meter_window_s(config: Mapping[str, Any], generation: str) -> float:
    """Meter averaging window of a GPU generation (``config["meter_window_s"]``: a number or a dict)."""
    value = config["meter_window_s"]
    if isinstance(value, Mapping):
        return float(value.get(str(generation).lower(), value.get("default", 0.1)))
    return float(value)


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, Prior):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_jsonable(v) for k, v in value.items()}
    return value


def config_to_dict(config: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-able form of a model configuration (priors as ``Prior.to_dict()``)."""
    return {k: _to_jsonable(v) for k, v in config.items()}


def config_from_dict(data: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`config_to_dict` (prior dicts become ``Prior`` objects, lists tuples)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and "dist" in value:
            out[key] = Prior.from_dict(dict(value))
        elif isinstance(value, list):
            out[key] = tuple(value)
        else:
            out[key] = value
    return out


def model_config_from(overrides: Mapping[str, Any] | str | Path | None = None) -> dict[str, Any]:
    """Default configuration with ``overrides`` applied.

    Parameters
    ----------
    overrides : dict, path of a YAML/JSON file, or None
        Keys of :func:`default_model_config`; prior values may be ``Prior`` objects or their dicts.

    Returns
    -------
    dict
        The merged configuration.

    Raises
    ------
    KeyError
        For a key that the model does not know (names the key and the file).
    """
    config = default_model_config()
    if overrides is None:
        return config
    where = "overrides"
    if isinstance(overrides, str | Path):
        import yaml

        where = str(overrides)
        with open(overrides) as fh:
            overrides = yaml.safe_load(fh) or {}
    for key, value in overrides.items():
        if key not in config:
            raise KeyError(f"{where}: unknown model_config key {key!r}; known: {sorted(config)}")
        if isinstance(value, Mapping) and "dist" in value:
            value = Prior.from_dict(dict(value))
        elif isinstance(value, list):
            value = tuple(value)
        config[key] = copy.deepcopy(value)
    return config


def config_hash(config: Mapping[str, Any], version: str) -> str:
    """Model id: 16 hex digits of the SHA-256 of the configuration (as JSON) and the package version."""
    text = json.dumps({"config": config_to_dict(config), "version": version}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
