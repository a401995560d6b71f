"""Tests of ``wattscape.generation.replay``: open-loop replay of a run's own logged workload."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from wattscape.generation.replay import replay_params, replay_run, replay_timeline
from wattscape.models import dims as D
from wattscape.models.params import example_config_params

import wattscape
from tests.inference.synthetic_runs import make_run

DEMO = Path(wattscape.__file__).parent / "data" / "demo" / "energy-inference"
POSTERIOR = Path(wattscape.__file__).parent / "data" / "posterior" / "posterior.nc"


def _grid_run(duration_s=60.0, period_s=0.1, n_gpus=2):
    """A bare run (time grid and configuration only) and nothing else."""
    run, _ = make_run("grid", n_gpus=n_gpus, duration_s=duration_s, period_s=period_s, n_requests=1)
    return run


def _requests(run, starts_s, prompt, output, batch):
    t0 = run[D.TIME].values[0]
    n = len(starts_s)
    return pd.DataFrame(
        {
            "request_id": np.arange(n),
            "start": t0 + (np.asarray(starts_s) * 1e9).astype("timedelta64[ns]"),
            "prompt_tokens": np.broadcast_to(prompt, n),
            "output_tokens": np.broadcast_to(output, n),
            "batch_size": np.broadcast_to(batch, n),
        }
    )


def _noiseless(states, levels, n_gpus=2, **latency):
    """Parameter draws without any noise: one level per state, fixed latencies."""
    p = example_config_params(3, states=states, tdp_w=400.0, n_gpus=n_gpus, tensor_parallel=1)
    for i, s in enumerate(states):
        p["level_loc"][:, i, :] = levels[s]
    p["level_scale"][:] = 0.0
    p["level_slope"][:] = 0.0
    p["resid_scale"][:] = 0.0
    p["dwell_sigma"][:] = 0.0
    for name in ("prefill_overhead_s", "prefill_s_per_token", "itl_base_s", "itl_per_seq_s"):
        p[name][:] = latency.get(name, 0.0)
    return p


def test_same_seed_same_output_different_seed_different():
    run, req = make_run("a", n_gpus=2, duration_s=60.0, n_requests=6)
    params = example_config_params(8, states=D.STATES_ACTIVE, tdp_w=400.0, n_gpus=2, tensor_parallel=1)
    y1 = replay_params(params, run, req, seed=3)
    y2 = replay_params(params, run, req, seed=3)
    y3 = replay_params(params, run, req, seed=4)
    assert y1.name == D.POWER and y1.dims == (D.DRAW, D.TIME) and y1.shape == (8, run.sizes[D.TIME])
    assert y1.attrs[D.UNITS] == D.WATT and "config" in y1.attrs
    assert (y1[D.TIME].values == run[D.TIME].values).all()
    assert np.isfinite(y1.values).all() and (y1.values >= 0).all()
    np.testing.assert_array_equal(y1.values, y2.values)
    assert not np.allclose(y1.values, y3.values)
    # draws differ from one another
    assert np.std(y1.values.mean(axis=1)) > 0


def test_noiseless_energy_equals_hand_computation():
    run = _grid_run(duration_s=60.0, period_s=0.1, n_gpus=2)
    # overhead 0.5 s, prefill 1e-3 s/token, ITL 0.05 + 0.01·batch, 1e-5 s per context token per sequence
    lat = dict(prefill_overhead_s=0.5, prefill_s_per_token=1e-3, itl_base_s=0.05, itl_per_seq_s=0.01)
    params = _noiseless(D.STATES_ACTIVE, {D.IDLE: 50.0, D.ACTIVE: 250.0}, **lat)
    params["itl_ctx_s"] = ((D.DRAW,), np.full(params.sizes[D.DRAW], 1e-5), {D.UNITS: D.SECOND})
    # and 1e-6 s per sequence per prompt token² of prefill attention
    params["prefill_attn_s"] = ((D.DRAW,), np.full(params.sizes[D.DRAW], 1e-6), {D.UNITS: D.SECOND})
    # and 1e-8 s per sequence per context token² of each decode step
    params["itl_ctx2_s"] = ((D.DRAW,), np.full(params.sizes[D.DRAW], 1e-8), {D.UNITS: D.SECOND})
    starts = [5.03, 20.0, 21.0]  # the third arrives while the second still runs: it waits
    req = _requests(run, starts, prompt=100, output=40, batch=2)
    prefill = 0.5 + 1e-3 * 100 * 2 + 1e-6 * 2 * 100**2
    runtime = prefill + 40 * (0.05 + 0.01 * 2) + 1e-5 * 2 * 40 * (100 + 40 / 2)
    # the mean of the squared context over the decode steps, prompt² + prompt·output + output²/3
    runtime += 1e-8 * 2 * 40 * (100**2 + 100 * 40 + 40**2 / 3)
    y = replay_params(params, run, req, seed=0)
    duration = 60.0
    active = 3 * runtime
    energy = 2 * (250.0 * active + 50.0 * (duration - active))  # W·s over both GPUs
    got = y.values.sum(axis=1) * 0.1
    np.testing.assert_allclose(got, energy, rtol=2e-5)
    tl = replay_timeline(params, run, req, seed=0)
    t0 = run[D.TIME].values[0]
    start = (tl["start"].values[0] - t0) / np.timedelta64(1, "s")
    end = (tl["end"].values[0] - t0) / np.timedelta64(1, "s")
    np.testing.assert_allclose(start, [5.03, 20.0, 20.0 + runtime], atol=1e-5)
    np.testing.assert_allclose(end - start, runtime, atol=1e-5)
    # the bin holding a boundary is its exact time-weighted mean (5.03 s: 30 % idle, 70 % active)
    np.testing.assert_allclose(y.values[0, 50], 2 * (0.3 * 50.0 + 0.7 * 250.0), rtol=1e-5)


def test_a_gap_shorter_than_min_idle_holds_the_level():
    """The labelling gives a gap < dims.MIN_IDLE_S to the inference before it; the replay holds its level."""
    run = _grid_run(duration_s=60.0, period_s=0.1, n_gpus=1)
    lat = dict(prefill_overhead_s=1.0, prefill_s_per_token=0.0, itl_base_s=0.0, itl_per_seq_s=0.0)
    params = _noiseless(D.STATES_ACTIVE, {D.IDLE: 50.0, D.ACTIVE: 250.0}, **lat)
    # runtime 1 s each: a 0.3 s gap (held), then a 1.0 s gap (idle)
    req = _requests(run, [10.0, 11.3, 13.3], prompt=10, output=1, batch=1)
    y = replay_params(params, run, req, seed=0)
    active = 3 * 1.0 + 0.3
    np.testing.assert_allclose(y.values.sum(axis=1) * 0.1, 250.0 * active + 50.0 * (60.0 - active), rtol=2e-5)
    assert D.MIN_IDLE_S == 0.5
    np.testing.assert_allclose(y.values[0, 112], 250.0, rtol=1e-5)  # inside the short gap
    np.testing.assert_allclose(y.values[0, 125], 50.0, rtol=1e-5)  # inside the long one
    tl = replay_timeline(params, run, req, seed=0)  # the timeline keeps the true ends
    t0 = run[D.TIME].values[0]
    end = (tl["end"].values[0] - t0) / np.timedelta64(1, "s")
    np.testing.assert_allclose(end, [11.0, 12.3, 14.3], atol=1e-5)


def test_noiseless_phases_split_prefill_and_decode():
    run = _grid_run(duration_s=30.0, period_s=0.1, n_gpus=1)
    lat = dict(prefill_overhead_s=1.0, itl_base_s=0.1)
    levels = {D.IDLE: 40.0, D.PREFILL: 300.0, D.DECODE: 200.0}
    params = _noiseless(D.STATES_PHASES, levels, n_gpus=1, **lat)
    req = _requests(run, [10.0], prompt=10, output=20, batch=1)  # prefill 1 s, decode 2 s
    y = replay_params(params, run, req, seed=1)
    np.testing.assert_allclose(y.values.sum(axis=1) * 0.1, 300.0 + 2 * 200.0 + 27 * 40.0, rtol=2e-5)
    t = np.arange(run.sizes[D.TIME]) * 0.1
    np.testing.assert_allclose(y.values[0, (t > 10.2) & (t < 10.8)], 300.0, rtol=1e-5)
    np.testing.assert_allclose(y.values[0, (t > 11.2) & (t < 12.8)], 200.0, rtol=1e-5)


def test_residual_has_the_ar1_variance_of_the_summed_gpus():
    run = _grid_run(duration_s=200.0, period_s=0.1, n_gpus=4)
    params = _noiseless(D.STATES_ACTIVE, {D.IDLE: 60.0, D.ACTIVE: 250.0}, n_gpus=4)
    params["resid_scale"][:] = 5.0
    params["ar_coef"][:] = 0.8
    req = _requests(run, [1000.0], prompt=1, output=1, batch=1)  # after the grid: all idle
    y = replay_params(params, run, req, seed=2).values - 4 * 60.0
    assert abs(y.std() - 5.0 * 2) < 0.5  # sqrt(4) GPUs × 5 W
    lag1 = np.mean([np.corrcoef(r[1:], r[:-1])[0, 1] for r in y])
    assert abs(lag1 - 0.8) < 0.05


def test_replay_works_in_64_bit_mode():
    run, req = make_run("b", n_gpus=1, duration_s=30.0, n_requests=4)
    params = example_config_params(4, states=D.STATES_ACTIVE, tdp_w=300.0, n_gpus=1, tensor_parallel=1)
    y32 = replay_params(params, run, req, seed=5)
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        y64 = replay_params(params, run, req, seed=5)
    finally:
        jax.config.update("jax_enable_x64", before)
    assert np.isfinite(y64.values).all()
    np.testing.assert_allclose(y64.values, y32.values, rtol=1e-4, atol=1e-3)


@pytest.fixture(scope="module")
def demo_catalog(tmp_path_factory):
    from wattscape.inference.catalog import build_catalog

    return build_catalog([DEMO], tmp_path_factory.mktemp("demo") / "catalog", progress=False)


def test_replay_of_real_runs_reproduces_the_idle_share(demo_catalog):
    """Demo energy-inference runs, shipped posterior: the replayed timeline (closed loop: its span is set by
    the predicted runtimes), labelled by the same rules as the measurement (``inference.labelling``), has
    the measured idle/active share within 5 points."""
    from wattscape.inference.labelling import label_states
    from wattscape.models.hierarchical import PowerModel

    model = PowerModel.load(POSTERIOR)  # fails when the model changed and the posterior was not re-shipped
    cat = demo_catalog
    checked = 0
    for rid in cat.index["run_id"]:
        req = cat.requests(rid)
        if req is None or len(req) == 0:
            continue
        run = cat.run(rid)
        y = replay_run(model, run, req, n_draws=10, seed=0, drive="closed")
        assert y.dims == (D.DRAW, D.TIME) and y.sizes[D.TIME] == run.sizes[D.TIME]
        assert np.isfinite(y.values).all()
        n = int(run.attrs["n_gpus"])
        measured = run[D.POWER].sum(D.GPU).mean().item()
        assert 0.5 * measured < float(y.mean()) < 1.5 * measured, rid  # same order of magnitude
        labels = run[D.STATE_VAR].values
        keep = labels >= 0
        idle_meas = float((labels[keep] == D.state_code(D.IDLE)).mean())
        params = model.config_params(_cfg(run), 10, 0)
        assert params.attrs["seen_config"] == 1, rid  # the run's own configuration, found in the fit
        tl = replay_timeline(params, run, req, seed=0, drive="closed")
        shares = []
        t = run[D.TIME].values
        for d in range(tl.sizes[D.DRAW]):
            r = pd.DataFrame({"start": tl["start"].values[d], "end": tl["end"].values[d]})
            lab, *_ = label_states(t, np.zeros(run.sizes[D.TIME]), r, exclude_first=False)
            # the replayed workload's own span (closed loop: it ends when its predicted runtimes say),
            # from the second inference on, as the measured labels exclude the first (warm-up)
            own = (t >= r["start"].values[1]) & (t < r["end"].values[-1])
            shares.append(float((lab[own] == D.state_code(D.IDLE)).mean()))
        idle_sim = float(np.median(shares))
        print(f"{rid}: idle share measured {idle_meas:.3f}, replayed {idle_sim:.3f} ({n} GPUs)")
        assert abs(idle_sim - idle_meas) < 0.05, rid
        checked += 1
    assert checked == 3


def _cfg(run: xr.Dataset) -> dict:
    from wattscape.generation.replay import run_config

    return run_config(run)


def test_rejects_what_it_cannot_replay():
    run, req = make_run("c", n_gpus=1, duration_s=10.0, n_requests=2)
    params = example_config_params(2, states=D.STATES_ACTIVE, n_gpus=1, tensor_parallel=1)
    with pytest.raises(KeyError, match="prompt_tokens"):
        replay_params(params, run, req.drop(columns=["prompt_tokens"]))
    with pytest.raises(TypeError, match="PowerModel"):
        replay_run(object(), run, req)


def test_calls_of_one_workload_cell_share_their_level():
    """Level noise is drawn once per workload cell (same prompt, output, batch): the calls of a cell run at
    one level, calls of different cells at different ones (module docstring, "segment levels")."""
    run = _grid_run(duration_s=40.0, period_s=0.1, n_gpus=1)
    params = _noiseless(D.STATES_ACTIVE, {D.IDLE: 50.0, D.ACTIVE: 250.0}, n_gpus=1, itl_base_s=0.05)
    params["level_scale"].loc[{D.STATE: D.ACTIVE}] = 40.0  # between-segment sd of the level, W
    # six calls of 2 s each (40 output tokens x 0.05 s), every 5 s: cells A, A, B, A, B, B
    prompts = np.array([8, 8, 64, 8, 64, 64])
    req = _requests(run, 5.0 * np.arange(6) + 1.0, prompt=32, output=40, batch=1)
    req["prompt_tokens"] = prompts
    y = replay_params(params, run, req, seed=7).values  # (draw, time), one GPU
    t = np.arange(run.sizes[D.TIME]) * 0.1
    mid = np.array([y[:, (t > s + 0.5) & (t < s + 1.5)].mean(axis=1) for s in 5.0 * np.arange(6) + 1.0]).T
    for cell in (8, 64):
        same = mid[:, prompts == cell]
        np.testing.assert_allclose(same, same[:, :1].repeat(same.shape[1], 1), rtol=1e-5)
    assert np.all(np.abs(mid[:, 0] - mid[:, 2]) > 1e-3)  # independent draws for the two cells
