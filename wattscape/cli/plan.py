"""``wattscape plan TRACE --out DIR``: planning analyses of a generated site trace, with an HTML report.

Writes ``DIR/report.html`` (self-contained), each table as CSV (``headline``, ``load_summary``,
``ramp_quantiles``, ``load_duration_curve``, ``oversubscription``, ``modulation``) and the exports
(``profile_15min_kw.csv``, ``profile_1h_kw.csv``, ``vessim_15min_w.csv``, ``datacenter.dss`` +
``datacenter_mult.csv``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``plan``."""
    p = subparsers.add_parser(
        "plan",
        help="oversubscription, power-capping and utility load analyses of a site trace",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("trace", help="site trace (NetCDF file or Zarr folder) written by `wattscape generate`")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--budget-kw",
        type=float,
        default=None,
        help="power budget in kW (default: nameplate of the median element of --level)",
    )
    p.add_argument(
        "--level",
        choices=("rack", "row", "facility"),
        default=None,
        help="where the budget applies (default: row when the trace has racks or servers, else facility)",
    )
    p.add_argument(
        "--unit",
        choices=("gpu", "server", "rack", "row"),
        default=None,
        help="unit counted under the budget (default: server for rack, else rack, server or row)",
    )
    p.add_argument(
        "--epsilon",
        type=float,
        nargs="+",
        default=None,
        help="risk levels (allowed probability of exceeding the budget), e.g. 0.01 0.05",
    )
    p.add_argument(
        "--caps",
        type=float,
        nargs="*",
        default=None,
        help="per-GPU power caps in W (default: 90..50 %% of TDP); give none to skip",
    )
    p.add_argument(
        "--facility-caps-kw",
        type=float,
        nargs="*",
        default=None,
        help="facility caps in kW incl. PUE (default: 95..80 %% of the median peak); none to skip",
    )
    p.add_argument(
        "--perf-exponent",
        type=float,
        default=1.0,
        help="exponent of the deferred-work throughput proxy (1 = work proportional to dynamic power)",
    )
    p.add_argument("--samples", type=int, default=200, help="random (draw, unit order) samples for the risk")
    p.add_argument(
        "--window-s",
        type=float,
        default=None,
        help="averaging window of the budget's protection in s (default: the trace period)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random unit orders")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def open_trace(path: str):
    """Open a site trace from NetCDF or Zarr; ``FileNotFoundError`` naming the path when missing."""
    import xarray as xr

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"trace not found: {p}")
    if p.is_dir() or p.suffix == ".zarr":
        ds = xr.open_zarr(p)
    else:
        ds = xr.open_dataset(p)
    ds.encoding["source"] = str(p)
    return ds


def run(args: argparse.Namespace) -> int:
    """Run the analyses and write the report."""
    from wattscape.generation.planning.oversubscription import DEFAULT_EPSILONS
    from wattscape.generation.planning.report import write_planning

    t0 = time.perf_counter()
    ds = open_trace(args.trace)
    command = (
        "wattscape " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "wattscape plan"
    )
    res = write_planning(
        ds,
        args.out,
        source=args.trace,
        command=command,
        budget_w=None if args.budget_kw is None else args.budget_kw * 1e3,
        level=args.level,
        unit=args.unit,
        epsilons=tuple(args.epsilon) if args.epsilon else DEFAULT_EPSILONS,
        gpu_caps_w=None if args.caps is None else tuple(args.caps),
        facility_caps_w=None
        if args.facility_caps_kw is None
        else tuple(c * 1e3 for c in args.facility_caps_kw),
        perf_exponent=args.perf_exponent,
        n_samples=args.samples,
        window_s=args.window_s,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(res["headline"].to_string(index=False))
    print(f"report: {res['paths']['report']}  ({time.perf_counter() - t0:.1f} s)")
    return 0
