"""End-to-end generation: determinism, TP groups, aggregated vs per-GPU path, energy, resampling, I/O."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from wattscape.generation import traffic as T
from wattscape.generation.aggregate import energy, open_trace, write_trace
from wattscape.generation.resample import resample
from wattscape.generation.site import (
    example_params_for_site,
    generate_site,
    generate_site_zarr,
    max_requests_per_group,
)
from wattscape.generation.topology import parse_site
from wattscape.models import dims as D

SITE = """
[site]
name = "test"
start = "2026-01-01T00:00:00"
duration_s = {duration}
dt_s = {dt}
levels = {levels}
draws = {draws}
{pue}
[layout]
rows = 2
racks_per_row = 1
servers_per_rack = 2
[traffic]
kind = "diurnal"
rate_per_server = 0.3
tokens = "azure_conv"
policy = "round_robin"
[[fleet]]
name = "a"
config = "a"
servers = 2
gpus_per_server = 8
tensor_parallel = 4
non_gpu_w = 800.0
[[fleet]]
name = "b"
config = "b"
gpus_per_server = 4
tensor_parallel = 1
non_gpu_w = 500.0
gpu_model = "A100-SXM4-80GB"
[fleet.traffic]
kind = "poisson"
rate_per_server = 1.0
"""


def make_site(
    duration=600,
    dt=1.0,
    levels=("server", "facility"),
    draws=3,
    pue="pue_by_hour = [1.2, 1.5, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3, "
    "1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3]",
):
    text = SITE.format(
        duration=duration, dt=dt, levels=str(list(levels)).replace("'", '"'), draws=draws, pue=pue
    )
    return parse_site(text, "test.toml")


@pytest.fixture(scope="module")
def site_trace():
    site = make_site(duration=3900, dt=0.5, levels=("gpu", "server", "rack", "row", "facility"))
    return generate_site(example_params_for_site(site, 20), site, seed=11, progress=False)


def test_dataset_form(site_trace):
    ds = site_trace
    assert ds[D.GPU_POWER].dims == (D.DRAW, D.TIME, D.GPU) and ds.sizes[D.GPU] == 24
    for v in (D.SERVER_POWER, D.RACK_POWER, D.ROW_POWER, D.IT_POWER, D.FACILITY_POWER):
        assert ds[v].attrs[D.UNITS] == D.WATT and np.isfinite(ds[v].values).all()
        assert v + D.BAND_SUFFIX in ds and ds[v + D.BAND_SUFFIX].sizes[D.QUANTILE] == 3
    assert float(ds["facility" + D.NAMEPLATE_SUFFIX]) == pytest.approx(
        (2 * (8 * 700 + 800) + 2 * (4 * 400 + 500)) * 1.5
    )
    # non-GPU power added once per server; GPU power between idle and TDP
    g = ds[D.GPU_POWER].values
    gpu_per_server = np.stack(
        [g[..., :8].sum(-1), g[..., 8:16].sum(-1), g[..., 16:20].sum(-1), g[..., 20:24].sum(-1)], -1
    )
    np.testing.assert_allclose(
        ds[D.SERVER_POWER].values - gpu_per_server,
        np.broadcast_to([800, 800, 500, 500], gpu_per_server.shape),
    )
    gpu = ds[D.GPU_POWER].values
    assert 0.03 * 400 < gpu.mean() < 700


def test_energy_identity_native(site_trace):
    ds = site_trace
    srv = (ds[D.SERVER_POWER] * ds["interval"] * ds["pue"]).sum((D.TIME, D.SERVER))
    np.testing.assert_allclose(energy(ds).values, srv.values, rtol=1e-9)
    gpu_sum = ds[D.GPU_POWER].sum(D.GPU) + 2 * 800 + 2 * 500
    np.testing.assert_allclose(ds[D.IT_POWER].values, gpu_sum.values, rtol=1e-9)


@pytest.mark.parametrize("period", [1.0, 60.0, 900.0, 3600.0, 0.1, 7.3])  # any period, up or down
def test_energy_identity_after_resampling(site_trace, period):
    ds = site_trace
    native = (ds[D.SERVER_POWER] * ds["interval"] * ds["pue"]).sum((D.TIME, D.SERVER)).values
    res = resample(ds, period)
    np.testing.assert_allclose(energy(res).values, native, rtol=1e-9)
    for v in (D.SERVER_POWER, D.GPU_POWER, D.ROW_POWER):
        np.testing.assert_allclose(energy(res, v).values, energy(ds, v).values, rtol=1e-9)
    assert res["interval"].sum() == pytest.approx(3900.0)
    assert D.FACILITY_POWER + D.BAND_SUFFIX in res


@settings(max_examples=25, deadline=None)
@given(
    dt=st.sampled_from([0.1, 0.25, 1.0, 5.0]),
    n=st.integers(3, 400),
    period=st.sampled_from([0.1, 1.0, 60.0, 900.0, 3600.0, 2.5]),
    seed=st.integers(0, 10**6),
)
def test_resample_conserves_energy_property(dt, n, period, seed):
    rng = np.random.default_rng(seed)
    power = rng.gamma(2.0, 300.0, size=(2, n, 3))
    interval = np.full(n, dt)
    interval[-1] = dt * rng.uniform(0.1, 1.0)
    times = np.datetime64("2026-01-01T00:00:00") + (np.arange(n) * dt * 1e9).astype("timedelta64[ns]")
    pue = rng.uniform(1.1, 1.6, n)
    ds = xr.Dataset(
        {
            D.SERVER_POWER: ((D.DRAW, D.TIME, D.SERVER), power),
            "interval": ((D.TIME,), interval),
            "pue": ((D.TIME,), pue),
            D.FACILITY_POWER: ((D.DRAW, D.TIME), power.sum(-1) * pue),
        },
        coords={D.TIME: times},
    )
    res = resample(ds, period)
    for v in (D.SERVER_POWER, D.FACILITY_POWER):
        np.testing.assert_allclose(energy(res, v).values, energy(ds, v).values, rtol=1e-9)
    np.testing.assert_allclose(
        energy(res).values,
        (ds[D.SERVER_POWER] * ds["interval"] * ds["pue"]).sum((D.TIME, D.SERVER)).values,
        rtol=1e-9,
    )


def test_same_seed_same_trace_different_seed_different():
    site = make_site(duration=300, levels=("rack", "facility"))
    prm = example_params_for_site(site, 10)
    a = generate_site(prm, site, seed=5, progress=False)
    b = generate_site(prm, site, seed=5, progress=False)
    c = generate_site(prm, site, seed=6, progress=False)
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a[D.RACK_POWER].values, c[D.RACK_POWER].values)


def test_tp_group_gpus_switch_together():
    site = make_site(duration=300, dt=1.0, levels=("gpu",), draws=1)
    prm = example_params_for_site(site, 4)
    for ds in prm.values():  # no per-GPU deviation and no residual: GPUs differ only through their state
        ds["level_scale"][:] = 0.0
        ds["resid_scale"][:] = 0.0
    out = generate_site(prm, site, seed=1, progress=False)[D.GPU_POWER].values[0]  # (time, gpu)
    srv0 = out[:, :8]
    for grp in (srv0[:, :4], srv0[:, 4:]):  # TP4: two groups of four GPUs
        np.testing.assert_allclose(grp, grp[:, :1].repeat(4, 1), rtol=1e-5)
        assert np.ptp(grp[:, 0]) > 50  # it does change state
    assert not np.allclose(srv0[:, 0], srv0[:, 4])  # different groups, different instants
    tp1 = out[:, 16:20]  # the TP1 server: each GPU its own group
    assert not np.allclose(tp1[:, 0], tp1[:, 1])


@pytest.mark.parametrize("wide_levels", [False, True])
def test_aggregated_path_matches_per_gpu_path_in_distribution(wide_levels):
    """Facility series: mean, variance and lag-1 autocorrelation agree within Monte-Carlo error.

    Both paths share the parameter draws (same seed); each statistic is compared draw by draw and the mean
    difference must lie within 4 standard errors of zero.  With ``wide_levels`` (one mixture component,
    wide segment levels, a small residual) the spread of the segment levels dominates the variance, so a
    path that spreads a TP group's summed level by sqrt(n)·σ instead of n·σ fails.
    """
    draws = 60
    prm = None
    stats = {}
    for levels in (("gpu", "facility"), ("facility",)):
        site = make_site(duration=300, dt=1.0, levels=levels, draws=draws, pue="pue = 1.0")
        if prm is None:
            prm = example_params_for_site(site, 100)
            if wide_levels:
                for ds in prm.values():
                    ds["level_weight"][:] = np.array([1.0, 0.0])
                    ds["level_scale"][:] = 60.0
                    ds["resid_scale"][:] = 2.0
        x = generate_site(prm, site, seed=3, progress=False)[D.FACILITY_POWER].values  # (draw, time)
        c = x - x.mean(1, keepdims=True)
        stats[levels[0]] = np.stack([x.mean(1), x.var(1), (c[:, 1:] * c[:, :-1]).sum(1) / (c**2).sum(1)])
    d = stats["gpu"] - stats["facility"]
    z = d.mean(1) / (d.std(1, ddof=1) / np.sqrt(draws))
    assert np.all(np.abs(z) < 4), z
    assert np.all(np.abs(d.mean(1)) < np.array([0.02, 0.15, 0.05]) * np.abs(stats["gpu"].mean(1)))


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_write_and_open(tmp_path, suffix):
    site = make_site(duration=300, levels=("rack", "facility"))
    ds = generate_site(example_params_for_site(site, 5), site, seed=0, progress=False)
    path = write_trace(ds, tmp_path / f"trace{suffix}")
    back = open_trace(path).load()
    np.testing.assert_allclose(back[D.FACILITY_POWER].values, ds[D.FACILITY_POWER].values)
    assert back[D.RACK_POWER].attrs[D.UNITS] == D.WATT


def test_out_of_core_zarr_matches_in_memory(tmp_path):
    site = make_site(duration=300, levels=("rack", "facility"), draws=4)
    prm = example_params_for_site(site, 10)
    full = generate_site(prm, site, seed=2, progress=False)
    lazy = generate_site_zarr(prm, site, str(tmp_path / "t.zarr"), seed=2, draws_per_block=2, progress=False)
    assert lazy[D.RACK_POWER].chunks is not None  # dask-backed
    np.testing.assert_allclose(lazy[D.RACK_POWER].values, full[D.RACK_POWER].values)
    np.testing.assert_allclose(
        lazy[D.FACILITY_POWER + D.BAND_SUFFIX].values, full[D.FACILITY_POWER + D.BAND_SUFFIX].values
    )


@pytest.mark.realdata
def test_replay_of_azure_trace_drives_a_site(shared_data):
    azure = shared_data / "azure-llm-inference-trace-2023" / "AzureLLMInferenceTrace_conv.csv"
    text = SITE.format(duration=300, dt=1.0, levels='["rack", "facility"]', draws=2, pue="pue = 1.0")
    text = text.replace('kind = "diurnal"', f'kind = "replay"\npath = "{azure}"\nrate_scale = 0.5')
    text = text.replace('kind = "poisson"\n', "")  # the second type inherits the replay
    site = parse_site(text, "replay.toml")
    ds = generate_site(example_params_for_site(site, 4), site, seed=0, progress=False)
    p = ds[D.FACILITY_POWER].values
    assert np.isfinite(p).all() and p.std() > 0
    # busier than idle: the replayed requests reach the servers
    idle_only = 2 * (8 * 0.12 * 700 + 800) + 2 * (4 * 0.12 * 400 + 500)
    assert p.mean() > 1.05 * idle_only


def test_cached_parameters_follow_in_place_edits_and_one_draw_bands_are_the_draw():
    """The conversion of parameter draws is cached between calls: an in-place edit must still be seen."""
    site = make_site(duration=120, levels=("server", "facility"), draws=1)
    prm = example_params_for_site(site, 4)
    a = generate_site(prm, site, seed=1, progress=False)
    for ds in prm.values():
        ds["level_loc"][:] = ds["level_loc"].values + 50.0
    b = generate_site(prm, site, seed=1, progress=False)
    gpus = 2 * 8 + 2 * 4
    diff = (b[D.IT_POWER] - a[D.IT_POWER]).values
    np.testing.assert_allclose(diff.mean(), 50.0 * gpus, rtol=0.02)
    for v in (D.SERVER_POWER, D.FACILITY_POWER):  # one draw: every quantile is that draw
        band = b[v + D.BAND_SUFFIX].values
        np.testing.assert_array_equal(band, np.broadcast_to(b[v].values[0], band.shape))


@pytest.mark.parametrize("policy", ["round_robin", "random"])
def test_request_padding_never_truncates_arrivals(policy):
    """Every group's arrivals end inside the padding (the last padded row lies beyond the window)."""
    horizon, n_groups = 6 * 3600.0, 400
    prof = T.diurnal_profile(0.2 * n_groups)
    inv, d_lam = T.inverse_table(prof, horizon)
    n_max = max_requests_per_group(prof, horizon, n_groups, policy)
    worst = 0
    for seed in range(5):
        arr = np.asarray(
            T.group_arrivals(jax.random.key(seed), jax.numpy.asarray(inv), d_lam, n_groups, n_max, policy)
        )
        worst = max(worst, int(np.isfinite(arr).sum(0).max()))
    assert worst < n_max
    mean = float(prof.cumulative(np.array([horizon]))[0]) / n_groups
    if policy == "round_robin":  # Erlang spacing: tight padding
        assert n_max < mean + 40
