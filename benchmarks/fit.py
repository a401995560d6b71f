"""Benchmark of the full fit: wall time and diagnostics of NUTS on all real data in ``../shared/data``.

Data: every labelled energy-inference run (segments, lag products, dwell times) plus the ML.ENERGY v3 and
LLM-Inference-Bench configuration summaries.  Reports reduction time, sampling wall time (compile
included), CPU time, the load average during the fit (the machine may be shared), max r_hat, min ESS
bulk/tail, divergences and min BFMI.

Usage::

    python benchmarks/fit.py [--sampler numpyro] [--draws 1000 --tune 1000 --chains 2] [--seed 0]
                             [--out results/posterior_full.nc] [--ship]
    python benchmarks/fit.py --merge A.nc B.nc [--out results/posterior_full.nc] [--ship]

``--ship`` also writes a thinned copy (``--ship-draws`` draws in all) to ``wattscape/data/posterior/`` for
the demo.  ``--merge`` fits nothing: it combines the chains of saved fits of this model on the same data
(other seeds, other machines; :func:`wattscape.inference.fit.combine_chains`) and reports and ships the
result as a fit (its times: the parts' sums).  Writes ``results/benchmarks_fit.csv`` and ``.md`` and prints
the row.

The shipped posterior: two runs of two chains each, combined (four chains)::

    python benchmarks/fit.py --seed 0 --out catalog/posterior_s0.nc
    python benchmarks/fit.py --seed 1 --out catalog/posterior_s1.nc
    python benchmarks/fit.py --merge catalog/posterior_s0.nc catalog/posterior_s1.nc --ship
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "wattscape" / "data" / "posterior" / "posterior.nc"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sampler", default="numpyro", choices=["numpyro", "nutpie", "pymc", "fast"])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--catalog", default=None, help="catalog folder (default: built under catalog/)")
    parser.add_argument("--out", default=str(ROOT / "results" / "posterior_full.nc"))
    parser.add_argument("--ship", action="store_true", help="also write the thinned demo posterior")
    parser.add_argument("--ship-draws", type=int, default=200, help="draws of the shipped copy, all chains")
    parser.add_argument("--merge", nargs="+", metavar="FIT", help="combine the chains of these saved fits")
    args = parser.parse_args(argv)
    if args.sampler == "numpyro":
        from wattscape.inference.fit import set_host_devices

        set_host_devices(args.chains)
    sys.path.insert(0, str(ROOT))
    import pandas as pd
    from wattscape.inference.diagnostics import save_diagnostics
    from wattscape.inference.stats import fit_data_from_catalog
    from wattscape.models import dims as D
    from wattscape.models.hierarchical import PowerModel

    from experiments._common import write_result
    from experiments.model_checks import full_catalog

    command = " ".join(
        ["python", "benchmarks/fit.py", *(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))]
    )
    if args.merge:
        from wattscape.inference.fit import combine_chains

        parts = [PowerModel.load(path).idata for path in args.merge]  # refuses another model id
        model = PowerModel.from_idata(combine_chains(parts, sources=args.merge))
        fit_ds = model.fit_data
        t_reduce, load0, load1 = float("nan"), os.getloadavg(), os.getloadavg()
        wall = float(model.idata.attrs.get("sampling_time_s", float("nan")))
        cpu = float("nan")
        sampler = str(model.idata.attrs.get("sampler", args.sampler))
        chains, draws = model.posterior.sizes[D.CHAIN], model.posterior.sizes[D.DRAW]
        tune = int(model.idata.attrs.get("tuning_steps", args.tune))
    else:
        catalog = full_catalog(args.catalog)
        t0 = time.perf_counter()
        fd = fit_data_from_catalog(catalog, progress=False)
        t_reduce = time.perf_counter() - t0
        model = PowerModel()
        load0 = os.getloadavg()
        cpu0, t1 = time.process_time(), time.perf_counter()
        model.fit(
            fd,
            sampler=args.sampler,
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            random_seed=args.seed,
            progressbar=True,
        )
        wall, cpu = time.perf_counter() - t1, time.process_time() - cpu0
        load1 = os.getloadavg()
        fit_ds = fd.ds
        sampler, chains, draws, tune = args.sampler, args.chains, args.draws, args.tune
    out = model.save(args.out)
    diag = save_diagnostics(model.idata, out)
    row = {
        "sampler": sampler,
        "chains": chains,
        "draws": draws,
        "tune": tune,
        "merged_from": " ".join(args.merge or []),
        "runs": fit_ds.sizes["run"],
        "segments": fit_ds.sizes["segment"],
        "summaries": fit_ds.sizes["summary"],
        "configs": fit_ds.sizes["config"],
        "parameters": diag["n_parameters"],
        "reduce_s": round(t_reduce, 1),
        "fit_wall_s": round(wall, 1),
        "fit_cpu_s": round(cpu, 1),
        "load_avg_1min_start": round(load0[0], 2),
        "load_avg_1min_end": round(load1[0], 2),
        "max_r_hat": diag["max_r_hat"],
        "min_ess_bulk": diag["min_ess_bulk"],
        "min_ess_tail": diag["min_ess_tail"],
        "divergences": diag["divergences"],
        "min_bfmi": diag["min_bfmi"],
        "worst_r_hat_parameter": diag["worst_r_hat_parameter"],
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    if args.ship:
        idata = model.idata
        # --ship-draws in all, spread over the chains
        thin = idata.posterior.sizes[D.DRAW] * idata.posterior.sizes[D.CHAIN] // args.ship_draws
        small = PowerModel.from_idata(idata)
        keep = {g: idata[g] for g in ("posterior", "fit_data")}
        import arviz as az

        keep["posterior"] = keep["posterior"].isel({D.DRAW: slice(None, None, max(thin, 1))})
        small.idata = az.InferenceData(**keep)
        small.idata.attrs.update(idata.attrs)
        SHIPPED.parent.mkdir(parents=True, exist_ok=True)
        small.save(SHIPPED)
        row["shipped_mb"] = round(SHIPPED.stat().st_size / 1e6, 2)
    df = pd.DataFrame([row])
    body = df.T.rename(columns={0: "value"}).to_string()
    write_result("benchmarks_fit", df, f"```\n{body}\n```\n", command=command)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
