"""Shared style and plumbing of the figure scripts: matplotlib look, colours, CLI, saving, missing inputs.

Every script exposes ``make(args) -> list[Path]`` and ``main(argv=None) -> int``; :func:`run` wraps
``make`` so that a missing input file ends the script with exit status 2 and a message naming the file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from wattscape.io import atomic_path

REPO = Path(__file__).resolve().parents[1]
#: Default results folder (override with ``$WATTSCAPE_RESULTS`` or ``--results``).
RESULTS_DIR = Path(os.environ.get("WATTSCAPE_RESULTS", REPO / "results"))
#: Exit status of a script whose input is missing.
EXIT_MISSING = 2

#: The four measured GPU cards, in panel order, and their colours.
CARDS = ("A100-PCIe-40GB", "A100-SXM4-40GB", "A100-SXM4-80GB", "V100-PCIe-16GB")
CARD_COLORS = dict(zip(CARDS, ("#1b9e77", "#d95f02", "#7570b3", "#e7298a"), strict=True))
MEASURED_COLOR = "0.15"
MODEL_COLOR = "#2166ac"
#: Method colours of the accuracy tables (the model first).
METHOD_COLORS = {
    "model": MODEL_COLOR,
    "tdp": "#b2182b",
    "mean": "#ef8a62",
    "mean_generation": "#fdae61",
    "splitwise": "#8c510a",
    "replay": "#4d9221",
}
METHOD_LABELS = {
    "model": "wattscape (posterior median)",
    "tdp": "TDP nameplate",
    "mean": "mean power (nearest pooled group)",
    "mean_generation": "mean power (same GPU generation)",
    "splitwise": "Splitwise constant/phase",
    "replay": "static trace replay",
}


class MissingInputError(FileNotFoundError):
    """An input file of a figure does not exist (the message names it and what produces it)."""


def apply_style() -> None:
    """The common matplotlib look: small serif-free fonts, light grid, no top/right spines."""
    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 120,
            "font.size": 8.5,
            "axes.titlesize": 9,
            "axes.labelsize": 8.5,
            "legend.fontsize": 7.5,
            "xtick.labelsize": 7.5,
            "ytick.labelsize": 7.5,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "grid.linewidth": 0.5,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "lines.linewidth": 1.0,
            "legend.frameon": False,
            "pdf.fonttype": 42,
        }
    )


def require(path: str | os.PathLike, hint: str = "") -> Path:
    """``path`` as a Path if it is a file, else :class:`MissingInputError` naming it (and ``hint``)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"missing input file: {path}" + (f" ({hint})" if hint else ""))
    return path


_FALLBACK_SAID: set[Path] = set()


def posterior_file(explicit: str | os.PathLike | None, results: str | os.PathLike) -> Path:
    """The posterior of a figure: ``explicit``, else ``<results>/posterior_full.nc``, else the shipped one.

    The full posterior (``python benchmarks/fit.py``) is git-ignored; on a fresh clone the figures fall back
    to the thinned posterior shipped with the package (``wattscape/data/posterior``) and say so.
    """
    if explicit is not None:
        return require(explicit, "fit it with `wattscape fit`")
    from generation.demo import FULL_POSTERIOR, results_posterior

    found, shipped = results_posterior(results)
    full = Path(results) / FULL_POSTERIOR
    if found is None:
        raise MissingInputError(f"missing input file: {full} (fit it with `python benchmarks/fit.py`)")
    if shipped and found not in _FALLBACK_SAID:  # once per process, however many panels ask
        _FALLBACK_SAID.add(found)
        print(f"{full} not found: using the shipped posterior {found}")
    return found


def read_table(path: str | os.PathLike, hint: str = "") -> pd.DataFrame:
    """Read a results CSV (``#`` header comment lines skipped); a missing file raises MissingInputError."""
    return pd.read_csv(require(path, hint), comment="#")


def parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """The common CLI: ``--results DIR`` (inputs) and ``--out DIR`` (default ``<results>/figures``)."""
    p = argparse.ArgumentParser(
        prog=f"python -m paper_figures.{name}", description=(doc or name).strip().splitlines()[0]
    )
    p.add_argument(
        "--results", type=Path, default=RESULTS_DIR, help="results folder to read (default results/)"
    )
    p.add_argument("--out", type=Path, default=None, help="figure folder (default <results>/figures)")
    return p


def out_dir(args: argparse.Namespace) -> Path:
    """The figure folder of ``args`` (created)."""
    out = Path(args.out) if args.out is not None else Path(args.results) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    return out


def save(
    fig,
    args: argparse.Namespace,
    name: str,
    formats: Sequence[str] = ("png", "pdf"),
    dpi: float | None = None,
) -> list[Path]:
    """Write ``fig`` as ``<out>/<name>.<fmt>`` for each format, atomically; close it; return the paths.

    ``dpi`` overrides the PNG resolution (dense line plots stay under ~300 KB at 110).
    """
    out = out_dir(args)
    paths = []
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, bbox_inches="tight", **({"dpi": dpi} if dpi else {}))
            tmp.chmod(0o644)  # readable like any other result file (the temporary file is 0600)
        paths.append(path)
    plt.close(fig)
    return paths


def run(name: str, make: Callable[[argparse.Namespace], list[Path]], args: argparse.Namespace) -> int:
    """Call ``make(args)``; print the written files; a missing input → message on stderr, exit status 2."""
    apply_style()
    try:
        paths = make(args)
    except MissingInputError as err:
        print(f"paper_figures.{name}: {err}", file=sys.stderr)
        return EXIT_MISSING
    for p in paths:
        print(p)
    return 0
