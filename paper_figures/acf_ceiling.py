"""How high the ACF R² of each held-out run could go: the measured score beside the model's own ceiling.

Reads ``<results>/acf_ceiling.csv`` (``python -m experiments.acf_ceiling``).  One row per run, sorted by the
ceiling: PROTOCOL.md's ACF R² (median over draws of each draw against the measured run), the R² of the
median ACF (the shape error alone), and the ceiling (the draws against each other: what the model would
score if the measured run were one more of its draws) with the process-only ceiling (parameters fixed), and,
where the run is long enough, no model at all: its measured 150 s stretches scored against each other
(``measured_parts``; absent from older tables, then not drawn).  The target 0.96 is a vertical line.
Values below the axis limit are drawn at it (the measured ones with their value).
Output: ``<out>/acf_ceiling.png`` and ``.pdf``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from . import _style as S

NAME = "acf_ceiling"
INPUT = "acf_ceiling.csv"
COLUMNS = ("run_id", "gpu_model", "acf_r2", "acf_r2_median_acf", "ceiling", "ceiling_process")
#: The ACF criterion of PROTOCOL.md's table (median run).
TARGET = 0.96
#: Left axis limit; lower values are clipped to it and labelled.
FLOOR = -1.0


def make(args: argparse.Namespace) -> list[Path]:
    """Draw the figure; return the written files."""
    path = Path(args.results) / INPUT
    table = S.read_table(path, "run `python -m experiments.acf_ceiling`")
    missing = [c for c in COLUMNS if c not in table]
    if missing:
        raise S.MissingInputError(f"{path} lacks the columns {missing}")
    if not len(table):
        raise S.MissingInputError(f"{path} has no run")
    table = table.sort_values("ceiling").reset_index(drop=True)
    rows = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(7.0, 0.3 * len(table) + 1.8))
    marks = (
        ("ceiling", "s", "none", "ceiling: draws against each other"),
        ("ceiling_process", "D", "none", "ceiling, parameters fixed"),
        ("acf_r2_median_acf", "^", "none", "measured vs median ACF"),
        ("acf_r2", "o", None, "measured (PROTOCOL.md, per draw)"),
    )
    if "measured_parts" in table and table["measured_parts"].notna().any():
        marks += (("measured_parts", "x", None, "measured run against itself (stretches)"),)
    for col, marker, face, label in marks:
        v = table[col].to_numpy(float)
        color = {"acf_r2": S.MEASURED_COLOR, "measured_parts": "0.45"}.get(col, S.MODEL_COLOR)
        ax.plot(np.maximum(v, FLOOR), rows, marker, ms=4.5, mfc=face or color, mec=color, ls="none",
                label=label)
    for i, v in enumerate(table["acf_r2"].to_numpy(float)):
        if v < FLOOR:
            ax.annotate(f"{v:.3g}", (FLOOR, i), xytext=(4, -3), textcoords="offset points", fontsize=6)
    pair = table[["acf_r2", "ceiling"]]
    ax.hlines(rows, np.maximum(pair.min(axis=1), FLOOR), np.maximum(pair.max(axis=1), FLOOR), color="0.75",
              lw=0.8, zorder=0)
    ax.axvline(TARGET, color="0.3", lw=0.8, ls="--")
    ax.text(TARGET, len(table) - 0.4, f" {TARGET}", fontsize=6, va="bottom", ha="right")
    labels = [f"{r.run_id.rsplit('-', 2)[0]} ({r.run_id.rsplit('-', 1)[-1]})" for r in table.itertuples()]
    ax.set_yticks(rows, labels, fontsize=6)
    ax.set_xlim(FLOOR - 0.02, 1.0)
    ax.set_xlabel("ACF R² at 1 s (lags 1-60)")
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    ax.set_title(
        f"Held-out ACF R² against the model's own ceiling (median: measured {table['acf_r2'].median():.2f}, "
        f"ceiling {table['ceiling'].median():.2f})",
        loc="left", fontsize=7,
    )
    fig.tight_layout()
    return S.save(fig, args, NAME)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    return S.run(NAME, make, S.parser(NAME, __doc__).parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
