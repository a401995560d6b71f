"""Regenerate every paper figure from ``results/``: ``python -m paper_figures.all [--results D] [--out D]``.

Runs each script of :data:`paper_figures.FIGURES` in turn, in this process (so the workload replays that
``traces`` and ``acf`` share are computed once), continues past a figure that fails, and ends with a
summary: exit status 0 when every figure was written, 1 otherwise (the failing figures are named, with
the reason: a missing input file, or the error).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from . import FIGURES
from . import _style as S

#: Figures that replay runs and can use leave-one-run-out fits (``--folds``).
FOLD_FIGURES = ("traces", "acf", "drive")


def main(argv: Sequence[str] | None = None) -> int:
    """Run every figure script; return 0 if all succeeded, else 1."""
    p = argparse.ArgumentParser(prog="python -m paper_figures.all", description=__doc__.splitlines()[0])
    p.add_argument(
        "--results", type=Path, default=S.RESULTS_DIR, help="results folder to read (default results/)"
    )
    p.add_argument("--out", type=Path, default=None, help="figure folder (default <results>/figures)")
    p.add_argument("--only", nargs="+", choices=FIGURES, help="only these figures")
    p.add_argument("--folds", type=Path, help="leave-one-run-out fits for traces and acf (see traces --help)")
    args = p.parse_args(argv)
    common = ["--results", str(args.results)] + (["--out", str(args.out)] if args.out is not None else [])
    status: dict[str, str] = {}
    for name in args.only or FIGURES:
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            extra = ["--folds", str(args.folds)] if args.folds is not None and name in FOLD_FIGURES else []
            rc = importlib.import_module(f"paper_figures.{name}").main([*common, *extra])
            status[name] = "ok" if rc == 0 else "missing input (see message above)"
        except Exception as err:
            traceback.print_exc()
            status[name] = f"failed: {type(err).__name__}: {err}"
        print(f"   {name}: {status[name]} ({time.perf_counter() - t0:.1f} s)", flush=True)
    failed = [n for n, s in status.items() if s != "ok"]
    print(f"\n{len(status) - len(failed)}/{len(status)} figures written", flush=True)
    if failed:
        print("failed: " + "; ".join(f"{n} ({status[n]})" for n in failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
