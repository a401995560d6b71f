"""The latency model per workload cell: replayed against logged runtime, and the output-length sweep.

Reads ``<results>/runtime_cells_cells.csv`` (``python -m experiments.runtime_cells``): per workload cell
(batch, prompt, output limit) of each run its mean logged runtime and the 5/50/95 % quantiles over draws of
the replayed one.  Left: replayed / logged (median, 90 % bar) against the logged runtime, one colour per
card, a hollow marker where the logged value lies outside the interval.  Right: the run with the most output
limits (the output-length sweep), logged and replayed time per output token against the output limit.
Output: ``<out>/runtime_cells.png`` and ``.pdf``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

from . import _style as S

NAME = "runtime_cells"
INPUT = "runtime_cells_cells.csv"
COLUMNS = (
    "run_id", "gpu_model", "output_tokens", "runtime_logged_s", "runtime_q05_s", "runtime_q50_s",
    "runtime_q95_s", "inside_90",
)


def read_cells(path: Path) -> pd.DataFrame:
    """The per-cell table, checked for the columns drawn."""
    table = S.read_table(path, "run `python -m experiments.runtime_cells`")
    missing = [c for c in COLUMNS if c not in table]
    if missing:
        raise S.MissingInputError(f"{path} lacks the columns {missing}")
    return table


def output_sweep(cells: pd.DataFrame) -> str | None:
    """The run with the most distinct output limits (None when no run has more than one)."""
    n = cells.groupby("run_id")["output_tokens"].nunique()
    return str(n.idxmax()) if len(n) and n.max() > 1 else None


def make(args: argparse.Namespace) -> list[Path]:
    """Draw the figure; return the written files."""
    cells = read_cells(Path(args.results) / INPUT)
    inside = cells["inside_90"].astype(str).str.lower().isin(("true", "1", "1.0"))
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.5, 3.2))
    for card, g in cells.groupby("gpu_model"):
        color = S.CARD_COLORS.get(str(card), "0.4")
        logged = g["runtime_logged_s"]
        ratio = g["runtime_q50_s"] / logged
        err = [ratio - g["runtime_q05_s"] / logged, g["runtime_q95_s"] / logged - ratio]
        left.errorbar(logged, ratio, yerr=err, fmt="none", ecolor=color, alpha=0.5, lw=0.8)
        ok = inside[g.index]
        left.plot(logged[ok], ratio[ok], "o", ms=3.5, color=color, label=str(card))
        left.plot(logged[~ok], ratio[~ok], "o", ms=5, mfc="none", mec=color)
    left.axhline(1.0, color="0.3", lw=0.8)
    left.set_xscale("log")
    left.set_yscale("log")
    left.yaxis.set_major_locator(FixedLocator([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5]))
    left.yaxis.set_major_formatter(ScalarFormatter())
    left.yaxis.set_minor_locator(NullLocator())
    left.set_xlabel("logged mean runtime of the cell (s)")
    left.set_ylabel("replayed / logged (median, 90 %)")
    left.set_title("every workload cell (hollow: logged outside 90 %)", loc="left", fontsize=7)
    left.legend(fontsize=6, loc="lower left")
    rid = output_sweep(cells)
    if rid is None:
        right.set_visible(False)
    else:
        g = cells[cells["run_id"] == rid].sort_values("output_tokens")
        per = 1e3 / g["output_tokens"].clip(lower=1)
        right.plot(g["output_tokens"], g["runtime_logged_s"] * per, "o-", color=S.MEASURED_COLOR, ms=3.5,
                   label="logged")
        right.plot(g["output_tokens"], g["runtime_q50_s"] * per, "-", color=S.MODEL_COLOR,
                   label="replayed (median)")
        right.fill_between(g["output_tokens"], g["runtime_q05_s"] * per, g["runtime_q95_s"] * per,
                           color=S.MODEL_COLOR, alpha=0.2, lw=0, label="replayed 90 %")
        right.set_xscale("log", base=2)
        right.set_xlabel("output-token limit")
        right.set_ylabel("runtime per output token (ms)")
        right.set_title(rid.rsplit("-", 2)[0], loc="left", fontsize=7)
        right.legend(fontsize=6, loc="upper left")
    fig.suptitle("Latency model per workload cell (in-sample, `experiments.runtime_cells`)", fontsize=8)
    fig.tight_layout()
    return S.save(fig, args, NAME)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    return S.run(NAME, make, S.parser(NAME, __doc__).parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
