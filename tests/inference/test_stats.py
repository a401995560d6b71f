"""Sufficient statistics: exact lag products, segment levels, bin counts, transitions, FitData dims."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from wattscape.inference.stats import BIN_EDGES, SUMMARY, fit_data_from_catalog, reduce_run
from wattscape.models import dims as D

from tests.inference.synthetic_catalog import SyntheticCatalog

TDP = 400.0


def _run(power: np.ndarray, state: np.ndarray, segment: np.ndarray) -> xr.Dataset:
    t = np.datetime64("2024-01-01", "ns") + (np.arange(power.shape[1]) * 100_000_000).astype(
        "timedelta64[ns]"
    )
    return xr.Dataset(
        {
            D.POWER: ((D.GPU, D.TIME), power.astype(np.float32)),
            D.STATE_VAR: ((D.TIME,), state.astype(np.int8)),
            D.SEGMENT_VAR: ((D.TIME,), segment.astype(np.int32)),
        },
        coords={D.TIME: t, D.GPU: np.arange(power.shape[0])},
        attrs={"sample_period_s": 0.1},
    )


@pytest.fixture
def small_run():
    rng = np.random.default_rng(1)
    # idle 5 | seg 0 (8 samples) | seg 1 (6) | excluded 2 | seg 2 (4) | idle 3
    state = np.r_[np.zeros(5), np.full(14, 3), [-1, -1], np.full(4, 3), np.zeros(3)].astype(int)
    segment = np.r_[np.full(5, -1), np.zeros(8), np.ones(6), [-1, -1], np.full(4, 2), np.full(3, -1)].astype(
        int
    )
    power = 200 + 20 * rng.standard_normal((2, state.size))
    power[:, state == 0] = 50 + rng.standard_normal((2, (state == 0).sum()))
    req = pd.DataFrame(
        {
            "request_id": [0, 1, 2],
            "start": pd.to_datetime(["2024-01-01"] * 3),
            "end": pd.to_datetime(["2024-01-01 00:00:01"] * 3),
            "prompt_tokens": [8, 64, 512],
            "output_tokens": [32, 32, 64],
            "batch_size": [32, 32, 16],
        }
    )
    return _run(power, state, segment), req, power, state, segment


def test_lag_products_are_exact(small_run):
    ds, req, _power, state, segment = small_run
    st = reduce_run(ds, req, TDP)
    frac = ds[D.POWER].values.astype(np.float64) / TDP  # as stored (float32)
    want = np.zeros(4)
    for sid in (0, 1, 2):
        idx = np.flatnonzero((segment == sid) & (state == 3))
        m = frac[:, idx].mean(axis=0)  # the GPU-mean series
        e = m - m.mean()
        want += [e[1:].size, (e[1:] ** 2).sum(), (e[1:] * e[:-1]).sum(), (e[:-1] ** 2).sum()]
    np.testing.assert_allclose(st["lag"][1], want, rtol=1e-6)
    # idle: two stretches of 5 and 3 samples, pairs inside each only (one series, not one per GPU)
    assert st["lag"][0][0] == 4 + 2


def test_residual_is_that_of_the_gpu_mean():
    # a layer split: the GPUs take turns, each swings ±100 W, the total stays flat
    n = 40
    swing = 100.0 * np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    power = np.stack([200 + swing, 200 - swing])
    state = np.full(n, 3)
    segment = np.zeros(n, dtype=int)
    req = pd.DataFrame(
        {
            "request_id": [0],
            "start": pd.to_datetime(["2024-01-01"]),
            "end": pd.to_datetime(["2024-01-01 00:00:04"]),
            "prompt_tokens": [64],
            "output_tokens": [32],
            "batch_size": [8],
        }
    )
    st = reduce_run(_run(power, state, segment), req, TDP)
    n_pairs, ee, _, _ = st["lag"][1]
    assert n_pairs == n - 1
    assert ee < 1e-10  # the per-GPU swings cancel: no residual in the total
    np.testing.assert_allclose(st["segments"]["level"].iloc[0], 200 / TDP, rtol=1e-6)


def test_segments_levels_workload_and_counts(small_run):
    ds, req, power, state, segment = small_run
    st = reduce_run(ds, req, TDP)
    seg = st["segments"]
    active = seg[seg.state_index == 1].set_index("segment_id")
    assert list(active.index) == [0, 1, 2]
    np.testing.assert_allclose(active.loc[1, "level"], power[:, segment == 1].mean() / TDP, rtol=1e-5)
    # the mean context of each inference: prompt + output / 2
    np.testing.assert_allclose(active["log2_context_tokens"], np.log2([8 + 16, 64 + 16, 512 + 32]))
    np.testing.assert_allclose(active["duration_s"], 1.0)
    assert (seg.state_index == 0).sum() == 2
    # every fitted sample of every GPU lands in exactly one bin
    assert st["counts"].sum() == 2 * (state >= 0).sum()
    assert st["counts"].shape == (2, len(BIN_EDGES) - 1)
    # idle -> 0 -> 1 -> 2 -> idle: consecutive inferences pass through a (short) idle
    assert st["transitions"][0, 1] == 3 and st["transitions"][1, 0] == 3


def test_fit_data_dims_and_holdouts():
    cat = SyntheticCatalog(n_inferences=4)
    fd = fit_data_from_catalog(cat, progress=False)
    ds = fd.ds
    for dim in (D.CONFIG, D.LLM, D.GPU_MODEL, D.PARALLEL, D.RUN, D.SEGMENT, D.BIN, D.STATE, SUMMARY):
        assert dim in ds.dims
    assert ds.sizes[D.RUN] == 5 and ds.sizes[SUMMARY] == 12
    assert ds["counts"].dims == (D.RUN, D.STATE, D.BIN)
    assert ds["seg_x"].dims == (D.SEGMENT, D.COVARIATE)
    assert np.isfinite(ds["config_x"]).all()
    held = fit_data_from_catalog(
        cat, holdout_runs=["r0"], holdout_llms=["llm-b"], exclude_gpus=["H100-SXM5-80GB"], progress=False
    ).ds
    assert "r0" not in held[D.RUN].values and "llm-b" not in held[D.LLM].values
    assert "H100-SXM5-80GB" not in held[D.GPU_MODEL].values
    assert held.sizes[SUMMARY] == 3
