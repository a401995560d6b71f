"""A busy call's measured power level against its prompt length, with the model's curve and the
prefill/decode mix, one panel per run of a prompt sweep.

Reads ``<results>/level_shape_calls.csv`` (``python -m experiments.level_shape``): per logged call its
measured level, the posterior's level for its workload (``model_w``) and the two-level line in its prefill
time share (``share_fit_w``), W per GPU.  Panels: the runs with ``--runs``, else one prompt sweep (a single
output length) per card and GPU count, the one with the most calls; calls are averaged per prompt length.
Output: ``<out>/level_shape.png`` and ``.pdf``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import _style as S

NAME = "level_shape"
INPUT = "level_shape_calls.csv"
COLUMNS = (
    "run_id", "gpu_model", "n_gpus", "prompt_tokens", "output_tokens", "measured_w", "model_w", "share_fit_w"
)


def read_calls(path: Path) -> pd.DataFrame:
    """The per-call table, checked for the columns drawn."""
    table = S.read_table(path, "run `python -m experiments.level_shape`")
    missing = [c for c in COLUMNS if c not in table]
    if missing:
        raise S.MissingInputError(f"{path} lacks the columns {missing}")
    return table


def pick_runs(calls: pd.DataFrame, runs: Sequence[str] | None = None) -> list[str]:
    """``runs`` (each must be in the table), else per card and GPU count its prompt sweep with most calls."""
    ids = list(dict.fromkeys(calls["run_id"].astype(str)))
    if runs:
        unknown = [r for r in runs if r not in ids]
        if unknown:
            raise KeyError(f"runs not in the level-shape table: {unknown}")
        return list(runs)
    sweeps = calls.groupby("run_id").filter(lambda g: g["output_tokens"].nunique() == 1)
    if not len(sweeps):
        return ids[:4]
    sizes = sweeps.groupby(["gpu_model", "n_gpus", "run_id"]).size().rename("calls").reset_index()
    best = sizes.sort_values("calls", ascending=False).drop_duplicates(["gpu_model", "n_gpus"])
    return best.sort_values(["gpu_model", "n_gpus"])["run_id"].tolist()


def make(args: argparse.Namespace) -> list[Path]:
    """Draw the figure; return the written files."""
    calls = read_calls(Path(args.results) / INPUT)
    picks = pick_runs(calls, args.runs)
    ncol = 3
    nrow = int(np.ceil(len(picks) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(7.5, 2.3 * nrow + 0.6), squeeze=False)
    for ax, rid in zip(axes.ravel(), picks, strict=False):
        g = calls[calls["run_id"] == rid].groupby("prompt_tokens")[["measured_w", "model_w", "share_fit_w"]]
        m = g.mean()
        ax.plot(m.index, m["measured_w"], "o", color=S.MEASURED_COLOR, ms=3.5,
                label="measured (mean per prompt)")
        ax.plot(m.index, m["model_w"], "-", color=S.MODEL_COLOR, label="model: logit-linear in log2 workload")
        ax.plot(m.index, m["share_fit_w"], "--", color="#b2182b",
                label="P_dec + (P_pre − P_dec)·prefill share")
        ax.set_xscale("log", base=2)
        ax.set_title(rid.rsplit("-", 2)[0], loc="left", fontsize=7)
    for ax in axes.ravel()[len(picks) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("busy level (W per GPU)")
    for ax in axes[-1, :]:
        ax.set_xlabel("prompt tokens")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.suptitle("Busy level of a call against its prompt (in-sample, `experiments.level_shape`)", fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7)
    return S.save(fig, args, NAME)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    p = S.parser(NAME, __doc__)
    p.add_argument(
        "--runs", nargs="+", help="runs to draw (default: one prompt sweep per card and GPU count)"
    )
    return S.run(NAME, make, p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
