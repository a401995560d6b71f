"""Calibration of the posterior-predictive intervals: nominal vs empirical coverage, and a PIT histogram.

Per held-out run (rows of method ``model``): whether the measured run energy lies in the central 50 % and
90 % intervals of the posterior-predictive run energy (``energy_in_50``/``energy_in_90``, or, without
them, the 90 % interval from ``energy_q05_j``/``energy_q95_j`` vs ``energy_measured_j``), and the fraction
of windows whose measured power lies in the pointwise interval (``window_coverage_50/90``, at every scored
period of the table: 1 s and 30 s for ``experiments.calibration``).  Shown with
Wilson 95 % intervals of a binomial proportion.  With the PIT of each run's energy (``energy_pit``) the
full curve ``coverage(L) = #{|PIT − ½| ≤ L/2} / n`` and the PIT histogram are drawn too.

Input: ``<results>/calibration.csv`` (the table ``python -m experiments.all`` writes, on the current model),
else the first other ``calibration*.csv`` that holds per-run interval columns (``calibration_nuts.csv``
and the like are kept as records of earlier models: ``--input`` draws one), else
``<results>/accuracy.csv`` (``--input`` names another file).  A missing input ends with exit status 2 and
a message naming the file.
Output: ``<out>/calibration.png`` and ``.pdf``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import _style as S

NAME = "calibration"
LEVELS = (0.5, 0.9)
#: Acceptance ranges of run-energy coverage (issue 6): 50 % → 40–60 %, 90 % → 85–95 %.
ACCEPT = {0.5: (0.40, 0.60), 0.9: (0.85, 0.95)}
#: Columns that make a table usable here (any one group).
PER_RUN = ("energy_in_90", "energy_pit", "energy_q95_j")


def wilson(k: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n``."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def calibration_input(args: argparse.Namespace) -> Path:
    """``--input``, else a ``calibration*.csv`` with per-run interval columns (``calibration.csv``, the
    current experiments' table, first), else ``accuracy.csv``."""
    if args.input is not None:
        return S.require(args.input)
    results = Path(args.results)
    found = sorted(results.glob("calibration*.csv"), key=lambda p: (p.name != "calibration.csv", p.name))
    for path in found:
        cols = set(pd.read_csv(path, comment="#", nrows=0).columns)
        if cols & set(PER_RUN):
            return path
    return S.require(
        results / "accuracy.csv", "run `python -m experiments.accuracy` (the model rows are needed)"
    )


def model_rows(table: pd.DataFrame, path: Path, *, finest: bool = True) -> pd.DataFrame:
    """The model's rows at the finest scoring period (one per held-out run; ``finest=False``: every
    period)."""
    if "method" in table:
        table = table[table["method"] == "model"]
    if finest and "period_s" in table and len(table):
        table = table[table["period_s"] == table["period_s"].min()]
    usable = [c for c in PER_RUN if c in table and table[c].notna().any()]
    if not len(table) or not usable:
        raise S.MissingInputError(
            f"{path} has no posterior-predictive interval rows (method 'model' with one of {PER_RUN})"
        )
    return table.reset_index(drop=True)


def energy_covered(df: pd.DataFrame, level: float) -> np.ndarray | None:
    """Per-run 0/1: measured energy inside the central ``level`` interval (None if not derivable)."""
    col = f"energy_in_{round(100 * level)}"
    if col in df and df[col].notna().any():
        return df[col].dropna().to_numpy(float)
    if "energy_pit" in df and df["energy_pit"].notna().any():
        pit = df["energy_pit"].dropna().to_numpy(float)
        return (np.abs(pit - 0.5) <= level / 2).astype(float)
    if level == 0.9 and {"energy_q05_j", "energy_q95_j", "energy_measured_j"} <= set(df.columns):
        d = df.dropna(subset=["energy_q05_j", "energy_q95_j", "energy_measured_j"])
        return (
            (d["energy_q05_j"] <= d["energy_measured_j"]) & (d["energy_measured_j"] <= d["energy_q95_j"])
        ).to_numpy(float)
    return None


#: Markers of the window-coverage points, one per scoring period.
WINDOW_MARKERS = ("s", "^", "D", "v")


def window_rows(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The model rows per scoring period (label such as ``"1 s"``), finest first; one group if no period."""
    if "period_s" not in df or not df["period_s"].notna().any():
        return [("1 s", df)]
    return [(f"{p:g} s", g) for p, g in df.groupby("period_s", sort=True)]


def make(args: argparse.Namespace) -> list[Path]:
    """Draw the figure; return the written files."""
    path = calibration_input(args)
    table = S.read_table(path)
    df = model_rows(table, path)
    periods = window_rows(model_rows(table, path, finest=False))
    has_pit = "energy_pit" in df and df["energy_pit"].notna().any()
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.3))
    ax = axes[0]
    ax.plot([0, 1], [0, 1], color="0.5", lw=0.7, ls="--", label="perfect calibration")
    for level, (lo, hi) in ACCEPT.items():
        ax.fill_between(
            [level - 0.03, level + 0.03], lo, hi, color="0.8", lw=0, label="acceptance range (issue 6)"
        )
    if has_pit:
        pit = df["energy_pit"].dropna().to_numpy(float)
        grid = np.linspace(0, 1, 101)
        curve = [(np.abs(pit - 0.5) <= g / 2).mean() for g in grid]
        ax.plot(
            grid, curve, color=S.MODEL_COLOR, lw=0.9, alpha=0.6, label="run energy, all levels (from PIT)"
        )
    for level in LEVELS:
        cov = energy_covered(df, level)
        if cov is not None and cov.size:
            lo, hi = wilson(cov.sum(), cov.size)
            ax.errorbar(
                level,
                cov.mean(),
                yerr=[[cov.mean() - lo], [hi - cov.mean()]],
                fmt="o",
                color=S.MODEL_COLOR,
                ms=5,
                capsize=3,
                label=f"run energy, 50/90 % intervals (n={cov.size}, Wilson 95 %)",
            )
        col = f"window_coverage_{round(100 * level)}"
        for j, (period, rows) in enumerate(periods):
            if col in rows and rows[col].notna().any():
                w = rows[col].dropna().to_numpy(float)
                ax.plot(
                    level + 0.015 * (j + 1),
                    np.median(w),
                    WINDOW_MARKERS[j % len(WINDOW_MARKERS)],
                    color="#b2182b",
                    ms=4,
                    label=f"{period} window power (median over runs)",
                )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("nominal coverage of the central interval")
    ax.set_ylabel("empirical coverage (held-out runs)")
    ax.set_title("Interval coverage", loc="left")
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles, strict=True))
    ax.legend(uniq.values(), uniq.keys(), fontsize=6.5, loc="lower right")
    ax = axes[1]
    if has_pit:
        pit = df["energy_pit"].dropna().to_numpy(float)
        bins = np.linspace(0, 1, 11 if pit.size >= 30 else 6)
        dens, _, _ = ax.hist(pit, bins=bins, density=True, color=S.MODEL_COLOR, alpha=0.6, edgecolor="white")
        ax.set_ylim(0, max(1.0, float(dens.max())) * 1.25)
        ax.set_xlim(0, 1)
        ax.axhline(1.0, color="0.3", ls="--", lw=0.8, label="uniform (calibrated)")
        ax.set_xlabel("PIT of measured run energy")
        ax.set_ylabel("density")
        ax.set_title(f"PIT histogram (n={pit.size} runs)", loc="left")
        ax.legend(fontsize=6.5, loc="upper right")
    else:
        ax.axis("off")
        ax.text(0.5, 0.5, f"no PIT column (energy_pit) in\n{path.name}", ha="center", va="center", fontsize=8)
    fig.suptitle(f"Calibration of posterior-predictive intervals ({path.name})", fontsize=9)
    fig.tight_layout()
    return S.save(fig, args, NAME)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    p = S.parser(NAME, __doc__)
    p.add_argument("--input", type=Path, help="table with per-run interval columns (default: see above)")
    return S.run(NAME, make, p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
