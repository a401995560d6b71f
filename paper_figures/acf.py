"""Autocorrelation of measured vs synthetic power, lags 1–60 s on 1 s means, one panel per GPU card.

Same runs and replay as :mod:`paper_figures.traces`.  The synthetic ACF is computed per posterior draw
(:func:`wattscape.inference.metrics.acf`, the biased ACF of PROTOCOL.md) and shown as its median and 90 %
band over draws; the static trace-replay baseline (most similar *other* run, tiled) is shown for contrast.
Each panel names the ACF R² (median over draws) of the model and of the replay baseline.

Inputs: ``<results>/posterior_full.nc`` (or ``--posterior``; else the shipped posterior), the
energy-inference catalog (``--catalog``).
Output: ``<out>/acf.png`` and ``.pdf``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from wattscape.inference import metrics as M
from wattscape.models import dims as D

from . import _data
from . import _style as S

NAME = "acf"


def replay_baseline_acf(cat, run_id: str, n_windows: int, training=None) -> np.ndarray | None:
    """ACF of the static trace-replay baseline for one run (leave-one-run-out), or None if unavailable."""
    from wattscape.inference import baselines as B

    try:
        training = training or B.TrainingSet.from_catalog(cat)
        run, req = cat.run(run_id), cat.requests(run_id)
        run = B.workload_window(run, req)
        y = B.baseline("replay", run, req, training.without(run_id))
        ys = M.prepare_series(y, period_s=1.0, n_gpus=int(run.attrs["n_gpus"]))
        return M.acf(ys.values[:n_windows])
    except (ValueError, KeyError) as err:  # a baseline that cannot be built for this run is left out
        print(f"paper_figures.acf: no replay baseline for {run_id}: {err}")
        return None


def make(args: argparse.Namespace) -> list[Path]:
    """Draw the figure; return the written files."""
    from wattscape.inference import baselines as B

    cat = _data.catalog(args.catalog)
    picks = _data.pick_runs(cat)
    if not picks:
        raise S.MissingInputError(f"no run with a per-inference log in the catalog {cat.path}")
    training = B.TrainingSet.from_catalog(cat) if args.baseline else None
    lags = np.arange(1, M.ACF_MAX_LAG + 1)
    ncol = 2
    nrow = int(np.ceil(len(picks) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(7.0, 2.3 * nrow + 0.5), squeeze=False, sharex=True)
    label = ""
    posts: dict[str, str] = {}
    for ax, (card, rid) in zip(axes.ravel(), picks.items(), strict=False):
        posts[rid] = _data.posterior_for(args, rid)
        x, y, label = _data.replayed(str(cat.path), posts[rid], rid, args.draws, args.seed)
        a_x = M.acf(x.values)
        a_y = np.stack([M.acf(row) for row in y.transpose(D.DRAW, D.TIME).values])
        r2 = np.median([M.acf_r2(x.values, row) for row in y.values])
        q05, q50, q95 = np.quantile(a_y, [0.05, 0.5, 0.95], axis=0)
        ax.fill_between(lags, q05, q95, color=S.MODEL_COLOR, alpha=0.2, lw=0, label="synthetic, 90 % band")
        ax.plot(lags, q50, color=S.MODEL_COLOR, label="synthetic, median over draws")
        text = f"ACF R²: model {r2:.2f}"
        if training is not None:
            a_r = replay_baseline_acf(cat, rid, x.sizes[D.TIME], training)
            if a_r is not None:
                r2r = 1 - ((a_x - a_r) ** 2).sum() / max(((a_x - a_x.mean()) ** 2).sum(), 1e-12)
                ax.plot(
                    lags,
                    a_r,
                    color=S.METHOD_COLORS["replay"],
                    ls="--",
                    lw=0.9,
                    label="static trace-replay baseline",
                )
                text += f", replay baseline {r2r:.2f}"
        ax.plot(lags, a_x, color=S.MEASURED_COLOR, lw=1.2, label="measured")
        a = cat.run(rid).attrs
        tag = "in-sample" if _data.is_seen(posts[rid], rid) else "held out"
        ax.set_title(f"{card}: {a['llm']} × {a['n_gpus']} [{tag}]", loc="left")
        ax.axhline(0, color="0.5", lw=0.5)
        ax.set_ylim(-0.5, 1.02)
        ax.set_xlim(1, lags[-1])
        ax.text(0.02, 0.03, text, transform=ax.transAxes, fontsize=7, va="bottom")
    for ax in axes.ravel()[len(picks) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("autocorrelation")
    for ax in axes[-1, :]:
        ax.set_xlabel("lag (s)   [1 s means]")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    note = _data.seen_note(posts)
    fig.suptitle(
        f"ACF of per-GPU power, measured vs synthetic ({args.draws} draws; {note})\n{label}", fontsize=8
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7)
    return S.save(fig, args, NAME)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    p = S.parser(NAME, __doc__)
    _data.add_trace_args(p)
    p.add_argument(
        "--no-baseline", dest="baseline", action="store_false", help="leave the replay baseline out"
    )
    return S.run(NAME, make, p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
