"""``wattscape generate POSTERIOR --scenario SITE.toml --out TRACE.nc``: posterior-predictive site traces.

``POSTERIOR`` is a saved model (``PowerModel.save``, an InferenceData NetCDF) or the keyword ``prior`` /
``example`` (physics-plausible example draws, ``models.params.example_config_params``).  ``--scenario`` is a
TOML file or the name of a shipped scenario (``one_server``, ``azure_day_1000``, ``mixed_fleet``).  The
output is NetCDF (``.nc``) or Zarr (``.zarr``); ``--resample`` adds an energy-conserving resampling.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

EXAMPLE_KEYWORDS = ("prior", "example")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``wattscape generate``."""
    p = subparsers.add_parser(
        "generate",
        help="posterior-predictive power traces of a site scenario",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("posterior", help="saved model (.nc) or 'prior'/'example' for example parameter draws")
    p.add_argument("--scenario", required=True, help="site TOML file or shipped scenario name")
    p.add_argument("--out", required=True, help="output trace (.nc NetCDF or .zarr folder)")
    p.add_argument("--seed", type=int, default=0, help="root random seed (same seed, same trace)")
    p.add_argument("--draws", type=int, default=None, help="posterior draws (default: the scenario's)")
    p.add_argument(
        "--levels",
        nargs="+",
        default=None,
        help="output levels, overriding the scenario (gpu server rack row facility)",
    )
    p.add_argument(
        "--resample",
        type=float,
        default=None,
        metavar="SECONDS",
        help="resample the trace to this period (energy-conserving) before writing",
    )
    p.add_argument(
        "--out-of-core",
        action="store_true",
        help="stream draws into the Zarr store --out (needs .zarr; bands computed with Dask)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def load_params(posterior: str, site, n_draws: int, seed: int) -> dict:
    """Parameter draws per configuration of ``site`` from a saved posterior or the example keyword."""
    from wattscape.generation.site import example_params_for_site, posterior_params_for_site

    if posterior.lower() in EXAMPLE_KEYWORDS:
        return example_params_for_site(site, max(n_draws, 100), seed)
    if not Path(posterior).exists():
        raise FileNotFoundError(f"posterior {posterior!r} not found (or use 'prior' / 'example')")
    return posterior_params_for_site(posterior, site, max(n_draws, 100), seed)


def summary(ds) -> str:
    """Energy, peak and nameplate lines of a site trace."""
    from wattscape.generation.aggregate import energy
    from wattscape.models import dims as D

    e = energy(ds, D.FACILITY_POWER) / 3.6e9  # MWh
    peak = ds[D.FACILITY_POWER].max(D.TIME) / 1e3
    q = [0.05, 0.5, 0.95]
    eq, pq = e.quantile(q).values, peak.quantile(q).values
    npl = float(ds["facility" + D.NAMEPLATE_SUFFIX]) / 1e3
    return (
        f"facility energy {eq[1]:.4g} MWh (90 % interval {eq[0]:.4g}–{eq[2]:.4g}); "
        f"peak {pq[1]:.4g} kW ({pq[0]:.4g}–{pq[2]:.4g}); TDP nameplate {npl:.4g} kW "
        f"(overstates the median peak by {100 * (npl / pq[1] - 1):.1f} %)"
    )


def run(args: argparse.Namespace) -> int:
    """Generate, write, print a summary."""
    from wattscape.generation.aggregate import write_trace
    from wattscape.generation.resample import resample
    from wattscape.generation.site import generate_site
    from wattscape.generation.topology import load_site

    site = load_site(args.scenario)
    n_draws = int(args.draws or site.draws)
    t0 = time.perf_counter()
    params = load_params(args.posterior, site, n_draws, args.seed)
    if args.out_of_core:
        from wattscape.generation.site import generate_site_zarr

        if not str(args.out).endswith(".zarr") or args.resample:
            raise ValueError("--out-of-core writes a .zarr store and does not resample")
        lazy = generate_site_zarr(
            params,
            site,
            args.out,
            seed=args.seed,
            draws=n_draws,
            progress=not args.quiet,
            levels=tuple(args.levels) if args.levels else None,
        )
        print(f"{site.name}: {n_draws} draws streamed to {args.out} ({time.perf_counter() - t0:.1f} s)")
        print(summary(lazy))
        return 0
    ds = generate_site(
        params,
        site,
        seed=args.seed,
        draws=n_draws,
        levels=tuple(args.levels) if args.levels else None,
        progress=not args.quiet,
    )
    if args.resample:
        ds = resample(ds, args.resample)
    ds.attrs["posterior"] = str(args.posterior)
    write_trace(ds, args.out)
    print(
        f"{site.name}: {site.n_servers} servers, {site.n_gpus} GPUs, "
        f"{site.duration_s:g} s at {site.dt_s:g} s, "
        f"{n_draws} draws, seed {args.seed} -> {args.out} ({time.perf_counter() - t0:.1f} s)"
    )
    print(summary(ds))
    return 0
