"""Facility load profile with bands (15 min means) from a generated site trace.

Reads the 15-minute profile the planning experiment wrote for a site scenario
(``<results>/planning/<scenario>/profile_15min_kw.csv``: posterior-predictive mean and 5/25/50/75/95 %
quantiles of facility power per interval) and, when present, the facility nameplate (TDP sizing) from
``load_summary.csv`` beside it.  Shows the median, the 50 % and 90 % bands and the nameplate line.

Input: ``<results>/planning/<scenario>/profile_15min_kw.csv`` (``--scenario``; default
``azure_day_1000``, else the first scenario folder that has one; made by ``python experiments/planning.py``).
Output: ``<out>/facility.png`` and ``.pdf``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd

from . import _style as S

NAME = "facility"
DEFAULT_SCENARIO = "azure_day_1000"
QUANTILE_COLUMNS = ("q05_kw", "q25_kw", "q50_kw", "q75_kw", "q95_kw")


def nameplate_kw(folder: Path) -> float | None:
    """Facility nameplate (TDP sizing) in kW from ``load_summary.csv``, or None."""
    path = folder / "load_summary.csv"
    if not path.is_file():
        return None
    df = pd.read_csv(path, comment="#")
    row = df[df["metric"].astype(str).str.contains("nameplate", case=False)]
    if not len(row):
        return None
    scale = {"MW": 1000.0, "kW": 1.0, "W": 1e-3}.get(str(row["unit"].iloc[0]), 1.0)
    return float(row["median"].iloc[0]) * scale


def make(args: argparse.Namespace) -> list[Path]:
    """Draw the figure; return the written files."""
    scenario = args.scenario or DEFAULT_SCENARIO
    folder = Path(args.results) / "planning" / scenario
    path = folder / "profile_15min_kw.csv"
    if args.scenario is None and not path.is_file():  # default scenario absent: any other generated one
        found = sorted((Path(args.results) / "planning").glob("*/profile_15min_kw.csv"))
        if found:
            folder, path, scenario = found[0].parent, found[0], found[0].parent.name
    df = S.read_table(path, "run `python experiments/planning.py` to generate the site trace")
    missing = {"timestamp", *QUANTILE_COLUMNS} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: columns {sorted(missing)} missing")
    t = pd.to_datetime(df["timestamp"], utc=True)
    unit, scale = ("MW", 1e-3) if df["q95_kw"].max() >= 1000 else ("kW", 1.0)
    q = {c: df[c].to_numpy(float) * scale for c in QUANTILE_COLUMNS}
    fig, ax = plt.subplots(figsize=(7.0, 3.0))
    step = {"step": "post"}
    ax.fill_between(
        t, q["q05_kw"], q["q95_kw"], color=S.MODEL_COLOR, alpha=0.18, lw=0, label="90 % band", **step
    )
    ax.fill_between(
        t, q["q25_kw"], q["q75_kw"], color=S.MODEL_COLOR, alpha=0.32, lw=0, label="50 % band", **step
    )
    ax.step(t, q["q50_kw"], where="post", color=S.MODEL_COLOR, lw=1.1, label="posterior-predictive median")
    if "mean_kw" in df:
        ax.step(
            t,
            df["mean_kw"].to_numpy(float) * scale,
            where="post",
            color="0.2",
            lw=0.7,
            ls="--",
            label="posterior-predictive mean",
        )
    plate = nameplate_kw(folder)
    top = max(q["q95_kw"].max(), 0) * 1.08
    if plate is not None:
        ax.axhline(
            plate * scale,
            color="#b2182b",
            lw=1.0,
            ls=":",
            label=f"TDP nameplate ({plate * scale:.3g} {unit})",
        )
        if plate * scale > top * 2.5:  # keep the profile readable: mark the nameplate, do not scale to it
            ax.annotate(
                f"TDP nameplate {plate * scale:.3g} {unit} (off scale)",
                xy=(0.99, 0.97),
                xycoords="axes fraction",
                ha="right",
                va="top",
                color="#b2182b",
                fontsize=7,
            )
        else:
            top = max(top, plate * scale * 1.05)
    ax.set_ylim(0, top)
    ax.set_xlim(
        t.iloc[0],
        t.iloc[-1] + pd.Timedelta(seconds=float(df["interval_s"].iloc[-1]) if "interval_s" in df else 900),
    )
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.set_xlabel(f"time (UTC), {t.iloc[0]:%Y-%m-%d}   [15 min means]")
    ax.set_ylabel(f"facility power ({unit})")
    ax.set_title(f"Facility load profile, scenario {scenario} (bands over posterior draws)", loc="left")
    ax.legend(ncol=3, fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, 0.9))
    fig.tight_layout()
    return S.save(fig, args, NAME)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    p = S.parser(NAME, __doc__)
    p.add_argument(
        "--scenario",
        help=f"planning scenario folder name (default {DEFAULT_SCENARIO}, else the first one generated)",
    )
    return S.run(NAME, make, p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
