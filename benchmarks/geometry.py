"""Why NUTS takes the steps it takes on the power model: the posterior's stiffest and widest directions.

NUTS with a diagonal metric moves in the space whitened by each parameter's posterior sd.  Its step size is
bounded by the stiffest direction there (the largest eigenvalue ``λ_max`` of the whitened Hessian of the
log density: a leapfrog step is stable below ``2 / √λ_max``), and its trajectories must reach across the
widest one (the largest sd of the whitened draws) before they turn: when the ratio of the two needs more
than ``2**10 − 1`` steps, every draw ends at the tree-depth limit.  This script reads a fitted posterior
(no sampling), rebuilds its model, and reports both ends with the parameters that span them
(:func:`wattscape.inference.diagnostics.curvature_directions`), beside the step size the sampler adapted.

Usage::

    python benchmarks/geometry.py [--posterior results/posterior_full.nc] [--points 10]

Default posterior: ``results/posterior_full.nc`` (``benchmarks/fit.py``) when present, else the shipped
one.  Writes ``results/benchmarks_geometry.csv`` and ``.md`` (``--out-dir``: elsewhere).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FULL = ROOT / "results" / "posterior_full.nc"
SHIPPED = ROOT / "wattscape" / "data" / "posterior" / "posterior.nc"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posterior", default=None, help="fitted posterior (.nc with a fit_data group)")
    parser.add_argument("--points", type=int, default=10, help="draws at which the Hessian is evaluated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=None, help="folder of the result tables (default results/)")
    args = parser.parse_args(argv)
    path = Path(args.posterior) if args.posterior else (FULL if FULL.is_file() else SHIPPED)
    if not path.is_file():
        parser.error(f"no posterior at {path}")
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import pandas as pd
    from wattscape.inference.diagnostics import (
        curvature_directions,
        free_parameter_labels,
        unconstrained_draws,
        widest_directions,
    )
    from wattscape.models.hierarchical import PowerModel

    from experiments._common import write_result

    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python", "benchmarks/geometry.py", *(shlex.quote(a) for a in given)])
    t0 = time.perf_counter()
    fitted = PowerModel.load(path)
    model = fitted.build_model(fitted.idata.fit_data)
    labels = free_parameter_labels(model)
    draws = unconstrained_draws(model, fitted.idata.posterior)
    stiff = curvature_directions(model, draws, n_points=args.points, n_directions=3, seed=args.seed)
    wide = widest_directions(draws, labels)
    widest = float(wide["sd"].iloc[0])
    stats = fitted.idata.get("sample_stats")
    step = (
        np.asarray(stats["step_size"].values).reshape(stats.sizes["chain"], -1)[:, 0]
        if stats is not None and "step_size" in stats
        else None
    )
    top = stiff[stiff["rank"] == 0]["eigenvalue"]
    which, per_step = (
        ("adapted step", float(np.mean(step)))
        if step is not None
        else ("stable step", 2 / np.sqrt(top.median()))
    )
    median_point = int(stiff[stiff["rank"] == 0].sort_values("eigenvalue").iloc[len(top) // 2]["point"])
    lines = [
        f"Posterior `{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}`: "
        f"{draws.shape[0]} draws of {draws.shape[1]} unconstrained parameters; Hessian at {len(top)} draws "
        f"(metric: each parameter's posterior sd).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| largest whitened curvature λ_max (min / median / max over draws) | {top.min():.3g} / "
        f"{top.median():.3g} / {top.max():.3g} |",
        f"| stable leapfrog step 2/√λ_max at the median draw | {2 / np.sqrt(top.median()):.4f} |",
        "| step size the sampler adapted (per chain) | "
        + ("n/a" if step is None else " / ".join(f"{s:.4f}" for s in step))
        + " |",
        f"| widest whitened direction (sd) | {widest:.2f} |",
        f"| leapfrog steps to cross it, π · sd / step ({which}) | {np.pi * widest / per_step:.0f} "
        "(tree depth 10: 1,023) |",
        "",
        f"Stiffest directions at the median draw ({median_point}); the step size follows the first:",
        "",
        "| rank | λ | step limit | largest loadings (whitened) |",
        "|---|---|---|---|",
    ]
    for _, r in stiff[stiff["point"] == median_point].iterrows():
        lines.append(f"| {r['rank']} | {r['eigenvalue']:.3g} | {r['step_limit']:.4f} | {r['loadings']} |")
    lines += [
        "",
        "Widest directions (sd in units of each parameter's posterior sd"
        + ("; fewer draws than parameters inflate these" if draws.shape[0] <= draws.shape[1] else "")
        + "):",
        "",
        "| rank | sd | largest loadings |",
        "|---|---|---|",
    ]
    lines += [f"| {r['rank']} | {r['sd']:.2f} | {r['loadings']} |" for _, r in wide.iterrows()]
    lines += ["", f"Wall time: {time.perf_counter() - t0:.0f} s."]
    table = pd.concat([stiff.assign(kind="stiff"), wide.assign(kind="wide")], ignore_index=True)
    write_result("benchmarks_geometry", table, "\n".join(lines) + "\n", command=command, out_dir=args.out_dir)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
