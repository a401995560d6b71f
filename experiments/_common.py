"""Shared helpers of the experiment scripts: where results go, how they are written, the data they use.

Every experiment writes ``results/<name>.csv`` and ``results/<name>.md``, both headed by the exact
command that produced them and the package version (CSV: ``#`` comment lines, read back with
``pd.read_csv(path, comment="#")``), atomically (temporary file + rename).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from wattscape import __version__
from wattscape.io import atomic_path

REPO = Path(__file__).resolve().parents[1]
#: Default results folder (override with ``$WATTSCAPE_RESULTS``).
RESULTS_DIR = Path(os.environ.get("WATTSCAPE_RESULTS", REPO / "results"))
#: Measured data beside the repository (override with ``$WATTSCAPE_SHARED_DATA``).
SHARED_DATA = Path(os.environ.get("WATTSCAPE_SHARED_DATA", REPO.parent / "shared" / "data"))


def results_dir(path: str | os.PathLike | None = None) -> Path:
    """The results folder (created if missing)."""
    out = Path(path) if path is not None else RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    return out


def command_line(module: str, argv: Sequence[str] | None = None) -> str:
    """The exact command, as ``python -m <module> <args>`` (``argv`` default: ``sys.argv[1:]``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["python", "-m", module, *(shlex.quote(a) for a in args)])


def provenance(command: str) -> list[str]:
    """The header lines every result file starts with: the command and the package version."""
    return [f"command: {command}", f"wattscape {__version__}"]


def write_result(
    name: str,
    table: pd.DataFrame,
    markdown: str,
    *,
    command: str,
    out_dir: str | os.PathLike | None = None,
) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.csv`` and ``<name>.md`` atomically, both headed by ``command`` + version.

    Parameters
    ----------
    name : str
        Result name (file stem).
    table : DataFrame
        The full per-item table (CSV).
    markdown : str
        The Markdown body (summary tables, notes).
    command : str
        The exact command that reproduces the result (see :func:`command_line`).
    out_dir : path, optional
        Folder (default :func:`results_dir`).

    Returns
    -------
    (csv_path, md_path)
    """
    out = results_dir(out_dir)
    head = provenance(command)
    csv_path, md_path = out / f"{name}.csv", out / f"{name}.md"
    with atomic_path(csv_path) as tmp:
        with open(tmp, "w", newline="") as fh:
            fh.writelines(f"# {line}\n" for line in head)
            table.to_csv(fh, index=False, float_format="%.6g")
    md = f"# {name}\n\nCommand: `{command}`  \nwattscape {__version__}\n\n{markdown.rstrip()}\n"
    with atomic_path(md_path) as tmp:
        tmp.write_text(md)
    return csv_path, md_path


def publish(
    name: str,
    table: pd.DataFrame,
    markdown: str,
    *,
    command: str,
    out_dir: str | os.PathLike | None = None,
) -> tuple[Path, Path]:
    """:func:`write_result`, then the Markdown to stdout and where both files went to stderr."""
    csv_path, md_path = write_result(name, table, markdown, command=command, out_dir=out_dir)
    print(markdown)
    print(f"wrote {csv_path} and {md_path}", file=sys.stderr)
    return csv_path, md_path


def read_result(path: str | os.PathLike) -> pd.DataFrame:
    """Read a result CSV written by :func:`write_result` (skipping its header comments)."""
    return pd.read_csv(path, comment="#")


@contextlib.contextmanager
def timed(label: str, log: dict | None = None) -> Iterator[None]:
    """Print (and store in ``log[label]``) the wall time of a block, s."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        dt = time.perf_counter() - t0
        if log is not None:
            log[label] = dt
        print(f"[{label}] {dt:.1f} s", file=sys.stderr)


def cell(value: float, digits: int = 3, missing: str = "n/a") -> str:
    """A Markdown table cell: ``value`` to ``digits`` decimals, ``missing`` where it is NaN or infinite."""
    return f"{value:.{digits}f}" if np.isfinite(value) else missing


def report_footer(notes: Sequence[str], timings: dict) -> list[str]:
    """The closing Markdown blocks of a report: ``## Notes`` (one bullet each) and the total wall time."""
    out = []
    if notes:
        out.append("## Notes\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    if timings:
        out.append(f"Wall time: {sum(timings.values()):.0f} s in all.\n")
    return out


#: Posterior-predictive draws per held-out run (``experiments.accuracy``, ``generalisation``,
#: ``calibration``, ``ablation``, ``error_split``; ``acf_ceiling`` scores every pair and keeps 100).  The
#: point estimate of a run's energy is the median over draws, whose Monte Carlo error at 100 draws was of
#: the size of the margins judged: the same leave-one-LLM-out folds (``catalog/fits25all``) gave per-run
#: errors that moved by up to 2.4 points between 100 and 1,000 draws and a median of 8.56 % against 7.27 %
#: and 7.15 % (two replay seeds at 1,000, whose runs agree within 0.8 points).  The replay is vectorised
#: over draws: 1,000 cost 1.7 min for those 13 runs, and ``ablation``'s five variants of the 13
#: leave-one-run-out runs 4.7 min on cached folds.
HELD_OUT_DRAWS = 1000
#: Where experiment scripts build catalogs of raw data folders (git-ignored ``catalog/``).
CATALOG_DIR = Path(os.environ.get("WATTSCAPE_CATALOG_DIR", REPO / "catalog"))


def energy_inference_catalog(path: str | os.PathLike | None = None):
    """The catalog of the energy-inference runs.

    ``path``: a catalog folder (``wattscape ingest`` output, has ``manifest.json``) is opened as is; a raw
    data folder (default: ``energy-inference`` of the shared data) is ingested into
    ``catalog/<folder name>`` first (:func:`wattscape.inference.catalog.build_catalog`, a no-op when the
    sources did not change).
    """
    from wattscape.inference.catalog import MANIFEST, build_catalog, load_catalog

    src = Path(path) if path is not None else SHARED_DATA / "energy-inference"
    if (src / MANIFEST).is_file():
        return load_catalog(src)
    if not src.exists():
        raise FileNotFoundError(f"neither a catalog nor a data folder: {src}")
    return build_catalog([src], CATALOG_DIR / src.name, progress=False)


def held_out_runs(catalog, runs=None, *, quick: bool = False, n_quick: int = 3) -> list[str]:
    """The runs an experiment holds out: ``runs`` when given, else every run with a log (the first
    ``n_quick`` of them with ``quick``)."""
    if runs:
        return list(runs)
    ids = runs_with_log(catalog)
    return ids[:n_quick] if quick else ids


def runs_with_log(catalog) -> list[str]:
    """Run ids of the catalog that have a non-empty request/inference table (index order)."""
    index = catalog.index
    for col in ("n_inferences", "n_requests"):
        if col in index.columns:
            n = pd.to_numeric(index[col], errors="coerce").fillna(0).to_numpy()
            return [str(r) for r, k in zip(index["run_id"], n, strict=True) if k > 0]
    ids = []
    for rid in index["run_id"]:
        req = catalog.requests(str(rid))
        if req is not None and len(req) > 0:
            ids.append(str(rid))
    return ids


# --- in-sample checks of one posterior (level_shape, runtime_cells) ---------------------------------------
def posterior_path(explicit: str | None, results: Path) -> Path:
    """``explicit`` (must exist), else ``<results>/posterior_full.nc``, else the posterior shipped with the
    package (``generation.demo.results_posterior``)."""
    from wattscape.generation.demo import results_posterior

    if explicit is not None:
        if not Path(explicit).is_file():
            raise FileNotFoundError(f"no posterior {explicit}")
        return Path(explicit)
    found, shipped = results_posterior(results)
    if found is None:
        raise FileNotFoundError(f"no posterior: {results}/posterior_full.nc is missing and none ships")
    if shipped:
        print(f"{results}/posterior_full.nc not found: using the shipped posterior {found}", file=sys.stderr)
    return found


def in_sample_parser(module: str, doc: str | None, name: str) -> argparse.ArgumentParser:
    """The command line shared by the in-sample checks: ``--catalog``, ``--posterior``, ``--runs``,
    ``--draws``, ``--seed``, ``--out`` and ``--name`` (default ``name``)."""
    p = argparse.ArgumentParser(prog=f"python -m {module}", description=(doc or module).splitlines()[0])
    p.add_argument("--catalog", help="catalog path (default: energy-inference in the shared data)")
    p.add_argument("--posterior", help="fitted posterior (default: results/posterior_full.nc, else shipped)")
    p.add_argument("--runs", nargs="+", help="only these runs")
    p.add_argument("--draws", type=int, default=100, help="posterior draws")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="results folder (default results/)")
    p.add_argument("--name", default=name, help="result file stem")
    return p


def score_in_sample(catalog, runs: Sequence[str] | None, score, *, posterior: str | None, results: Path,
                    desc: str):
    """Call ``score(model, run, requests)`` for every run with a log (or ``runs``) under one posterior.

    The posterior is :func:`posterior_path` of ``posterior`` and ``results``; each run is cut to its
    workload window (:func:`wattscape.inference.baselines.workload_window`); a ``ValueError`` from
    ``score`` skips the run with a note.

    Returns
    -------
    (posterior, scored, notes, timings)
        The posterior's path, ``score``'s results in run order, the notes of skipped runs, wall time per
        run (s).

    Raises
    ------
    KeyError
        Runs with a log not in ``catalog`` (checked first).
    FileNotFoundError
        No posterior (see :func:`posterior_path`).
    """
    from tqdm.auto import tqdm
    from wattscape.inference.baselines import workload_window
    from wattscape.models.hierarchical import PowerModel

    logged = runs_with_log(catalog)
    ids = list(runs) if runs else logged
    unknown = sorted(set(ids) - set(logged))
    if unknown:
        raise KeyError(f"runs with a log not in the catalog {getattr(catalog, 'path', '')}: {unknown}")
    path = posterior_path(posterior, results)
    model = PowerModel.load(path)
    scored, notes, log = [], [], {}
    for rid in tqdm(ids, desc=desc, unit="run"):
        with timed(rid, log):
            req = catalog.requests(rid)
            try:
                scored.append(score(model, workload_window(catalog.run(rid), req), req))
            except ValueError as err:
                notes.append(f"{rid} skipped: {err}")
    return path, scored, notes, log


# --- held-out fits shared by the experiments (generalisation, calibration, ablation) ----------------------
def fold_seed(catalog, run_id: str, base: int = 0) -> int:
    """Seed of a held-out fold, as :mod:`experiments.accuracy` sets it: ``base`` + the run's position among
    the runs with a log (so fold fits cached by one experiment are reused by the others)."""
    order = {r: k for k, r in enumerate(runs_with_log(catalog))}
    return int(base) + order.get(str(run_id), len(order))


def fold_cache_path(cache, label: str, mode: str, seed: int) -> Path | None:
    """``<cache>/<label>-<mode>-s<seed>.nc`` (the naming of ``experiments.accuracy.fit_holdout``), or None."""
    if not cache:
        return None
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(label))
    return Path(cache) / f"{safe}-{mode}-s{int(seed)}.nc"


#: NUTS settings of a held-out fold (``mode="nuts"``): shorter than a shipped fit (the model's defaults).
#: Diagonal metric: with a dense one the two chains of every fold stayed apart (max r̂ 1.9-2.1, tree
#: depth 10 on every draw; :func:`wattscape.inference.fit.sample` has the measurement).  The fast (ADVI)
#: path shrinks the pooled sds of weakly identified effects towards zero (llama-2-7b SXM4 fold, effects
#: non-centred: ``itl_cfg_sigma`` 0.027 vs 0.20 under NUTS, ``itl_par_sigma`` 0.014 vs 0.36; it now fits
#: them centred, ``models.hierarchical.FIT_LAYOUTS``, which narrows the gap but does not close it), so its
#: intervals for unseen configurations are too narrow.  Neither sampler mixes every fold (measured on the 13
#: leave-one-run-out folds, 2 × (500 + 500) draws).  numpyro here: with the LLM and layout effects
#: non-centred (``models/config.py``) and the (run, state) groups sampled as values (``models.hierarchical.
#: PARAMETERISATION`` 2) max r̂ ≤ 1.03 in 11 folds, 1.05 (``b_llm_sigma``) and 1.08 (a task effect) in two,
#: 1 divergence, tree depth 10 on every draw (the posterior's geometry, not the metric: the stiffest
#: direction, the decode and prefill intercepts that the single-GPU A100 data pin, allows steps of ~0.009;
#: the widest, the task effects' common mode, needs ~2,400 steps of the adapted 0.004 to cross:
#: ``python benchmarks/geometry.py``); with the layout effect centred, 1.08-1.09 in two
#: (``b_par_sigma``); with the groups' deviations free, 1.11-1.12 in two (AR-residual group
#: deviations), 3 divergences; with the LLM effect also centred, no divergences, max
#: r̂ ≤ 1.08 in 10 folds and 1.10-1.25 in three (``b_llm_sigma``; 1,000 tuning draws made the worst
#: 1.36).  nutpie (LLM effect centred) at target_accept 0.95 (commit 6ad5f90, reverted): max r̂ ≤ 1.05 in
#: 11 folds, 1.15 and 1.43 in two, 1-8 divergences in 7 folds, 49 min for the set instead of 39.  The
#: headline moved within the seed noise (centred: numpyro 7.39 %, nutpie 8.15 %; non-centred 7.05 %).
FOLD_NUTS = {"draws": 500, "tune": 500, "chains": 2, "dense_mass": False}


#: Fit modes of the held-out folds: the fast path (ADVI of the package's default family), the fast path
#: with a full-rank Gaussian (``inference.fit.ADVI_FAMILIES``; a comparison, not the default) and NUTS.
FIT_MODES = ("fast", "fast-fullrank", "nuts")


def _advi_family(mode: str) -> str:
    from wattscape.inference.fit import ADVI_FAMILY

    return mode.split("-", 1)[1] if "-" in mode else ADVI_FAMILY


def fold_sampler(mode: str) -> str:
    """How a fold of ``mode`` is fitted, recorded with a cached fold (one fitted otherwise is refitted)."""
    if mode.startswith("fast"):
        from wattscape.inference.fit import ADVI_ITERATIONS, ADVI_N_MC
        from wattscape.models.hierarchical import DEFAULT_LAYOUT, FIT_LAYOUTS

        family = _advi_family(mode)
        family = "" if family == "meanfield" else f" {family}"  # mean-field folds cached before the choice
        layout = FIT_LAYOUTS.get("fast", DEFAULT_LAYOUT)
        layout = "" if layout == DEFAULT_LAYOUT else f" {layout}"  # folds cached before the layout
        return f"advi{family} iterations={ADVI_ITERATIONS} n_mc={ADVI_N_MC}{layout}"
    return "numpyro " + " ".join(f"{k}={v}" for k, v in sorted(FOLD_NUTS.items()))


def fit_fold(
    catalog,
    holdout_runs: Sequence[str],
    *,
    mode: str,
    seed: int,
    label: str | None = None,
    summaries=None,
    cache=None,
    model_config=None,
    log_calls=None,
):
    """A cold fit of the power model on every run of ``catalog`` except ``holdout_runs``.

    Parameters
    ----------
    catalog : catalog
        The runs (``wattscape.inference.catalog``).
    holdout_runs : sequence of str
        Runs left out of the fit (their logged and power-only samples alike).
    mode : {"fast", "fast-fullrank", "nuts"}
        ADVI (``"fast"``; ``"fast-fullrank"``: a full-rank Gaussian) or numpyro NUTS with
        :data:`FOLD_NUTS` (:data:`FIT_MODES`).
    seed : int
        Seed of the fit.
    label : str, optional
        Cache file stem before ``-<mode>-s<seed>.nc``; default the single held-out run id (then the file is
        the one ``experiments.accuracy --cache`` writes and reads).
    summaries : DataFrame, optional
        Configuration summaries added to the fit (``fit_data_from_catalog``).
    cache : path, optional
        Folder of saved fold fits: a file is reused when its model id equals the id of
        ``PowerModel(model_config)`` in this package and it was fitted with the same summaries and logged
        inferences (:func:`summaries_fingerprint`, :func:`log_calls_fingerprint`; anything else is refitted
        and overwritten), else the fit is saved there.
    model_config : dict, optional
        ``PowerModel`` configuration overrides (ablations).
    log_calls : DataFrame, optional
        Logged inferences without a trace in the fit (default: all of ``catalog.log_calls()``, which
        overlap no traced run; :func:`catalog_log_calls` drops a held-out group's).

    Returns
    -------
    PowerModel
    """
    from wattscape.inference.stats import fit_data_from_catalog
    from wattscape.models.hierarchical import PowerModel

    holdout_runs = [str(r) for r in holdout_runs]
    if label is None:
        if len(holdout_runs) != 1:
            raise ValueError(f"a fold of {len(holdout_runs)} held-out runs needs a cache label")
        label = holdout_runs[0]
    if mode not in FIT_MODES:
        raise ValueError(f"mode must be one of {FIT_MODES}, got {mode!r}")
    model = PowerModel(model_config=model_config)
    path = fold_cache_path(cache, label, mode, seed)
    if log_calls is None:
        log_calls = catalog_log_calls(catalog)
    data = summaries_fingerprint(summaries)
    calls = log_calls_fingerprint(log_calls)
    how = fold_sampler(mode)
    if path is not None and path.is_file():
        try:
            cached = PowerModel.load(path)
            attrs = cached.idata.attrs
            got = attrs.get("fold_summaries", "none")
            got_calls = attrs.get("fold_log_calls", "none")
            # folds cached before the sampler was recorded (ADVI of 4 draws a step; NUTS of a dense metric)
            # are refitted like any other mismatch
            legacy = "advi" if attrs.get("sampler") == "fast" else "unrecorded"
            got_how = str(attrs.get("fold_sampler", legacy))
            if cached.id == model.id and got == data and got_calls == calls and got_how == how:
                return cached
            print(
                f"refitting {path.name}: cached model id {cached.id}, summaries {got}, logged inferences "
                f"{got_calls}, sampler {got_how}; need {model.id}, {data}, {calls}, {how}",
                file=sys.stderr,
            )
        except (ValueError, KeyError, OSError) as err:  # another model version or a broken file: refit
            print(f"refitting {path.name}: {err}", file=sys.stderr)
    fd = fit_data_from_catalog(
        catalog, holdout_runs=holdout_runs, summaries=summaries, log_calls=log_calls, progress=False
    )
    if mode.startswith("fast"):
        model.fit(fd, sampler="fast", random_seed=seed, progressbar=False, advi_family=_advi_family(mode))
    else:
        model.fit(fd, sampler="numpyro", random_seed=seed, progressbar=False, **FOLD_NUTS)
    model.idata.attrs["fold_summaries"] = data
    model.idata.attrs["fold_log_calls"] = calls
    model.idata.attrs["fold_sampler"] = how
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
    return model


def diagnostics_line(label: str, model) -> str:
    """One line of NUTS diagnostics of a fitted model: max r̂, min bulk ESS, divergences, sampler."""
    from wattscape.inference.diagnostics import diagnostics_summary

    d = diagnostics_summary(model.idata)
    fmt = lambda v: "n/a" if v is None else f"{v:.3g}"  # noqa: E731
    share = d["tree_depth_limit_share"]
    depth = "" if share is None else f", tree depth at its limit in {100 * share:.0f} % of draws"
    return (
        f"{label}: max r_hat {fmt(d['max_r_hat'])} ({d['worst_r_hat_parameter'] or '-'}), "
        f"min ESS bulk {fmt(d['min_ess_bulk'])}, divergences {d['divergences']}{depth}, "
        f"sampler {d['sampler']}"
    )


#: Shared data folders whose configuration summaries every fold is fitted with (the evidence the shipped
#: posterior has besides the runs): ML.ENERGY v3 and LLM-Inference-Bench average power.
SUMMARY_SOURCES = ("mlenergy-leaderboard-v3", "llm-inference-bench")


def _llm_family(name: str) -> str:
    """An LLM name without its release suffixes (``Llama-2-7b-chat-hf`` and ``Llama-2-7b-hf`` match)."""
    out = str(name).lower()
    for suffix in ("-hf", "-chat", "-instruct"):
        out = out.replace(suffix, "")
    return out


@functools.cache
def _shared_summaries() -> pd.DataFrame | None:
    """Summaries of :data:`SUMMARY_SOURCES` (ingested once under ``catalog/summaries``; read once per
    process), or None without the shared data."""
    from wattscape.inference.catalog import build_catalog

    sources = [SHARED_DATA / s for s in SUMMARY_SOURCES]
    if not all(src.is_dir() for src in sources):
        return None
    return build_catalog(sources, CATALOG_DIR / "summaries", progress=False).configs()


def catalog_summaries(catalog, *, exclude: dict | None = None, shared: bool = True):
    """Configuration summaries a held-out fold is fitted with.

    The catalog's own (``catalog.configs()``) plus, with ``shared``, those of :data:`SUMMARY_SOURCES` in the
    shared data (ingested once under ``catalog/summaries``), so a fold sees the same kinds of evidence as
    the shipped posterior.  Measured on five leave-one-run-out folds (fast fits, median run-energy ratio
    without → with): llama-2-13b 0.88 → 1.00, llama-2-70b 0.87 → 0.93, falcon-7b A100-SXM4-80GB
    0.75 → 0.81, falcon-40b 1.14 → 1.09, mixtral 1.31 → 1.24.

    Parameters
    ----------
    catalog : catalog
    exclude : dict, optional
        ``{"llm": name}``, ``{"gpu_model": card}`` or ``{"n_gpus": n}``: rows of the held-out group are
        dropped (an LLM by family, so a base and a chat release of one LLM go together), so a
        leave-one-group-out fit never sees its group through the summaries either.
    shared : bool
        Add the shared summary sources (when the shared data is there).

    Returns
    -------
    DataFrame or None
    """
    parts = [catalog.configs()] if hasattr(catalog, "configs") else []
    if shared:
        parts.append(_shared_summaries())
    parts = [p for p in parts if p is not None and len(p)]
    if not parts:
        return None
    out = pd.concat(parts, ignore_index=True).drop_duplicates(ignore_index=True)
    return _drop_group(out, exclude, "summaries")


def _drop_group(table: pd.DataFrame, exclude: dict | None, what: str) -> pd.DataFrame:
    """``table`` without the rows of a held-out group (``{"llm"|"gpu_model"|"n_gpus": value}``; an LLM by
    family)."""
    for key, value in (exclude or {}).items():
        if key == "llm":
            keep = table["llm"].astype(str).map(_llm_family) != _llm_family(value)
        elif key in ("gpu_model", "n_gpus"):
            keep = table[key].astype(str) != str(value)
        else:
            raise KeyError(f"cannot exclude {what} by {key!r}; use llm, gpu_model or n_gpus")
        table = table[keep].reset_index(drop=True)
    return table


def catalog_log_calls(catalog, *, exclude: dict | None = None):
    """Logged inferences without a trace that a held-out fold is fitted with: ``catalog.log_calls()``
    (none for a catalog without them) less a held-out group's (``exclude`` as in
    :func:`catalog_summaries`), so a leave-one-group-out fit never sees its group through them either.
    They overlap no traced run (:func:`wattscape.inference.readers.energy_inference.read_log_only_calls`),
    so a leave-one-run-out fold keeps them all.

    Returns
    -------
    DataFrame or None
    """
    if not hasattr(catalog, "log_calls"):
        return None
    return _drop_group(catalog.log_calls(), exclude, "logged inferences")


def log_calls_fingerprint(log_calls) -> str:
    """A short hash of the logged inferences a fold is fitted with (``"none"`` without any)."""
    import hashlib

    if log_calls is None or len(log_calls) == 0:
        return "none"
    cols = ["run_id", "start", "runtime_s", "gpu_energy_j"]
    text = log_calls[cols].astype(str).sort_values(cols).to_csv(index=False)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def summaries_fingerprint(summaries) -> str:
    """A short hash of the summary rows a fold is fitted with (``"none"`` without any): fold fits cached
    with other summaries are refitted."""
    import hashlib

    if summaries is None or len(summaries) == 0:
        return "none"
    cols = [c for c in ("source", "llm", "gpu_model", "n_gpus", "batch", "avg_power_w") if c in summaries]
    text = summaries[cols].astype(str).sort_values(cols).to_csv(index=False)
    return hashlib.sha1(text.encode()).hexdigest()[:12]
