"""The shape of a busy call's power level against its workload: the model's curve versus a prefill/decode mix.

For every energy-inference run with a log, each logged call's measured level (mean per-GPU power over its
``[start, end)``, gaps interpolated) is set against two curves of the same posterior (in-sample: the full
fit saw these runs):

- **model**: the level the posterior gives a busy segment of the call's workload, on the model's link
  (``config_params``: ``level_max_w · sigmoid(level_logit_loc + level_logit_slope · (x − covariate_ref))``,
  weighted over mixture components, median over draws), i.e. logit-linear in log2 batch, context and output;
- **prefill share**: the two-level line ``level = P_dec + (P_pre − P_dec) · s`` fitted to the run by least
  squares, where ``s`` is the call's prefill time share as the posterior's own latency model replays it
  (:func:`wattscape.generation.replay.replay_timeline`: ``(prefill_end − start) / (end − start)``, median
  over draws; the runtime noise scales prefill and decode alike, so ``s`` does not depend on it).  A call's
  mean power is exactly the time-weighted mean of its prefill and decode power, so if each phase drew a
  constant power this line would be exact; ``P_pre`` and ``P_dec`` are then the two phase levels.

Per run: R² and RMSE (W per GPU) of both, ``P_dec`` and ``P_pre`` in W per GPU and as fractions of the
card's TDP, the range of ``s``.  The model curve has two parameters per configuration fitted with partial
pooling, the share line two per run fitted to that run alone, so the comparison is of shape, not of
transfer.  The replay already emits separate prefill and decode levels when a posterior has them
(``wattscape.generation.replay``, ``phases``); the energy-inference traces (100 ms samples, calls of 0.3–300
s) are labelled idle/active only.

Writes ``results/<name>.csv`` (one row per run), ``results/<name>_calls.csv`` (one row per call) and
``results/<name>.md``.

Usage::

    python -m experiments.level_shape                              # results/posterior_full.nc, else shipped
    python -m experiments.level_shape --posterior post.nc --runs RUN_ID ...
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from wattscape.models import dims as D

from experiments import _common as C
from experiments.error_split import measured_total

NAME = "level_shape"
#: Columns of ``<name>.csv``, in order.
COLUMNS = (
    "run_id", "llm", "gpu_model", "n_gpus", "tdp_w", "n_calls", "share_min", "share_max",
    "model_r2", "model_rmse_w", "share_r2", "share_rmse_w", "p_dec_w", "p_pre_w", "p_dec_frac", "p_pre_frac",
)


# --- pure computation --------------------------------------------------------------------------------
def fit_quality(predicted, measured) -> tuple[float, float]:
    """``(R², RMSE)`` of ``predicted`` against ``measured`` (R² = 1 − SSE / SST about the measured mean)."""
    y, f = np.asarray(measured, float), np.asarray(predicted, float)
    if y.shape != f.shape or y.size < 2:
        raise ValueError(f"need two or more paired values, got {f.shape} and {y.shape}")
    sse = float(((y - f) ** 2).sum())
    sst = float(((y - y.mean()) ** 2).sum())
    return (1.0 - sse / sst if sst > 0 else float("nan")), float(np.sqrt(sse / y.size))


def two_level_fit(share, level) -> dict[str, float]:
    """Least-squares line ``level = p_dec + (p_pre − p_dec) · share``.

    Parameters
    ----------
    share : array (call,)
        Prefill time share of each call, in [0, 1].
    level : array (call,)
        Measured level of each call (W).

    Returns
    -------
    dict
        ``p_dec`` (the level at share 0), ``p_pre`` (at share 1), ``r2``, ``rmse``.

    Raises
    ------
    ValueError
        Fewer than three calls, a share outside [0, 1] or non-finite values, or shares that do not vary.
    """
    s, y = np.asarray(share, float), np.asarray(level, float)
    if s.shape != y.shape or s.ndim != 1 or s.size < 3:
        raise ValueError(f"need three or more (share, level) pairs, got {s.shape} and {y.shape}")
    if not (np.isfinite(s).all() and np.isfinite(y).all()):
        raise ValueError("shares and levels must be finite")
    if s.min() < 0 or s.max() > 1:
        raise ValueError(f"prefill shares must lie in [0, 1], got {s.min():.3g}..{s.max():.3g}")
    if np.ptp(s) <= 1e-9:
        raise ValueError("the prefill shares do not vary: the two levels are not identified")
    slope, p_dec = np.polyfit(s, y, 1)
    r2, rmse = fit_quality(p_dec + slope * s, y)
    return {"p_dec": float(p_dec), "p_pre": float(p_dec + slope), "r2": r2, "rmse": rmse}


def call_levels(run: xr.Dataset, requests: pd.DataFrame) -> np.ndarray:
    """Measured mean per-GPU power (W) over each call's ``[start, end)`` (NaN for a call with no sample).

    ``requests`` in the order wanted; calls without a start or an end give NaN.
    """
    n_gpus = int(run.attrs.get("n_gpus") or run[D.POWER].sizes.get(D.GPU, 1))
    power = measured_total(run) / n_gpus
    t = np.asarray(run[D.TIME].values).astype("datetime64[ns]")
    starts = requests["start"].to_numpy(dtype="datetime64[ns]")
    ends = requests["end"].to_numpy(dtype="datetime64[ns]")
    out = np.full(len(requests), np.nan)
    lo, hi = np.searchsorted(t, starts, side="left"), np.searchsorted(t, ends, side="left")
    for k, (a, b) in enumerate(zip(lo, hi, strict=True)):
        if not (np.isnat(starts[k]) or np.isnat(ends[k])) and b > a:
            out[k] = float(power[a:b].mean())
    return out


def model_levels(params: xr.Dataset, requests: pd.DataFrame, state: str = D.ACTIVE) -> np.ndarray:
    """The posterior's busy level (W per GPU, median over draws) for each call's workload.

    On the logit link when ``params`` carries it (``level_logit_*``, ``level_max_w``), else on the tangent
    (``level_loc``, ``level_slope``); mixture components weighted by ``level_weight``.
    """
    b, p, o = (requests[k].to_numpy(float) for k in ("batch_size", "prompt_tokens", "output_tokens"))
    x = np.log2(np.maximum(np.stack([b, D.context_tokens(p, o), o], -1), 1.0))  # (call, covariate)
    dx = x - np.asarray(params.attrs["covariate_ref"], float)
    w = params["level_weight"].sel({D.STATE: state}).transpose(D.DRAW, D.COMPONENT).values
    if "level_logit_loc" in params:
        loc = params["level_logit_loc"].sel({D.STATE: state}).transpose(D.DRAW, D.COMPONENT).values
        slope = params["level_logit_slope"].sel({D.STATE: state}).transpose(D.DRAW, D.COVARIATE).values
        z = loc[:, None, :] + (slope @ dx.T)[:, :, None]  # (draw, call, component)
        level = params["level_max_w"].values[:, None, None] / (1.0 + np.exp(-z))
    else:
        loc = params["level_loc"].sel({D.STATE: state}).transpose(D.DRAW, D.COMPONENT).values
        slope = params["level_slope"].sel({D.STATE: state}).transpose(D.DRAW, D.COVARIATE).values
        level = loc[:, None, :] + (slope @ dx.T)[:, :, None]
    return np.median((level * w[:, None, :]).sum(-1), axis=0)


def prefill_shares(params: xr.Dataset, run: xr.Dataset, requests: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """Each call's prefill time share in the replay of ``params`` (median over draws), in start order."""
    from wattscape.generation.replay import replay_timeline

    tl = replay_timeline(params, run, requests, seed=seed)
    sec = np.timedelta64(1, "s")
    pre = (tl["prefill_end"].values - tl["start"].values) / sec
    dur = (tl["end"].values - tl["start"].values) / sec
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.median(np.where(dur > 0, pre / dur, np.nan), axis=0)


# --- one run -----------------------------------------------------------------------------------------
def run_shape(model, run: xr.Dataset, requests: pd.DataFrame, *, n_draws: int, seed: int):
    """Per-call table and per-run row of one run (module docstring)."""
    from wattscape.generation.replay import config_params_for
    from wattscape.models.hardware import gpu_spec

    req = requests[requests["start"].notna() & requests["end"].notna()].sort_values("start")
    if len(req) < 3:
        raise ValueError(f"run {run.attrs.get('run_id')!r}: fewer than three logged calls with start and end")
    params = config_params_for(model, run, n_draws, seed)
    a = run.attrs
    calls = pd.DataFrame({
        "run_id": str(a.get("run_id")),
        "gpu_model": str(a["gpu_model"]),
        "n_gpus": int(a.get("n_gpus", 1)),
        "request_id": req["request_id"].to_numpy() if "request_id" in req else np.arange(len(req)),
        "batch": req["batch_size"].to_numpy(float),
        "prompt_tokens": req["prompt_tokens"].to_numpy(float),
        "output_tokens": req["output_tokens"].to_numpy(float),
        "runtime_s": (req["end"] - req["start"]).dt.total_seconds().to_numpy(float),
        "share": prefill_shares(params, run, req, seed),
        "measured_w": call_levels(run, req),
        "model_w": model_levels(params, req),
    })
    ok = np.isfinite(calls[["share", "measured_w", "model_w"]].to_numpy()).all(axis=1)
    fit = two_level_fit(calls["share"][ok], calls["measured_w"][ok])
    calls["share_fit_w"] = fit["p_dec"] + (fit["p_pre"] - fit["p_dec"]) * calls["share"]
    model_r2, model_rmse = fit_quality(calls["model_w"][ok], calls["measured_w"][ok])
    tdp = float(gpu_spec(str(a["gpu_model"]))["tdp_w"])
    row = {
        "run_id": str(a.get("run_id")), "llm": a.get("llm"), "gpu_model": a.get("gpu_model"),
        "n_gpus": int(a.get("n_gpus", 1)), "tdp_w": tdp, "n_calls": int(ok.sum()),
        "share_min": float(calls["share"][ok].min()), "share_max": float(calls["share"][ok].max()),
        "model_r2": model_r2, "model_rmse_w": model_rmse, "share_r2": fit["r2"], "share_rmse_w": fit["rmse"],
        "p_dec_w": fit["p_dec"], "p_pre_w": fit["p_pre"], "p_dec_frac": fit["p_dec"] / tdp,
        "p_pre_frac": fit["p_pre"] / tdp,
    }
    return calls, row


# --- report ------------------------------------------------------------------------------------------
#: A run whose replayed prefill shares span less than this leaves the line's prefill level (its value at
#: s = 1) to an extrapolation the data do not constrain.
NARROW_SHARE_SPAN = 0.2


def narrow_share_reading(table: pd.DataFrame) -> str:
    """How many runs' prefill levels are extrapolations from a narrow range of prefill shares."""
    span = table["share_max"] - table["share_min"]
    narrow = span < NARROW_SHARE_SPAN
    if not narrow.any():
        return ""
    negative = int((table.loc[narrow, "p_pre_w"] < 0).sum())
    return (
        f"In {int(narrow.sum())} of {len(table)} runs the replayed prefill shares span less than "
        f"{NARROW_SHARE_SPAN:g} (median span {span[narrow].median():.2f}): their P_pre is the line carried "
        f"from those shares to s = 1, which the calls do not constrain ({negative} of them put it below "
        "zero), so it is no measurement of prefill power; the model's curve needs no such extrapolation."
    )


def markdown(table: pd.DataFrame, *, posterior: str, notes: Sequence[str], timings: dict) -> str:
    """Per-run table, medians and a reading generated from the numbers."""
    body = [
        f"Busy level of each logged call against its workload, posterior `{posterior}` (in-sample when it "
        "saw these runs): the model's logit-linear curve versus the two-level line P_dec + (P_pre − P_dec)·s "
        "in the call's prefill time share s (formulas in the module docstring of "
        "`experiments/level_shape.py`).  W per GPU; fractions of the card's TDP.\n",
    ]
    if not len(table):
        return "\n".join([*body, "No run could be read.\n"])
    cols = (("n_calls", "calls", 0), ("share_min", "s min", 2), ("share_max", "s max", 2),
            ("model_r2", "model R²", 2), ("model_rmse_w", "model RMSE W", 1), ("share_r2", "share R²", 2),
            ("share_rmse_w", "share RMSE W", 1), ("p_dec_w", "P_dec W", 0), ("p_pre_w", "P_pre W", 0),
            ("p_dec_frac", "P_dec/TDP", 2), ("p_pre_frac", "P_pre/TDP", 2))
    lines = ["| run_id | " + " | ".join(h for _, h, _ in cols) + " |", "|---|" + "---:|" * len(cols)]
    for _, r in table.iterrows():
        lines.append(f"| {r['run_id']} | " + " | ".join(f"{float(r[c]):.{d}f}" for c, _, d in cols) + " |")
    med = table[[c for c, _, _ in cols]].median()
    lines.append("| **median** | " + " | ".join(f"{float(med[c]):.{d}f}" for c, _, d in cols) + " |")
    better = int((table["share_r2"] > table["model_r2"]).sum())
    per_card = table.groupby(["gpu_model", "n_gpus"])["p_pre_frac"].median()
    body += [
        "## Per run\n", "\n".join(lines) + "\n", "## Reading\n",
        f"The two-level line in the prefill share fits better than the model's curve in {better} of "
        f"{len(table)} runs (median R² {table['share_r2'].median():.2f} vs {table['model_r2'].median():.2f}; "
        f"median RMSE {table['share_rmse_w'].median():.1f} vs {table['model_rmse_w'].median():.1f} W per "
        "GPU).  "
        "Its prefill level as a fraction of TDP, median per card and GPU count: "
        + ", ".join(f"{card} ×{n} {v:.2f}" for (card, n), v in per_card.items())
        + " (above 1: the call's power rises faster with the prompt than the replayed prefill time does, "
        "or a card at its power cap flattens the line; under a layer split each GPU computes a share of "
        "the time).  "
        + narrow_share_reading(table)
        + "\n",
    ]
    return "\n".join(body + C.report_footer(notes, timings))


# --- command line ------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return C.in_sample_parser("experiments.level_shape", __doc__, NAME).parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = C.command_line("experiments.level_shape", argv)
    out = C.results_dir(args.out)
    posterior, scored, notes, log = C.score_in_sample(
        C.energy_inference_catalog(args.catalog),
        args.runs,
        lambda model, run, req: run_shape(model, run, req, n_draws=args.draws, seed=args.seed),
        posterior=args.posterior,
        results=out,
        desc="level shape",
    )
    table = pd.DataFrame([r for _, r in scored], columns=list(COLUMNS))
    md = markdown(table, posterior=str(posterior), notes=notes, timings=log)
    if scored:
        C.write_result(f"{args.name}_calls", pd.concat([c for c, _ in scored], ignore_index=True),
                       f"One row per logged call; the summary is `{args.name}.md`.", command=command,
                       out_dir=out)
    C.publish(args.name, table, md, command=command, out_dir=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
