"""Benchmark of the fast (ADVI) fit: variational family and draws per gradient step, side by side on one
leave-one-run-out fold.

Fits the fold of ``--holdout`` (every energy-inference run but that one, its logged inferences and the
configuration summaries, as ``experiments.accuracy`` does) once per ``--families`` × ``--n-mc`` value,
same seed and steps, and reports for each: wall time (compile included), the final loss, and how its
posterior compares with the first setting's: over every parameter element, the median ratio of posterior
sds and the shift of the posterior median in units of the first setting's sd (median, 95th percentile,
largest and where), and some pooled sds.  Mean-field sds of weakly identified scales are tiny, so the
largest shift is mostly where the approximation is least stable, not a fair measure of the difference.

Usage::

    python benchmarks/advi.py [--families meanfield fullrank] [--n-mc 1] [--iterations 20000]
                              [--holdout RUN_ID]

Writes ``results/benchmarks_advi.csv`` and ``.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HOLDOUT = "llama-2-7b-A100-PCIe-40GB-x1-20240403-145250"
#: Pooled sds reported per fit (posterior medians): mean field shrinks the weakly identified ones.
POOLED_SDS = (
    "b_cfg_sigma",
    "b_llm_sigma",
    "b_gpu_card_sigma",
    "b_par_sigma",
    "b_run_sigma",
    "itl_cfg_sigma",
    "itl_gpu_card_sigma",
    "itl_par_sigma",
)


def _posterior_table(idata):
    """Posterior medians and sds of every scalar element, indexed by ``name[i]``."""
    import numpy as np
    import pandas as pd

    rows = {}
    for name, var in idata.posterior.data_vars.items():
        values = var.values.reshape(-1, *var.shape[2:]) if var.ndim > 2 else var.values.reshape(-1, 1)
        flat = values.reshape(values.shape[0], -1)
        for i in range(flat.shape[1]):
            rows[f"{name}[{i}]"] = (np.median(flat[:, i]), np.std(flat[:, i]))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["median", "sd"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--families", nargs="+", default=["meanfield", "fullrank"], help="variational families, compared"
    )
    parser.add_argument("--n-mc", type=int, nargs="+", default=[1], help="draws per step, compared")
    parser.add_argument("--iterations", type=int, default=None, help="steps (default: the package's)")
    parser.add_argument("--holdout", default=DEFAULT_HOLDOUT, help="the fold's held-out run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--catalog", default=None, help="catalog folder (default: built under catalog/)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import pandas as pd
    from wattscape.inference.fit import ADVI_ITERATIONS
    from wattscape.inference.stats import fit_data_from_catalog
    from wattscape.models.hierarchical import PowerModel

    from experiments import _common as C
    from experiments.model_checks import markdown_table

    command = " ".join(
        ["python", "benchmarks/advi.py", *(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))]
    )
    iterations = args.iterations or ADVI_ITERATIONS
    catalog = C.energy_inference_catalog(args.catalog)
    if args.holdout not in set(catalog.run_ids):
        raise SystemExit(f"--holdout {args.holdout!r} is not a run of the catalog")
    fd = fit_data_from_catalog(
        catalog,
        holdout_runs=[args.holdout],
        summaries=C.catalog_summaries(catalog),
        log_calls=C.catalog_log_calls(catalog),
        progress=False,
    )
    rows, first = [], None
    for family, n_mc in itertools.product(args.families, args.n_mc):
        model = PowerModel()
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        model.fit(
            fd,
            sampler="fast",
            random_seed=args.seed,
            progressbar=True,
            advi_iterations=iterations,
            advi_n_mc=n_mc,
            advi_family=family,
        )
        wall = time.perf_counter() - t0
        post = _posterior_table(model.idata)
        row = {
            "family": family,
            "n_mc": n_mc,
            "iterations": iterations,
            "fit_wall_s": round(wall, 1),
            "final_loss": round(float(model.idata.attrs["advi_final_loss"]), 1),
            "load_avg_1min_start": round(load0, 2),
        }
        if first is None:
            first = post
            row["sd_ratio_median"] = 1.0
        else:
            both = post.join(first.add_suffix("_ref"), how="inner")
            ok = both["sd_ref"] > 0
            row["sd_ratio_median"] = round(float(np.median(both["sd"][ok] / both["sd_ref"][ok])), 3)
            shift = (both["median"] - both["median_ref"]).abs()[ok] / both["sd_ref"][ok]
            row["median_shift_sd"] = round(float(shift.median()), 3)
            row["p95_shift_sd"] = round(float(shift.quantile(0.95)), 2)
            row["max_shift_sd"] = round(float(shift.max()), 1)
            row["worst_shift_parameter"] = str(shift.idxmax())
        for name in POOLED_SDS:
            key = f"{name}[0]"
            if key in post.index:
                row[name] = round(float(post.loc[key, "median"]), 4)
        rows.append(row)
        print(row, flush=True)
    df = pd.DataFrame(rows)
    df["cpus"], df["machine"] = os.cpu_count(), platform.machine()
    body = (
        f"Fold: every run but `{args.holdout}` ({fd.ds.sizes['segment']} segments, "
        f"{fd.ds.sizes['config']} configurations); one fit per row, seed {args.seed}, run one after the "
        "other in this process (compile included in each wall time).  `sd_ratio_median` and the "
        "`*_shift_sd` columns compare each row's posterior with the first row's.\n\n"
        + markdown_table(df.map(lambda v: f"{v:g}" if isinstance(v, float) else v))
        + "\n"
    )
    C.write_result("benchmarks_advi", df, body, command=command)
    print(df.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
