"""Planning analyses on the shipped site scenarios: oversubscription, power capping, utility load figures.

For each scenario in ``generation/scenarios`` (or those named) this script generates a site trace with
``wattscape.generation.site.generate_site`` — from a fitted posterior when ``--posterior`` is given,
else from the physics-plausible example parameters (``example_params_for_site``: *not* a fit, and
said so in every output) — runs ``wattscape.generation.planning.report.write_planning`` on it, and
writes

- ``results/planning/<scenario>/`` — ``report.html``, every table as CSV, the exports;
- ``results/planning.csv`` / ``results/planning.md`` — the headline figures of every scenario, plus a
  paper-comparable 600 kW row budget (PROTOCOL.md: TDP 23 racks, mean 42, Splitwise 52, theirs 57)
  where the scenario has racks and rows;
- ``results/planning_modulation.csv`` / ``.md`` and ``results/planning_oversubscription.csv`` / ``.md``;
- ``results/planning_cap_crosscheck.csv`` / ``.md`` — per-GPU caps by the deferred-work proxy vs the
  generator simulating them (``power_cap_w``), for scenarios with per-GPU output.

Each Markdown file is headed by the exact command and the package version.

Usage::

    python experiments/planning.py [--scenarios azure_day_1000 ...] [--draws 10] [--hours 24]
                                   [--posterior model.nc] [--out results] [--seed 0]
                                   [--save-traces DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from wattscape.generation.planning.common import SiteTraceError
from wattscape.generation.planning.oversubscription import oversubscription_curve
from wattscape.generation.planning.report import write_planning
from wattscape.generation.site import example_params_for_site, generate_site, posterior_params_for_site
from wattscape.generation.topology import Site, load_site, shipped_scenarios
from wattscape.models import dims as D

from wattscape import __version__
from wattscape.io import atomic_path

PAPER_ROW_KW = 600.0
PAPER_ROW = "TDP 23 racks, mean 42, Splitwise 52, theirs 57 (Azure day, 240 A100 nodes, P95 risk)"


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = []
        for v in row:
            cells.append(f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write(out: Path, name: str, df: pd.DataFrame, header: str) -> None:
    with atomic_path(out / f"{name}.csv") as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(out / f"{name}.md") as tmp:
        tmp.write_text(header + "\n\n" + _md_table(df) + "\n")


def _site(name: str, hours: float | None) -> Site:
    site = load_site(name)
    changes: dict[str, object] = {}
    if hours:
        changes["duration_s"] = min(float(site.duration_s), hours * 3600.0)
    levels = set(site.levels) | {D.FACILITY}
    if site.rows * site.racks_per_row > 1:
        levels |= {D.RACK, D.ROW}  # oversubscription counts racks under a row budget, as the paper does
    changes["levels"] = tuple(lv for lv in D.TOPOLOGY_LEVELS if lv in levels)
    return Site(**{**site.__dict__, **changes})


def cap_crosscheck(name: str, site: Site, params, ds, mod: pd.DataFrame, args) -> pd.DataFrame | None:
    """Per-GPU caps two ways, where the trace has per-GPU output: this package's deferred-work proxy on
    the uncapped trace vs the generator simulating the cap (``power_cap_w``: levels clipped, dwell
    stretched).  Same seed, so the traffic is the same."""
    if D.GPU_POWER not in ds:
        return None
    rows = []
    base_fac = ds[D.FACILITY_POWER].values
    base_peak = np.median(base_fac.max(axis=1))
    base_e = np.median((base_fac * ds["interval"].values).sum(axis=1))
    for _, r in mod[mod["cap_kind"] == "gpu"].iterrows():
        fleet = [dataclasses.replace(f, power_cap_w=float(r["cap"])) for f in site.fleet]
        capped = generate_site(
            params,
            Site(**{**site.__dict__, "fleet": fleet}),
            seed=args.seed,
            draws=ds.sizes[D.DRAW],
            progress=False,
        )
        fac = capped[D.FACILITY_POWER].values
        rows.append(
            {
                "scenario": name,
                "cap_w_per_gpu": r["cap"],
                "proxy_peak_change_pct": r["peak_change_pct"],
                "generator_peak_change_pct": 100 * (np.median(fac.max(axis=1)) / base_peak - 1),
                "proxy_energy_change_pct": r["energy_change_pct"],
                "generator_energy_change_pct": 100
                * (np.median((fac * capped["interval"].values).sum(axis=1)) / base_e - 1),
                "proxy_work_not_served_pct": r["throughput_loss_pct"],
            }
        )
    return pd.DataFrame(rows)


def run_scenario(name: str, args: argparse.Namespace, command: str) -> dict[str, object]:
    """Generate one scenario and run every analysis on it; return its summary rows."""
    site = _site(name, args.hours)
    n_draws = args.draws or site.draws
    if args.posterior:
        params = posterior_params_for_site(args.posterior, site, n_draws=max(n_draws, 20), seed=args.seed)
        source = f"posterior {args.posterior}"
    else:
        params = example_params_for_site(site, n_draws=max(n_draws, 20), seed=args.seed)
        source = "example parameters (models.params.example_config_params), not a fitted posterior"
    t0 = time.perf_counter()
    ds = generate_site(params, site, seed=args.seed, draws=n_draws, progress=not args.quiet)
    t_gen = time.perf_counter() - t0
    ds.attrs["note"] = f"generated from {source}"
    if args.save_traces:
        Path(args.save_traces).mkdir(parents=True, exist_ok=True)
        with atomic_path(Path(args.save_traces) / f"{name}.nc") as tmp:
            ds.to_netcdf(tmp, engine="h5netcdf")
    t0 = time.perf_counter()
    res = write_planning(
        ds,
        Path(args.out) / "planning" / name,
        source=f"{name} ({source})",
        command=command,
        n_samples=args.samples,
        seed=args.seed,
        progress=not args.quiet,
    )
    t_plan = time.perf_counter() - t0
    head = res["headline"].assign(scenario=name)
    head["generate_s"] = round(t_gen, 1)
    head["plan_s"] = round(t_plan, 1)
    over = res["oversubscription"].assign(
        scenario=name,
        budget_kw=res["oversubscription"].attrs["budget_w"] / 1e3,
        level=res["oversubscription"].attrs["level"],
        unit=res["oversubscription"].attrs["unit"],
    )
    paper = None
    if D.RACK_POWER in ds and D.ROW_POWER in ds:
        curve = oversubscription_curve(
            ds,
            PAPER_ROW_KW * 1e3,
            level=D.ROW,
            unit=D.RACK,
            epsilons=(0.01, 0.05),
            n_samples=args.samples,
            seed=args.seed,
        )
        paper = curve.assign(scenario=name, budget_kw=PAPER_ROW_KW, level=D.ROW, unit=D.RACK)
    mod = res["modulation"].assign(
        scenario=name, cap_resolution=res["modulation"].attrs["gpu_cap_resolution"]
    )
    cross = cap_crosscheck(name, site, params, ds, res["modulation"], args)
    print(res["headline"].to_string(index=False))
    print(f"{name}: generated in {t_gen:.1f} s, planned in {t_plan:.1f} s ({res['timings_s']})")
    return {
        "headline": head,
        "oversubscription": over,
        "paper_row": paper,
        "modulation": mod,
        "cap_check": cross,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--scenarios", nargs="+", default=None, help=f"shipped scenarios (default all: {shipped_scenarios()})"
    )
    p.add_argument("--draws", type=int, default=None, help="posterior draws (default: the scenario's)")
    p.add_argument("--hours", type=float, default=None, help="cut each scenario to this many hours")
    p.add_argument("--posterior", default=None, help="fitted PowerModel to draw parameters from")
    p.add_argument("--samples", type=int, default=200, help="random (draw, rack order) samples of the risk")
    p.add_argument("--out", default="results", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-traces", default=None, help="also write each generated trace to DIR/<scenario>.nc")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    command = "python experiments/planning.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    out = Path(args.out)
    names = args.scenarios or shipped_scenarios()
    runs, failed = [], []
    for n in names:
        try:
            runs.append(run_scenario(n, args, command))
        except SiteTraceError as err:  # a trace the analyses cannot use: say so in the tables, go on
            print(f"{n}: FAILED: {err}", file=sys.stderr)
            failed.append(
                pd.DataFrame(
                    [
                        {
                            "scenario": n,
                            "metric": "FAILED",
                            "value": "",
                            "unit": "",
                            "note": str(err)[:300],
                            "generate_s": np.nan,
                            "plan_s": np.nan,
                        }
                    ]
                )
            )
    if not runs:
        print("no scenario could be analysed", file=sys.stderr)
        return 1
    header = (
        f"# Planning analyses on shipped site scenarios\n\ncommand: `{command.strip()}`  \n"
        f"wattscape {__version__}; parameters: "
        + (
            f"posterior `{args.posterior}`"
            if args.posterior
            else "example parameters (not a fitted posterior)"
        )
    )
    head = pd.concat([r["headline"] for r in runs] + failed, ignore_index=True)
    _write(
        out, "planning", head[["scenario", "metric", "value", "unit", "note", "generate_s", "plan_s"]], header
    )
    overs = [r["oversubscription"] for r in runs] + [
        r["paper_row"] for r in runs if r["paper_row"] is not None
    ]
    over = pd.concat(overs, ignore_index=True)
    cols = [
        "scenario",
        "level",
        "unit",
        "budget_kw",
        "epsilon",
        "n_units",
        "n_tdp",
        "n_mean",
        "gain_vs_tdp_pct",
        "p_exceed_at_n",
        "p_exceed_at_tdp",
        "p_exceed_at_mean",
    ]
    cols += [c for c in ("n_servers", "n_servers_tdp") if c in over]
    _write(out, "planning_oversubscription", over[cols], header + f"\n\nPaper, 600 kW row: {PAPER_ROW}.")
    mod = pd.concat([r["modulation"] for r in runs], ignore_index=True)
    checks = [r["cap_check"] for r in runs if r["cap_check"] is not None]
    if checks:
        note = (
            "\n\nPer-GPU caps two ways on scenarios with per-GPU output: the deferred-work proxy applied to "
            "the uncapped trace vs the generator simulating the cap (levels clipped at the cap, prefill/"
            "decode dwell stretched by (mean level / cap)); same seed and traffic."
        )
        _write(out, "planning_cap_crosscheck", pd.concat(checks, ignore_index=True), header + note)
    front = ["scenario", "cap_resolution"]
    _write(out, "planning_modulation", mod[front + [c for c in mod.columns if c not in front]], header)
    print(
        f"wrote {out / 'planning.csv'}, {out / 'planning.md'}, per-scenario reports under {out / 'planning'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
