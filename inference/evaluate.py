"""Score the fitted model and the naive baselines on measured runs it never saw (``PROTOCOL.md``).

For every run of a catalog: the run's own workload (its request/inference table) is replayed open-loop
through the generator, ``n_draws`` posterior-predictive traces of the configuration's total power are
drawn, and they are scored against the measured power with :mod:`wattscape.inference.metrics`; the
baselines of :mod:`wattscape.inference.baselines` are scored by the same code.  Measured power, timing
and engine state are never generator inputs.

Scored span: the run's *workload window*, first logged request start to last end
(:func:`wattscape.inference.baselines.workload_window`): start-up and model loading before the first
inference, and unlogged work after the last, are not driven by the workload (``window="run"`` scores
the whole trace instead).

Outputs (written atomically)
    ``DIR/accuracy.csv``  one row per (run, method, period) with :data:`CSV_COLUMNS` first (interval
                          columns empty for the baselines);
    ``DIR/accuracy.md``   the summary per (period, method): median [bootstrap 95 % CI] (p90, worst)
                          over runs, plus the coverage of the model's 50 % / 90 % intervals.

Training data of the ``mean`` and ``replay`` baselines: the ``training`` argument (a catalog or a
:class:`~wattscape.inference.baselines.TrainingSet`); without it, the *other* runs of the evaluated
catalog (leave-one-run-out inside it).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm
from wattscape.models import dims as D

from wattscape.io import atomic_path

from . import baselines as B
from . import metrics as M

#: ``generator(run, requests, n_draws, seed) -> DataArray (draw, time)`` of total W on the run's grid.
Generator = Callable[[xr.Dataset, pd.DataFrame, int, int], xr.DataArray]

MODEL = "model"
#: Methods scored by default: the model and the four baselines of the protocol.
DEFAULT_METHODS = (MODEL, *B.BASELINES)
#: Leading columns of ``accuracy.csv`` (the issue's contract), in order.
CSV_COLUMNS = (
    "run_id",
    "method",
    "energy_error_pct",
    "energy_error_signed_pct",
    "acf_r2",
    "acf_mae",
    "ks",
    "nrmse_range",
    "p95_error_pct",
    "p99_error_pct",
    "energy_measured_j",
    "energy_q05_j",
    "energy_q50_j",
    "energy_q95_j",
)
#: Metrics summarised in ``accuracy.md``.
SUMMARY_METRICS = ("energy_error_pct", "acf_r2", "acf_mae", "ks", "nrmse_range", "p95_error_pct")
#: Attribute / variable names under which a fitted model may list the runs it saw.
_FITTED_KEYS = ("fitted_run_ids", "fit_run_ids", "run_ids", "runs")


class SeenRunsError(ValueError):
    """The posterior was fitted on runs of the catalog being evaluated."""


# --- which runs did the posterior see ----------------------------------------------------------------
def _as_id_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return [str(v) for v in json.loads(text)]
        sep = ";" if ";" in text else ","
        return [v.strip() for v in text.split(sep) if v.strip()]
    return [str(v) for v in np.asarray(value).ravel().tolist()]


def fitted_run_ids(idata_or_model: Any) -> set[str]:
    """Run ids a posterior was fitted on.

    Looks, in order, at: a model's ``fitted_run_ids`` attribute or its ``idata``; the InferenceData
    group ``fit_data`` (coordinate or variable ``run``/``run_id``, or one of its attributes
    ``fitted_run_ids``/``run_ids``); the attributes of the InferenceData itself and of its
    ``posterior`` group.  Lists may be sequences, JSON strings, or ``;``/``,``-joined strings.

    Returns
    -------
    set of str
        Empty when the posterior records none (the caller decides what that means).
    """
    obj = idata_or_model
    ids: set[str] = set()
    direct = getattr(obj, "fitted_run_ids", None)
    if direct is not None and not callable(direct):
        ids |= set(_as_id_list(direct))
    idata = getattr(obj, "idata", None)
    if idata is not None and idata is not obj:
        ids |= fitted_run_ids(idata)
    groups = obj.groups() if hasattr(obj, "groups") and callable(obj.groups) else []
    if "fit_data" in groups:
        fd = obj["fit_data"]
        for name in (D.RUN, "run_id"):
            if name in fd.coords or name in fd.data_vars:
                ids |= set(_as_id_list(fd[name].values))
        for key in _FITTED_KEYS:
            ids |= set(_as_id_list(fd.attrs.get(key)))
    attrs_sources = [getattr(obj, "attrs", None)]
    if "posterior" in groups:
        attrs_sources.append(obj["posterior"].attrs)
    for attrs in attrs_sources:
        if isinstance(attrs, dict):
            for key in _FITTED_KEYS:
                ids |= set(_as_id_list(attrs.get(key)))
    return ids


def check_unseen(idata_or_model: Any, run_ids: Iterable[str], *, allow_seen: bool = False) -> None:
    """Raise :class:`SeenRunsError` if any of ``run_ids`` was used to fit the posterior."""
    seen = sorted(set(map(str, run_ids)) & fitted_run_ids(idata_or_model))
    if seen and not allow_seen:
        raise SeenRunsError(
            f"the posterior was fitted on {len(seen)} of the runs to evaluate ({', '.join(seen[:5])}"
            f"{', …' if len(seen) > 5 else ''}): scores on seen runs are not held-out accuracy. "
            "Evaluate a catalog the fit never saw, pass runs=/--runs to choose unseen ones, or "
            "allow_seen=True / --allow-seen to score them anyway."
        )


# --- the model's generator ---------------------------------------------------------------------------
def load_model(path: str | os.PathLike) -> Any:
    """Load a fitted model from NetCDF: a ``PowerModel`` file (``PowerModel.from_idata``, which checks the
    model id) or, for any other InferenceData, the bare InferenceData (enough for the seen-run check and
    the baselines, not for the ``model`` method)."""
    import arviz as az

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"posterior file not found: {path}")
    idata = az.from_netcdf(str(path))
    try:
        from wattscape.models.hierarchical import PowerModel
    except ImportError:
        return idata
    if dict(getattr(idata, "attrs", {}) or {}).get("model_type") == PowerModel._model_type:
        return PowerModel.from_idata(idata, source=str(path))
    return idata


def default_generator(model: Any, drive: str = "open") -> Generator:
    """The generator hook for a fitted model: posterior → configuration parameters → workload replay.

    Uses ``model.config_params(config, n_draws, seed)`` and the replay function of
    ``wattscape.generation`` (:func:`wattscape.generation.replay.replay_run`); ``drive``: ``"open"``
    (the logged start times, PROTOCOL.md) or ``"closed"`` (logged think times, predicted runtimes).
    """
    if not hasattr(model, "config_params"):
        raise ValueError(
            f"{type(model).__name__} has no config_params(): the 'model' method needs a fitted PowerModel "
            "(or a generator=); score only baselines with methods=/--methods"
        )
    try:
        from wattscape.generation.replay import replay_run
    except ImportError as err:
        raise ImportError(
            "the workload replay (wattscape.generation.replay.replay_run) is not available; "
            "pass generator= explicitly"
        ) from err

    def generate(run: xr.Dataset, requests: pd.DataFrame, n_draws: int, seed: int) -> xr.DataArray:
        return replay_run(model, run, requests, n_draws=n_draws, seed=seed, drive=drive)

    return generate


# --- scoring -----------------------------------------------------------------------------------------
def _check_synthetic(y: xr.DataArray, run_id: str, method: str) -> xr.DataArray:
    if not isinstance(y, xr.DataArray) or D.TIME not in y.dims:
        raise ValueError(f"{method} for run {run_id!r} did not return a DataArray with a {D.TIME!r} dim")
    if not np.all(np.isfinite(y.values)):
        raise ValueError(f"{method} for run {run_id!r} returned non-finite power")
    return y


def score_methods(
    run: xr.Dataset,
    synthetic: dict[str, xr.DataArray],
    *,
    periods_s: Sequence[float | None] = (1.0,),
) -> list[dict]:
    """Score each method's synthetic series against the run, at each period; one dict per row."""
    rows = []
    a = run.attrs
    n = int(a.get("n_gpus") or run[D.POWER].sizes.get(D.GPU, 1))
    for period in periods_s:
        for method, y in synthetic.items():
            r = M.score(run[D.POWER], y, period_s=period, n_gpus=n)
            rows.append(
                {
                    "run_id": str(a.get("run_id")),
                    "method": method,
                    "period_s": period if period is not None else float(a.get("sample_period_s", np.nan)),
                    "llm": a.get("llm"),
                    "gpu_model": a.get("gpu_model"),
                    "n_gpus": n,
                    "detail": _detail(y),
                    **r,
                }
            )
    return rows


def _detail(y: xr.DataArray) -> str:
    keys = ("pool", "source_run", "reference", "tdp_w")
    return "; ".join(f"{k}={y.attrs[k]}" for k in keys if k in y.attrs)


def _training_for(training: Any, catalog: Any, window: str) -> B.TrainingSet:
    if isinstance(training, B.TrainingSet):
        return training
    return B.TrainingSet.from_catalog(training if training is not None else catalog, window=window)


def _catalog_ids(catalog: Any) -> list[str]:
    return [str(r) for r in catalog.index["run_id"]]


def evaluate_runs(
    catalog: Any,
    *,
    generator: Generator | None = None,
    runs: Iterable[str] | None = None,
    n_draws: int = 100,
    seed: int = 0,
    methods: Sequence[str] = DEFAULT_METHODS,
    training: Any = None,
    periods_s: Sequence[float | None] = (1.0,),
    window: str = "workload",
    progress: bool = True,
) -> pd.DataFrame:
    """Score ``methods`` on runs of ``catalog``; return the per-(run, method, period) table.

    Parameters are those of :func:`evaluate` (no seen-run check, nothing written).  Runs without a
    request table are skipped (nothing to replay), with a note in the ``skipped`` attribute.
    """
    ids = list(runs) if runs is not None else _catalog_ids(catalog)
    unknown = sorted(set(ids) - set(_catalog_ids(catalog)))
    if unknown:
        raise KeyError(f"runs not in the catalog: {unknown}")
    bad = sorted(set(methods) - {MODEL, *B.ALL_BASELINES})
    if bad:
        raise ValueError(f"unknown methods {bad}; known: {[MODEL, *B.ALL_BASELINES]}")
    if MODEL in methods and generator is None:
        raise ValueError("method 'model' needs a generator (or a fitted model)")
    needs_training = {"mean", "mean_generation", "replay"} & set(methods)
    if window not in ("workload", "run"):
        raise ValueError(f"window must be 'workload' or 'run', got {window!r}")
    train = _training_for(training, catalog, window) if needs_training else None
    rows, skipped, unscored = [], [], []
    for i, rid in enumerate(tqdm(ids, desc="evaluate", unit="run", disable=not progress)):
        run = catalog.run(rid)
        req = catalog.requests(rid)
        if req is None or len(req) == 0:
            skipped.append(rid)
            continue
        if window == "workload":
            run = B.workload_window(run, req)
        synthetic: dict[str, xr.DataArray] = {}
        for method in methods:
            if method == MODEL:
                y = generator(run, req, n_draws, seed + i)
            else:
                try:
                    y = B.baseline(method, run, req, train.without(rid) if train is not None else None)
                except B.NoTrainingRunError as err:  # e.g. a one-run catalog: say so, score the rest
                    unscored.append(f"{rid}: {method} not scored: {err} (pass a training catalog)")
                    print(unscored[-1], file=sys.stderr)
                    continue
            synthetic[method] = _check_synthetic(y, rid, method)
        rows += score_methods(run, synthetic, periods_s=periods_s)
    table = pd.DataFrame(rows)
    if len(table):
        for col in CSV_COLUMNS:
            if col not in table:
                table[col] = np.nan
        table = table[[*CSV_COLUMNS, *(c for c in table.columns if c not in CSV_COLUMNS)]]
    table.attrs["skipped"] = skipped
    table.attrs["unscored"] = unscored
    return table


def summary_markdown(
    table: pd.DataFrame, *, title: str = "Accuracy", n_boot: int = 1000, seed: int = 0
) -> str:
    """The Markdown summary of an accuracy table (per period and method), with model interval coverage."""
    lines = [f"# {title}", ""]
    lines.append(
        "Per run: metrics of PROTOCOL.md on per-GPU window means. Cells: median over runs "
        "[bootstrap 95 % CI of the median] (p90, worst).  ACF R²: higher is better; every other "
        "column: lower is better (KS is the statistic itself; the paper's tables show 1 − KS)."
    )
    lines.append("")
    if len(table) == 0:
        skipped = table.attrs.get("skipped", [])
        return "\n".join([*lines, f"No run scored (runs without a request table: {skipped}).", ""])
    for note in table.attrs.get("unscored", []):
        lines += [f"Note: {note}.", ""]
    for period, grp in table.groupby("period_s", sort=True):
        summ = M.summarize(grp, SUMMARY_METRICS, by="method", point="run_id", n_boot=n_boot, seed=seed)
        lines += [f"## period {period:g} s", "", M.markdown_table(summ)]
        cov_cols = [c for c in grp.columns if c.startswith(("energy_in_", "window_coverage_"))]
        model = grp[grp["method"] == MODEL]
        if cov_cols and len(model):
            lines.append("Posterior-predictive coverage (model; nominal level in the column name):")
            lines.append("")
            lines.append("| " + " | ".join(["n runs", *cov_cols]) + " |")
            lines.append("|" + "---|" * (1 + len(cov_cols)))
            vals = [f"{model[c].mean():.2f}" for c in cov_cols]
            lines.append("| " + " | ".join([str(model['run_id'].nunique()), *vals]) + " |")
            lines.append("")
    return "\n".join(lines)


def write_outputs(table: pd.DataFrame, out_dir: str | os.PathLike, *, header: str = "") -> tuple[Path, Path]:
    """Write ``accuracy.csv`` and ``accuracy.md`` atomically into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "accuracy.csv", out / "accuracy.md"
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    text = (header + "\n\n" if header else "") + summary_markdown(table)
    with atomic_path(md_path) as tmp:
        tmp.write_text(text)
    return csv_path, md_path


def evaluate(
    posterior_or_model: Any,
    catalog: Any,
    out_dir: str | os.PathLike | None,
    *,
    runs: Iterable[str] | None = None,
    n_draws: int = 100,
    seed: int = 0,
    allow_seen: bool = False,
    methods: Sequence[str] = DEFAULT_METHODS,
    generator: Generator | None = None,
    training: Any = None,
    periods_s: Sequence[float | None] = (1.0,),
    window: str = "workload",
    progress: bool = True,
    header: str = "",
    drive: str = "open",
) -> pd.DataFrame:
    """Replay each run's workload through the model's generator, score it and the baselines.

    Parameters
    ----------
    posterior_or_model : PowerModel, InferenceData, path or None
        The fitted model (or a path to its NetCDF).  Its fitted run ids (:func:`fitted_run_ids`) must not
        be among the evaluated runs unless ``allow_seen``.  ``None`` only with ``generator=`` given or
        without the ``model`` method.
    catalog : catalog
        ``.index`` (with ``run_id``), ``.run(run_id)`` and ``.requests(run_id)``
        (``wattscape.inference.catalog.load_catalog``).
    out_dir : path or None
        Folder for ``accuracy.csv`` and ``accuracy.md`` (None: write nothing).
    runs : iterable of str, optional
        Run ids to score (default all runs of the catalog with a request table).
    n_draws, seed : posterior-predictive draws per run and the base seed (run ``i`` uses ``seed + i``).
    allow_seen : bool
        Score runs the posterior was fitted on (not held-out accuracy).
    methods : sequence of str
        ``"model"`` and any of :data:`wattscape.inference.baselines.ALL_BASELINES`.
    generator : callable, optional
        ``generator(run, requests, n_draws, seed) -> DataArray (draw, time)`` total W on the run's time
        grid; default :func:`default_generator` of the model.
    training : catalog or TrainingSet, optional
        Training runs of the ``mean``/``replay`` baselines (default: the other runs of ``catalog``).
    periods_s : sequence of float or None
        Scoring periods, s (None: native samples).
    window : {"workload", "run"}
        Score the run's workload window (first logged request start to last end; default: start-up and
        unlogged work are not driven by the workload) or the whole trace.
    progress : bool
        Show a progress bar.
    header : str
        Text put above the summary in ``accuracy.md`` (e.g. the command line).
    drive : {"open", "closed"}
        How :func:`default_generator` replays the workload (ignored with ``generator=``).

    Returns
    -------
    DataFrame
        The per-(run, method, period) table written to ``accuracy.csv``.
    """
    if isinstance(posterior_or_model, (str, os.PathLike)):
        posterior_or_model = load_model(posterior_or_model)
    ids = list(runs) if runs is not None else _catalog_ids(catalog)
    if posterior_or_model is not None:
        check_unseen(posterior_or_model, ids, allow_seen=allow_seen)
    if MODEL in methods and generator is None:
        if posterior_or_model is None:
            raise ValueError("method 'model' needs a fitted model or a generator")
        generator = default_generator(posterior_or_model, drive=drive)
    table = evaluate_runs(
        catalog,
        generator=generator,
        runs=ids,
        n_draws=n_draws,
        seed=seed,
        methods=methods,
        training=training,
        periods_s=periods_s,
        window=window,
        progress=progress,
    )
    if out_dir is not None:
        write_outputs(table, out_dir, header=header)
    return table
