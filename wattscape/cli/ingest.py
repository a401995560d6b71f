"""``wattscape ingest SRC... --out CATALOG``: read traces, logs, summaries and traffic into a catalog."""

from __future__ import annotations

import argparse
import math

import pandas as pd

from wattscape.models import dims as D

#: States shown in the summary table, in this order (a column only when some run has the state).
SHOWN_STATES = (D.EXCLUDED, D.IDLE, D.ACTIVE, D.PREFILL, D.DECODE)
_SHORT = {D.EXCLUDED: "excl", D.IDLE: "idle", D.ACTIVE: "active", D.PREFILL: "prefill", D.DECODE: "decode"}


def _duration(seconds: float) -> str:
    seconds = float(seconds)
    if not math.isfinite(seconds):
        return "-"
    h, rem = divmod(round(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


def format_runs(index: pd.DataFrame) -> str:
    """A neat table of the run index: llm, gpu_model, GPUs, duration, samples, % time and mean W per state.

    Mean power is per GPU (W), over the samples of that state.
    """
    if index.empty:
        return "no runs"
    states = [s for s in SHOWN_STATES if f"frac_{s}" in index and (index[f"frac_{s}"] > 0).any()]
    head = ["llm", "gpu_model", "gpus", "duration", "samples"]
    head += [f"%{_SHORT[s]}" for s in states] + [f"W {_SHORT[s]}" for s in states] + ["status"]
    rows = []
    for r in index.itertuples(index=False):
        r = r._asdict()
        row = [str(r["llm"]), str(r["gpu_model"]), str(int(r["n_gpus"])), _duration(r["duration_s"]),
               str(int(r["n_samples"]))]
        row += [f"{100 * r[f'frac_{s}']:.1f}" for s in states]
        row += ["-" if not math.isfinite(r[f"power_w_{s}"]) else f"{r[f'power_w_{s}']:.0f}" for s in states]
        status = str(r["status"])
        row.append(status if status == "labelled" else status.replace("power-only: ", "power-only ("))
        if row[-1].startswith("power-only ("):
            row[-1] += ")"
        rows.append(row)
    widths = [max(len(h), *(len(x[i]) for x in rows)) for i, h in enumerate(head)]
    left = {0, 1, len(head) - 1}

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                                                 strict=True)))

    out = [line(head).rstrip(), line(["-" * w for w in widths])] + [line(x).rstrip() for x in rows]
    out.append(f"({len(rows)} runs; % = share of time in each state, W = mean power per GPU in that state; "
               "excl = start-up, model loading, first-inference warm-up, unlogged work)")
    return "\n".join(out)


def format_catalog(catalog) -> str:
    """Run table plus counts of configuration rows and traffic requests of a catalog."""
    lines = [format_runs(catalog.index)]
    jobs = catalog.manifest.get("jobs", {})
    n_configs = sum(int(v.get("n_configs", 0)) for v in jobs.values())
    if any(v.get("kind") == "summaries" for v in jobs.values()):
        per = ", ".join(f"{k.removeprefix('summaries-')}: {v['n_configs']:,}" for k, v in sorted(jobs.items())
                        if v.get("kind") == "summaries")
        lines.append(f"configuration summaries: {n_configs:,} rows ({per})")
    for v in sorted((v for v in jobs.values() if v.get("kind") == "traffic"), key=lambda v: v["name"]):
        lines.append(f"traffic {v['name']}: {int(v['n_requests']):,} requests")
    n_req = len(catalog.requests())
    if n_req:
        lines.append(f"inference/request rows of the runs: {n_req:,}")
    calls = catalog.log_calls()
    if len(calls):
        lines.append(
            f"logged inferences without a trace: {len(calls):,} in {calls['run_id'].nunique()} log runs "
            f"(per-call energy; {len(calls.groupby(['llm', 'gpu_model', 'n_gpus']))} configurations)"
        )
    notes = [n for v in jobs.values() if v.get("kind") == "energy-inference-logs" for n in v.get("notes", [])]
    skipped = [n for n in notes if " skipped: " in n]
    if skipped:
        lines.append(f"{len(skipped)} CSV file(s) under the dataset are not per-inference logs or cannot be "
                     f"read (manifest.json lists why), e.g. {skipped[0]}")
    return "\n".join(lines)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``wattscape ingest``."""
    p = subparsers.add_parser(
        "ingest",
        help="read traces, logs, summaries and traffic into a catalog",
        description="Read measured power traces with their logs (energy-inference folders or single run "
        "directories, powertrace-sim runs), configuration summaries (ML.ENERGY v3, LLM-Inference-Bench) "
        "and request traces (Azure, Mooncake, BurstGPT, Splitwise, Vidur) into a catalog folder.",
    )
    p.add_argument("sources", nargs="+", metavar="SRC", help="source folders or files")
    p.add_argument("--out", required=True, metavar="CATALOG", help="catalog folder (replaced atomically)")
    p.add_argument("--utc-offset", type=float, default=None, metavar="H",
                   help="UTC offset (hours) of a single run's nvidia-smi clock, e.g. -5")
    p.add_argument("--log", default=None, metavar="FILE", help="per-inference log of a single run directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the catalog and print its per-run summary."""
    from wattscape.inference.catalog import build_catalog

    cat = build_catalog(args.sources, args.out, utc_offset_hours=args.utc_offset, log=args.log,
                        progress=not args.quiet)
    print(format_catalog(cat))
    print(f"catalog {'written to' if cat.changed else 'unchanged at'} {cat.path}")
    return 0
