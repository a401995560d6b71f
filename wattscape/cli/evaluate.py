"""``wattscape evaluate``: score a fitted model and the baselines on held-out runs of a catalog."""

from __future__ import annotations

import argparse
import re
import shlex
import sys

#: Methods accepted by ``--methods``.
_METHODS = ("model", "tdp", "mean", "splitwise", "replay", "mean_generation")


def parse_period(text: str) -> float | None:
    """``"1s"``, ``"250ms"``, ``"30s"``, ``"15min"``, ``"1h"`` → seconds; ``"native"`` → None."""
    text = text.strip().lower()
    if text == "native":
        return None
    m = re.fullmatch(r"(\d+(?:\.\d*)?)\s*(ms|s|min|m|h)?", text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad period {text!r}; use e.g. 1s, 250ms, 30s, 15min, native")
    scale = {"ms": 1e-3, "s": 1.0, None: 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}[m.group(2)]
    value = float(m.group(1)) * scale
    if value <= 0:
        raise argparse.ArgumentTypeError(f"period must be positive, got {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``evaluate``."""
    p = subparsers.add_parser(
        "evaluate",
        help="score a fitted model and the baselines on runs the fit never saw",
        description=(
            "Replay each run's own workload through the fitted model (N posterior-predictive draws), "
            "score it and the baselines (TDP, mean power, Splitwise per phase, static replay) as "
            "PROTOCOL.md defines, and write DIR/accuracy.csv and DIR/accuracy.md."
        ),
    )
    p.add_argument("posterior", help="fitted model / posterior NetCDF (wattscape fit)")
    p.add_argument("catalog", help="catalog of measured runs (wattscape ingest)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--runs", nargs="+", metavar="RUN_ID", help="run ids to score (default: all with a log)")
    p.add_argument("--draws", type=int, default=100, metavar="N", help="posterior-predictive draws per run")
    p.add_argument("--seed", type=int, default=0, help="base random seed")
    p.add_argument("--allow-seen", action="store_true", help="also score runs the posterior was fitted on")
    p.add_argument(
        "--drive",
        choices=("open", "closed"),
        default="open",
        help="replay at the logged start times (open, PROTOCOL.md) or on the logged think times (closed)",
    )
    p.add_argument(
        "--period",
        type=parse_period,
        action="append",
        metavar="P",
        help="scoring period (repeatable; default 1s): e.g. 1s, 30s, 15min, native",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        choices=_METHODS,
        default=["model", "tdp", "mean", "splitwise", "replay"],
        help="methods to score",
    )
    p.add_argument(
        "--training-catalog",
        metavar="CATALOG",
        help="training runs of the mean/replay baselines (default: the other runs of CATALOG)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def command_line(args: argparse.Namespace) -> str:
    """The ``wattscape evaluate`` command equivalent to ``args`` (for the output's header)."""
    parts = ["wattscape", "evaluate", args.posterior, args.catalog, "--out", args.out]
    if args.runs:
        parts += ["--runs", *args.runs]
    parts += ["--draws", str(args.draws), "--seed", str(args.seed)]
    if args.allow_seen:
        parts.append("--allow-seen")
    parts += ["--drive", args.drive]
    for period in args.period or [1.0]:
        parts += ["--period", "native" if period is None else f"{period:g}s"]
    parts += ["--methods", *args.methods]
    if args.training_catalog:
        parts += ["--training-catalog", args.training_catalog]
    return " ".join(shlex.quote(str(p)) for p in parts)


def run(args: argparse.Namespace) -> int:
    """Run ``wattscape evaluate``."""
    from wattscape import __version__
    from wattscape.inference.catalog import load_catalog

    catalog = load_catalog(args.catalog)
    training = load_catalog(args.training_catalog) if args.training_catalog else None
    header = f"Command: `{command_line(args)}`  \nwattscape {__version__}"
    try:
        table = _evaluate(args, catalog, training, header)
    except ImportError as err:  # the generator's replay is not installed
        print(f"wattscape evaluate: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}/accuracy.csv ({len(table)} rows) and {args.out}/accuracy.md")
    return 0


def _evaluate(args, catalog, training, header):
    from wattscape.inference.evaluate import evaluate

    return evaluate(
        args.posterior,
        catalog,
        args.out,
        runs=args.runs,
        n_draws=args.draws,
        seed=args.seed,
        allow_seen=args.allow_seen,
        methods=tuple(args.methods),
        training=training,
        periods_s=tuple(args.period) if args.period else (1.0,),
        progress=not args.quiet,
        header=header,
        drive=args.drive,
    )
