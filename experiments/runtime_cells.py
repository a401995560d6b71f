"""The runtime of each workload cell: the posterior's latency model against the logged calls.

For every energy-inference run with a log, the calls are grouped into workload cells (the same batch,
prompt and output-token limit: the unit whose runtime misfit the replay draws once,
:mod:`wattscape.generation.replay`) and the runtime the posterior replays for them
(:func:`wattscape.generation.replay.replay_timeline`, ``end − start`` of each call, which the drive does not
change) is set against the logged one.  Each run's first call is replayed but left out of the scores
(``--keep-first`` keeps it): it includes the 1–6 s warm-up at near-idle power of these runs
(``data/README.md``), which the labelling leaves out of the fit and the replay does not generate (measured:
the first call lasts 1.4–5.6 s longer than the median of the rest of its cell).  With the default
posterior (the full fit) this is in-sample: it shows where the latency model's *shape* misfits, apart from
what a held-out fold fails to transfer (``experiments.error_split``).  It matters because in open loop a
runtime too short becomes idle time.

Per cell (``<name>_cells.csv``):

- ``n_calls``, ``runtime_logged_s`` (mean logged runtime of the cell's calls), ``time_share`` (the cell's
  share of the run's logged service time), ``logged_ms_per_output_token`` (``runtime_logged_s`` over the
  output-token limit, ms: prefill included);
- ``runtime_q05_s``, ``runtime_q50_s``, ``runtime_q95_s``: quantiles over draws of the cell's mean replayed
  runtime; ``ratio = runtime_q50_s / runtime_logged_s``; ``inside_90``: the logged mean inside
  ``[q05, q95]``.

Per run (``<name>.csv``): ``service_ratio`` (median over draws of Σ replayed / Σ logged runtime, as in
``experiments.error_split``), the cells and the share of logged time inside their 90 % interval, and the
worst cell (largest ``|log ratio|``) with its workload and ratio.

Usage::

    python -m experiments.runtime_cells                              # results/posterior_full.nc, else shipped
    python -m experiments.runtime_cells --posterior post.nc --runs RUN_ID ...
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from experiments import _common as C

NAME = "runtime_cells"
#: The workload of a cell (request-table columns).
CELL = ("batch_size", "prompt_tokens", "output_tokens")
QUANTILES = (0.05, 0.5, 0.95)
#: Columns of ``<name>.csv``, in order.
COLUMNS = (
    "run_id",
    "llm",
    "gpu_model",
    "n_gpus",
    "n_calls",
    "n_cells",
    "service_ratio",
    "cells_inside_90",
    "time_inside_90",
    "worst_batch",
    "worst_prompt",
    "worst_output",
    "worst_ratio",
    "worst_time_share",
)


# --- pure computation --------------------------------------------------------------------------------
def cell_table(requests: pd.DataFrame, replayed_s) -> pd.DataFrame:
    """Logged against replayed runtime per workload cell.

    Parameters
    ----------
    requests : DataFrame
        The calls, in the order of ``replayed_s``'s second axis: ``start``, ``end`` and the :data:`CELL`
        columns.
    replayed_s : array (draw, call)
        Replayed runtime of each call in each draw (s).

    Returns
    -------
    DataFrame
        One row per cell, in workload order: the :data:`CELL` columns, ``n_calls``, ``runtime_logged_s``,
        ``logged_ms_per_output_token``, ``time_share``, ``runtime_q05_s``, ``runtime_q50_s``,
        ``runtime_q95_s``, ``ratio``, ``inside_90``.

    Raises
    ------
    ValueError
        When the shapes disagree, a call has no positive logged runtime, or a replayed runtime is not finite.
    """
    rep = np.asarray(replayed_s, float)
    if rep.ndim != 2 or rep.shape[1] != len(requests):
        raise ValueError(f"replayed runtimes {rep.shape} do not match {len(requests)} calls (draw, call)")
    if not np.isfinite(rep).all():
        raise ValueError("replayed runtimes hold NaN or infinity")
    logged = (requests["end"] - requests["start"]).dt.total_seconds().to_numpy(float)
    bad = ~(logged > 0)
    if bad.any():
        k = np.flatnonzero(bad)[0]
        where = f" (log line {requests['log_line'].iloc[k]})" if "log_line" in requests else ""
        raise ValueError(
            f"call {requests.index[k]!r}{where}: logged runtime {logged[k]} s is not positive (or missing)"
        )
    key = requests[list(CELL)].astype(float).reset_index(drop=True)
    codes = key.groupby(list(CELL), sort=True, dropna=False).ngroup().to_numpy()
    out = key.drop_duplicates().sort_values(list(CELL)).reset_index(drop=True)
    n_cells = len(out)
    count = np.bincount(codes, minlength=n_cells)
    logged_sum = np.bincount(codes, weights=logged, minlength=n_cells)
    rep_mean = (
        np.stack([np.bincount(codes, weights=r, minlength=n_cells) for r in rep]) / count
    )  # (draw, cell)
    q05, q50, q95 = np.quantile(rep_mean, QUANTILES, axis=0)
    logged_mean = logged_sum / count
    out["n_calls"] = count
    out["runtime_logged_s"] = logged_mean
    out["logged_ms_per_output_token"] = 1e3 * logged_mean / out["output_tokens"].clip(lower=1.0)
    out["time_share"] = logged_sum / logged_sum.sum()
    out["runtime_q05_s"], out["runtime_q50_s"], out["runtime_q95_s"] = q05, q50, q95
    out["ratio"] = q50 / logged_mean
    out["inside_90"] = (logged_mean >= q05) & (logged_mean <= q95)
    return out


def run_row(cells: pd.DataFrame, replayed_s, logged_total_s: float) -> dict[str, float]:
    """Per-run summary of :func:`cell_table` (module docstring); ``logged_total_s`` = Σ logged runtime."""
    worst = cells.iloc[int(np.argmax(np.abs(np.log(cells["ratio"].to_numpy(float)))))]
    inside = cells["inside_90"].to_numpy(bool)
    return {
        "n_calls": int(cells["n_calls"].sum()),
        "n_cells": len(cells),
        "service_ratio": float(np.median(np.asarray(replayed_s, float).sum(axis=1)) / logged_total_s),
        "cells_inside_90": int(inside.sum()),
        "time_inside_90": float(cells["time_share"][inside].sum()),
        "worst_batch": float(worst["batch_size"]),
        "worst_prompt": float(worst["prompt_tokens"]),
        "worst_output": float(worst["output_tokens"]),
        "worst_ratio": float(worst["ratio"]),
        "worst_time_share": float(worst["time_share"]),
    }


# --- one run -----------------------------------------------------------------------------------------
def run_cells(
    model, run: xr.Dataset, requests: pd.DataFrame, *, n_draws: int, seed: int, skip_first: bool = True
):
    """Cell table and run row of one run (module docstring); ``skip_first``: leave the first call out."""
    from wattscape.generation.replay import config_params_for, replay_timeline

    req = requests[requests["start"].notna() & requests["end"].notna()].sort_values("start", kind="stable")
    if not len(req):
        raise ValueError(f"run {run.attrs.get('run_id')!r}: no logged call with a start and an end")
    params = config_params_for(model, run, n_draws, seed)
    tl = replay_timeline(params, run, req, seed=seed)  # calls in start order, as ``req``
    replayed = (tl["end"].values - tl["start"].values) / np.timedelta64(1, "s")
    if skip_first:  # the warm-up call (module docstring); replayed with the rest, scored without it
        req, replayed = req.iloc[1:], replayed[:, 1:]
    if not len(req):
        raise ValueError(f"run {run.attrs.get('run_id')!r}: no logged call after the first")
    cells = cell_table(req, replayed)
    a = run.attrs
    ident = {
        "run_id": str(a.get("run_id")),
        "llm": a.get("llm"),
        "gpu_model": a.get("gpu_model"),
        "n_gpus": int(a.get("n_gpus", 1)),
    }
    logged_total = float((req["end"] - req["start"]).dt.total_seconds().sum())
    return cells.assign(**ident), {**ident, **run_row(cells, replayed, logged_total)}


# --- report ------------------------------------------------------------------------------------------
def markdown(
    table: pd.DataFrame, cells: pd.DataFrame, *, posterior: str, notes: Sequence[str], timings: dict
) -> str:
    """Per-run table, the cells outside their interval, and a reading generated from the numbers."""
    body = [
        f"Replayed against logged runtime per workload cell (same batch, prompt and output limit), posterior "
        f"`{posterior}` (in-sample when it saw these runs; formulas in the module docstring of "
        "`experiments/runtime_cells.py`).  Ratio: replayed (median over draws) / logged.\n",
    ]
    if not len(table):
        return "\n".join([*body, "No run could be read.\n"])
    lines = [
        "| run_id | calls | cells | service ratio | cells in 90 % | logged time in 90 % | worst cell "
        "(batch, prompt, output) | its ratio | its time share |",
        "|---|" + "---:|" * 8,
    ]
    for _, r in table.iterrows():
        lines.append(
            f"| {r['run_id']} | {r['n_calls']} | {r['n_cells']} | {r['service_ratio']:.2f} | "
            f"{r['cells_inside_90']} | {r['time_inside_90']:.2f} | ({r['worst_batch']:.0f}, "
            f"{r['worst_prompt']:.0f}, {r['worst_output']:.0f}) | {r['worst_ratio']:.2f} | "
            f"{r['worst_time_share']:.2f} |"
        )
    out_cells = cells[~cells["inside_90"]].sort_values("time_share", ascending=False)
    miss = [
        "| run_id | batch | prompt | output | calls | logged s | replayed s [90 %] | ratio | time share |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for _, c in out_cells.iterrows():
        work = " | ".join(f"{c[k]:.0f}" for k in CELL)
        q = [f"{c[f'runtime_{k}_s']:.2f}" for k in ("q50", "q05", "q95")]
        miss.append(
            f"| {c['run_id']} | {work} | {c['n_calls']} | {c['runtime_logged_s']:.2f} | "
            f"{q[0]} [{q[1]}, {q[2]}] | {c['ratio']:.2f} | {c['time_share']:.2f} |"
        )
    sr = table["service_ratio"].to_numpy(float)
    short = out_cells[out_cells["ratio"] < 1]
    reading = (
        f"{int(cells['inside_90'].sum())} of {len(cells)} cells hold their logged mean runtime inside the "
        "replay's 90 % interval (median share of a run's logged time inside: "
        f"{table['time_inside_90'].median():.2f}); the service ratio lies in "
        f"[{sr.min():.2f}, {sr.max():.2f}] (median {np.median(sr):.2f}).  Of the {len(out_cells)} cells "
        f"outside, {len(short)} are replayed too short: in open loop each of those turns runtime into idle "
        "time."
    )
    if len(short):
        w = short.iloc[0]
        reading += (
            f"  The one with the most logged time: {w['run_id']}, batch {w['batch_size']:.0f}, prompt "
            f"{w['prompt_tokens']:.0f}, output {w['output_tokens']:.0f} ({w['time_share']:.0%} of its run's "
            f"logged time), replayed at {w['ratio']:.2f}× its logged runtime."
        )
    body += [
        "## Per run\n",
        "\n".join(lines) + "\n",
        "## Cells outside their 90 % interval (largest share of their run's logged time first)\n",
        ("\n".join(miss) if len(out_cells) else "None.") + "\n",
        "## Reading\n",
        reading + "\n",
    ]
    return "\n".join(body + C.report_footer(notes, timings))


# --- command line ------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = C.in_sample_parser("experiments.runtime_cells", __doc__, NAME)
    p.add_argument("--keep-first", action="store_true", help="score each run's first (warm-up) call too")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = C.command_line("experiments.runtime_cells", argv)
    out = C.results_dir(args.out)
    posterior, scored, notes, log = C.score_in_sample(
        C.energy_inference_catalog(args.catalog),
        args.runs,
        lambda model, run, req: run_cells(
            model, run, req, n_draws=args.draws, seed=args.seed, skip_first=not args.keep_first
        ),
        posterior=args.posterior,
        results=out,
        desc="runtime cells",
    )
    table = pd.DataFrame([r for _, r in scored], columns=list(COLUMNS))
    cell_rows = pd.concat([c for c, _ in scored], ignore_index=True) if scored else pd.DataFrame()
    md = markdown(table, cell_rows, posterior=str(posterior), notes=notes, timings=log)
    if scored:
        C.write_result(
            f"{args.name}_cells",
            cell_rows,
            f"One row per workload cell; the summary is `{args.name}.md`.",
            command=command,
            out_dir=out,
        )
    C.publish(args.name, table, md, command=command, out_dir=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
