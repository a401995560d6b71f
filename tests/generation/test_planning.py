"""Planning analyses: oversubscription, modulation, load characterisation, exports, report, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from wattscape.generation.planning import (
    SiteTraceError,
    load_duration_curve,
    modulation_table,
    oversubscription,
    oversubscription_curve,
    peak_curves,
    profile,
    summary_figures,
)
from wattscape.generation.planning import exports as E
from wattscape.generation.planning.modulation import defer_scan
from wattscape.models import dims as D

from wattscape.cli import main

from ._site_fixture import small_site

EPS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.4)


@pytest.fixture(scope="module")
def site() -> xr.Dataset:
    return small_site()


def _mean_energy_j(ds: xr.Dataset) -> float:
    return float(ds[D.FACILITY_POWER].astype(np.float64).mean(D.DRAW).sum()) * ds.attrs["period_s"]


# --- oversubscription --------------------------------------------------------------------------------
@pytest.mark.parametrize(("level", "budget_kw"), [("rack", 25.0), ("row", 90.0), ("facility", 150.0)])
def test_oversubscription_monotone_in_epsilon(site, level, budget_kw):
    df = oversubscription_curve(site, budget_kw * 1e3, level=level, epsilons=EPS, n_samples=60)
    n = df["n_units"].to_numpy()
    assert np.all(np.diff(n) >= 0), df
    p = df["p_exceed_at_n"].to_numpy()
    assert np.all(p <= df["epsilon"].to_numpy() + 1e-12)


def test_oversubscription_monotone_in_budget(site):
    prev = None
    for budget in np.linspace(15e3, 60e3, 7):
        n = oversubscription_curve(site, budget, level="rack", epsilons=EPS, n_samples=40)[
            "n_units"
        ].to_numpy()
        if prev is not None:
            assert np.all(n >= prev), (budget, n, prev)
        prev = n
    assert prev[-1] > 0


def test_oversubscription_matches_brute_force(site):
    """n*(ε) is the largest n whose empirical exceedance probability is ≤ ε (from full peak curves)."""
    budget, n_samples = 24e3, 50
    curves = peak_curves(site, level="rack", n_max=32, n_samples=n_samples, seed=3).values
    p_exceed = (curves > budget).mean(axis=0)  # index n-1
    df = oversubscription_curve(site, budget, level="rack", epsilons=EPS, n_samples=n_samples, seed=3)
    for eps, n in zip(EPS, df["n_units"], strict=True):
        ok = np.flatnonzero(p_exceed <= eps + 1e-12) + 1
        want = ok.max() if ok.size and ok[0] == 1 else 0
        # peak curves are monotone, so the admissible set is 1..n*
        assert n == want, (eps, n, want)


def test_oversubscription_beats_tdp_and_reports_gain(site):
    npl = float(site["rack_nameplate"][0])
    r = oversubscription(site, npl, level="rack", epsilon=0.01, n_samples=40)
    assert r["n_tdp"] == site.sizes[D.SERVER] // site.sizes[D.RACK]
    assert r["n_units"] >= r["n_tdp"]
    assert r["gain_vs_tdp_pct"] == pytest.approx(100 * (r["n_units"] / r["n_tdp"] - 1))
    assert r["p_exceed_at_mean"] >= r["p_exceed_at_n"]


def test_oversubscription_beyond_site_size_tiles(site):
    big = 3 * float(site[D.FACILITY_POWER].max())
    r = oversubscription(site, big, level="facility", unit="server", n_samples=10)
    assert r["n_units"] > site.sizes[D.SERVER]


def test_oversubscription_bad_input(site):
    with pytest.raises(ValueError, match="unknown budget level"):
        oversubscription_curve(site, 1e4, level="cluster")
    with pytest.raises(SiteTraceError, match="server_power"):
        oversubscription_curve(site.drop_vars(D.SERVER_POWER), 1e4, level="rack")
    with pytest.raises(ValueError, match="positive"):
        oversubscription_curve(site, -1.0, level="row")
    with pytest.raises(ValueError, match="epsilon"):
        oversubscription_curve(site, 1e4, level="row", epsilons=(1.5,))


# --- load characterisation -----------------------------------------------------------------------------
def test_bands_are_ordered(site):
    for period in ("15min", "1h", 60.0):
        b = profile(site, period)["band"].values
        assert np.all(np.diff(b, axis=0) >= -1e-6)
    ldc = load_duration_curve(site).values
    assert np.all(np.diff(ldc, axis=0) >= -1e-6)
    assert np.all(np.diff(ldc, axis=1) <= 1e-6)  # decreasing along duration
    df = E.profile_frame(site)
    cols = ["q05_kw", "q25_kw", "q50_kw", "q75_kw", "q95_kw"]
    assert np.all(np.diff(df[cols].to_numpy(), axis=1) >= -1e-9)
    s = summary_figures(site)
    assert np.all(s["lo"] <= s["median"] + 1e-12) and np.all(s["median"] <= s["hi"] + 1e-12)


def test_load_figures_known_answer(site):
    flat = site.copy()
    flat[D.FACILITY_POWER] = xr.full_like(site[D.FACILITY_POWER], 1e6)
    s = summary_figures(flat).set_index("metric")
    assert s.loc["load factor", "median"] == pytest.approx(1.0)
    assert s.loc["ramp p99 (1-min)", "median"] == pytest.approx(0.0)
    assert s.loc["peak demand", "median"] == pytest.approx(1.0)
    npl = float(site["facility_nameplate"])
    assert s.loc["TDP overstatement of peak", "median"] == pytest.approx(100 * (npl / 1e6 - 1))


def test_missing_facility_power_is_a_clear_error(site):
    bad = site.drop_vars([D.FACILITY_POWER, D.FACILITY_POWER + D.BAND_SUFFIX])
    with pytest.raises(SiteTraceError, match="missing variable 'facility_power'"):
        summary_figures(bad)
    with pytest.raises(SiteTraceError, match="facility_power"):
        modulation_table(bad)
    with pytest.raises(SiteTraceError, match=r"xarray\.Dataset"):
        profile(bad[D.IT_POWER])


# --- exports -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("hours", [6.0, 1.1])  # 1.1 h leaves a partial 15-min window
def test_exports_conserve_energy(tmp_path, hours):
    ds = small_site(hours=hours, n_draws=4)
    e = _mean_energy_j(ds)
    E.profile_csv(ds, tmp_path / "p.csv", "15min")
    df = pd.read_csv(tmp_path / "p.csv")
    assert (df["mean_kw"] * df["interval_s"]).sum() * 1e3 == pytest.approx(e, rel=1e-6)
    E.vessim_csv(ds, tmp_path / "v.csv")
    v = pd.read_csv(tmp_path / "v.csv", index_col=0, parse_dates=True)
    offsets = np.asarray((pd.DatetimeIndex(v.index) - v.index[0]).total_seconds())
    dt = np.diff(np.append(offsets, hours * 3600))  # seconds each row holds (Vessim's ffill)
    assert (-(v["datacenter"] * dt)).sum() == pytest.approx(e, rel=1e-6)
    assert np.all(v["datacenter_q95"] <= v["datacenter_q05"])  # consumption negative
    if hours == 6.0:
        out = E.opendss_loadshape(ds, tmp_path, "dc", "1h")
        mult = np.loadtxt(out["mult"])
        assert mult.max() == pytest.approx(1.0)
        assert (mult * out["peak_kw"] * out["sinterval"]).sum() * 1e3 == pytest.approx(e, rel=1e-5)
        text = out["dss"].read_text()
        assert "New Loadshape.dc npts=6 sinterval=3600 mult=(file=dc_mult.csv)" in text


# --- modulation ----------------------------------------------------------------------------------------
def test_defer_scan_conserves_work_and_respects_cap():
    rng = np.random.default_rng(0)
    d = rng.uniform(100, 700, (500, 3)).astype(np.float32)
    floor = np.full(3, 100.0, np.float32)
    cap = np.full((500, 3), 450.0, np.float32)
    p, b = (np.asarray(a, np.float64) for a in defer_scan(d, floor, cap, 1.0, 1.0))
    assert p.max() <= 450.0 + 1e-3
    # served work + backlog left = demanded work (alpha = 1: work = power above floor)
    assert (p - 100).sum(0) + b[-1] == pytest.approx((d - 100).sum(0), rel=1e-4)
    p2, b2 = (np.asarray(a) for a in defer_scan(d, floor, np.full_like(cap, 1e4), 1.0, 1.0))
    np.testing.assert_allclose(p2, d)
    assert b2.max() == 0


def test_modulation_table(site):
    tdp = site.attrs["gpu_tdp_w"]
    df = modulation_table(site, gpu_caps_w=(2 * tdp, 0.5 * tdp, 0.4 * tdp))
    none = df[df.cap_kind == "none"].iloc[0]
    gpu = df[df.cap_kind == "gpu"].set_index("cap")
    assert gpu.loc[2 * tdp, "peak_kw"] == pytest.approx(none["peak_kw"], rel=1e-5)
    assert gpu.loc[0.4 * tdp, "peak_kw"] < gpu.loc[0.5 * tdp, "peak_kw"] < none["peak_kw"]
    assert gpu.loc[0.4 * tdp, "throughput_loss_pct"] >= gpu.loc[0.5 * tdp, "throughput_loss_pct"] >= 0
    fac = df[df.cap_kind == "facility"]
    assert len(fac) == 4
    assert np.all(fac["peak_kw"] <= fac["cap"] * (1 + 1e-5))
    assert np.all(np.diff(fac["throughput_loss_pct"]) >= -1e-9)


# --- report and CLI ------------------------------------------------------------------------------------
def test_cli_plan_writes_report_and_tables(tmp_path, capsys):
    ds = small_site(n_draws=3, hours=3.0)
    trace = tmp_path / "trace.nc"
    ds.to_netcdf(trace)
    out = tmp_path / "plan"
    rc = main(
        [
            "plan",
            str(trace),
            "--out",
            str(out),
            "--level",
            "rack",
            "--budget-kw",
            "25",
            "--epsilon",
            "0.01",
            "0.1",
            "--caps",
            "400",
            "--facility-caps-kw",
            "40",
            "--samples",
            "20",
            "--quiet",
        ]
    )
    assert rc == 0
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4
    for name in (
        "headline",
        "load_summary",
        "oversubscription",
        "modulation",
        "profile_15min_kw",
        "vessim_15min_w",
        "datacenter_mult",
    ):
        assert (out / f"{name}.csv").stat().st_size > 0, name
    over = pd.read_csv(out / "oversubscription.csv")
    assert list(over["epsilon"]) == [0.01, 0.1]
    assert "servers at ε = 0.01" in capsys.readouterr().out


def test_cli_plan_errors(tmp_path, capsys):
    assert main(["plan", str(tmp_path / "missing.nc"), "--out", str(tmp_path)]) == 1
    ds = small_site(n_draws=2, hours=1.0).drop_vars([D.FACILITY_POWER, D.FACILITY_POWER + D.BAND_SUFFIX])
    ds.to_netcdf(tmp_path / "bad.nc")
    assert main(["plan", str(tmp_path / "bad.nc"), "--out", str(tmp_path / "o")]) == 1
    assert "facility_power" in capsys.readouterr().err


def _generator_form(ds: xr.Dataset) -> xr.Dataset:
    """The fixture rewritten as wattscape.generation writes traces: dt_s, interval and pue variables,
    GPU model named only in ``configs``, a partial last bin."""
    out = ds.copy()
    for k in ("period_s", "gpus_per_server", "gpu_tdp_w", "gpu_idle_w", "host_power_w", "servers_per_rack"):
        out.attrs.pop(k)
    out.attrs.update(dt_s=60.0, configs="h100=llama-70b/H100-SXM5-80GB/tp8")
    widths = np.full(out.sizes[D.TIME], 60.0)
    widths[-1] = 30.0
    out["interval"] = ((D.TIME,), widths, {D.UNITS: D.SECOND})
    out["pue"] = ((D.TIME,), np.full(out.sizes[D.TIME], ds.attrs["pue"]), {D.UNITS: "1"})
    return out


def test_generator_form_trace(tmp_path):
    from wattscape.generation.planning.common import site_meta

    ds = _generator_form(small_site(n_draws=3, hours=2.0))
    meta = site_meta(ds)
    assert meta["gpu_tdp_w"] == 700.0 and meta["gpus_per_server"] == 8
    assert meta["host_w"] == pytest.approx(1000.0)
    e = float((ds[D.FACILITY_POWER].mean(D.DRAW) * ds["interval"]).sum())
    df = E.profile_csv(ds, tmp_path / "p.csv", "15min")
    assert (df["mean_kw"] * df["interval_s"]).sum() * 1e3 == pytest.approx(e, rel=1e-6)  # CSV: 4 decimals
    mod = modulation_table(ds)
    assert (mod["cap_kind"] == "gpu").sum() == 5
    assert mod.attrs["gpu_cap_resolution"] == D.SERVER
    no_racks = ds.drop_vars([D.RACK_POWER, D.RACK_POWER + D.BAND_SUFFIX, D.SERVER_POWER])
    r = oversubscription(no_racks, float(ds["facility_nameplate"]), level="facility", n_samples=10)
    assert r.attrs["unit"] == D.ROW
    with pytest.raises(SiteTraceError, match="rack_power"):
        oversubscription(no_racks, 1e5, level="row")


def test_non_finite_values_are_a_clear_error(site):
    bad = site.copy(deep=True)
    bad[D.RACK_POWER][1, 5, 2] = np.nan
    with pytest.raises(SiteTraceError, match=r"'rack_power' has 1 non-finite values .* draw=1"):
        oversubscription(bad, 1e5, level="row", n_samples=5)
    bad[D.FACILITY_POWER][0, 3] = np.inf
    with pytest.raises(SiteTraceError, match="facility_power"):
        summary_figures(bad)
