"""``wattscape demo``: the main job on data shipped in the package.

Ingests the embedded demo data (a small real subset), prints the per-run summary, then runs the shipped
posterior through a small site scenario and writes its facility trace and profile figure.
"""

from __future__ import annotations

import argparse
import tempfile
from importlib import resources
from pathlib import Path


def demo_data() -> Path:
    """Folder of the embedded demo data set (``energy-inference`` layout with its ``runs_index.csv``)."""
    return Path(str(resources.files("wattscape") / "data" / "demo" / "energy-inference"))


def ingest_demo(out: str | Path, *, progress: bool = True):
    """Ingest the embedded demo data into a catalog at ``out``; returns the catalog (see ``load_catalog``)."""
    from wattscape.inference.catalog import build_catalog

    return build_catalog([demo_data()], Path(out), progress=progress)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``wattscape demo``."""
    p = subparsers.add_parser("demo", help="run the main job on the demo data shipped in the package")
    p.add_argument(
        "--out", default=None, metavar="DIR", help="output folder (default: a new temporary folder)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Ingest the demo data, print the per-run summary, then generate and summarise the demo site."""
    from wattscape.cli.ingest import format_catalog
    from wattscape.generation.demo import site_demo

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="wattscape-demo-"))
    print(f"demo data: {demo_data()} (real subset of grantwilkins/energy-inference; see its README.md)")
    cat = ingest_demo(out / "catalog", progress=not args.quiet)
    print(format_catalog(cat))
    print(f"catalog at {cat.path}")
    print(site_demo(out, progress=not args.quiet))
    return 0
