"""Reduce measured runs and configuration summaries to the sufficient statistics the model fits.

The cost of one gradient of the model grows with segments and configurations, never with power samples:

* per **segment** (one logged inference in ``active``, one contiguous stretch of ``idle``): the mean
  per-GPU power level (fraction of TDP), number of samples, dwell time, and the workload covariates
  (log2 batch, log2 mean context tokens ``prompt + output / 2``, log2 output tokens);
* per **(run, state)**: lag products of the within-segment residual of the **GPU-mean** power
  ``e = mean_gpu(P)/TDP - segment mean`` (only pairs of consecutive samples inside one segment): ``n``,
  ``Σe_t²``, ``Σe_t e_{t-1}``, ``Σe_{t-1}²`` — exact sufficient statistics of a Gaussian AR(1)
  conditional likelihood.  The residual of the mean, not of each GPU: the GPUs of one configuration are
  not independent (a layer split passes the batch from GPU to GPU, so their residuals cancel in the sum;
  measured on the three multi-GPU runs: sd of the mean 0.31-0.38 of the per-GPU sd, where independent
  GPUs would give 0.50-0.58), and the generators need the variance of the total
  (:data:`FIT_DATA_FORMAT`);
* per **logged inference without a trace** (``Catalog.log_calls``): the same segment row, its level the
  logged GPU energy / runtime / GPUs (the trace integral matches it within 1 % on every traced run), in
  the ``active`` state only (a whole ``generate`` call); such a run has no lag products, bins or
  transitions;
* per **(run, state, bin)**: counts of per-GPU power (fraction of TDP) over fixed bin edges, for the
  per-state marginal and posterior-predictive checks;
* per **(run, state, state_to)**: transition counts between successive state stretches;
* per **summary row** (ML.ENERGY v3, LLM-Inference-Bench): average per-GPU power fraction of the
  configuration at its batch, the task and, where given, the median inter-token latency.

Everything lands in one ``xr.Dataset`` with named dims (``config``, ``llm``, ``gpu_model``,
``parallel``, ``task``, ``source``, ``run``, ``segment``, ``summary``, ``state``, ``bin``) wrapped by
:class:`FitData`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm
from wattscape.models import dims as D
from wattscape.models.config import CONFIG_COVARIATE, CONFIG_COVARIATES, SOURCE, TASK

SUMMARY = "summary"
BIN_EDGE = "bin_edge"
#: Bin edges of per-GPU power, fraction of TDP.
BIN_EDGES = np.round(np.linspace(0.0, 1.4, 141), 4)
#: Fixed centring and scaling of the configuration covariates (same order as ``CONFIG_COVARIATES``).
COVARIATE_CENTER = np.array([np.log(20.0), np.log(0.5), np.log(500.0), np.log(220.0), 0.0, 1.0])
COVARIATE_SCALE = np.array([1.5, 1.0, 0.4, 0.3, 1.0, 1.0])
#: Precision assumed for runs that do not say (Hugging Face ``generate`` in half precision).
DEFAULT_PRECISION = "float16"
#: Source label of measured time-series runs (configuration summaries carry their own).
TRACE_SOURCE = "trace"
#: Version of what the fit data hold; part of the model id, so fits on older statistics are refused.
#: 2: residual lag products of the GPU-mean series (1: per GPU).
#: 3: runs of per-inference logs without a trace (per-call energy) join the segments.
FIT_DATA_FORMAT = 3


# --- configurations ------------------------------------------------------------------------------
def parallel_label(split: str, n_gpus: int, tensor_parallel: int | None = None) -> str:
    """Level of the parallel factor: split kind and GPU count (``"tensor4"``, ``"layer3"``, ``"none1"``)."""
    n = int(n_gpus)
    if n <= 1:
        return f"{D.SPLIT_NONE}1"
    return f"{split}{n}"


def summary_split(
    n_gpus: int, tensor_parallel: float, architecture: str, expert_parallel: float = np.nan
) -> str:
    """Split kind of a configuration summary row (ML.ENERGY MoE models run expert parallel)."""
    if int(n_gpus) <= 1:
        return D.SPLIT_NONE
    if np.isfinite(expert_parallel) and expert_parallel > 1:
        return D.SPLIT_EXPERT
    if np.isfinite(tensor_parallel) and int(tensor_parallel) == int(n_gpus):
        return D.SPLIT_TENSOR
    return D.SPLIT_EXPERT if architecture == D.ARCH_MOE else D.SPLIT_TENSOR


def config_covariates(
    params_b: float, active_params_b: float, spec: dict[str, Any], precision: str, n_gpus: int
) -> np.ndarray:
    """Standardised configuration covariates (order of ``models.config.CONFIG_COVARIATES``)."""
    active = active_params_b if np.isfinite(active_params_b) and active_params_b > 0 else params_b
    raw = np.array(
        [
            np.log(params_b),
            np.log(min(active / params_b, 1.0)),
            np.log(spec["tdp_w"]),
            np.log(spec["bf16_dense_tflops"] * 1e12 / (spec["mem_bw_gbs"] * 1e9)),
            1.0 if "fp8" in str(precision).lower() else 0.0,
            np.log2(max(int(n_gpus), 1)),
        ]
    )
    return (raw - COVARIATE_CENTER) / COVARIATE_SCALE


def config_id(llm: str, gpu_model: str, parallel: str, precision: str) -> str:
    """Identifier of a configuration."""
    return f"{llm}|{gpu_model}|{parallel}|{precision}"


@dataclass
class _Config:
    llm: str
    gpu_model: str
    parallel: str
    precision: str
    n_gpus: int
    tensor_parallel: int
    params_b: float
    active_params_b: float
    tdp_w: float
    x: np.ndarray

    @property
    def id(self) -> str:
        return config_id(self.llm, self.gpu_model, self.parallel, self.precision)


def _default_spec_fn() -> Callable[[str], dict[str, Any]]:
    from wattscape.models.hardware import gpu_spec

    return gpu_spec


# --- per-run reduction ---------------------------------------------------------------------------
def workload_covariates(batch, prompt, output) -> dict[str, Any]:
    """The segment covariates (``dims.COVARIATES``) of a workload: log2 batch, log2 mean context tokens
    (``prompt + output / 2``) and log2 output tokens; NaN where a count is unknown or not positive.  Scalars
    or arrays."""
    b, p, o = (np.asarray(v, dtype=float) for v in (batch, prompt, output))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "log2_batch": np.where(b > 0, np.log2(b), np.nan),
            "log2_context_tokens": np.where(
                (p > 0) & (o > 0), np.log2(D.context_tokens(p, o)), np.nan
            ),
            "log2_output_tokens": np.where(o > 0, np.log2(o), np.nan),
        }


def _stretches(codes: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, stop, code) of maximal runs of equal values."""
    if codes.size == 0:
        return []
    change = np.flatnonzero(np.diff(codes)) + 1
    starts = np.r_[0, change]
    stops = np.r_[change, codes.size]
    return [(int(a), int(b), int(codes[a])) for a, b in zip(starts, stops, strict=True)]


def reduce_run(
    run: xr.Dataset,
    requests: pd.DataFrame | None,
    tdp_w: float,
    states: Sequence[str] = D.STATES_ACTIVE,
    bin_edges: np.ndarray = BIN_EDGES,
) -> dict[str, Any]:
    """Sufficient statistics of one run.

    Parameters
    ----------
    run : xr.Dataset
        ``power(gpu, time)`` W, ``state(time)`` codes, ``segment(time)`` inference index or -1.
    requests : DataFrame or None
        Inference log (``dims.REQUEST_COLUMNS``); ``request_id`` matches ``segment``.  Without it the
        workload covariates of active segments are NaN (then set to the reference) and dwell times come
        from the sample count.
    tdp_w : float
        Nameplate power of the card, W.
    states : sequence of str
        State names fitted; samples in other states are ignored.
    bin_edges : array
        Edges of the per-GPU power bins, fraction of TDP.

    Returns
    -------
    dict
        ``segments`` (DataFrame, one row per segment), ``lag`` (array (state, 4): n, Σe², Σe e₋₁, Σe₋₁²),
        ``counts`` (array (state, bin)), ``transitions`` (array (state, state_to)).
    """
    frac = np.asarray(run[D.POWER].transpose(D.GPU, D.TIME).values, dtype=np.float64) / float(tdp_w)
    code = np.asarray(run[D.STATE_VAR].values, dtype=np.int64)
    seg = (
        np.asarray(run[D.SEGMENT_VAR].values, dtype=np.int64)
        if D.SEGMENT_VAR in run
        else np.full(code.size, -1)
    )
    times = np.asarray(run[D.TIME].values)
    period = float(run.attrs.get("sample_period_s", np.nan))
    if not np.isfinite(period) and times.size > 1:
        period = float(np.median(np.diff(times).astype("timedelta64[ns]").astype(np.int64)) / 1e9)
    state_index = {D.state_code(s): i for i, s in enumerate(states)}
    n_s = len(states)
    valid = np.isfinite(frac).all(axis=0)

    # key of each sample: (state, segment); idle stretches get their own ids, active uses the log's id
    key = np.full(code.size, -1, dtype=np.int64)
    kinds: list[tuple[int, int, int, int]] = []  # (state index, segment id, start, stop) of each piece
    for a, b, c in _stretches(code):
        if c not in state_index:
            continue
        if c == D.STATE_CODES[D.IDLE]:
            kinds.append((state_index[c], -1, a, b))
        else:
            for a2, b2, sid in _stretches(seg[a:b]):
                if sid >= 0:
                    kinds.append((state_index[c], sid, a + a2, a + b2))
    # merge pieces of the same active segment (rare: a segment interrupted by an excluded sample)
    groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
    order: list[tuple[int, int]] = []
    for i, (s, sid, a, b) in enumerate(kinds):
        k = (s, sid if sid >= 0 else -(i + 1))
        if k not in groups:
            groups[k] = []
            order.append(k)
        groups[k].append((a, b))

    req = None
    if requests is not None and len(requests):
        req = requests.set_index("request_id")
    lag = np.zeros((n_s, 4))
    counts = np.zeros((n_s, len(bin_edges) - 1))
    rows = []
    for k, (s, sid) in enumerate(order):
        pieces = groups[(s, sid)]
        idx = np.concatenate([np.arange(a, b) for a, b in pieces])
        idx = idx[valid[idx]]
        if idx.size == 0:
            continue
        key[idx] = k
        x = frac[:, idx]  # (gpu, n)
        level = float(x.mean())
        # within-segment residual of the GPU-mean around its segment mean; lag pairs only inside a piece
        xm = x.mean(axis=0)
        e = xm - level
        consecutive = np.diff(idx) == 1
        e1, e0 = e[1:][consecutive], e[:-1][consecutive]
        lag[s] += [e1.size, (e1**2).sum(), (e1 * e0).sum(), (e0**2).sum()]
        counts[s] += np.histogram(np.clip(x, bin_edges[0], bin_edges[-1] - 1e-9), bins=bin_edges)[0]
        duration = idx.size * period
        batch = prompt = output = np.nan
        if sid >= 0 and req is not None and sid in req.index:
            r = req.loc[sid]
            batch, prompt, output = (
                float(r["batch_size"]),
                float(r["prompt_tokens"]),
                float(r["output_tokens"]),
            )
            if pd.notna(r["end"]) and pd.notna(r["start"]):
                duration = float((pd.Timestamp(r["end"]) - pd.Timestamp(r["start"])).total_seconds())
        first = min(a for a, _ in pieces)
        rows.append(
            {
                "state_index": s,
                "segment_id": sid,
                "start_index": first,
                "level": level,
                "n_samples": int(idx.size),
                "duration_s": duration,
                **{k: float(v) for k, v in workload_covariates(batch, prompt, output).items()},
            }
        )
    segments = pd.DataFrame(rows)
    transitions = np.zeros((n_s, n_s))
    if len(segments):
        seq = segments.sort_values("start_index")["state_index"].to_numpy()
        # successive stretches of different states (consecutive inferences pass through a short idle)
        for a, b in itertools.pairwise(seq):
            if a != b:
                transitions[a, b] += 1
            elif states[a] != D.IDLE and state_index.get(D.STATE_CODES[D.IDLE]) is not None:
                i = state_index[D.STATE_CODES[D.IDLE]]
                transitions[a, i] += 1
                transitions[i, b] += 1
    return {
        "segments": segments,
        "lag": lag,
        "counts": counts,
        "transitions": transitions,
        "period_s": period,
    }


def log_call_runs(
    calls: pd.DataFrame,
    spec_fn: Callable[[str], dict[str, Any]],
    states: Sequence[str] = D.STATES_ACTIVE,
) -> list[dict[str, Any]]:
    """Runs of logged inferences without a trace, in the form :func:`build_fit_data` takes.

    Each inference is one ``active`` segment: level = ``gpu_energy_j / runtime_s / n_gpus / TDP``,
    dwell = ``runtime_s``, the workload covariates of :func:`reduce_run`, ``n_samples`` 0 (no power
    samples).  No lag products, bins or transitions.  Without an ``active`` state in ``states`` (a
    prefill/decode label set, which a whole call cannot inform) there are none.

    Parameters
    ----------
    calls : DataFrame
        ``wattscape.inference.readers.energy_inference.LOG_CALL_COLUMNS``.
    spec_fn : callable
        ``gpu_spec(name) -> dict`` (the card's ``tdp_w``).
    states : sequence of str
        The state label set.
    """
    if calls is None or len(calls) == 0 or D.ACTIVE not in states:
        return []
    states = list(states)
    n_s = len(states)
    runs = []
    for run_id, g in calls.groupby("run_id", sort=True):
        first = g.iloc[0]
        n = int(first["n_gpus"])
        tdp = float(spec_fn(str(first["gpu_model"]))["tdp_w"])
        runtime = g["runtime_s"].to_numpy(dtype=float)
        batch = g["batch_size"].to_numpy(dtype=float)
        prompt = g["prompt_tokens"].to_numpy(dtype=float)
        output = g["output_tokens"].to_numpy(dtype=float)
        segments = pd.DataFrame(
            {
                "state_index": states.index(D.ACTIVE),
                "segment_id": np.arange(len(g)),
                "start_index": np.arange(len(g)),
                "level": g["gpu_energy_j"].to_numpy(dtype=float) / runtime / n / tdp,
                "n_samples": 0,
                "duration_s": runtime,
                **workload_covariates(batch, prompt, output),
            }
        )
        runs.append(
            {
                "run_id": str(run_id),
                "llm": str(first["llm"]),
                "params_b": float(first["params_b"]),
                "active_params_b": float(first["active_params_b"]),
                "gpu_model": str(first["gpu_model"]),
                "n_gpus": n,
                "split": str(first["split"]),
                "tensor_parallel": int(first["tensor_parallel"]),
                "precision": DEFAULT_PRECISION,
                "stats": {
                    "segments": segments,
                    "lag": np.zeros((n_s, 4)),
                    "counts": np.zeros((n_s, len(BIN_EDGES) - 1)),
                    "transitions": np.zeros((n_s, n_s)),
                    "period_s": np.nan,
                },
            }
        )
    return runs


# --- FitData -------------------------------------------------------------------------------------
class FitData:
    """Sufficient statistics of everything the model is fitted to, as one ``xr.Dataset`` (``.ds``).

    Variables (dims)
    ----------------
    config_llm, config_gpu_model, config_parallel (config; index into llm / gpu_model / parallel);
    config_x (config, config_covariate); config_tdp_w, config_n_gpus, config_tensor_parallel (config);
    run_config, run_n_gpus, run_period_s (run); seg_run, seg_state, seg_level, seg_n, seg_duration_s
    (segment); seg_x (segment, covariate: log2 workload, NaN where unknown); lag_n, lag_ee, lag_el, lag_ll
    (run, state); counts (run, state, bin); transitions (run, state, state_to); sum_config, sum_task,
    sum_source, sum_frac, sum_log2_batch, sum_itl_s, sum_batch (summary).
    """

    def __init__(self, ds: xr.Dataset):
        self.ds = ds

    # convenience ------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (
            f"FitData(configs={self.ds.sizes.get(D.CONFIG, 0)}, runs={self.ds.sizes.get(D.RUN, 0)}, "
            f"segments={self.ds.sizes.get(D.SEGMENT, 0)}, summaries={self.ds.sizes.get(SUMMARY, 0)})"
        )

    @property
    def states(self) -> tuple[str, ...]:
        return tuple(str(s) for s in self.ds[D.STATE].values)

    def coords(self) -> dict[str, list]:
        """Coordinates of the model dims (for ``pm.Model(coords=...)``)."""
        out = {}
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
        ):
            out[d] = [str(v) for v in self.ds[d].values]
        return out

    def to_dataset(self) -> xr.Dataset:
        return self.ds

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> FitData:
        return cls(ds)

    def config_table(self) -> pd.DataFrame:
        """One row per configuration: llm, gpu_model, parallel, precision, n_gpus, tdp_w."""
        ds = self.ds
        return pd.DataFrame(
            {
                "config": ds[D.CONFIG].values.astype(str),
                "llm": ds[D.LLM].values.astype(str)[ds["config_llm"].values],
                "gpu_model": ds[D.GPU_MODEL].values.astype(str)[ds["config_gpu_model"].values],
                "parallel": ds[D.PARALLEL].values.astype(str)[ds["config_parallel"].values],
                "precision": ds["config_precision"].values.astype(str),
                "n_gpus": ds["config_n_gpus"].values,
                "tdp_w": ds["config_tdp_w"].values,
            }
        )


def _str_array(values: Iterable[str]) -> np.ndarray:
    return np.array([str(v) for v in values], dtype=object).astype(str)


def build_fit_data(
    runs: Sequence[dict[str, Any]],
    summaries: pd.DataFrame | None,
    *,
    states: Sequence[str] = D.STATES_ACTIVE,
    spec_fn: Callable[[str], dict[str, Any]] | None = None,
    covariate_ref: Sequence[float] = (5.0, 8.0, 8.0),
) -> FitData:
    """Assemble :class:`FitData` from reduced runs and configuration summaries.

    Parameters
    ----------
    runs : sequence of dict
        Each with keys ``run_id``, ``llm``, ``params_b``, ``active_params_b``, ``gpu_model``, ``n_gpus``,
        ``split``, ``tensor_parallel``, ``precision`` (optional) and ``stats`` (output of
        :func:`reduce_run`).
    summaries : DataFrame or None
        ``dims.CONFIG_SUMMARY_COLUMNS`` (+ optional ``median_itl_ms``, ``expert_parallel``).
    states : sequence of str
        The state label set.
    spec_fn : callable
        ``gpu_spec(name) -> dict`` (default ``wattscape.models.hardware.gpu_spec``).
    covariate_ref : sequence of float
        Reference workload (log2 batch, context, output tokens); unknown workload is set to it.
    """
    spec_fn = spec_fn or _default_spec_fn()
    configs: dict[str, _Config] = {}

    def add_config(llm, gpu_model, split, n_gpus, tp, precision, params_b, active_b) -> str:
        spec = spec_fn(gpu_model)
        par = parallel_label(split, n_gpus, tp)
        precision = str(precision) if isinstance(precision, str) and precision else DEFAULT_PRECISION
        cfg = _Config(
            llm=str(llm),
            gpu_model=str(gpu_model),
            parallel=par,
            precision=precision,
            n_gpus=int(n_gpus),
            tensor_parallel=int(tp) if np.isfinite(tp) else 1,
            params_b=float(params_b),
            active_params_b=float(active_b),
            tdp_w=float(spec["tdp_w"]),
            x=config_covariates(float(params_b), float(active_b), spec, precision, int(n_gpus)),
        )
        configs.setdefault(cfg.id, cfg)
        return cfg.id

    run_cfg, run_ids, run_n, run_period = [], [], [], []
    seg_frames = []
    lags, counts, trans = [], [], []
    for i, r in enumerate(runs):
        cid = add_config(
            r["llm"],
            r["gpu_model"],
            r["split"],
            r["n_gpus"],
            r.get("tensor_parallel", 1),
            r.get("precision") or DEFAULT_PRECISION,
            r["params_b"],
            r.get("active_params_b", r["params_b"]),
        )
        st = r["stats"]
        run_cfg.append(cid)
        run_ids.append(str(r["run_id"]))
        run_n.append(int(r["n_gpus"]))
        run_period.append(float(st["period_s"]))
        segs = st["segments"].copy()
        segs["run"] = i
        seg_frames.append(segs)
        lags.append(st["lag"])
        counts.append(st["counts"])
        trans.append(st["transitions"])

    sums = pd.DataFrame() if summaries is None else summaries.reset_index(drop=True)
    sum_cfg, sum_task, sum_source = [], [], []
    for row in sums.itertuples(index=False):
        arch = getattr(row, "architecture", D.ARCH_DENSE)
        ep = float(getattr(row, "expert_parallel", np.nan) or np.nan)
        split = getattr(row, "split", None)
        if not isinstance(split, str) or split not in D.SPLITS:
            split = summary_split(row.n_gpus, float(row.tensor_parallel), arch, ep)
        active = float(row.active_params_b) if pd.notna(row.active_params_b) else float(row.params_b)
        sum_cfg.append(
            add_config(
                row.llm,
                row.gpu_model,
                split,
                row.n_gpus,
                float(row.tensor_parallel),
                row.precision,
                row.params_b,
                active,
            )
        )
        task = str(row.task) if pd.notna(row.task) and str(row.task) else "unknown"
        sum_task.append(f"{row.source}:{task}")
        sum_source.append(str(row.source))

    cfg_ids = list(configs)
    cfg_list = [configs[c] for c in cfg_ids]
    llms = sorted({c.llm for c in cfg_list})
    gpus = sorted({c.gpu_model for c in cfg_list})
    pars = sorted({c.parallel for c in cfg_list})
    tasks = sorted(set(sum_task)) or ["none"]
    sources = sorted(set(sum_source)) or ["none"]
    n_s = len(states)
    segs = (
        pd.concat(seg_frames, ignore_index=True)
        if seg_frames
        else pd.DataFrame(columns=["state_index", "level", "n_samples", "duration_s", *D.COVARIATES, "run"])
    )
    seg_x = segs[list(D.COVARIATES)].to_numpy(dtype=float) if len(segs) else np.zeros((0, 3))
    seg_x = np.where(np.isfinite(seg_x), seg_x, np.asarray(covariate_ref, dtype=float))
    cfg_index = {c: i for i, c in enumerate(cfg_ids)}

    def col(name, default=np.nan):
        return sums[name].to_numpy(dtype=float) if name in sums else np.full(len(sums), default)

    n_gpus_sum = col("n_gpus", 1)
    tdp_sum = np.array([configs[c].tdp_w for c in sum_cfg]) if sum_cfg else np.zeros(0)
    avg_b = col("avg_batch_size")
    batch = np.where(np.isfinite(avg_b) & (avg_b > 0), avg_b, col("batch", 1))
    ds = xr.Dataset(
        {
            "config_llm": (D.CONFIG, np.array([llms.index(c.llm) for c in cfg_list], dtype=np.int64)),
            "config_gpu_model": (
                D.CONFIG,
                np.array([gpus.index(c.gpu_model) for c in cfg_list], dtype=np.int64),
            ),
            "config_parallel": (
                D.CONFIG,
                np.array([pars.index(c.parallel) for c in cfg_list], dtype=np.int64),
            ),
            "config_precision": (D.CONFIG, _str_array(c.precision for c in cfg_list)),
            "config_n_gpus": (D.CONFIG, np.array([c.n_gpus for c in cfg_list], dtype=np.int64)),
            "config_tensor_parallel": (
                D.CONFIG,
                np.array([c.tensor_parallel for c in cfg_list], dtype=np.int64),
            ),
            "config_params_b": (D.CONFIG, np.array([c.params_b for c in cfg_list])),
            "config_active_params_b": (D.CONFIG, np.array([c.active_params_b for c in cfg_list])),
            "config_tdp_w": (D.CONFIG, np.array([c.tdp_w for c in cfg_list]), {D.UNITS: D.WATT}),
            "config_x": ((D.CONFIG, CONFIG_COVARIATE), np.array([c.x for c in cfg_list]).reshape(-1, 6)),
            "run_config": (D.RUN, np.array([cfg_index[c] for c in run_cfg], dtype=np.int64)),
            "run_n_gpus": (D.RUN, np.array(run_n, dtype=np.int64)),
            "run_period_s": (D.RUN, np.array(run_period), {D.UNITS: D.SECOND}),
            "seg_run": (D.SEGMENT, segs["run"].to_numpy(dtype=np.int64)),
            "seg_state": (D.SEGMENT, segs["state_index"].to_numpy(dtype=np.int64)),
            "seg_level": (D.SEGMENT, segs["level"].to_numpy(dtype=float), {D.UNITS: "fraction of TDP"}),
            "seg_n": (D.SEGMENT, segs["n_samples"].to_numpy(dtype=np.int64)),
            "seg_duration_s": (D.SEGMENT, segs["duration_s"].to_numpy(dtype=float), {D.UNITS: D.SECOND}),
            "seg_x": ((D.SEGMENT, D.COVARIATE), seg_x),
            "lag_n": ((D.RUN, D.STATE), np.array(lags).reshape(-1, n_s, 4)[..., 0]),
            "lag_ee": ((D.RUN, D.STATE), np.array(lags).reshape(-1, n_s, 4)[..., 1]),
            "lag_el": ((D.RUN, D.STATE), np.array(lags).reshape(-1, n_s, 4)[..., 2]),
            "lag_ll": ((D.RUN, D.STATE), np.array(lags).reshape(-1, n_s, 4)[..., 3]),
            "counts": ((D.RUN, D.STATE, D.BIN), np.array(counts).reshape(-1, n_s, len(BIN_EDGES) - 1)),
            "transitions": ((D.RUN, D.STATE, D.STATE_TO), np.array(trans).reshape(-1, n_s, n_s)),
            "sum_config": (SUMMARY, np.array([cfg_index[c] for c in sum_cfg], dtype=np.int64)),
            "sum_task": (SUMMARY, np.array([tasks.index(t) for t in sum_task], dtype=np.int64)),
            "sum_source": (SUMMARY, np.array([sources.index(s) for s in sum_source], dtype=np.int64)),
            "sum_frac": (
                SUMMARY,
                col("avg_power_w") / np.maximum(n_gpus_sum, 1) / np.where(tdp_sum > 0, tdp_sum, 1),
            ),
            "sum_log2_batch": (SUMMARY, np.log2(np.maximum(batch, 1.0))),
            "sum_batch": (SUMMARY, batch),
            "sum_itl_s": (SUMMARY, col("median_itl_ms") / 1e3, {D.UNITS: D.SECOND}),
            "bin_lo": (D.BIN, BIN_EDGES[:-1]),
            "bin_hi": (D.BIN, BIN_EDGES[1:]),
        },
        coords={
            D.CONFIG: _str_array(cfg_ids),
            D.LLM: _str_array(llms),
            D.GPU_MODEL: _str_array(gpus),
            D.PARALLEL: _str_array(pars),
            TASK: _str_array(tasks),
            SOURCE: _str_array(sources),
            D.RUN: _str_array(run_ids),
            D.STATE: _str_array(states),
            D.STATE_TO: _str_array(states),
            D.COVARIATE: _str_array(D.COVARIATES),
            CONFIG_COVARIATE: _str_array(CONFIG_COVARIATES),
            D.BIN: np.arange(len(BIN_EDGES) - 1),
            D.SEGMENT: np.arange(len(segs)),
            SUMMARY: np.arange(len(sums)),
        },
        attrs={"covariate_ref": list(map(float, covariate_ref)), "description": "wattscape fit data"},
    )
    return FitData(ds)


def fit_data_from_catalog(
    catalog: Any,
    *,
    holdout_runs: Iterable[str] = (),
    holdout_llms: Iterable[str] = (),
    exclude_gpus: Iterable[str] = (),
    summaries: pd.DataFrame | None = None,
    use_summaries: bool = True,
    states: Sequence[str] = D.STATES_ACTIVE,
    spec_fn: Callable[[str], dict[str, Any]] | None = None,
    covariate_ref: Sequence[float] = (5.0, 8.0, 8.0),
    progress: bool = True,
    log_calls: pd.DataFrame | None = None,
    use_log_calls: bool = True,
) -> FitData:
    """Reduce every usable run of a catalog (its configuration summaries and its logged inferences without a
    trace) to :class:`FitData`.

    Parameters
    ----------
    catalog : object
        ``.index`` (DataFrame: run_id, llm, gpu_model, n_gpus, split, status, ...), ``.run(run_id)``,
        ``.requests(run_id)``, ``.configs()`` (see ``wattscape.inference.catalog``).
    holdout_runs, holdout_llms, exclude_gpus : iterables of str
        Runs, LLMs (in runs, logged inferences and summaries) and GPU models (cards) left out of the fit.
    summaries : DataFrame, optional
        Configuration summaries to use instead of ``catalog.configs()``.
    use_summaries : bool
        Include configuration-level evidence.
    states, spec_fn, covariate_ref : see :func:`build_fit_data`.
    progress : bool
        Show a progress bar over runs.
    log_calls : DataFrame, optional
        Logged inferences without a trace to use instead of ``catalog.log_calls()`` (a catalog without that
        method has none); the hold-outs above apply to them too.
    use_log_calls : bool
        Include logged inferences without a trace (:func:`log_call_runs`).
    """
    spec_fn = spec_fn or _default_spec_fn()
    holdout_runs, holdout_llms, exclude_gpus = set(holdout_runs), set(holdout_llms), set(exclude_gpus)
    index = catalog.index
    if "state_labels" in index:
        index = index[~index["state_labels"].astype(str).isin(["none", ""])]  # power-only runs
    wanted = set(states)
    runs = []
    for row in tqdm(list(index.itertuples(index=False)), desc="reducing runs", disable=not progress):
        if row.run_id in holdout_runs or row.llm in holdout_llms or row.gpu_model in exclude_gpus:
            continue
        ds = catalog.run(row.run_id)
        labels = str(ds.attrs.get("state_labels", ""))
        if not labels or labels == "none" or not wanted.issuperset(labels.split("/")):
            continue  # power-only runs, or a label set the model was not configured for
        try:
            req = catalog.requests(row.run_id)
        except (KeyError, FileNotFoundError):
            req = None
        tdp = float(spec_fn(ds.attrs.get("gpu_model", row.gpu_model))["tdp_w"])
        stats = reduce_run(ds, req, tdp, states)
        if stats["segments"].empty:
            continue
        attrs = ds.attrs
        runs.append(
            {
                "run_id": row.run_id,
                "llm": attrs.get("llm", row.llm),
                "params_b": float(attrs["params_b"]),
                "active_params_b": float(attrs.get("active_params_b", attrs["params_b"])),
                "gpu_model": attrs.get("gpu_model", row.gpu_model),
                "n_gpus": int(attrs.get("n_gpus", row.n_gpus)),
                "split": attrs.get("split", row.split),
                "tensor_parallel": int(attrs.get("tensor_parallel", 1)),
                "precision": attrs.get("precision", DEFAULT_PRECISION),
                "stats": stats,
            }
        )
    if use_log_calls:
        if log_calls is None and hasattr(catalog, "log_calls"):
            log_calls = catalog.log_calls()
        if log_calls is not None and len(log_calls):
            keep = ~(
                log_calls["run_id"].isin(holdout_runs)
                | log_calls["llm"].isin(holdout_llms)
                | log_calls["gpu_model"].isin(exclude_gpus)
            )
            runs += log_call_runs(log_calls[keep], spec_fn, states)
    if use_summaries and summaries is None:
        summaries = catalog.configs()
    if summaries is not None and use_summaries:
        summaries = summaries[
            ~summaries["llm"].isin(holdout_llms) & ~summaries["gpu_model"].isin(exclude_gpus)
        ]
        summaries = summaries[np.isfinite(summaries["avg_power_w"].to_numpy(dtype=float))]
    else:
        summaries = None
    return build_fit_data(runs, summaries, states=states, spec_fn=spec_fn, covariate_ref=covariate_ref)
