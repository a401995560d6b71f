"""Error bars of the model against the baselines: median over runs and its bootstrap 95 % interval.

Per method and scoring period: the median over held-out runs of the absolute energy error (%), the ACF R²
and the ACF MAE (lags 1–60), with the 1,000-draw bootstrap 95 % interval of the median
(:func:`wattscape.inference.metrics.bootstrap_median_ci`), as PROTOCOL.md aggregates.  The dotted lines
are the acceptance targets of issue 6 (energy error ≤ 3 %, ACF R² ≥ 0.96).

Input: ``<results>/accuracy.csv`` (the table ``python -m experiments.all`` writes, on the current model),
else ``<results>/accuracy_nuts.csv`` (NUTS fold fits; kept as the record of an earlier model), else
``<results>/accuracy_baselines.csv`` (baselines only); ``--input`` names another file.
Output: ``<out>/baselines.png`` and ``.pdf``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from wattscape.inference import metrics as M

from . import _style as S

NAME = "baselines"
#: First found is drawn: the current experiments' table, the NUTS-fold record of an earlier model,
#: baselines only.
INPUTS = ("accuracy.csv", "accuracy_nuts.csv", "accuracy_baselines.csv")
METRICS = (
    ("energy_error_pct", "absolute energy error (%)", 3.0),
    ("acf_r2", "ACF R² (lags 1–60; symlog axis)", 0.96),
    ("acf_mae", "ACF MAE (lags 1–60)", None),
)
PERIOD_MARKERS = {1.0: "o", 30.0: "s"}


def accuracy_input(args: argparse.Namespace) -> Path:
    """The accuracy table to read: ``--input``, else the first of :data:`INPUTS` in the results folder."""
    if args.input is not None:
        return S.require(args.input)
    for name in INPUTS:
        path = Path(args.results) / name
        if path.is_file():
            return path
    raise S.MissingInputError(
        f"missing input file: {Path(args.results) / INPUTS[1]} (nor {INPUTS[0]}, {INPUTS[2]}); "
        "run `python -m experiments.accuracy`"
    )


def summary(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Median and bootstrap 95 % interval per (period, method, metric), over runs."""
    if "period_s" not in table:
        table = table.assign(period_s=1.0)
    rows = []
    for (period, method), g in table.groupby(["period_s", "method"], sort=False):
        for metric, _, _ in METRICS:
            if metric not in g:
                continue
            vals = pd.to_numeric(g[metric], errors="coerce").dropna().to_numpy()
            if vals.size == 0:
                continue
            lo, hi = M.bootstrap_median_ci(vals, n_boot=n_boot, seed=seed)
            rows.append(
                {
                    "period_s": float(period),
                    "method": method,
                    "metric": metric,
                    "median": float(np.median(vals)),
                    "lo": lo,
                    "hi": hi,
                    "n": int(vals.size),
                }
            )
    return pd.DataFrame(rows)


def make(args: argparse.Namespace) -> list[Path]:
    """Draw the figure; return the written files."""
    path = accuracy_input(args)
    table = S.read_table(path)
    missing = {"method", "energy_error_pct"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: columns {sorted(missing)} missing")
    s = summary(table)
    order = [m for m in S.METHOD_LABELS if m in set(s["method"])]
    order += sorted(set(s["method"]) - set(order))
    periods = sorted(s["period_s"].unique())
    fig, axes = plt.subplots(1, len(METRICS), figsize=(8.0, 0.45 * len(order) + 1.6), sharey=True)
    for ax, (metric, xlabel, target) in zip(axes, METRICS, strict=True):
        for j, period in enumerate(periods):
            sub = s[(s["metric"] == metric) & (s["period_s"] == period)].set_index("method")
            off = (j - (len(periods) - 1) / 2) * 0.22
            for i, method in enumerate(order):
                if method not in sub.index:
                    continue
                r = sub.loc[method]
                ax.errorbar(
                    r["median"],
                    i + off,
                    xerr=[[r["median"] - r["lo"]], [r["hi"] - r["median"]]],
                    fmt=PERIOD_MARKERS.get(period, "^"),
                    color=S.METHOD_COLORS.get(method, "0.3"),
                    ms=4,
                    capsize=2,
                    elinewidth=1.0,
                    mfc="white" if j else None,
                )
        if target is not None:
            ax.axvline(target, color="0.3", ls=":", lw=0.8)
        if metric == "acf_r2":
            ax.set_xscale("symlog", linthresh=1.0)
            ax.axvline(1.0, color="0.6", lw=0.5)
        ax.set_xlabel(xlabel)
        ax.grid(axis="y", visible=False)
    axes[0].set_yticks(range(len(order)))
    axes[0].set_yticklabels([S.METHOD_LABELS.get(m, m) for m in order])
    axes[0].invert_yaxis()
    handles = [
        plt.Line2D(
            [],
            [],
            marker=PERIOD_MARKERS.get(p, "^"),
            color="0.3",
            ls="",
            mfc="white" if j else None,
            label=f"{p:g} s means",
        )
        for j, p in enumerate(periods)
    ]
    handles.append(plt.Line2D([], [], color="0.3", ls=":", label="acceptance target"))
    n_runs = table["run_id"].nunique() if "run_id" in table else len(table)
    fig.suptitle(
        f"Leave-one-run-out accuracy, median over {n_runs} runs with bootstrap 95 % interval ({path.name})",
        fontsize=8.5,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7)
    return S.save(fig, args, NAME)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    p = S.parser(NAME, __doc__)
    p.add_argument(
        "--input",
        type=Path,
        help="accuracy CSV (default <results>/accuracy.csv, else accuracy_baselines.csv)",
    )
    return S.run(NAME, make, p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
