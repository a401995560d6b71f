"""Per-state power distributions by configuration: measured (violins) with posterior-predictive quantiles.

Measured: every per-GPU power sample (native ~100 ms meter period) of the labelled energy-inference runs,
grouped by configuration (LLM, card, GPU count; runs of one configuration pooled) and state (``idle``,
``active``; start-up, warm-up and unlogged work excluded, as labelled in the catalog).  Overlaid: the
posterior-predictive 5/50/95 % quantiles of a per-GPU sample in that state
(``PowerModel.predict_config(...).state_power_w``), i.e. at the model's *reference workload* — the
measured runs carry their own batch and token mixes, so the two need not coincide exactly.

Inputs: the energy-inference catalog (``--catalog``); ``<results>/posterior_full.nc``, else the shipped
posterior (optional: without any only the measured violins are drawn, and the figure says so).
Output: ``<out>/state_power.png`` and ``.pdf``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from wattscape.models import dims as D

from . import _data
from . import _style as S

NAME = "state_power"
STATES = (D.ACTIVE, D.IDLE)
#: Most samples per (configuration, state) kept for a violin (evenly thinned, deterministic).
MAX_SAMPLES = 4000
#: Fewer samples than this: drawn as points, not a violin.
MIN_VIOLIN = 20


def measured_samples(cat) -> pd.DataFrame:
    """Per-GPU power samples: columns config, gpu_model, llm, n_gpus, state, power_w, run_id."""
    parts = []
    for rid in _data.runs_with_log(cat)["run_id"]:
        run = cat.run(str(rid))
        a = run.attrs
        codes = run[D.STATE_VAR].values
        power = run[D.POWER].transpose(D.GPU, D.TIME).values
        for state in STATES:
            vals = power[:, codes == D.state_code(state)].ravel()
            vals = vals[np.isfinite(vals)]
            if vals.size:
                parts.append(
                    pd.DataFrame(
                        {
                            "config": f"{a['llm']} ×{a['n_gpus']}\n{a['gpu_model']}",
                            "gpu_model": str(a["gpu_model"]),
                            "llm": str(a["llm"]),
                            "n_gpus": int(a["n_gpus"]),
                            "state": state,
                            "power_w": vals.astype(float),
                            "run_id": str(rid),
                        }
                    )
                )
    if not parts:
        raise S.MissingInputError(f"no state-labelled samples in the catalog {cat.path}")
    return pd.concat(parts, ignore_index=True)


def predicted_quantiles(post: str, cat, configs: pd.DataFrame, n_draws: int, seed: int) -> pd.DataFrame:
    """Posterior-predictive 5/50/95 % per-GPU power per (config, state) at the reference workload."""
    model = _data.load_model(post)
    rows = []
    for _, c in configs.iterrows():
        cfg = _data.run_config(cat.run(c["run_id"]))
        pred = model.predict_config(cfg, n_draws=n_draws, seed=seed)["state_power_w"]
        for state in STATES:
            if state in pred[D.STATE].values:
                q = np.quantile(pred.sel({D.STATE: state}).values, [0.05, 0.5, 0.95])
                rows.append({"config": c["config"], "state": state, "q05": q[0], "q50": q[1], "q95": q[2]})
    return pd.DataFrame(rows)


def make(args: argparse.Namespace) -> list[Path]:
    """Draw the figure; return the written files."""
    try:  # before the catalog: a posterior the user named must exist
        post_path = S.posterior_file(args.posterior, args.results)
    except S.MissingInputError:
        if args.posterior is not None:
            raise
        post_path = None
    cat = _data.catalog(args.catalog)
    df = measured_samples(cat)
    card_rank = {c: i for i, c in enumerate(S.CARDS)}
    configs = (
        df.drop_duplicates("config")[["config", "gpu_model", "llm", "n_gpus", "run_id"]]
        .assign(rank=lambda d: d["gpu_model"].map(card_rank).fillna(len(card_rank)))
        .sort_values(["rank", "n_gpus", "llm"])
        .reset_index(drop=True)
    )
    pred = None
    if post_path is not None:
        pred = predicted_quantiles(str(post_path), cat, configs, args.draws, args.seed)
    pos = {c: i for i, c in enumerate(configs["config"])}
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 6.0), sharex=True)
    rng = np.random.default_rng(args.seed)
    for ax, state in zip(axes, STATES, strict=True):
        sub = df[df["state"] == state]
        for cfg, g in sub.groupby("config", sort=False):
            vals = g["power_w"].to_numpy()
            if vals.size > MAX_SAMPLES:
                vals = vals[np.linspace(0, vals.size - 1, MAX_SAMPLES).astype(int)]
            color = S.CARD_COLORS.get(str(g["gpu_model"].iloc[0]), "0.5")
            x = pos[cfg]
            if vals.size >= MIN_VIOLIN:
                parts = ax.violinplot(vals, positions=[x - 0.12], widths=0.6, showextrema=False)
                for body in parts["bodies"]:
                    body.set_facecolor(color)
                    body.set_edgecolor(color)
                    body.set_alpha(0.55)
                ax.plot([x - 0.12], [np.median(vals)], marker="_", color="k", ms=10)
            else:
                jitter = rng.uniform(-0.1, 0.1, vals.size)
                ax.plot(x - 0.12 + jitter, vals, ".", color=color, ms=3)
        if pred is not None and len(pred):
            p = pred[pred["state"] == state]
            xs = p["config"].map(pos).to_numpy() + 0.25
            ax.errorbar(
                xs,
                p["q50"],
                yerr=[p["q50"] - p["q05"], p["q95"] - p["q50"]],
                fmt="D",
                ms=3,
                color=S.MODEL_COLOR,
                elinewidth=1.0,
                capsize=2,
            )
        ax.set_ylabel(f"{state}: power per GPU (W)")
        ax.set_ylim(bottom=0)
    axes[-1].set_xticks(range(len(configs)))
    axes[-1].set_xticklabels(configs["config"], rotation=60, ha="right", fontsize=6.5)
    axes[-1].set_xlim(-0.6, len(configs) - 0.4)
    handles = [Patch(color=S.CARD_COLORS[c], alpha=0.55, label=f"measured, {c}") for c in S.CARDS]
    handles.append(Line2D([], [], marker="_", color="k", ls="", ms=10, label="measured median"))
    if pred is not None:
        handles.append(
            Line2D(
                [],
                [],
                marker="D",
                color=S.MODEL_COLOR,
                ms=3,
                label="posterior predictive 5/50/95 % (ref. workload)",
            )
        )
    axes[0].legend(handles=handles, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.02), fontsize=6.5)
    title = "Per-GPU power by state and configuration (energy-inference runs, ~100 ms samples)"
    if pred is None:
        title += "\nno fitted posterior found: measured only"
    axes[0].set_title(title, pad=38)
    fig.tight_layout()
    return S.save(fig, args, NAME)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    p = S.parser(NAME, __doc__)
    _data.add_trace_args(p)
    p.set_defaults(draws=400)
    return S.run(NAME, make, p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
