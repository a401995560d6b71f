"""Checks of the hierarchical model on all real data: PPC per run, pooled effects, held-out LLMs and GPUs.

1. **PPC per run** (full fit): 5/50/95 % quantiles of per-GPU power in each state, posterior predictive
   (segment levels + AR residual, drawn for the run's own logged workload) against the observed samples;
   ``az.plot_ppc`` of the segment levels and summary rows, and a forest plot of the pooled effects
   (``results/figures/``).
2. **Leave-LLMs-out** on ML.ENERGY v3: a fixed, seeded 20 % of its LLMs held out of the fit (runs and
   summaries); each held-out configuration's average power (all its GPUs, at its batch) predicted with the
   LLM's effect drawn from its population: median absolute error of the posterior-predictive median and
   coverage of the 90 % interval.
3. **Leave-one-GPU-generation-out**: fit without B200, predict every B200 ML.ENERGY configuration.

Writes ``results/model_checks.csv`` / ``.md`` (held-out predictions) and
``results/model_checks_ppc.csv`` / ``.md``.

Usage::

    python -m experiments.model_checks                      # numpyro NUTS fits (three)
    python -m experiments.model_checks --sampler fast       # quick look (ADVI)
    python -m experiments.model_checks --posterior post.nc  # reuse a full fit for the PPC
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from wattscape.models import dims as D

from experiments import _common as C
from experiments._common import SHARED_DATA, command_line, results_dir, timed, write_result

MLENERGY = "mlenergy-v3"
HOLDOUT_SEED = 20260225
HOLDOUT_FRACTION = 0.2
B200 = "B200-SXM-180GB"
QUANTILES = (0.05, 0.5, 0.95)


def full_catalog(out: str | None = None):
    """Catalog of energy-inference runs + ML.ENERGY v3 + LLM-Inference-Bench (built under catalog/)."""
    from wattscape.inference.catalog import MANIFEST, build_catalog, load_catalog

    from experiments._common import CATALOG_DIR

    if out is not None:
        if not (Path(out) / MANIFEST).is_file():
            raise FileNotFoundError(f"{out}: not a catalog (no {MANIFEST})")
        return load_catalog(out)
    sources = [
        SHARED_DATA / "energy-inference",
        SHARED_DATA / "mlenergy-leaderboard-v3",
        SHARED_DATA / "llm-inference-bench",
    ]
    return build_catalog(sources, out or CATALOG_DIR / "model-checks", progress=False)


def fit(catalog, sampler: str, seed: int, draws: int, tune: int, **holdouts):
    """Cold fit of the model on the catalog minus the hold-outs."""
    from wattscape.inference.stats import fit_data_from_catalog
    from wattscape.models.hierarchical import PowerModel

    model = PowerModel()
    fd = fit_data_from_catalog(catalog, progress=False, **holdouts)
    model.fit(fd, sampler=sampler, draws=draws, tune=tune, chains=2, random_seed=seed, progressbar=False)
    return model


def held_out_llms(configs: pd.DataFrame) -> list[str]:
    """The fixed, seeded 20 % of ML.ENERGY v3 LLMs held out."""
    llms = sorted(configs.loc[configs["source"] == MLENERGY, "llm"].astype(str).unique())
    rng = np.random.default_rng(HOLDOUT_SEED)
    k = max(1, round(HOLDOUT_FRACTION * len(llms)))
    return sorted(rng.choice(llms, size=k, replace=False).tolist())


def predict_rows(model, rows: pd.DataFrame, protocol: str, n_draws: int = 1000) -> pd.DataFrame:
    """Posterior-predictive average power of each summary row; error and 90 % coverage."""
    from wattscape.models.hierarchical import ServingConfig

    out = []
    for r in rows.to_dict("records"):
        cfg = ServingConfig(
            llm=str(r["llm"]),
            params_b=float(r["params_b"]),
            gpu_model=str(r["gpu_model"]),
            n_gpus=int(r["n_gpus"]),
            active_params_b=float(r["active_params_b"]),
            precision=str(r["precision"]),
            split=str(r["split"]),
            tensor_parallel=int(r["tensor_parallel"]),
            task=f"{r['source']}:{r['task']}",
        )
        batch = (
            r["avg_batch_size"] if pd.notna(r["avg_batch_size"]) and r["avg_batch_size"] > 0 else r["batch"]
        )
        pred = model.predict_config(cfg, batch=float(batch), n_draws=n_draws, seed=0, source=str(r["source"]))
        q05, q50, q95 = np.quantile(pred["active_power_w"].values, QUANTILES)
        obs = float(r["avg_power_w"])
        out.append(
            {
                "protocol": protocol,
                "llm": r["llm"],
                "gpu_model": r["gpu_model"],
                "n_gpus": int(r["n_gpus"]),
                "split": r["split"],
                "task": r["task"],
                "batch": float(batch),
                "observed_w": obs,
                "pred_q05_w": q05,
                "pred_q50_w": q50,
                "pred_q95_w": q95,
                "abs_error_pct": 100 * abs(q50 - obs) / obs,
                "covered_90": bool(q05 <= obs <= q95),
                "seen_config": bool(pred.attrs["seen_config"]),
            }
        )
    return pd.DataFrame(out)


def markdown_table(df: pd.DataFrame, digits: int = 1) -> str:
    """A GitHub Markdown table (no extra dependency)."""

    def fmt(v):
        if isinstance(v, float | np.floating):
            return f"{v:.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs) -> np.ndarray:
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cw = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(qs, cw, v)


def ppc_table(model, catalog, n_draws: int = 200, per_segment: int = 20, seed: int = 0) -> pd.DataFrame:
    """Per run and state: observed vs posterior-predictive 5/50/95 % per-GPU power quantiles, W."""
    from wattscape.models.hierarchical import _sigmoid

    fd = model.fit_data
    post, rng = model._draws(n_draws, seed)
    mc = model.model_config
    max_frac, ref = float(mc["max_frac"]), np.asarray(mc["covariate_ref"], dtype=float)
    groups = model._groups(fd)
    states = model.states
    cfg_names = [str(c) for c in fd[D.CONFIG].values]
    gpus = [str(g) for g in fd[D.GPU_MODEL].values]
    eta = post["eta"].transpose(D.DRAW, D.CONFIG, D.STATE).values
    slope = post["level_slope"].transpose(D.DRAW, D.STATE, D.COVARIATE).values
    slope_gpu = post["b_slope_gpu"].transpose(D.DRAW, D.GPU_MODEL).values
    context_gpu = (
        post["b_context_slope_gpu"].transpose(D.DRAW, D.GPU_MODEL).values
        if "b_context_slope_gpu" in post
        else np.zeros_like(slope_gpu)
    )
    log_lsd = post["log_level_scale"].transpose(D.DRAW, D.STATE).values
    log_rsd = post["log_resid_scale"].transpose(D.DRAW, D.STATE).values
    lev_dev = post["level_group_dev"].transpose(D.DRAW, ...).values if "level_group_dev" in post else None
    res_dev = post["resid_group_dev"].transpose(D.DRAW, ...).values if "resid_group_dev" in post else None
    b_run = post["b_run"].transpose(D.DRAW, D.RUN).values if "b_run" in post else None
    traced = set(str(r) for r in catalog.index["run_id"])
    rows = []
    for ri, run_id in enumerate(str(r) for r in fd[D.RUN].values):
        if run_id not in traced:
            continue  # a log without a trace (per-call energy only): no power samples to check
        run = catalog.run(run_id)
        c = int(fd["run_config"].values[ri])
        tdp = float(fd["config_tdp_w"].values[c])
        g = int(fd["config_gpu_model"].values[c])
        n_gpu = run.sizes[D.GPU]
        for si, state in enumerate(states):
            mask = run[D.STATE_VAR].values == D.state_code(state)
            obs = run[D.POWER].values[:, mask].ravel()
            obs = obs[np.isfinite(obs)]
            segs = np.flatnonzero((fd["seg_run"].values == ri) & (fd["seg_state"].values == si))
            if obs.size < 10 or segs.size == 0:
                continue
            dx = fd["seg_x"].values[segs] - ref
            n_j = fd["seg_n"].values[segs] * n_gpu
            lsd = log_lsd[:, si].copy()
            gi = groups["seg_group"][segs[0]]
            if lev_dev is not None and gi >= 0:
                lsd = lsd + lev_dev[:, gi]
            rsd = log_rsd[:, si].copy()
            rmatch = np.flatnonzero((groups["resid_run"] == ri) & (groups["resid_state"] == si))
            if res_dev is not None and rmatch.size:
                rsd = rsd + res_dev[:, rmatch[0]]
            busy = 0.0 if state == D.IDLE else 1.0
            run_eff = b_run[:, ri][:, None] * busy if b_run is not None else 0.0
            mu = (
                eta[:, c, si][:, None]
                + run_eff
                + (slope[:, si, :][:, None, :] * dx[None]).sum(-1) * busy
                + (slope_gpu[:, g][:, None] * dx[None, :, 0] * busy)
                + (context_gpu[:, g][:, None] * dx[None, :, 1] * busy)
            )
            level = mu + np.exp(lsd)[:, None] * rng.standard_normal(mu.shape)
            frac = max_frac * _sigmoid(level)[..., None] + np.exp(rsd)[:, None, None] * rng.standard_normal(
                (*mu.shape, per_segment)
            )
            frac = np.maximum(frac, 0.0)  # a meter never reads negative power
            sims = np.array(
                [
                    _weighted_quantiles(tdp * f.ravel(), np.repeat(n_j / per_segment, per_segment), QUANTILES)
                    for f in frac
                ]
            )
            obs_q = np.quantile(obs, QUANTILES)
            row = {
                "run_id": run_id,
                "gpu_model": gpus[g],
                "config": cfg_names[c],
                "state": state,
                "n_samples": int(obs.size),
            }
            for q, o, s in zip(QUANTILES, obs_q, sims.T, strict=True):
                tag = f"q{round(q * 100):02d}"
                row[f"obs_{tag}_w"] = o
                row[f"pp_{tag}_w"] = float(np.median(s))
                row[f"pp_{tag}_lo_w"], row[f"pp_{tag}_hi_w"] = (
                    float(v) for v in np.quantile(s, (0.05, 0.95))
                )
                row[f"{tag}_in_90"] = bool(np.quantile(s, 0.05) <= o <= np.quantile(s, 0.95))
            rows.append(row)
    return pd.DataFrame(rows)


def figures(model, out_dir) -> list[str]:
    """az.plot_ppc of segment levels and summary rows; forest plot of pooled effects."""
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figdir = results_dir(out_dir) / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    if "posterior_predictive" not in model.idata.groups():
        model.sample_posterior_predictive(random_seed=0)
    written = []
    for var in ("seg_obs", "summary_obs"):
        if var in model.idata.posterior_predictive:
            axes = az.plot_ppc(model.idata, var_names=[var], num_pp_samples=100, random_seed=0)
            fig = np.ravel(axes)[0].figure
            fig.savefig(figdir / f"model_checks_ppc_{var}.png", dpi=120, bbox_inches="tight")
            plt.close(fig)
            written.append(str(figdir / f"model_checks_ppc_{var}.png"))
    names = [v for v in ("b_gpu", "b_par", "b_task", "beta", "level_slope") if v in model.posterior]
    axes = az.plot_forest(model.idata, var_names=names, combined=True, hdi_prob=0.9, figsize=(8, 16))
    fig = np.ravel(axes)[0].figure
    fig.savefig(figdir / "model_checks_forest.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    written.append(str(figdir / "model_checks_forest.png"))
    return written


def _summary(df: pd.DataFrame) -> pd.DataFrame:
    return (
        df.groupby("protocol")
        .agg(
            n=("observed_w", "size"),
            median_abs_error_pct=("abs_error_pct", "median"),
            coverage_90_pct=("covered_90", lambda s: 100 * s.mean()),
            p90_abs_error_pct=("abs_error_pct", lambda s: s.quantile(0.9)),
        )
        .reset_index()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", default=None, help="catalog folder (default: built under catalog/)")
    parser.add_argument("--sampler", default="numpyro", choices=["numpyro", "nutpie", "pymc", "fast"])
    parser.add_argument("--posterior", default=None, help="full-data posterior to reuse for the PPC")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], choices=["ppc", "llms", "b200"])
    parser.add_argument("--out-dir", default=None)
    args = parser.parse_args(argv)
    command = command_line("experiments.model_checks", argv)
    if args.sampler == "numpyro":
        from wattscape.inference.fit import set_host_devices

        set_host_devices(2)
    from wattscape.models.hierarchical import PowerModel

    catalog = full_catalog(args.catalog)
    configs = catalog.configs()
    log: dict[str, float] = {}
    md = []
    if "ppc" not in args.skip:
        with timed("full fit", log):
            model = (
                PowerModel.load(args.posterior)
                if args.posterior
                else fit(catalog, args.sampler, args.seed, args.draws, args.tune)
            )
        with timed("ppc", log):
            ppc = ppc_table(model, catalog, seed=args.seed)
            figs = figures(model, args.out_dir)
        cols = ["run_id", "state", "obs_q05_w", "pp_q05_w", "obs_q50_w", "pp_q50_w", "obs_q95_w", "pp_q95_w"]
        tags = [f"q{round(q * 100):02d}" for q in QUANTILES]
        cover = ", ".join(f"{t} {100 * ppc[f'{t}_in_90'].mean():.0f} %" for t in tags)
        write_result(
            "model_checks_ppc",
            ppc,
            "Per run and state, per-GPU power quantiles (W): observed vs "
            "posterior-predictive median (90 % band in the CSV).\n\n"
            f"Observed quantile inside the predictive 90 % band (share of run-states): {cover}\n\n"
            + markdown_table(ppc[cols])
            + "\n\nFigures: "
            + ", ".join(figs)
            + "\n",
            command=command,
            out_dir=args.out_dir,
        )
    tables = []
    if "llms" not in args.skip:
        held = held_out_llms(configs)
        print(f"held-out LLMs: {held}", file=sys.stderr)
        with timed("leave-LLMs-out fit", log):
            m = fit(catalog, args.sampler, args.seed, args.draws, args.tune, holdout_llms=held)
        rows = configs[(configs["source"] == MLENERGY) & configs["llm"].isin(held)]
        tables.append(predict_rows(m, rows, "leave-LLMs-out (ML.ENERGY v3, 20 %)"))
        md.append(C.diagnostics_line("leave-LLMs-out fit", m))
        md.append(f"Held-out LLMs (seed {HOLDOUT_SEED}): {', '.join(held)}")
    if "b200" not in args.skip:
        with timed("leave-B200-out fit", log):
            m = fit(catalog, args.sampler, args.seed, args.draws, args.tune, exclude_gpus=[B200])
        rows = configs[(configs["source"] == MLENERGY) & (configs["gpu_model"] == B200)]
        tables.append(predict_rows(m, rows, "leave-GPU-generation-out (B200)"))
        md.append(C.diagnostics_line("leave-B200-out fit", m))
    if tables:
        df = pd.concat(tables, ignore_index=True)
        summ = _summary(df)
        body = "\n\n".join(
            [
                *md,
                markdown_table(summ, 2),
                f"Sampler: {args.sampler}; wall times (s): "
                + ", ".join(f"{k} {v:.0f}" for k, v in log.items()),
            ]
        )
        write_result("model_checks", df, body, command=command, out_dir=args.out_dir)
        print(summ.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
