"""Measured vs synthetic power traces with posterior-predictive bands, one panel per GPU card.

For one measured run per card (the one nearest 5 min long, :func:`paper_figures._data.pick_runs`) the
run's own logged workload is replayed through the generator with ``--draws`` posterior draws of the
configuration's parameters (``PowerModel.config_params``); measured and synthetic power are cut to 1 s
means per GPU over the workload window (PROTOCOL.md).  Shown: measured, the pointwise posterior-predictive
median, 50 % and 90 % bands, and one single draw (a pointwise median is smoother than any real trace).

Inputs: ``<results>/posterior_full.nc`` (or ``--posterior``; else the shipped posterior), the
energy-inference catalog (``--catalog``).
Output: ``<out>/traces.png`` and ``.pdf``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from . import _data
from . import _style as S

NAME = "traces"


def make(args: argparse.Namespace) -> list[Path]:
    """Draw the figure; return the written files."""
    cat = _data.catalog(args.catalog)
    picks = _data.pick_runs(cat)
    if not picks:
        raise S.MissingInputError(f"no run with a per-inference log in the catalog {cat.path}")
    fig, axes = plt.subplots(len(picks), 1, figsize=(7.0, 1.75 * len(picks) + 0.6), squeeze=False)
    label = ""
    posts: dict[str, str] = {}
    for ax, (card, rid) in zip(axes[:, 0], picks.items(), strict=True):
        posts[rid] = _data.posterior_for(args, rid)
        x, y, label = _data.replayed(str(cat.path), posts[rid], rid, args.draws, args.seed)
        t = x["time"].values
        yv = y.values
        q05, q25, q50, q75, q95 = np.quantile(yv, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
        ax.fill_between(t, q05, q95, color=S.MODEL_COLOR, alpha=0.18, lw=0, label="90 % band")
        ax.fill_between(t, q25, q75, color=S.MODEL_COLOR, alpha=0.3, lw=0, label="50 % band")
        ax.plot(t, yv[0], color=S.MODEL_COLOR, lw=0.5, alpha=0.7, ls="--", label="one synthetic draw")
        ax.plot(t, q50, color=S.MODEL_COLOR, lw=1.0, label="posterior-predictive median")
        ax.plot(t, x.values, color=S.MEASURED_COLOR, lw=0.9, label="measured")
        e_x = float(x.values.sum())
        e_q = np.quantile(yv.sum(axis=1), [0.05, 0.5, 0.95]) / e_x * 100 - 100
        a = cat.run(rid).attrs
        ax.set_title(
            f"{card}: {a['llm']} × {a['n_gpus']} GPU"
            f" [{'in-sample' if _data.is_seen(posts[rid], rid) else 'held out'}]   "
            f"(energy error {e_q[1]:+.1f} %, 90 % [{e_q[0]:+.1f}, {e_q[2]:+.1f}] %)",
            loc="left",
        )
        ax.set_ylabel("power per GPU (W)")
        ax.set_xlim(t[0], t[-1])
        ax.set_ylim(bottom=0)
    axes[-1, 0].set_xlabel("time since first logged inference (s)   [1 s means]")
    axes[0, 0].legend(ncol=5, loc="lower center", bbox_to_anchor=(0.5, 1.18), fontsize=7)
    note = _data.seen_note(posts)
    fig.suptitle(
        f"Measured vs synthetic power, logged workload replayed ({args.draws} draws; {note})\n{label}",
        fontsize=8,
        y=1.0,
    )
    fig.tight_layout()
    return S.save(fig, args, NAME, dpi=110)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    p = S.parser(NAME, __doc__)
    _data.add_trace_args(p)
    return S.run(NAME, make, p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
