"""All planning analyses of one site trace, and one self-contained HTML report of them.

:func:`run_planning` computes everything and returns the tables; :func:`write_planning` also writes
each table as CSV, the exports (profile CSVs, Vessim CSV, OpenDSS loadshape) and ``report.html``
(figures embedded as base64 PNG, no external files needed to view it).
"""

from __future__ import annotations

import base64
import html
import io
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from wattscape.models import dims as D

from wattscape.io import atomic_path

from . import exports
from .common import check_site_trace, level_var, nameplate, period_s, time_index
from .load_profile import load_characterisation
from .modulation import modulation_table
from .oversubscription import DEFAULT_EPSILONS, DEFAULT_UNIT, oversubscription_curve


def default_budget_w(ds: xr.Dataset, level: str) -> float:
    """Default budget: the nameplate of the median ``level`` element (so TDP sizing fills it exactly)."""
    npl = nameplate(ds, level)
    if npl is None:
        raise ValueError(f"no {level}_nameplate in the trace: pass a budget (--budget-kw)")
    return float(np.median(np.atleast_1d(npl.values)))


def default_level(ds: xr.Dataset) -> str:
    """Row when the trace holds units below rows (racks or servers), else facility."""
    if any(level_var(u) in ds for u in DEFAULT_UNIT[D.ROW]) and nameplate(ds, D.ROW) is not None:
        return D.ROW
    return D.FACILITY


def run_planning(
    ds: xr.Dataset,
    *,
    budget_w: float | None = None,
    level: str | None = None,
    unit: str | None = None,
    epsilons: tuple[float, ...] = DEFAULT_EPSILONS,
    headline_epsilon: float = 0.01,
    gpu_caps_w: tuple[float, ...] | None = None,
    facility_caps_w: tuple[float, ...] | None = None,
    perf_exponent: float = 1.0,
    n_samples: int = 200,
    window_s: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, object]:
    """Run the three analyses (budget level default: :func:`default_level`; budget default:
    :func:`default_budget_w`); return ``load`` (dict), ``oversubscription`` and ``modulation``
    (DataFrames), ``headline`` (DataFrame: metric, value, unit, note) and ``timings_s``."""
    check_site_trace(ds)
    if headline_epsilon not in epsilons:
        epsilons = tuple(sorted({*epsilons, headline_epsilon}))
    timings = {}
    t0 = time.perf_counter()
    load = load_characterisation(ds)
    timings["load"] = time.perf_counter() - t0
    if level is None:
        level = default_level(ds)
    if budget_w is None:
        budget_w = default_budget_w(ds, level)
    t0 = time.perf_counter()
    over = oversubscription_curve(
        ds,
        budget_w,
        level=level,
        unit=unit,
        epsilons=epsilons,
        n_samples=n_samples,
        window_s=window_s,
        seed=seed,
        progress=progress,
    )
    timings["oversubscription"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    mod = modulation_table(
        ds,
        gpu_caps_w=gpu_caps_w,
        facility_caps_w=facility_caps_w,
        perf_exponent=perf_exponent,
        progress=progress,
    )
    timings["modulation"] = time.perf_counter() - t0
    return {
        "load": load,
        "oversubscription": over,
        "modulation": mod,
        "headline": headline(load["summary"], over, headline_epsilon),
        "timings_s": timings,
    }


def headline(summary: pd.DataFrame, over: pd.DataFrame, epsilon: float = 0.01) -> pd.DataFrame:
    """The report's headline figures as a table (metric, value, unit, note)."""
    s = summary.set_index("metric")
    r = over.loc[np.isclose(over["epsilon"], epsilon)].iloc[0]
    unit = over.attrs["unit"]
    count = "n_servers" if "n_servers" in over else "n_units"
    count_tdp = "n_servers_tdp" if "n_servers_tdp" in over else "n_tdp"
    what = "servers" if count == "n_servers" or unit == D.SERVER else f"{unit}s"
    budget = f"{over.attrs['level']} budget {over.attrs['budget_w'] / 1e3:,.1f} kW"

    def ci(m: str, fmt: str) -> str:
        lo, hi = format(s.loc[m, "lo"], fmt), format(s.loc[m, "hi"], fmt)
        return f"{format(s.loc[m, 'median'], fmt)} [{lo}, {hi}]"

    rows = [
        (f"{what} at ε = {epsilon:g} (ours)", f"{int(r[count])}", what, budget),
        (f"{what} by TDP sizing", f"{int(r[count_tdp])}", what, f"gain {r['gain_vs_tdp_pct']:+.1f} %"),
        (
            "peak demand (15 min)",
            ci("peak demand", ".3f"),
            "MW",
            f"median [90 % interval]; at ≈ {summary.attrs.get('peak_interval_start', '?')} UTC",
        ),
        ("load factor (15 min)", ci("load factor", ".3f"), "1", "median [90 % interval]"),
        ("ramp p99 (1-min means)", ci("ramp p99 (1-min)", ".4f"), "MW/min", "per-draw p99 of |ΔP|"),
    ]
    if "TDP overstatement of peak" in s.index:
        rows.append(
            (
                "TDP overstatement of peak",
                ci("TDP overstatement of peak", ".1f"),
                "%",
                f"nameplate {s.loc['facility nameplate (TDP)', 'median']:.3f} MW",
            )
        )
    return pd.DataFrame(rows, columns=["metric", "value", "unit", "note"])


# --- figures ----------------------------------------------------------------------------------------
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fig_profile(ds: xr.Dataset, load: dict) -> str:
    """Left: 15-min profile zoomed on the load; right: hourly profile from zero with the TDP nameplate."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    npl = nameplate(ds, D.FACILITY)
    panels = ((axes[0], "profile_15min", "15-min", False), (axes[1], "profile_1h", "hourly", True))
    for ax, key, title, full in panels:
        p = load[key]
        t = time_index(p)
        b = p["band"] / 1e6
        lo, hi = b.sel(quantile=0.05), b.sel(quantile=0.95)
        ax.fill_between(t, lo, hi, step="post", alpha=0.25, color="C0", label="90 % band")
        q25, q75 = b.sel(quantile=0.25), b.sel(quantile=0.75)
        ax.fill_between(t, q25, q75, step="post", alpha=0.45, color="C0", label="50 % band")
        ax.step(t, b.sel(quantile=0.5), where="post", color="C0", lw=1.2, label="median")
        if full:
            if npl is not None:
                ax.axhline(float(npl) / 1e6, color="C3", ls="--", lw=1, label="TDP nameplate")
            ax.set_ylim(bottom=0)
        ax.set_title(f"Facility power, {title} means (incl. PUE)" + ("" if full else ", zoomed"))
        ax.set_xlabel("time (UTC)")
        ax.set_ylabel("MW")
        ax.tick_params(axis="x", rotation=30)
        ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def _fig_ldc_ramps(ds: xr.Dataset, load: dict) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    ldc = load["ldc"] / 1e6
    f = ldc["fraction"] * 100
    axes[0].fill_between(f, ldc.sel(quantile=0.05), ldc.sel(quantile=0.95), alpha=0.3, label="90 % band")
    axes[0].plot(f, ldc.sel(quantile=0.5), label="median")
    npl = nameplate(ds, D.FACILITY)
    if npl is not None:
        axes[0].axhline(float(npl) / 1e6, color="C3", ls="--", lw=1, label="TDP nameplate")
    axes[0].set_xlabel("% of time load ≥ value")
    axes[0].set_ylabel("MW")
    axes[0].set_title("Load-duration curve (15-min means)")
    axes[0].set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    from .load_profile import ramp_rates

    r = ramp_rates(ds).values.ravel()
    r = r[r > 0]
    if r.size:
        bins = np.logspace(np.log10(max(r.min(), 1e-6)), np.log10(r.max()), 50)
        axes[1].hist(r, bins=bins, color="C2", alpha=0.8)
        axes[1].set_xscale("log")
        for q, ls in ((0.5, ":"), (0.99, "--")):
            axes[1].axvline(np.quantile(r, q), color="k", ls=ls, lw=1, label=f"p{q * 100:g}")
        axes[1].legend(fontsize=8)
    axes[1].set_xlabel("|ramp| of 1-min means, MW/min")
    axes[1].set_ylabel("count (draws × minutes)")
    axes[1].set_title("Ramp-rate distribution")
    return _png(fig)


def _fig_oversub(over: pd.DataFrame) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    per = "n_servers" in over
    y = over["n_servers"] if per else over["n_units"]
    what = "servers" if per or over.attrs["unit"] == D.SERVER else over.attrs["unit"] + "s"
    ax.step(over["epsilon"] * 100, y, where="post", marker="o", label="ours (risk ≤ ε)")
    tdp = over["n_servers_tdp"].iloc[0] if per else over["n_tdp"].iloc[0]
    ax.axhline(tdp, color="C3", ls="--", label="TDP sizing")
    mean = over["n_mean"].iloc[0] * (
        over["n_servers"].iloc[0] / max(over["n_units"].iloc[0], 1) if per else 1
    )
    ax.axhline(mean, color="C7", ls=":", label="mean-power sizing")
    ax.set_xscale("log")
    ax.set_xlabel("ε = allowed P(exceed budget at least once), %")
    ax.set_ylabel(what)
    ax.set_title(
        f"{what.capitalize()} under a {over.attrs['budget_w'] / 1e3:,.0f} kW {over.attrs['level']} budget"
    )
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def _fig_modulation(mod: pd.DataFrame) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
    for kind, color in (("gpu", "C0"), ("facility", "C1")):
        m = mod[mod["cap_kind"].isin([kind, "none"])].sort_values("cap_frac", ascending=False)
        if len(m) < 2:
            continue
        x = m["cap_frac"] * 100
        label = "per-GPU cap (% of TDP)" if kind == "gpu" else "facility cap (% of peak)"
        axes[0].plot(x, m["peak_change_pct"], marker="o", color=color, label=label)
        axes[1].plot(x, m["throughput_loss_pct"], marker="o", color=color, label=label)
    axes[0].set_ylabel("facility peak change, %")
    axes[1].set_ylabel("work not served within horizon, %")
    for ax in axes:
        ax.set_xlabel("cap level, %")
        ax.invert_xaxis()
        ax.legend(fontsize=8)
    axes[0].set_title("Peak after capping")
    axes[1].set_title("Throughput cost (deferred-work proxy)")
    return _png(fig)


# --- HTML -------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;
color:#222}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:1.8em}
.meta{color:#666;font-size:.9em}table{border-collapse:collapse;font-size:.85em;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}.headline td{font-size:1.05em}
img{max-width:100%;display:block;margin:8px 0}.note{font-size:.85em;color:#444;max-width:1000px}
"""


def _table(df: pd.DataFrame, fmt: dict[str, str] | None = None, cls: str = "") -> str:
    fmt = fmt or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, row in df.iterrows():
        cells = []
        for c in df.columns:
            v = row[c]
            if isinstance(v, (float, np.floating)):
                s = "" if np.isnan(v) else format(v, fmt.get(c, ".4g"))
            else:
                s = str(v)
            cells.append(f"<td>{html.escape(s)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{cls}"><tr>{head}</tr>' + "".join(body) + "</table>"


def _modulation_view(mod: pd.DataFrame) -> pd.DataFrame:
    """The modulation table, narrowed for reading (the CSV keeps every column)."""
    rows = []
    for _, r in mod.iterrows():
        if r["cap_kind"] == "gpu":
            cap = f"{r['cap']:.0f} W/GPU ({100 * r['cap_frac']:.0f} % TDP)"
        elif r["cap_kind"] == "facility":
            cap = f"{r['cap']:,.0f} kW facility ({100 * r['cap_frac']:.0f} % of peak)"
        else:
            cap = "no cap"
        rows.append(
            {
                "cap": cap,
                "peak kW [90 %]": f"{r['peak_kw']:,.1f} [{r['peak_kw_lo']:,.1f}, {r['peak_kw_hi']:,.1f}]",
                "Δ peak %": f"{r['peak_change_pct']:+.1f}",
                "energy MWh": f"{r['energy_mwh']:.4g}",
                "Δ energy %": f"{r['energy_change_pct']:+.2f}",
                "work not served % (p95)": f"{r['throughput_loss_pct']:.2f} "
                f"({r['throughput_loss_pct_hi']:.2f})",
                "mean delay s": f"{r['mean_delay_s']:.1f}",
                "time deferring %": f"{r['time_deferring_pct']:.1f}",
            }
        )
    return pd.DataFrame(rows)


def _cap_note(mod: pd.DataFrame) -> str:
    level = mod.attrs.get("gpu_cap_resolution", "")
    if not (mod["cap_kind"] == "gpu").any():
        return (
            " Per-GPU caps were not evaluated: the trace does not say the GPU TDP (a mixed fleet, or attrs "
            "missing); pass caps explicitly (--caps) if the fleet is homogeneous."
        )
    if level == D.GPU:
        return " Per-GPU caps are applied to each GPU's own series."
    if level == D.SERVER:
        return " Per-GPU caps are applied to each server's total as n_gpus × cap + non-GPU power."
    return (
        f" <b>Per-GPU caps are applied at {level} resolution</b> (n_gpus × cap + non-GPU power on each "
        f"{level}'s total): optimistic, since one GPU's slack absorbs another's excess; generate "
        "server-level output, or simulate the cap in the generator (fleet power_cap_w), for a faithful "
        "figure."
    )


def render_html(ds: xr.Dataset, results: dict, *, source: str = "", command: str = "") -> str:
    """The report as one HTML string with embedded figures."""
    from wattscape import __version__

    load, over, mod = results["load"], results["oversubscription"], results["modulation"]
    t = time_index(ds)
    hours = (t[-1] - t[0]).total_seconds() / 3600 + period_s(ds) / 3600
    meta = (
        f"trace <b>{html.escape(source or str(ds.attrs.get('scenario', '')))}</b> · scenario "
        f"{html.escape(str(ds.attrs.get('scenario', ds.attrs.get('scenario_name', '?'))))} · model "
        f"{html.escape(str(ds.attrs.get('model_id', ds.attrs.get('model_ids', '?'))))} · "
        f"{ds.sizes[D.DRAW]} draws · "
        f"{hours:.1f} h from {t[0]} UTC at {period_s(ds):g} s · wattscape {__version__}"
    )
    if "note" in ds.attrs:
        meta += f"<br>note: {html.escape(str(ds.attrs['note']))}"
    over_view = over.drop(columns=["hit_max_n"], errors="ignore")
    summary = load["summary"]
    ramps = load["ramps"].to_frame("MW/min").reset_index(names="pooled quantile")
    tim = ", ".join(f"{k} {v:.1f} s" for k, v in results.get("timings_s", {}).items())
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>wattscape planning report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>wattscape planning report</h1>",
        f"<p class='meta'>{meta}</p>",
        f"<p class='meta'>command: <code>{html.escape(command)}</code></p>" if command else "",
        "<h2>Headline figures</h2>",
        _table(results["headline"], cls="headline"),
        "<h2>1. Utility load characterisation</h2>",
        f"<img alt='profiles' src='data:image/png;base64,{_fig_profile(ds, load)}'>",
        f"<img alt='ldc and ramps' src='data:image/png;base64,{_fig_ldc_ramps(ds, load)}'>",
        _table(summary, {"median": ".4g", "lo": ".4g", "hi": ".4g"}),
        "<p class='note'>Median and central 90 % interval over posterior draws. Load factor = mean / peak of "
        "15-min means; TDP overstatement = 100 × (facility nameplate / peak − 1). Pooled ramp quantiles:</p>",
        _table(ramps),
        "<h2>2. Oversubscription</h2>",
        f"<img alt='oversubscription' src='data:image/png;base64,{_fig_oversub(over)}'>",
        _table(
            over_view,
            {
                "epsilon": "g",
                "gain_vs_tdp_pct": ".1f",
                "p_exceed_at_n": ".3f",
                "p_exceed_at_tdp": ".3f",
                "p_exceed_at_mean": ".3f",
            },
        ),
        f"<p class='note'>Budget {over.attrs['budget_w'] / 1e3:,.1f} kW at {over.attrs['level']} level, "
        "counting "
        f"{over.attrs['unit']}s (site has {over.attrs['n_site_units']}); risk over {over.attrs['n_samples']} "
        f"samples of (posterior draw, random {over.attrs['unit']} order); protection window "
        f"{over.attrs['window_s']:g} s. Unit nameplate {over.attrs['unit_nameplate_w'] / 1e3:.2f} kW, mean "
        f"{over.attrs['unit_mean_w'] / 1e3:.2f} kW. Counts beyond the site size tile its units "
        "(conservative).</p>",
        "<h2>3. Power modulation</h2>",
        f"<img alt='modulation' src='data:image/png;base64,{_fig_modulation(mod)}'>",
        _table(_modulation_view(mod)),
        "<p class='note'>Throughput proxy (deferred work): power above the idle floor stands for work "
        "(exponent α = " + f"{mod.attrs['perf_exponent']:g}" + "); work above the cap waits in a backlog "
        "served when demand falls below the cap (time stretch at reduced power). throughput_loss = work "
        "still waiting at the end of the horizon; mean_delay = ∫backlog dt / work (Little's law). "
        + _cap_note(mod)
        + "</p>",
        "<h2>Exports</h2><p class='note'>profile_15min_kw.csv, profile_1h_kw.csv (kW, mean + q05…q95), "
        "vessim_15min_w.csv (W, consumption negative), datacenter.dss + datacenter_mult.csv (OpenDSS "
        "loadshape), and each table above as CSV beside this report.</p>",
        f"<p class='meta'>computed in {tim}</p>" if tim else "",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_planning(
    ds: xr.Dataset,
    out_dir: str | os.PathLike,
    *,
    source: str = "",
    command: str = "",
    **kwargs,
) -> dict[str, object]:
    """Run :func:`run_planning` (same keyword arguments) and write tables, exports and ``report.html``.

    Returns the results of :func:`run_planning` plus ``paths`` (name → written file).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = run_planning(ds, **kwargs)
    paths: dict[str, Path] = {}

    def csv(name: str, df: pd.DataFrame, index: bool = False) -> None:
        paths[name] = out_dir / f"{name}.csv"
        with atomic_path(paths[name]) as tmp:
            df.to_csv(tmp, index=index)

    csv("headline", results["headline"])
    csv("load_summary", results["load"]["summary"])
    csv("ramp_quantiles", results["load"]["ramps"].to_frame("MW_per_min"), index=True)
    ldc = results["load"]["ldc"]
    csv(
        "load_duration_curve",
        ldc.to_pandas().T.rename(columns=lambda q: f"q{round(100 * q):02d}_w").reset_index(),
    )
    over = results["oversubscription"].copy()
    over.attrs = {}
    csv(
        "oversubscription",
        over.assign(
            budget_w=results["oversubscription"].attrs["budget_w"],
            level=results["oversubscription"].attrs["level"],
            unit=results["oversubscription"].attrs["unit"],
        ),
    )
    csv("modulation", results["modulation"])
    paths.update(exports.export_all(ds, out_dir))
    paths["report"] = out_dir / "report.html"
    with atomic_path(paths["report"]) as tmp:
        tmp.write_text(render_html(ds, results, source=source, command=command), encoding="utf-8")
    results["paths"] = paths
    return results


__all__ = ["default_budget_w", "default_level", "headline", "render_html", "run_planning", "write_planning"]
