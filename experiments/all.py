"""Run every experiment in sequence, one subprocess each, sharing one folder of fold fits.

Order: accuracy, acf_ceiling, error_split, generalisation, calibration, ablation, model_checks,
level_shape, runtime_cells, planning. ``--quick`` is passed through (CI-sized runs; the others, which have no
``--quick``, get small settings instead: model_checks ``--sampler fast`` with only its PPC part, since
generalisation already runs its ML.ENERGY hold-outs; level_shape and runtime_cells 10 draws; planning one
scenario, 1 h, 2 draws).  level_shape, runtime_cells and planning read the fitted full posterior
(``--posterior``), not fold fits. The leave-one-run-out fold fits of accuracy are
written to ``--cache`` (default ``catalog/fits``, git-ignored) and reused by acf_ceiling, error_split,
generalisation (one-run groups), calibration and ablation. A failing experiment does not stop the others;
the exit status is 1 if any failed.

Writes ``results/experiments_all.csv`` / ``.md``: each experiment's exact command, exit status and wall
time, and the total.

Usage::

    python -m experiments.all                    # everything, fast fits
    python -m experiments.all --fit nuts         # NUTS fold fits, results as <name>_nuts (hours)
    python -m experiments.all --quick            # CI-sized
    python -m experiments.all --only accuracy calibration
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence

import pandas as pd

from experiments import _common as C

NAME = "experiments_all"
EXPERIMENTS = (
    "accuracy",
    "acf_ceiling",
    "error_split",
    "generalisation",
    "calibration",
    "ablation",
    "model_checks",
    "level_shape",
    "runtime_cells",
    "planning",
)
#: Default folder of shared fold fits (under the git-ignored ``catalog/``; relative to the repository root,
#: where every experiment runs).
DEFAULT_CACHE = "catalog/fits"
#: The shipped full-data posterior planning draws from (when present).
POSTERIOR = "results/posterior_full.nc"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.all", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CI-sized runs of every experiment")
    p.add_argument("--fit", choices=("fast", "nuts"), default="fast", help="fit mode of every fit")
    p.add_argument("--cache", default=DEFAULT_CACHE, help="shared fold fits (relative to the repo)")
    p.add_argument("--out", help="results folder (default results/)")
    p.add_argument("--only", nargs="+", choices=EXPERIMENTS, help="only these experiments")
    p.add_argument("--skip", nargs="+", choices=EXPERIMENTS, default=[], help="skip these experiments")
    p.add_argument("--posterior", help=f"posterior for planning (default {POSTERIOR} when present)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    return p.parse_args(argv)


def commands(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """``(experiment, argv after 'python -m experiments.<name>')`` of each experiment to run."""
    out_dir = args.out
    quick = ["--quick"] if args.quick else []
    fold = ["--fit", args.fit, "--cache", str(args.cache)]
    out = ["--out", out_dir] if out_dir else []
    # NUTS-fold results sit beside the fast-fold ones (``<name>_nuts``), so neither overwrites the other
    cmds: dict[str, list[str]] = {
        n: [*quick, *fold, *out, *(["--name", f"{n}_nuts"] if args.fit == "nuts" else [])]
        for n in ("accuracy", "acf_ceiling", "error_split", "generalisation", "calibration", "ablation")
    }
    sampler = "fast" if args.fit == "fast" else "numpyro"
    mc = ["--sampler", sampler, *(["--out-dir", out_dir] if out_dir else [])]
    if args.quick:
        mc += ["--draws", "200", "--skip", "llms", "b200"]
    cmds["model_checks"] = mc
    posterior = args.posterior or (POSTERIOR if (C.REPO / POSTERIOR).is_file() else None)
    in_sample = [*out, *(["--posterior", posterior] if posterior else [])]
    in_sample += ["--draws", "10"] if args.quick else []
    cmds["level_shape"] = in_sample
    cmds["runtime_cells"] = list(in_sample)
    plan = ["--out", out_dir or "results"] + (["--posterior", posterior] if posterior else [])
    if args.quick:
        plan += ["--scenarios", "one_server", "--hours", "1", "--draws", "2", "--samples", "20", "--quiet"]
    cmds["planning"] = plan
    names = [n for n in (args.only or EXPERIMENTS) if n not in set(args.skip)]
    return [(n, cmds[n]) for n in names]


def run_one(name: str, argv: list[str]) -> dict:
    """Run ``python -m experiments.<name> argv`` in the repository root; its exit status and wall time."""
    cmd = [sys.executable, "-m", f"experiments.{name}", *argv]
    shown = " ".join(["python", "-m", f"experiments.{name}", *(shlex.quote(a) for a in argv)])
    print(f"== {name}: {shown}", file=sys.stderr, flush=True)
    path = os.pathsep.join(filter(None, [str(C.REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    t0 = time.perf_counter()
    rc = subprocess.call(cmd, cwd=C.REPO, env=env)
    wall = time.perf_counter() - t0
    print(f"   {name}: exit {rc}, {wall:.0f} s", file=sys.stderr, flush=True)
    return {"experiment": name, "command": shown, "exit_status": rc, "wall_s": round(wall, 1)}


def markdown(table: pd.DataFrame, args: argparse.Namespace) -> str:
    """Per-experiment status and wall time, and the total."""
    lines = [
        f"Fold fits shared in `{args.cache}` (fit mode {args.fit}{', quick' if args.quick else ''}).",
        "",
        "| experiment | exit status | wall time (s) | command |",
        "|---|---|---|---|",
    ]
    for r in table.itertuples(index=False):
        lines.append(f"| {r.experiment} | {r.exit_status} | {r.wall_s:.0f} | `{r.command}` |")
    total = float(table["wall_s"].sum()) if len(table) else 0.0
    failed = table.loc[table["exit_status"] != 0, "experiment"].tolist() if len(table) else []
    lines += ["", f"Total wall time: {total:.0f} s ({total / 60:.1f} min).", ""]
    lines.append(f"Failed: {', '.join(failed)}." if failed else "Every experiment exited 0.")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = C.command_line("experiments.all", argv)
    todo = commands(args)
    if args.dry_run:
        for name, a in todo:
            print(" ".join(["python", "-m", f"experiments.{name}", *(shlex.quote(x) for x in a)]))
        return 0
    (C.REPO / args.cache).mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame([run_one(name, a) for name, a in todo])
    md = markdown(table, args)
    # the NUTS set's summary sits beside the fast set's, like its experiments' results
    name = NAME if args.fit == "fast" else f"{NAME}_nuts"
    C.write_result(name, table, md, command=command, out_dir=args.out)
    print(md)
    return int(bool(len(table) and (table["exit_status"] != 0).any()))


if __name__ == "__main__":
    sys.exit(main())
