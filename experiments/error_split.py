"""Where the held-out energy error comes from: busy time (runtime) versus power level while busy.

For every energy-inference run with a log, the fold fitted without it (the fold fits of
``experiments.accuracy``: same seeds, same ``--cache`` file names) replays the run's logged workload
(``--draws`` posterior-predictive traces on the run's workload window, the replay seed of
``experiments.accuracy``), and the energy error of that replay is split into a runtime part and a level
part.

On the run's own time grid (samples ``t``, uniform period), with busy samples those inside some
``[start, end)`` interval (measured: the logged calls; synthetic: each draw's replayed calls,
:func:`wattscape.generation.replay.replay_timeline`), every series obeys exactly

    mean power  P = b·L + (1 − b)·I

with ``b`` the busy fraction (busy samples / samples), ``L`` the mean power over busy samples and ``I`` the
mean power over idle samples (total W over the configuration's GPUs).  Per run:

- ``busy_meas`` = ``b_m``; ``busy_syn`` = ``b_s`` (median over draws); ``busy_ratio = b_s / b_m``;
- ``service_ratio`` = median over draws of ``Σ (end − start)`` of the replayed calls over that of the
  logged calls: the runtime the fold predicts for the run's calls, before the drive turns it into busy
  time.  A saturated loop (``b_m`` ≈ 1) driven open loop cannot be busy longer than measured, so only a
  service ratio below 1 costs busy time; one above 1 queues the calls and is cut at the run's end;
- ``level_meas_w`` = ``L_m``, ``level_syn_w`` = ``L_s`` (median over draws), ``level_ratio = L_s / L_m``;
  ``idle_meas_w`` = ``I_m``, ``idle_syn_w`` = ``I_s`` (median over draws);
- ``energy_error_pct`` = ``100·(median_draws P_s / P_m − 1)``, signed: the run energy of the
  posterior-predictive median against the measured one on the native grid (measured gaps interpolated), i.e.
  ``energy_error_signed_pct`` of ``experiments.accuracy`` at the native sample period (not its 1 s windows);
- ``explained_pct`` = ``100·(b_s·L_s + (1 − b_s)·I_s) / P_m − 100``: the error the medians of the three
  factors reproduce; ``unexplained_pct`` = ``energy_error_pct − explained_pct`` (median of a product is not
  the product of the medians);
- an exact additive split of ``explained_pct``, changing one factor at a time from the measurement towards
  the replay, in this order: the idle level, the busy time, the busy level::

      idle_part_pct  = 100·(1 − b_m)·(I_s − I_m) / P_m     # idle power, over the measured idle time
      busy_part_pct  = 100·(b_s − b_m)·(L_m − I_s) / P_m   # runtime: each busy second lost (added) falls
                                                           # to (comes from) the replay's idle level
      level_part_pct = 100·b_s·(L_s − L_m) / P_m           # level: busy power, over the replayed busy time

  ``idle_part_pct + busy_part_pct + level_part_pct = explained_pct``.  Idle goes first because the logged
  calls of these runs are nearly back to back (``b_m`` ≈ 1): ``I_m`` is then the mean of a few gaps between
  calls, not an idle level, and the busy time the replay loses is spent at the replay's idle level.  A run
  with no idle sample on one side has no idle mean there: the other side's stands in (its idle weight is 0).

``--hold`` chooses the folds: ``run`` (default) the leave-one-run-out folds of ``experiments.accuracy``;
``llm``, ``gpu_card`` or ``n_gpus`` the group folds of ``experiments.generalisation`` (every run of the
held-out LLM, card or GPU count out of the fit, same cache labels and seeds), each of the group's runs with a
log split as above; then the report adds a table per held-out group (medians of its runs).

Writes ``results/<name>.csv`` (one row per run) and ``results/<name>.md`` (per-run table, medians, a reading
generated from the numbers).  ``--models-from DIR`` scores saved fold fits ``DIR/<run_id>-<mode>-s<seed>.nc``
as they are (:meth:`PowerModel.load`, which refuses a file whose model id this package does not reproduce)
instead of asking ``experiments._common.fit_fold`` (which refits such a file).

Usage::

    python -m experiments.error_split --fit nuts --cache catalog/fits        # every run, cached NUTS folds
    python -m experiments.error_split --fit nuts --models-from catalog/fits  # saved folds only, never refit
    python -m experiments.error_split --fit nuts --hold llm --cache catalog/fits  # leave-one-LLM-out folds
    python -m experiments.error_split --quick                                # CI-sized: 2 runs, 10 draws
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm
from wattscape.inference import baselines as B
from wattscape.inference import evaluate as E
from wattscape.inference import metrics as M
from wattscape.models import dims as D

from experiments import _common as C
from experiments import generalisation as G

NAME = "error_split"
#: ``--hold`` choices: leave-one-run-out, or a group protocol of ``experiments.generalisation``.
HOLDS = ("run", *G.TS_PROTOCOLS)
QUICK_RUNS = 2
QUICK_DRAWS = 10
#: Ratios outside [1 − TOL, 1 + TOL] are counted as off in the generated reading.
TOL = 0.1
#: Columns of ``<name>.csv``, in order.
COLUMNS = (
    "run_id",
    "hold",
    "group",
    "llm",
    "gpu_model",
    "n_gpus",
    "n_requests",
    "n_samples",
    "duration_s",
    "n_draws",
    "busy_meas",
    "busy_syn",
    "busy_ratio",
    "service_ratio",
    "level_meas_w",
    "level_syn_w",
    "level_ratio",
    "idle_meas_w",
    "idle_syn_w",
    "idle_ratio",
    "energy_meas_j",
    "energy_error_pct",
    "explained_pct",
    "busy_part_pct",
    "level_part_pct",
    "idle_part_pct",
    "unexplained_pct",
    "model_source",
)


# --- pure computation --------------------------------------------------------------------------------
def _offsets(x, t0) -> np.ndarray:
    """Float offsets of ``x`` from ``t0``: ns for datetime64 input (NaT → NaN), as is for numbers."""
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.datetime64):
        return (x.astype("datetime64[ns]") - np.datetime64(t0, "ns")) / np.timedelta64(1, "ns")
    return x.astype(float) - float(t0)


def busy_mask(time, starts, ends) -> np.ndarray:
    """Which samples of ``time`` lie inside some interval ``[start, end)``.

    Parameters
    ----------
    time : array (time,)
        Sample times, increasing (datetime64 or float seconds).
    starts, ends : array (..., request)
        Interval bounds, same kind as ``time``; intervals with a missing bound (NaT/NaN) are ignored.
        Intervals may overlap.

    Returns
    -------
    ndarray of bool (..., time)
        ``#{start ≤ t} − #{end ≤ t} > 0`` per sample (the number of intervals containing ``t``).

    Raises
    ------
    ValueError
        When shapes differ or an interval ends before it starts.
    """
    time = np.asarray(time)
    if time.ndim != 1 or time.size == 0:
        raise ValueError(f"time must be a non-empty 1-D array, got shape {time.shape}")
    starts, ends = np.asarray(starts), np.asarray(ends)
    if starts.shape != ends.shape or starts.ndim < 1:
        raise ValueError(f"starts {starts.shape} and ends {ends.shape} must have the same (…, request) shape")
    t0 = time[0]
    t = _offsets(time, t0)
    s = _offsets(starts, t0).reshape(-1, starts.shape[-1])
    e = _offsets(ends, t0).reshape(-1, ends.shape[-1])
    ok = np.isfinite(s) & np.isfinite(e)
    if np.any(e[ok] < s[ok]):
        k = np.flatnonzero((e < s) & ok)[0]
        raise ValueError(f"interval {np.unravel_index(k, s.shape)} ends before it starts")
    out = np.empty((s.shape[0], t.size), dtype=bool)
    for i in range(s.shape[0]):
        si, ei = np.sort(s[i][ok[i]]), np.sort(e[i][ok[i]])
        out[i] = np.searchsorted(si, t, side="right") - np.searchsorted(ei, t, side="right") > 0
    return out.reshape((*starts.shape[:-1], t.size))


def mean_where(values, mask) -> np.ndarray:
    """Mean of ``values`` over the ``True`` samples of ``mask`` along the last axis (NaN where none)."""
    values, mask = np.asarray(values, float), np.asarray(mask, bool)
    n = mask.sum(axis=-1)
    total = np.where(mask, values, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def service_ratio(starts_m, ends_m, starts_s, ends_s) -> float:
    """Median over draws of the replayed calls' total service time over the logged calls' total.

    Parameters
    ----------
    starts_m, ends_m : array (request,)
        Logged call bounds (datetime64 or float seconds); calls with a missing bound are left out.
    starts_s, ends_s : array (draw, request)
        Each draw's replayed call bounds, same kind; calls with a missing bound are left out.

    Returns
    -------
    float
        ``median_draws Σ (end_s − start_s) / Σ (end_m − start_m)``.

    Raises
    ------
    ValueError
        When the logged calls have no positive total service time, or a call ends before it starts.
    """

    def total(starts, ends) -> np.ndarray:
        starts, ends = np.asarray(starts), np.asarray(ends)
        if starts.shape != ends.shape:
            raise ValueError(f"starts {starts.shape} and ends {ends.shape} must have the same shape")
        if np.issubdtype(starts.dtype, np.datetime64):
            d = (ends.astype("datetime64[ns]") - starts.astype("datetime64[ns]")) / np.timedelta64(1, "s")
        else:
            d = ends.astype(float) - starts.astype(float)
        if np.any(d[np.isfinite(d)] < 0):
            raise ValueError("a call ends before it starts")
        return np.nansum(d, axis=-1)

    measured = float(total(starts_m, ends_m))
    if not measured > 0:
        raise ValueError(f"the logged calls' total service time {measured:g} is not positive")
    return float(np.median(np.atleast_1d(total(starts_s, ends_s)))) / measured


def split_energy(measured, synthetic, busy_measured, busy_synthetic) -> dict[str, float]:
    """Split the energy error of synthetic traces into busy-time, busy-level and idle-level parts.

    Parameters
    ----------
    measured : array (time,)
        Measured total power, W, gap-free.
    synthetic : array (draw, time)
        Synthetic total power, W, on the same uniform grid.
    busy_measured : bool array (time,)
        Measured busy samples (:func:`busy_mask` of the logged calls).
    busy_synthetic : bool array (draw, time)
        Each draw's busy samples (:func:`busy_mask` of its replayed calls).

    Returns
    -------
    dict
        ``busy_meas``, ``busy_syn``, ``busy_ratio``, ``level_meas_w``, ``level_syn_w``, ``level_ratio``,
        ``idle_meas_w``, ``idle_syn_w``, ``idle_ratio``, ``energy_error_pct``, ``explained_pct``,
        ``busy_part_pct``, ``level_part_pct``, ``idle_part_pct``, ``unexplained_pct`` (module docstring);
        synthetic quantities are medians over draws.
    """
    x = np.asarray(measured, float)
    y = np.atleast_2d(np.asarray(synthetic, float))
    bm = np.asarray(busy_measured, bool)
    bs = np.atleast_2d(np.asarray(busy_synthetic, bool))
    if x.ndim != 1 or bm.shape != x.shape:
        raise ValueError(f"measured {x.shape} and busy_measured {bm.shape} must be the same 1-D shape")
    if y.shape[-1] != x.size or bs.shape != y.shape:
        raise ValueError(
            f"synthetic {y.shape} and busy_synthetic {bs.shape} must be (draw, {x.size}) like measured"
        )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("power must be finite (fill measured gaps first)")
    if not bm.any():
        raise ValueError("no measured sample is busy: no logged call covers the grid")
    p_m = float(x.mean())
    if p_m <= 0:
        raise ValueError(f"measured mean power {p_m:.3g} W is not positive")
    b_m, b_s = float(bm.mean()), float(np.median(bs.mean(axis=-1)))
    l_m, l_s = float(mean_where(x, bm)), float(np.nanmedian(mean_where(y, bs)))
    i_m = float(mean_where(x, ~bm))
    i_draws = mean_where(y, ~bs)
    i_s = float(np.nanmedian(i_draws)) if np.isfinite(i_draws).any() else float("nan")
    # an empty side has no idle mean; its idle weight is 0, so the other side's mean stands in
    i_m_eff = i_m if np.isfinite(i_m) else (i_s if np.isfinite(i_s) else 0.0)
    i_s_eff = i_s if np.isfinite(i_s) else i_m_eff
    idle_part = 100.0 * (1.0 - b_m) * (i_s_eff - i_m_eff) / p_m
    busy_part = 100.0 * (b_s - b_m) * (l_m - i_s_eff) / p_m
    level_part = 100.0 * b_s * (l_s - l_m) / p_m
    explained = 100.0 * (b_s * l_s + (1.0 - b_s) * i_s_eff) / p_m - 100.0
    error = 100.0 * (float(np.median(y.mean(axis=-1))) / p_m - 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "busy_meas": b_m,
            "busy_syn": b_s,
            "busy_ratio": b_s / b_m,
            "level_meas_w": l_m,
            "level_syn_w": l_s,
            "level_ratio": l_s / l_m,
            "idle_meas_w": i_m,
            "idle_syn_w": i_s,
            "idle_ratio": i_s / i_m if np.isfinite(i_m) and i_m != 0 else float("nan"),
            "energy_error_pct": error,
            "explained_pct": explained,
            "busy_part_pct": busy_part,
            "level_part_pct": level_part,
            "idle_part_pct": idle_part,
            "unexplained_pct": error - explained,
        }


# --- one run -----------------------------------------------------------------------------------------
def measured_total(run: xr.Dataset) -> np.ndarray:
    """The run's total power over its GPUs, W, on its own grid, gaps interpolated in time."""
    n_gpus = int(run.attrs.get("n_gpus") or run[D.POWER].sizes.get(D.GPU, 1))
    per_gpu = M.prepare_series(run[D.POWER], period_s=None, n_gpus=n_gpus)
    return per_gpu.values * n_gpus


def run_split(
    model, run: xr.Dataset, requests: pd.DataFrame, *, n_draws: int, seed: int, drive: str = "open"
) -> dict[str, float]:
    """Replay ``run``'s logged workload through ``model`` and split its energy error (:func:`split_energy`).

    Parameters
    ----------
    model : PowerModel or xr.Dataset
        A fitted model (its ``config_params`` for the run's configuration) or configuration parameter
        draws (``wattscape.models.params`` contract), as :func:`wattscape.generation.replay.replay_run`.
    run : xr.Dataset
        The measured run (normally its workload window), ``power`` (gpu, time), W.
    requests : DataFrame
        Its log: ``start``, ``end``, ``prompt_tokens``, ``output_tokens``, ``batch_size``; calls without a
        ``start`` are neither replayed nor counted busy.
    n_draws, seed, drive
        Posterior-predictive draws, seed of the parameter draws and the replay, replay drive.

    Returns
    -------
    dict
        :func:`split_energy`'s quantities plus ``n_requests``, ``n_samples``, ``duration_s``, ``n_draws``.
    """
    from wattscape.generation.replay import config_params_for, replay_params, replay_timeline

    time = np.asarray(run[D.TIME].values)
    req = requests[requests["start"].notna()]
    if len(req) == 0:
        raise ValueError(f"run {run.attrs.get('run_id')!r}: no logged call with a start time")
    params = config_params_for(model, run, n_draws, seed)
    synthetic = replay_params(params, run, requests, seed=seed, drive=drive)
    timeline = replay_timeline(params, run, requests, seed=seed, drive=drive)
    starts = req["start"].to_numpy(dtype="datetime64[ns]")
    if "end" not in req:
        raise KeyError(f"requests of run {run.attrs.get('run_id')!r} lack the column 'end'")
    ends = req["end"].to_numpy(dtype="datetime64[ns]")
    busy_m = busy_mask(time, starts, ends)
    busy_s = busy_mask(time, timeline["start"].values, timeline["end"].values)
    x = measured_total(run)
    y = synthetic.transpose(D.DRAW, D.TIME).values
    t = (time - time[0]) / np.timedelta64(1, "s")
    duration = float(t[-1] + np.median(np.diff(t))) if t.size > 1 else 0.0
    return {
        "n_gpus": int(run.attrs.get("n_gpus") or run[D.POWER].sizes.get(D.GPU, 1)),
        "n_requests": len(req),
        "n_samples": int(time.size),
        "duration_s": duration,
        "n_draws": int(y.shape[0]),
        "energy_meas_j": float(x.mean()) * duration,
        "service_ratio": service_ratio(starts, ends, timeline["start"].values, timeline["end"].values),
        **split_energy(x, y, busy_m, busy_s),
    }


# --- folds -------------------------------------------------------------------------------------------
def load_saved_fold(path: str | Path):
    """A saved fold fit as it is (:meth:`PowerModel.load`), with an error naming the file when refused.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When this package's ``PowerModel`` refuses the file (another model version or configuration).
    """
    from wattscape.models.hierarchical import PowerModel

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved fold {path}")
    try:
        return PowerModel.load(path)
    except (ValueError, KeyError) as err:  # load = from_idata(az.from_netcdf(path)): same checks
        msg = str(err.args[0] if err.args else err).removeprefix(f"{path}: ")
        raise ValueError(f"{path}: refused by this package's PowerModel: {msg}") from err


def fold_plans(catalog, ids: Sequence[str] | None, args) -> list[tuple[str, list[str], dict]]:
    """The folds to split: ``(group, runs to split, plan)``, the plan as ``generalisation.fold_plan``.

    ``--hold run``: one fold per run of ``ids`` (accuracy's fold, its seed and summaries); else one fold per
    held-out group of ``generalisation`` (``args.groups`` when given), splitting the group's runs with a log
    (only those in ``ids`` when ``ids`` is given).

    Raises
    ------
    KeyError
        Naming runs or groups the catalog does not have.
    """
    known = set(str(r) for r in catalog.index["run_id"])
    unknown = [r for r in ids or () if r not in known]
    if unknown:
        raise KeyError(f"runs not in the catalog {getattr(catalog, 'path', '')}: {unknown}")
    if args.hold == "run":
        summaries = None if args.models_from else C.catalog_summaries(catalog)  # accuracy's folds'
        log_calls = None if args.models_from else C.catalog_log_calls(catalog)
        return [(rid, [rid], {"held": [rid], "seed": C.fold_seed(catalog, rid, args.seed), "label": None,
                              "summaries": summaries, "log_calls": log_calls}) for rid in ids]
    found = G.groups(catalog, G.TS_PROTOCOLS[args.hold][1])
    missing = [g for g in args.groups or () if g not in found]
    if missing:
        raise KeyError(f"no {args.hold} group {missing} among the runs with a log; groups: {list(found)}")
    chosen = [g for g in found if not args.groups or g in args.groups]
    wanted = None if ids is None else set(ids)
    plans = []
    for group in chosen:
        members = found[group]
        runs = [r for r in members["scored"] if wanted is None or r in wanted]
        if runs:
            plans.append((group, runs, G.fold_plan(catalog, args.hold, group, members, args.seed)))
    return plans


def fold_model(catalog, plan: dict, args):
    """The fold of ``plan`` and where it came from (``--models-from``: the saved file only, else
    ``experiments._common.fit_fold``)."""
    label = plan["label"] or plan["held"][0]
    if args.models_from:
        path = C.fold_cache_path(args.models_from, label, args.fit, plan["seed"])
        return load_saved_fold(path), str(path)
    model = C.fit_fold(catalog, plan["held"], mode=args.fit, seed=plan["seed"], label=plan["label"],
                       summaries=plan["summaries"], cache=args.cache, log_calls=plan["log_calls"])
    path = C.fold_cache_path(args.cache, label, args.fit, plan["seed"])
    return model, (str(path) if path is not None else f"fit_fold {args.fit} s{plan['seed']}")


def split_rows(catalog, ids: Sequence[str] | None, args, log: dict) -> tuple[pd.DataFrame, list[str]]:
    """One row per held-out run (:data:`COLUMNS`); folds that cannot be had are skipped with a note."""
    plans = fold_plans(catalog, ids, args)
    rows, notes = [], []
    for group, runs, plan in tqdm(plans, desc="error split", unit="fold"):
        with C.timed(f"fold+split {group}", log):
            try:
                model, source = fold_model(catalog, plan, args)
            except (FileNotFoundError, ValueError) as err:
                notes.append(f"{group} skipped: {err}")
                print(notes[-1], file=sys.stderr)
                continue
            E.check_unseen(model, plan["held"])  # a leak here is a bug
            for rid in runs:
                req = catalog.requests(rid)
                run = B.workload_window(catalog.run(rid), req)
                k = C.fold_seed(catalog, rid, args.seed) - args.seed
                r = run_split(model, run, req, n_draws=args.draws, seed=args.seed + 1000 * k,
                              drive=args.drive)
                a = run.attrs
                rows.append({"run_id": rid, "hold": args.hold, "group": group, "llm": a.get("llm"),
                             "gpu_model": a.get("gpu_model"), **r, "model_source": source})
        if args.hold != "run":
            notes.append(f"{group}: {len(runs)} run(s) split, {len(plan['held'])} left out of the fit")
    table = pd.DataFrame(rows)
    return (table[list(COLUMNS)] if len(table) else table), notes


# --- report ------------------------------------------------------------------------------------------
TABLE_COLUMNS = (
    ("busy_meas", "busy meas", 3),
    ("busy_syn", "busy syn", 3),
    ("busy_ratio", "busy ratio", 2),
    ("service_ratio", "service ratio", 2),
    ("level_meas_w", "level meas W", 0),
    ("level_syn_w", "level syn W", 0),
    ("level_ratio", "level ratio", 2),
    ("idle_meas_w", "idle meas W", 0),
    ("idle_syn_w", "idle syn W", 0),
    ("energy_error_pct", "energy err %", 1),
    ("explained_pct", "explained %", 1),
    ("busy_part_pct", "busy part %", 1),
    ("level_part_pct", "level part %", 1),
    ("idle_part_pct", "idle part %", 1),
)


def reading(table: pd.DataFrame, tol: float = TOL) -> str:
    """Sentences read off the numbers: runs off in busy time, runs off in level, which part is larger."""
    n = len(table)
    br, lr = table["busy_ratio"].to_numpy(float), table["level_ratio"].to_numpy(float)
    bp, lp = table["busy_part_pct"].abs().to_numpy(float), table["level_part_pct"].abs().to_numpy(float)
    err = table["energy_error_pct"].to_numpy(float)
    opposite = np.sign(table["busy_part_pct"]).to_numpy() != np.sign(table["level_part_pct"]).to_numpy()
    n_cancel = int(((bp > 5) & (lp > 5) & opposite).sum())
    lo, hi = 1 - tol, 1 + tol
    return (
        f"Of {n} runs, the replay is busy for less than {lo:g}× the measured time in {int((br < lo).sum())} "
        f"and more than {hi:g}× in {int((br > hi).sum())} (median busy ratio {np.nanmedian(br):.2f}); its "
        f"busy power level is below {lo:g}× the measured one in {int((lr < lo).sum())} and above {hi:g}× in "
        f"{int((lr > hi).sum())} (median level ratio {np.nanmedian(lr):.2f}).  "
        f"The busy-time part is the larger one in {int((bp > lp).sum())} of {n} runs (median |busy part| "
        f"{np.nanmedian(bp):.1f} %, median |level part| {np.nanmedian(lp):.1f} %, median |energy error| "
        f"{np.nanmedian(np.abs(err)):.1f} %); {n_cancel} runs have both parts above 5 % with opposite "
        "signs (errors that cancel)."
        + _service_sentence(table, lo, hi)
    )


def _service_sentence(table: pd.DataFrame, lo: float, hi: float) -> str:
    """How the fold's runtime for the calls compares with the log (when the table has ``service_ratio``)."""
    if "service_ratio" not in table:
        return ""
    sr = table["service_ratio"].to_numpy(float)
    lost = table["busy_ratio"].to_numpy(float) < lo
    return (
        f"  The fold's runtime for the logged calls (service ratio) is below {lo:g}× the logged one in "
        f"{int((sr < lo).sum())} runs and above {hi:g}× in {int((sr > hi).sum())} (median "
        f"{np.nanmedian(sr):.2f}); of the {int(lost.sum())} runs that lose busy time, "
        f"{int((lost & (sr < lo)).sum())} are ones whose runtime it under-predicts: a back-to-back loop "
        "replayed open loop turns a runtime too short into idle time, one too long into a queue cut at "
        "the run's end."
    )


#: What each ``--hold`` calls its folds in the report.
HOLD_NAMES = {"run": "leave-one-run-out", **{k: v[0] for k, v in G.TS_PROTOCOLS.items()}}
#: Columns of the per-group table: (column, header, digits).
GROUP_COLUMNS = (
    ("busy_ratio", "busy ratio", 2),
    ("service_ratio", "service ratio", 2),
    ("level_ratio", "level ratio", 2),
    ("energy_error_pct", "energy err %", 1),
    ("busy_part_pct", "busy part %", 1),
    ("level_part_pct", "level part %", 1),
    ("idle_part_pct", "idle part %", 1),
)


def group_table(table: pd.DataFrame) -> str:
    """Markdown table: per held-out group, its number of runs and the medians of :data:`GROUP_COLUMNS`."""
    head = "| group | runs | " + " | ".join(h for _, h, _ in GROUP_COLUMNS) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(GROUP_COLUMNS)]
    for group, sub in table.groupby("group", sort=False):
        med = sub[[c for c, _, _ in GROUP_COLUMNS]].median()
        cells = " | ".join(C.cell(float(med[c]), d) for c, _, d in GROUP_COLUMNS)
        lines.append(f"| {group} | {len(sub)} | {cells} |")
    return "\n".join(lines)


def markdown(table: pd.DataFrame, *, args, notes: Sequence[str], timings: dict) -> str:
    """Per-run table, medians, the generated reading, notes and timings."""
    body = [
        "Energy error of the held-out replay split into busy time (runtime) and power level "
        f"(`--fit {args.fit}`, {args.draws} draws, drive `{args.drive}`, folds: {HOLD_NAMES[args.hold]}; "
        "formulas in the module docstring "
        "of `experiments/error_split.py`).  Ratios: replay / measured; power: total W over the "
        "configuration's GPUs; energy error: signed, posterior-predictive median on the native grid.\n",
    ]
    if len(table):
        head = "| run_id | " + " | ".join(h for _, h, _ in TABLE_COLUMNS) + " |"
        lines = [head, "|---|" + "---:|" * len(TABLE_COLUMNS)]
        for _, row in table.iterrows():
            cells = " | ".join(C.cell(float(row[c]), d) for c, _, d in TABLE_COLUMNS)
            lines.append(f"| {row['run_id']} | {cells} |")
        med = table[[c for c, _, _ in TABLE_COLUMNS]].median()
        cells = " | ".join(C.cell(float(med[c]), d) for c, _, d in TABLE_COLUMNS)
        lines.append(f"| **median** | {cells} |")
        body += ["## Per run\n", "\n".join(lines) + "\n"]
        if args.hold != "run":
            body += [f"## Per held-out {args.hold} group (medians of its runs)\n", group_table(table) + "\n"]
        body += ["## Reading\n", reading(table) + "\n"]
    else:
        body.append("No run could be split.\n")
    return "\n".join(body + C.report_footer(notes, timings))


# --- command line ------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.error_split", description=__doc__.splitlines()[0])
    p.add_argument("--catalog", help="catalog path (default: energy-inference in the shared data)")
    p.add_argument("--fit", choices=C.FIT_MODES, default="fast", help="fit mode of the held-out folds")
    p.add_argument("--cache", help="folder of fold fits to reuse/save (as experiments.accuracy --cache)")
    p.add_argument(
        "--models-from",
        help="folder of saved folds <run_id>-<mode>-s<seed>.nc, loaded as they are (never refitted; a "
        "fold this package refuses is skipped with a note)",
    )
    p.add_argument(
        "--hold", choices=HOLDS, default="run",
        help="folds: leave-one-run-out (default), or leave one LLM, GPU card or GPU count out "
        "(experiments.generalisation's folds)",
    )
    p.add_argument("--runs", nargs="+", help="only these held-out runs")
    p.add_argument("--groups", nargs="+", help="only these held-out groups (with --hold llm/gpu_card/n_gpus)")
    p.add_argument("--draws", type=int, default=C.HELD_OUT_DRAWS, help="posterior-predictive draws per run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--drive", choices=("open", "closed"), default="open", help="replay drive (as accuracy)")
    p.add_argument(
        "--quick", action="store_true", help=f"CI-sized: {QUICK_RUNS} runs, {QUICK_DRAWS} draws, fast fits"
    )
    p.add_argument("--out", help="results folder (default results/)")
    p.add_argument("--name", default=NAME, help="result file stem")
    args = p.parse_args(argv)
    if args.groups and args.hold == "run":
        p.error("--groups needs --hold llm, gpu_card or n_gpus")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = C.command_line("experiments.error_split", argv)
    if args.quick:
        args.draws, args.fit = min(args.draws, QUICK_DRAWS), "fast"
    timings: dict[str, float] = {}
    catalog = C.energy_inference_catalog(args.catalog)
    if args.hold == "run":
        ids = C.held_out_runs(catalog, args.runs, quick=args.quick, n_quick=QUICK_RUNS)
        print(f"{len(ids)} held-out runs: {', '.join(ids)}", file=sys.stderr)
    else:
        ids = list(args.runs) if args.runs else None
        if args.quick and not args.groups:
            args.groups = G.quick_groups(G.groups(catalog, G.TS_PROTOCOLS[args.hold][1]))
    table, notes = split_rows(catalog, ids, args, timings)
    if not len(table):
        print("no run could be split; nothing written:\n" + "\n".join(notes), file=sys.stderr)
        return 1
    md = markdown(table, args=args, notes=notes, timings=timings)
    C.publish(args.name, table, md, command=command, out_dir=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
