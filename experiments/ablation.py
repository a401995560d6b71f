"""Ablation: what each part of the power model buys, leave-one-run-out on the energy-inference runs.

Variants, each scored like ``experiments.accuracy`` (the held-out run's logged workload replayed through
the generator, PROTOCOL.md metrics on per-GPU window means):

``full``          the model as fitted (the accuracy fold fits: same seeds, same ``--cache`` files);
``no_pooling``    refitted with every pooled effect's hyperprior sd replaced by a fixed constant
                  (``--pool-sd``, default 1.0 on the logit scale): for every ``pymc_extras`` ``Prior`` of
                  ``PowerModel().model_config`` whose ``sigma`` is itself a ``Prior`` (found generically, so
                  the list follows the model), passed as ``PowerModel(model_config=overrides)``;
``no_levels``     the full fit's parameter draws with ``level_scale = 0`` and ``level_slope = 0`` (and their
                  logit-link versions when the parameters carry them): every inference at its state's
                  mean level (no between-segment spread, no workload slope);
``no_ar``         ``ar_coef = 0``: the within-segment residual is white noise (``resid_scale`` kept);
``no_meter``      ``meter_window_s = 0``: the generator without the nvidia-smi averaging window (the
                  replay's kernel is ``round(meter_window_s / sample period)`` samples, a no-op at ≤ 1; the
                  ``meter_k`` column gives it per run for the full model).

The parameter transforms sit between ``PowerModel.config_params`` and
``wattscape.generation.replay.replay_params`` (the seam of ``replay_run``); every variant of a run uses the
same draws and random keys (common random numbers), so differences are paired.

Writes ``results/ablation.csv`` (one row per run × variant × period) and ``results/ablation.md``.

Usage::

    python -m experiments.ablation --cache catalog/fits          # all 13 runs (13 extra no-pooling fits)
    python -m experiments.ablation --quick                        # CI-sized: 1 fold, 10 draws
    python -m experiments.ablation --variants full no_ar no_meter # skip the refits
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from wattscape.inference import evaluate as E
from wattscape.inference import metrics as M
from wattscape.models import dims as D

from experiments import _common as C
from experiments.model_checks import markdown_table

NAME = "ablation"
VARIANTS = ("full", "no_pooling", "no_levels", "no_ar", "no_meter")
QUICK_RUNS = 1
#: Metrics of the summary.
SUMMARY_METRICS = ("energy_error_pct", "acf_r2", "acf_mae", "ks")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.ablation", description=__doc__.splitlines()[0])
    p.add_argument("--catalog", help="catalog path (default: energy-inference in the shared data)")
    p.add_argument("--fit", choices=("fast", "nuts"), default="fast", help="fit mode of the held-out fits")
    p.add_argument("--draws", type=int, default=C.HELD_OUT_DRAWS, help="posterior-predictive draws per run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--periods", nargs="+", type=float, default=[1.0, 30.0], help="scoring periods, s")
    p.add_argument("--runs", nargs="+", help="only these held-out runs")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--pool-sd", type=float, default=1.0, help="fixed sd replacing pooled hyperpriors")
    p.add_argument("--quick", action="store_true", help=f"CI-sized: {QUICK_RUNS} fold, 10 draws, fast fits")
    p.add_argument("--out", help="results folder (default results/)")
    p.add_argument("--cache", help="folder of fold fits to reuse/save (as experiments.accuracy --cache)")
    p.add_argument("--name", default=NAME, help="result file stem")
    p.add_argument("--drive", choices=("open", "closed"), default="open", help="replay drive (as accuracy)")
    return p.parse_args(argv)


# --- variants ----------------------------------------------------------------------------------------
def no_pooling_overrides(sd: float = 1.0, model_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``model_config`` overrides that turn every pooled effect into an unpooled one with a fixed ``sd``.

    Every ``pymc_extras.prior.Prior`` entry whose ``sigma`` parameter is itself a ``Prior`` (a learnt,
    pooled scale) gets ``sigma = sd``; other parameters, dims and centring are kept.

    Parameters
    ----------
    sd : float
        The fixed sd (on the scale of the effect; the level effects are on the logit scale).
    model_config : mapping, optional
        The configuration to transform (default ``PowerModel().model_config``).

    Returns
    -------
    dict
        Overrides for ``PowerModel(model_config=...)`` (empty when no prior pools).
    """
    from pymc_extras.prior import Prior

    if model_config is None:
        from wattscape.models.hierarchical import PowerModel

        model_config = PowerModel().model_config
    out = {}
    for key, value in model_config.items():
        if isinstance(value, Prior) and isinstance(value.parameters.get("sigma"), Prior):
            d = value.to_dict()
            d["kwargs"] = {**d["kwargs"], "sigma": float(sd)}
            out[key] = Prior.from_dict(d)
    return out


def _set(params: xr.Dataset, **values: float) -> xr.Dataset:
    """A copy of ``params`` with the named variables set to a constant (attrs kept)."""
    missing = [k for k in values if k not in params]
    if missing:
        raise KeyError(f"config_params has no variable(s) {missing}: the ablation needs them")
    out = params.copy()
    for name, v in values.items():
        out[name] = xr.full_like(params[name], v)
    return out


def level_spread_vars(params: xr.Dataset) -> list[str]:
    """The variables of ``params`` that spread or move a segment's level: ``level_scale``, ``level_slope``
    and their link-scale versions (any ``level_*_scale`` / ``level_*_slope``, e.g. ``level_logit_scale``)."""
    return [
        str(v) for v in params.data_vars
        if str(v).startswith("level_") and str(v).endswith(("_scale", "_slope"))
    ]


def no_levels(params: xr.Dataset) -> xr.Dataset:
    """Every inference at its state's mean level: every :func:`level_spread_vars` variable set to 0."""
    names = level_spread_vars(params)
    if not {"level_scale", "level_slope"} <= set(names):
        raise KeyError(f"config_params lacks level_scale/level_slope (has {sorted(params.data_vars)})")
    return _set(params, **dict.fromkeys(names, 0.0))


def no_ar(params: xr.Dataset) -> xr.Dataset:
    """White-noise residual: ``ar_coef = 0`` (``resid_scale`` kept)."""
    return _set(params, ar_coef=0.0)


def no_meter(params: xr.Dataset) -> xr.Dataset:
    """No meter averaging window: ``meter_window_s = 0`` (the replay's kernel becomes a no-op)."""
    out = params.copy()
    out.attrs = {**params.attrs, "meter_window_s": 0.0}
    return out


#: Parameter transforms of the variants that reuse the full fit.
TRANSFORMS: dict[str, Callable[[xr.Dataset], xr.Dataset]] = {
    "no_levels": no_levels,
    "no_ar": no_ar,
    "no_meter": no_meter,
}


def meter_samples(params: xr.Dataset, run: xr.Dataset) -> int:
    """Samples of the replay's meter kernel on ``run``'s grid (``round(meter_window_s / dt)``; ≤ 1: none)."""
    t = np.asarray(run[D.TIME].values).astype("datetime64[ns]")
    dt = float(np.median(np.diff(t)) / np.timedelta64(1, "s"))
    return round(float(params.attrs.get("meter_window_s", 0.0)) / dt)


def transformed_generator(
    model,
    transform: Callable[[xr.Dataset], xr.Dataset] | None = None,
    info: dict | None = None,
    drive: str = "open",
) -> E.Generator:
    """``replay_run`` with ``transform`` applied to the configuration's parameter draws.

    ``info`` (optional) receives ``{run_id: meter kernel samples}`` of the parameters actually replayed;
    ``drive``: the replay's drive (``"open"``: logged start times, PROTOCOL.md; ``"closed"``: think times).
    """
    from wattscape.generation.replay import config_params_for, replay_params

    def generate(run: xr.Dataset, requests: pd.DataFrame, n_draws: int, seed: int) -> xr.DataArray:
        params = config_params_for(model, run, n_draws, seed)
        if transform is not None:
            params = transform(params)
        if info is not None:
            info[str(run.attrs.get("run_id"))] = meter_samples(params, run)
        return replay_params(params, run, requests, seed=seed, drive=drive)

    return generate


# --- experiment --------------------------------------------------------------------------------------
def fold_rows(catalog, ids: Sequence[str], args, log: dict) -> pd.DataFrame:
    """Scores of every variant on every held-out run (one row per run × variant × period)."""
    summaries = C.catalog_summaries(catalog)
    overrides = no_pooling_overrides(args.pool_sd) if "no_pooling" in args.variants else {}
    tables = []
    for rid in ids:
        seed = C.fold_seed(catalog, rid, args.seed)
        eval_seed = args.seed + 1000 * (seed - args.seed)
        with C.timed(f"ablation {rid}", log):
            full = None
            for variant in args.variants:
                info: dict[str, int] = {}
                if variant == "no_pooling":
                    model = C.fit_fold(
                        catalog, [rid], mode=args.fit, seed=seed, summaries=summaries, cache=args.cache,
                        label=f"{rid}-nopool", model_config=overrides,
                    )
                    gen = transformed_generator(model, None, info, args.drive)
                else:
                    if full is None:
                        full = C.fit_fold(
                            catalog, [rid], mode=args.fit, seed=seed, summaries=summaries, cache=args.cache
                        )
                    model = full
                    gen = transformed_generator(model, TRANSFORMS.get(variant), info, args.drive)
                E.check_unseen(model, [rid])  # a leak here is a bug
                t = E.evaluate_runs(
                    catalog, generator=gen, runs=[rid], n_draws=args.draws, seed=eval_seed,
                    methods=(E.MODEL,), periods_s=args.periods, progress=False,
                )
                t["method"] = variant
                t["meter_k"] = info.get(rid, np.nan)
                tables.append(t)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def paired(table: pd.DataFrame, period: float) -> pd.DataFrame:
    """Median over runs of each variant's change against ``full`` (same run, same draws)."""
    one = table[table["period_s"] == period]
    if "full" not in set(one["method"]):
        return pd.DataFrame()
    rows = []
    base = one[one["method"] == "full"].set_index("run_id")
    for variant, grp in one.groupby("method", sort=False):
        if variant == "full":
            continue
        g = grp.set_index("run_id")
        common = g.index.intersection(base.index)
        row = {"variant": variant, "n": len(common)}
        for m in SUMMARY_METRICS:
            diff = g.loc[common, m] - base.loc[common, m]
            row[f"d_{m}"] = float(np.median(diff)) if len(common) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, *, overrides: Mapping, args, timings: dict) -> str:
    """Summary per period and variant, paired changes, notes."""
    if len(table) == 0:
        return "No run scored.\n"
    body = []
    for period, grp in table.groupby("period_s", sort=True):
        summ = M.summarize(grp, SUMMARY_METRICS, by="method", point="run_id")
        body += [f"## period {period:g} s", "", M.markdown_table(summ)]
        cov_cols = ("energy_in_50", "energy_in_90", "window_coverage_50", "window_coverage_90")
        cov = grp.groupby("method", sort=False)[[c for c in cov_cols if c in grp]].mean()
        body += ["Coverage (mean over runs):", "", markdown_table(cov.reset_index(), 2), ""]
        pair = paired(table, period)
        if len(pair):
            body += ["Median change against `full` over the same runs (paired; ACF R²: + is better, "
                     "others: − is better):", ""]
            body += [markdown_table(pair, 3), ""]
    notes = []
    if "no_pooling" in args.variants:
        notes.append(
            f"no_pooling: fixed sd {args.pool_sd:g} for {len(overrides)} pooled priors "
            f"({', '.join(sorted(overrides)) or 'none'})."
        )
    full = table[table["method"] == "full"]
    if "meter_k" in table and len(full):
        ks = sorted({int(k) for k in full["meter_k"].dropna()})
        notes.append(
            f"meter kernel of the full model on these runs: {ks} samples "
            + ("(≤ 1 everywhere: the kernel is a no-op at this sample period, so no_meter equals full)"
               if ks and max(ks) <= 1 else "")
        )
    if notes:
        body += ["## Notes", "", *(f"- {n}" for n in notes)]
    if timings:
        body.append(f"\nWall time: {sum(timings.values()):.0f} s in all.")
    return "\n".join(body) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = C.command_line("experiments.ablation", argv)
    if args.quick:
        args.draws = min(args.draws, 10)
    timings: dict[str, float] = {}
    catalog = C.energy_inference_catalog(args.catalog)
    ids = C.held_out_runs(catalog, args.runs, quick=args.quick, n_quick=QUICK_RUNS)
    print(f"{len(ids)} held-out runs: {', '.join(ids)}; variants {args.variants}", file=sys.stderr)
    overrides = no_pooling_overrides(args.pool_sd) if "no_pooling" in args.variants else {}
    table = fold_rows(catalog, ids, args, timings)
    md = markdown(table, overrides=overrides, args=args, timings=timings)
    C.publish(args.name, table, md, command=command, out_dir=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
