"""``wattscape fit CATALOG --out posterior.nc``: fit the hierarchical power model to a catalog."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: ``--advi-family`` choices: ``wattscape.inference.fit.ADVI_FAMILIES`` (not imported here: that module
#: loads PyMC, which ``--help`` should not wait for; a test keeps the two equal).
ADVI_FAMILY_CHOICES = ("meanfield", "fullrank")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``fit``."""
    p = subparsers.add_parser(
        "fit",
        help="fit the hierarchical power model to a catalog",
        description="Reduce the catalog's runs and configuration summaries to sufficient statistics, fit the "
        "model, and write the posterior (NetCDF) with a diagnostics table beside it.",
    )
    p.add_argument("catalog", help="catalog folder (wattscape ingest)")
    p.add_argument("--out", required=True, help="posterior file to write (.nc)")
    p.add_argument("--holdout", nargs="*", default=[], metavar="RUN_ID", help="runs left out of the fit")
    p.add_argument(
        "--holdout-llm", nargs="*", default=[], metavar="NAME", help="LLMs left out (runs and summaries)"
    )
    p.add_argument(
        "--exclude-gpu", nargs="*", default=[], metavar="MODEL", help="GPU models (cards) left out"
    )
    p.add_argument("--no-summaries", action="store_true", help="fit the time-series runs only")
    p.add_argument("--fast", action="store_true", help="approximate fit (ADVI): quick looks and CI")
    p.add_argument(
        "--sampler",
        default=None,
        choices=["numpyro", "nutpie", "pymc", "fast"],
        help="sampler (default numpyro; --fast means 'fast')",
    )
    p.add_argument("--model-config", default=None, help="YAML/JSON file of model_config overrides")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--advi-iterations", type=int, default=20_000)
    p.add_argument(
        "--advi-family",
        default=None,
        choices=ADVI_FAMILY_CHOICES,
        help="variational family of --fast (default: the package's, mean field)",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Fit and save; prints the headline diagnostics."""
    sampler = "fast" if args.fast else (args.sampler or "numpyro")
    if sampler == "numpyro":
        from wattscape.inference.fit import set_host_devices

        set_host_devices(args.chains)  # parallel chains; must precede the first JAX import
    from wattscape.inference.catalog import load_catalog
    from wattscape.inference.diagnostics import save_diagnostics
    from wattscape.inference.stats import fit_data_from_catalog
    from wattscape.models.hierarchical import PowerModel

    catalog = load_catalog(args.catalog)
    model = PowerModel(args.model_config)
    fit_data = fit_data_from_catalog(
        catalog,
        holdout_runs=args.holdout,
        holdout_llms=args.holdout_llm,
        exclude_gpus=args.exclude_gpu,
        use_summaries=not args.no_summaries,
        states=model.states,
        covariate_ref=model.model_config["covariate_ref"],
    )
    print(f"fitting {fit_data} with {sampler}")
    kwargs = {}
    if sampler == "fast":
        kwargs["advi_iterations"] = args.advi_iterations
        if args.advi_family:
            kwargs["advi_family"] = args.advi_family
    model.fit(
        fit_data,
        sampler=sampler,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        random_seed=args.seed,
        progressbar=True,
        **kwargs,
    )
    out = model.save(args.out)
    summary = save_diagnostics(model.idata, out)
    print(json.dumps(summary, indent=2))
    print(f"wrote {out} (model id {model.id}) and {Path(out).with_suffix('')}.diagnostics.csv/.json")
    return 0
