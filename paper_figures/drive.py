"""Open- vs closed-loop replay of one run: why the open-loop ACF falls short on the offline benchmark runs.

The energy-inference runs are offline loops: each call starts 10–50 ms after the previous one returned, so
the logged start times follow the *measured* runtimes.  Replayed open loop at those start times (PROTOCOL.md,
the headline protocol), a call whose predicted runtime is shorter than the interval to the next logged start
leaves the GPUs idle until then: a dip to the idle level that the measurement never had, which adds fast
variance to the 1 s series and lowers its ACF at every lag.  Replayed closed loop (``--drive closed``: the
next call is issued the logged think time after the predicted end) the calls stay back to back.

Top: measured 1 s means and one posterior-predictive draw of each drive (same draw index, same seed).
Bottom: ACF of the measured series and the median over draws of each drive's ACF, with the ACF R² of
PROTOCOL.md (median over draws) in the legend.

Inputs: ``<results>/posterior_full.nc`` (or ``--posterior``; else the shipped posterior; ``--folds`` for the
run's leave-one-run-out fit), the energy-inference catalog (``--catalog``); ``--run`` (default
:data:`DEFAULT_RUN`, a prompt sweep with smooth measured power where the dips are plain, else the longest run
with a per-inference log).
Output: ``<out>/drive.png`` and ``.pdf``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from wattscape.inference import metrics as M

from . import _data
from . import _style as S

NAME = "drive"
DEFAULT_RUN = "llama-2-7b-V100-PCIe-16GB-x1-20240329-124309"
DRIVES = {"open": ("open loop (logged start times)", S.MODEL_COLOR), "closed": ("closed loop", "tab:green")}


def default_run(cat) -> str:
    """:data:`DEFAULT_RUN` when the catalog has it, else the longest run with a per-inference log."""
    idx = _data.runs_with_log(cat)
    if not len(idx):
        raise S.MissingInputError(f"no run with a per-inference log in the catalog {cat.path}")
    if DEFAULT_RUN in set(idx["run_id"].astype(str)):
        return DEFAULT_RUN
    return str(idx["run_id"].iloc[int(np.argmax(idx["duration_s"].astype(float).to_numpy()))])


def make(args: argparse.Namespace) -> list[Path]:
    """Draw the figure; return the written files."""
    cat = _data.catalog(args.catalog)
    rid = args.run or default_run(cat)
    if rid not in set(_data.runs_with_log(cat)["run_id"].astype(str)):
        raise S.MissingInputError(f"run {rid!r}: no such run with a per-inference log in {cat.path}")
    post = _data.posterior_for(args, rid)
    lags = np.arange(1, M.ACF_MAX_LAG + 1)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.0, 5.2), gridspec_kw={"height_ratios": [1.4, 1.0]})
    x = None
    label = ""
    for drive, (name, color) in DRIVES.items():
        x, y, label = _data.replayed(str(cat.path), post, rid, args.draws, args.seed, drive)
        yv = y.values
        r2 = float(np.median([M.acf_r2(x.values, row) for row in yv]))
        top.plot(x["time"].values, yv[0], color=color, lw=0.6, alpha=0.85, label=f"{name}: one draw")
        acfs = np.array([M.acf(row) for row in yv])
        bottom.plot(lags, np.median(acfs, axis=0), color=color, lw=1.2, label=f"{name} (ACF R² {r2:.2f})")
        bottom.fill_between(lags, *np.quantile(acfs, [0.05, 0.95], axis=0), color=color, alpha=0.15, lw=0)
    top.plot(x["time"].values, x.values, color=S.MEASURED_COLOR, lw=0.7, label="measured")
    bottom.plot(lags, M.acf(x.values), color=S.MEASURED_COLOR, lw=1.4, label="measured")
    a = cat.run(rid).attrs
    held = "in-sample" if _data.is_seen(post, rid) else "held out"
    top.set_title(f"{a['gpu_model']}: {a['llm']} × {a['n_gpus']} GPU [{held}]", loc="left")
    top.set_ylabel("power per GPU (W)")
    top.set_xlabel("time since first logged inference (s)   [1 s means]")
    top.set_ylim(bottom=0)
    top.legend(fontsize=7, ncol=3, loc="lower right")
    bottom.set_xlabel("lag (s)")
    bottom.set_ylabel("autocorrelation")
    bottom.legend(fontsize=7, loc="lower left")
    fig.suptitle(
        f"Open- vs closed-loop replay of the logged workload ({args.draws} draws; bands: 90 % over draws)\n"
        f"{label}",
        fontsize=8,
    )
    fig.tight_layout()
    return S.save(fig, args, NAME, dpi=110)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    p = S.parser(NAME, __doc__)
    _data.add_trace_args(p)
    p.add_argument("--run", help=f"run id (default {DEFAULT_RUN}, else the longest run with a log)")
    return S.run(NAME, make, p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
