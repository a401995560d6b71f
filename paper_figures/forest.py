"""Forest plot of the pooled effects of the fitted model (ArviZ ``plot_forest``, 90 % HDI, chains combined).

The busy-state effects of the linear predictor on the logit scale of ``P / (max_frac · TDP)``
(``models/hierarchical.py``): ``b_llm`` (left column), ``b_gpu_gen`` (GPU generation), ``b_gpu``
(card: its generation's effect plus its own deviation), ``b_gpu_idle`` (idle-state card effect),
``b_par`` (parallel layout) and the covariate slopes ``beta`` (per state).  Variables a
posterior lacks are skipped; none at all is a missing-input error.

Input: ``<results>/posterior_full.nc`` (or ``--posterior``; else the shipped posterior).
Output: ``<out>/forest.png`` and ``.pdf``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import arviz as az
import matplotlib.pyplot as plt

from . import _style as S

NAME = "forest"
#: Effect variables: the left column holds the first, the right column the rest, in this order.
LEFT = ("b_llm",)
RIGHT = ("b_gpu_gen", "b_gpu", "b_gpu_idle", "b_par", "beta")
TITLES = {
    "b_llm": "LLM effect b_llm (busy states)",
    "b_gpu_gen": "generation effect b_gpu_gen",
    "b_gpu": "card effect b_gpu (busy states)",
    "b_gpu_idle": "card effect b_gpu_idle (idle)",
    "b_par": "parallel-layout effect b_par",
    "beta": "covariate slopes beta",
}


def make(args: argparse.Namespace) -> list[Path]:
    """Draw the figure; return the written files."""
    path = S.posterior_file(args.posterior, args.results)
    idata = az.from_netcdf(str(path))
    have = set(idata.posterior.data_vars)
    left = [v for v in LEFT if v in have]
    right = [v for v in RIGHT if v in have]
    if not left and not right:
        raise S.MissingInputError(f"{path} holds none of the effect variables {LEFT + RIGHT}")
    sizes = {
        v: max(1, idata.posterior[v].size // (idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]))
        for v in left + right
    }
    n_right = sum(sizes[v] for v in right) + 2 * len(right)
    n_left = sum(sizes[v] for v in left) + 2 * len(left)
    height = max(4.0, 0.16 * max(n_left, n_right) + 1.0)
    ncol = 2 if left and right else 1
    fig = plt.figure(figsize=(7.5 if ncol == 2 else 4.5, height))
    grid = fig.add_gridspec(max(1, len(right)), ncol, height_ratios=[sizes[v] + 2 for v in right] or [1])
    axes = []
    if left:
        ax = fig.add_subplot(grid[:, 0])
        az.plot_forest(
            idata, var_names=left, combined=True, hdi_prob=0.9, ax=ax, textsize=7, colors=S.MODEL_COLOR
        )
        ax.set_title(TITLES[left[0]], fontsize=8)
        axes.append(ax)
    for i, var in enumerate(right):
        ax = fig.add_subplot(grid[i, ncol - 1])
        az.plot_forest(
            idata, var_names=[var], combined=True, hdi_prob=0.9, ax=ax, textsize=7, colors=S.MODEL_COLOR
        )
        ax.set_title(TITLES[var], fontsize=8)
        axes.append(ax)
    for i, ax in enumerate(axes):
        ax.axvline(0, color="0.4", lw=0.6, ls=":")
        if i == len(axes) - 1 or (left and i == 0):
            ax.set_xlabel("effect (logit of P / (max_frac · TDP))", fontsize=7)
        ax.grid(axis="y", visible=False)
    fig.suptitle(f"Pooled effects, posterior median and 90 % HDI ({path.name})", fontsize=9)
    fig.tight_layout()
    return S.save(fig, args, NAME)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    p = S.parser(NAME, __doc__)
    p.add_argument(
        "--posterior", type=Path, help="posterior (default <results>/posterior_full.nc, else the shipped one)"
    )
    return S.run(NAME, make, p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
