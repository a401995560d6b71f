"""The four naive baselines of ``PROTOCOL.md``, each a synthetic power series on the measured time grid.

Every baseline returns an ``xr.DataArray`` ``power(time)`` of the configuration's **total** GPU power (W)
on the measured run's own time stamps, so it is scored by exactly the same code as the model
(:func:`wattscape.inference.metrics.score`).

``tdp``
    Nameplate: constant ``n_gpus × TDP`` of the exact card (PCIe and SXM differ: 250 vs 400 W for an
    A100-40GB) from ``models/gpu_specs.csv``, plus ``non_gpu_w`` (0 by default: the measured series here
    are GPU-only ``nvidia-smi`` power; the reference adds 1,000 W per 8-GPU node at node level).
``mean``
    Constant = the time-weighted mean per-GPU power of the training runs of the nearest pooled group, × n
    GPUs.  Pooling order (first level with at least one training run wins): same configuration (LLM,
    card, n GPUs) → same card and n GPUs → same card → same GPU generation (``gpu_specs.csv`` column
    ``generation``: PCIe and SXM of one chip pool together here) → all training runs.  The level used is
    in the output's ``pool`` attribute.
``mean_generation``
    Diagnostic variant of ``mean`` pooled by GPU generation only (the "mean of the same GPU type" figure
    of PROTOCOL.md).
``splitwise``
    Splitwise's constant power per phase (``power_model_constant.yaml``: per-GPU idle / prompt / token
    W, A100-80GB 63/400/250, H100-80GB 75/700/380) applied to a phase timeline.  Cards of the Ampere
    generation and older use the A100 figures, Hopper and newer the H100 figures, each **scaled by the
    ratio of the card's TDP to the reference card's TDP** (A100-SXM4-80GB 400 W, H100-SXM5-80GB 700 W):
    an A100-PCIe-40GB or a V100-PCIe (250 W) gets 39/250/156 W.  The timeline is, by default, the
    run's replayed workload: a sample is *active* while any logged inference/request runs
    (``[start, end)`` of the request table; a missing end is taken as the next start) and *idle*
    otherwise; a timeline of engine phases (e.g. from the generator) can be passed instead.  Where only
    idle/active is known, active power = ``active_prompt_share × prompt + (1 − share) × token`` with the
    share 0 by default — **token watts**, as decode dominates the time of every inference here (≥ 32
    output tokens per prompt of ≤ a few hundred tokens).
``replay``
    Static trace replay: the most similar training run — same card, then same number of GPUs, then the
    nearest parameter count (log scale), then same LLM — its per-GPU power (as a function of seconds
    since its first sample) tiled end to end and cut to the measured duration, × n GPUs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import yaml
from wattscape.models import dims as D

#: Baselines of the protocol, in table order.
BASELINES = ("tdp", "mean", "splitwise", "replay")
#: Every baseline this module can produce.
ALL_BASELINES = (*BASELINES, "mean_generation")

#: Splitwise's constant per-phase power model, per GPU, W (``power_model_constant.yaml``), used when the
#: shared data folder is not beside the repository.
SPLITWISE_FALLBACK = {
    "a100-80gb": {"idle": 63.0, "prompt": 400.0, "token": 250.0},
    "h100-80gb": {"idle": 75.0, "prompt": 700.0, "token": 380.0},
}
#: Reference card (for the TDP ratio) of each Splitwise entry.
SPLITWISE_CARDS = {"a100-80gb": "A100-SXM4-80GB", "h100-80gb": "H100-SXM5-80GB"}
_OLD_GENERATIONS = {"volta", "turing", "ampere", "ada"}

# Local fallback of the card TDPs (W) while models/hardware.py is absent; the table there wins.
_TDP_FALLBACK = {
    "V100-PCIe-16GB": 250.0,
    "V100-SXM2-16GB": 300.0,
    "V100-SXM2-32GB": 300.0,
    "A100-PCIe-40GB": 250.0,
    "A100-SXM4-40GB": 400.0,
    "A100-PCIe-80GB": 300.0,
    "A100-SXM4-80GB": 400.0,
    "H100-PCIe-80GB": 350.0,
    "H100-SXM5-80GB": 700.0,
    "B200-SXM-180GB": 1000.0,
}


def _spec(gpu_model: str) -> dict:
    try:
        from wattscape.models.hardware import gpu_spec
    except ImportError:  # pragma: no cover - hardware table not installed
        if gpu_model not in _TDP_FALLBACK:
            raise KeyError(f"unknown GPU {gpu_model!r}; known: {sorted(_TDP_FALLBACK)}") from None
        return {"tdp_w": _TDP_FALLBACK[gpu_model], "generation": gpu_model.split("-")[0].lower()}
    return gpu_spec(gpu_model)


def gpu_tdp_w(gpu_model: str) -> float:
    """TDP of the exact card, W (``models/gpu_specs.csv``)."""
    return float(_spec(gpu_model)["tdp_w"])


def gpu_generation(gpu_model: str) -> str:
    """GPU generation of the exact card (``"volta"``, ``"ampere"``, ``"hopper"``, …)."""
    return str(_spec(gpu_model)["generation"])


# --- helpers -----------------------------------------------------------------------------------------
def _total(run: xr.Dataset | xr.DataArray) -> xr.DataArray:
    power = run[D.POWER] if isinstance(run, xr.Dataset) else run
    return power.sum(D.GPU, skipna=True) if D.GPU in power.dims else power


def _n_gpus(run: xr.Dataset) -> int:
    return int(run.attrs.get("n_gpus") or run[D.POWER].sizes.get(D.GPU, 1))


def _seconds(time: np.ndarray) -> np.ndarray:
    time = np.asarray(time)
    if np.issubdtype(time.dtype, np.datetime64):
        return (time - time[0]) / np.timedelta64(1, "s")
    return time.astype(float) - float(time[0])


def _constant(run: xr.Dataset, value_w: float, method: str, **attrs) -> xr.DataArray:
    time = run[D.TIME]
    da = xr.DataArray(
        np.full(time.size, float(value_w)), dims=[D.TIME], coords={D.TIME: time.values}, name=D.POWER
    )
    da.attrs = {D.UNITS: D.WATT, "method": method, **attrs}
    return da


def workload_window(run: xr.Dataset, requests: pd.DataFrame | None) -> xr.Dataset:
    """The part of a run its logged workload covers: first request start to last request end.

    Start-up (tokenizer, model loading) before the first logged inference and unlogged work after the
    last one are not driven by the workload, so neither a generator nor a baseline can be asked to
    reproduce them.  A run without requests is returned unchanged.
    """
    if requests is None or len(requests) == 0:
        return run
    start = requests["start"].to_numpy(dtype="datetime64[ns]").min()
    ends = requests["end"].to_numpy(dtype="datetime64[ns]")
    ends = ends[~np.isnat(ends)]
    end = ends.max() if ends.size else run[D.TIME].values[-1]
    time = run[D.TIME].values
    i0, i1 = np.searchsorted(time, start, side="left"), np.searchsorted(time, end, side="right")
    if i1 - i0 < 2:
        raise ValueError(f"run {run.attrs.get('run_id')!r}: its requests cover fewer than 2 samples")
    out = run.isel({D.TIME: slice(i0, i1)})
    out.attrs = {**run.attrs, "window": "workload"}
    return out


# --- training set ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingRun:
    """What the baselines keep of one training run: its configuration and per-GPU power series."""

    run_id: str
    llm: str
    gpu_model: str
    n_gpus: int
    params_b: float
    t_s: np.ndarray = field(repr=False)  # seconds since the first sample
    power_per_gpu_w: np.ndarray = field(repr=False)  # W, sum over GPUs / n_gpus, gaps interpolated

    @property
    def duration_s(self) -> float:
        """Length covered by the samples (last − first + median sample period), s."""
        dt = float(np.median(np.diff(self.t_s))) if self.t_s.size > 1 else 0.0
        return float(self.t_s[-1] - self.t_s[0] + dt)

    @property
    def mean_w(self) -> float:
        """Time-weighted mean per-GPU power, W (trapezoid over the samples)."""
        if self.t_s.size < 2:
            return float(self.power_per_gpu_w.mean())
        return float(np.trapezoid(self.power_per_gpu_w, self.t_s) / (self.t_s[-1] - self.t_s[0]))

    @property
    def generation(self) -> str:
        return gpu_generation(self.gpu_model)

    @classmethod
    def from_dataset(cls, run: xr.Dataset) -> TrainingRun:
        """Summarise a run dataset (``power(gpu, time)`` W, attrs of :data:`dims.RUN_ATTRS`)."""
        a = run.attrs
        n = _n_gpus(run)
        t = _seconds(run[D.TIME].values)
        total = _total(run).values.astype(float)
        ok = np.isfinite(total)
        if not ok.any():
            raise ValueError(f"run {a.get('run_id')!r} has no finite power sample")
        total = np.interp(t, t[ok], total[ok])
        return cls(
            run_id=str(a["run_id"]),
            llm=str(a.get("llm", "")),
            gpu_model=str(a["gpu_model"]),
            n_gpus=n,
            params_b=float(a.get("params_b", np.nan)),
            t_s=t,
            power_per_gpu_w=total / n,
        )


@dataclass(frozen=True)
class TrainingSet:
    """The training runs the ``mean`` and ``replay`` baselines may use (never the scored run)."""

    runs: tuple[TrainingRun, ...]

    @classmethod
    def from_datasets(cls, runs: Iterable[xr.Dataset]) -> TrainingSet:
        """Build from run datasets."""
        return cls(tuple(TrainingRun.from_dataset(r) for r in runs))

    @classmethod
    def from_catalog(
        cls, catalog, run_ids: Iterable[str] | None = None, *, window: str = "workload"
    ) -> TrainingSet:
        """Build from a catalog (``.index`` with ``run_id``, ``.run``, ``.requests``), all runs by default.

        ``window="workload"`` keeps each run's :func:`workload_window` (as the scored runs are cut),
        ``"run"`` the whole trace.
        """
        ids = list(run_ids) if run_ids is not None else [str(r) for r in catalog.index["run_id"]]
        if window not in ("workload", "run"):
            raise ValueError(f"window must be 'workload' or 'run', got {window!r}")
        runs = []
        for rid in ids:
            run = catalog.run(rid)
            if window == "workload":
                run = workload_window(run, catalog.requests(rid))
            runs.append(run)
        return cls.from_datasets(runs)

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.runs]

    def without(self, run_ids: str | Iterable[str]) -> TrainingSet:
        """The set minus some runs (leave-one-run-out)."""
        drop = {run_ids} if isinstance(run_ids, str) else set(run_ids)
        return TrainingSet(tuple(r for r in self.runs if r.run_id not in drop))

    def __len__(self) -> int:
        return len(self.runs)


def _run_key(run: xr.Dataset) -> dict:
    a = run.attrs
    return {
        "run_id": str(a.get("run_id", "")),
        "llm": str(a.get("llm", "")),
        "gpu_model": str(a["gpu_model"]),
        "n_gpus": _n_gpus(run),
        "params_b": float(a.get("params_b", np.nan)),
    }


class NoTrainingRunError(ValueError):
    """A baseline that needs training runs (``mean``, ``replay``) has none besides the scored run."""


def _usable(training: TrainingSet, run_id: str) -> list[TrainingRun]:
    runs = [r for r in training.runs if r.run_id != run_id]
    if not runs:
        raise NoTrainingRunError(
            f"no training run other than {run_id!r}: the mean and replay baselines need one"
        )
    return runs


# --- baselines ---------------------------------------------------------------------------------------
def tdp_baseline(run: xr.Dataset, *, non_gpu_w: float = 0.0) -> xr.DataArray:
    """Constant ``n_gpus × TDP(card) + non_gpu_w`` W on the run's time grid (see module docstring)."""
    key = _run_key(run)
    tdp = gpu_tdp_w(key["gpu_model"])
    return _constant(run, key["n_gpus"] * tdp + non_gpu_w, "tdp", tdp_w=tdp, non_gpu_w=non_gpu_w)


#: Pooling levels of the ``mean`` baseline, nearest first: (name, attributes that must match).
MEAN_POOLS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("configuration", ("llm", "gpu_model", "n_gpus")),
    ("card_and_n_gpus", ("gpu_model", "n_gpus")),
    ("card", ("gpu_model",)),
    ("generation", ("generation",)),
    ("all", ()),
)


def mean_power_baseline(
    run: xr.Dataset,
    training: TrainingSet,
    *,
    pools: Sequence[tuple[str, tuple[str, ...]]] = MEAN_POOLS,
    method: str = "mean",
) -> xr.DataArray:
    """Constant = time-weighted mean per-GPU power of the nearest pooled training group × n GPUs.

    Parameters
    ----------
    run : xr.Dataset
        The scored run (only its attributes and time grid are used).
    training : TrainingSet
        Training runs; the scored run is excluded even if present.
    pools : sequence of (name, attributes)
        Pooling levels, nearest first (default :data:`MEAN_POOLS`).
    method : str
        Name stored in the output's ``method`` attribute.
    """
    key = _run_key(run)
    key["generation"] = gpu_generation(key["gpu_model"])
    runs = _usable(training, key["run_id"])
    for name, attrs in pools:
        group = [r for r in runs if all(getattr(r, a) == key[a] for a in attrs)]
        if group:
            durations = np.array([r.duration_s for r in group])
            means = np.array([r.mean_w for r in group])
            per_gpu = float((means * durations).sum() / durations.sum())
            return _constant(
                run, per_gpu * key["n_gpus"], method, pool=name, pool_runs=",".join(r.run_id for r in group)
            )
    raise ValueError(f"no training run matches any pooling level for run {key['run_id']!r}")


@functools.cache
def splitwise_table(path: str | None = None) -> dict[str, dict[str, float]]:
    """Per-GPU idle/prompt/token watts of Splitwise's constant power model.

    Reads ``splitwise-sim-perf-model/power_model_constant.yaml`` of the shared data folder (``path`` or
    ``$WATTSCAPE_SHARED_DATA``, default ``../shared/data`` beside the repository), else the same figures
    kept in :data:`SPLITWISE_FALLBACK`.
    """
    import os

    if path is None:
        default = Path(__file__).resolve().parents[2] / "shared" / "data"
        root = Path(os.environ.get("WATTSCAPE_SHARED_DATA", default))
        path = str(root / "splitwise-sim-perf-model" / "power_model_constant.yaml")
    if not Path(path).is_file():
        return {k: dict(v) for k, v in SPLITWISE_FALLBACK.items()}
    raw = yaml.safe_load(Path(path).read_text())
    out: dict[str, dict[str, float]] = {}
    for phase, key in (("idle", "idle_power"), ("prompt", "prompt_power"), ("token", "token_power")):
        if key not in raw:
            raise KeyError(f"{path}: missing key {key!r}")
        for card, watts in raw[key].items():
            out.setdefault(str(card), {})[phase] = float(watts)
    return out


def splitwise_watts(gpu_model: str, table: dict | None = None) -> dict[str, float]:
    """Per-GPU idle/prompt/token W for a card: the Splitwise entry of its era, scaled by the TDP ratio."""
    table = table or splitwise_table()
    gen = gpu_generation(gpu_model)
    ref = "a100-80gb" if gen in _OLD_GENERATIONS else "h100-80gb"
    ratio = gpu_tdp_w(gpu_model) / gpu_tdp_w(SPLITWISE_CARDS[ref])
    return {phase: w * ratio for phase, w in table[ref].items()} | {"reference": ref, "tdp_ratio": ratio}


def phases_from_requests(time: np.ndarray, requests: pd.DataFrame) -> np.ndarray:
    """Idle/active state codes on ``time`` from a request table (active inside any ``[start, end)``).

    A missing ``end`` is taken as the next request's ``start`` (the last request: the end of the run).
    """
    time = np.asarray(time)
    state = np.full(time.size, D.STATE_CODES[D.IDLE], dtype=np.int8)
    if requests is None or len(requests) == 0:
        return state
    req = requests.sort_values("start")
    start = req["start"].to_numpy(dtype="datetime64[ns]")
    end = req["end"].to_numpy(dtype="datetime64[ns]")
    nxt = np.append(start[1:], time[-1] + np.timedelta64(1, "ns"))
    end = np.where(np.isnat(end), nxt, end)
    i0 = np.searchsorted(time, start, side="left")
    i1 = np.searchsorted(time, end, side="left")
    diff = np.zeros(time.size + 1, dtype=np.int64)
    np.add.at(diff, i0, 1)
    np.add.at(diff, i1, -1)
    state[np.cumsum(diff[:-1]) > 0] = D.STATE_CODES[D.ACTIVE]
    return state


def splitwise_baseline(
    run: xr.Dataset,
    requests: pd.DataFrame | None = None,
    *,
    phases: xr.DataArray | np.ndarray | None = None,
    active_prompt_share: float = 0.0,
    table: dict | None = None,
) -> xr.DataArray:
    """Splitwise constant power per phase on the run's replayed phase timeline (see module docstring).

    Parameters
    ----------
    run : xr.Dataset
        The scored run (attributes and time grid).
    requests : DataFrame, optional
        The run's request/inference table (:data:`dims.REQUEST_COLUMNS`): the default timeline.
    phases : array of state codes on the run's time grid, optional
        A phase timeline to use instead (``idle``/``prefill``/``decode``/``active``; ``excluded`` → idle).
    active_prompt_share : float
        Weight of prompt watts in the power of an ``active`` sample (token watts take the rest).
    table : dict, optional
        Splitwise table (default :func:`splitwise_table`).
    """
    key = _run_key(run)
    if phases is None:
        if requests is None:
            raise ValueError(f"run {key['run_id']!r}: the splitwise baseline needs requests or phases")
        codes = phases_from_requests(run[D.TIME].values, requests)
    else:
        codes = np.asarray(phases, dtype=np.int8)
        if codes.shape != (run.sizes[D.TIME],):
            raise ValueError(f"phases has shape {codes.shape}; expected ({run.sizes[D.TIME]},)")
    w = splitwise_watts(key["gpu_model"], table)
    active = active_prompt_share * w["prompt"] + (1 - active_prompt_share) * w["token"]
    per_code = {
        D.STATE_CODES[D.EXCLUDED]: w["idle"],
        D.STATE_CODES[D.IDLE]: w["idle"],
        D.STATE_CODES[D.PREFILL]: w["prompt"],
        D.STATE_CODES[D.DECODE]: w["token"],
        D.STATE_CODES[D.ACTIVE]: active,
    }
    per_gpu = np.array([per_code[int(c)] for c in range(-1, 4)])[codes.astype(int) + 1]
    da = xr.DataArray(
        per_gpu * key["n_gpus"], dims=[D.TIME], coords={D.TIME: run[D.TIME].values}, name=D.POWER
    )
    da.attrs = {
        D.UNITS: D.WATT,
        "method": "splitwise",
        "reference": w["reference"],
        "tdp_ratio": w["tdp_ratio"],
        "active_fraction": float(np.mean(codes > 0)),
    }
    return da


def most_similar_run(run: xr.Dataset, training: TrainingSet) -> TrainingRun:
    """The training run nearest to ``run``: same card, then same n GPUs, then nearest log-params, same LLM."""
    key = _run_key(run)
    runs = _usable(training, key["run_id"])

    def distance(r: TrainingRun) -> tuple:
        dp = abs(np.log(r.params_b) - np.log(key["params_b"]))
        dp = dp if np.isfinite(dp) else np.inf
        return (r.gpu_model != key["gpu_model"], r.n_gpus != key["n_gpus"], dp, r.llm != key["llm"], r.run_id)

    return min(runs, key=distance)


def replay_baseline(run: xr.Dataset, training: TrainingSet) -> xr.DataArray:
    """Static replay: the most similar training run's per-GPU power, tiled and cut, × n GPUs."""
    key = _run_key(run)
    src = most_similar_run(run, training)
    t = _seconds(run[D.TIME].values)
    period = src.duration_s
    y = np.interp(np.mod(t, period), src.t_s, src.power_per_gpu_w)
    da = xr.DataArray(y * key["n_gpus"], dims=[D.TIME], coords={D.TIME: run[D.TIME].values}, name=D.POWER)
    da.attrs = {D.UNITS: D.WATT, "method": "replay", "source_run": src.run_id}
    return da


def baseline(
    method: str,
    run: xr.Dataset,
    requests: pd.DataFrame | None = None,
    training: TrainingSet | None = None,
    **kwargs,
) -> xr.DataArray:
    """Dispatch to one baseline by name (one of :data:`ALL_BASELINES`)."""
    if method == "tdp":
        return tdp_baseline(run, **kwargs)
    if method == "splitwise":
        return splitwise_baseline(run, requests, **kwargs)
    if method in ("mean", "mean_generation", "replay") and training is None:
        raise ValueError(f"baseline {method!r} needs a training set")
    if method == "mean":
        return mean_power_baseline(run, training, **kwargs)
    if method == "mean_generation":
        pools = (("generation", ("generation",)), ("all", ()))
        return mean_power_baseline(run, training, pools=pools, method="mean_generation")
    if method == "replay":
        return replay_baseline(run, training)
    raise ValueError(f"unknown baseline {method!r}; known: {ALL_BASELINES}")
