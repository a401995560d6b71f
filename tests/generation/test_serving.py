"""Serving simulators (wattscape.generation.serving)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from wattscape.generation import serving as V
from wattscape.generation import traffic as T
from wattscape.generation.simulate import DECODE_I, IDLE_I, PREFILL_I, emission_params, take_draw
from wattscape.models.params import example_config_params

KW = dict(prefill_s_per_token=1e-3, prefill_overhead_s=0.05, itl_base_s=0.02, itl_per_seq_s=0.001)


def test_events_single_request_known_answer():
    st, state, _nb, _, _ = V.serve_events([1.0], [100], [50], [1], batch_cap=8, horizon=10.0, **KW)
    np.testing.assert_allclose(st[:4], [0.0, 1.0, 1.15, 1.15 + 50 * 0.021])
    np.testing.assert_array_equal(state[:4], [IDLE_I, PREFILL_I, DECODE_I, IDLE_I])


def test_events_batch_cap_and_contiguity():
    arr = np.linspace(0, 1, 20)
    st, state, nb, _, _ = V.serve_events(
        arr, np.full(20, 10), np.full(20, 200), np.ones(20), batch_cap=4, horizon=100.0, **KW
    )
    assert nb.max() <= 4 and np.all(np.diff(st) > 0)
    assert (state == PREFILL_I).sum() == 20


def test_vectorised_matches_events_state_shares():
    """Moderate load: the vectorised model's time shares agree with the exact event simulation."""
    prm = example_config_params(1, seed=0)
    for name, v in {
        "prefill_s_per_token": 1e-4,
        "prefill_overhead_s": 0.02,
        "itl_base_s": 0.025,
        "itl_per_seq_s": 2e-4,
    }.items():
        prm[name][:] = v
    prm["dwell_sigma"][:] = 0.0
    p = take_draw(emission_params(prm), 0)
    horizon = 4000.0
    arr = T.poisson_arrivals(T.constant_profile(0.15), horizon, seed=4)
    pr, ou = T.AZURE_CONV_TOKENS.sample(len(arr), seed=5)
    st, sa, *_ = V.serve_events(
        arr,
        pr,
        ou,
        np.ones(len(arr)),
        batch_cap=64,
        horizon=horizon,
        prefill_s_per_token=1e-4,
        prefill_overhead_s=0.02,
        itl_base_s=0.025,
        itl_per_seq_s=2e-4,
    )
    ref = V.state_shares(st, sa, 0.0, horizon)
    f32 = lambda x: jnp.asarray(np.asarray(x, np.float32)[:, None])  # noqa: E731
    start, state, _, _ = V.serve_vectorised(
        jax.random.key(0),
        p,
        f32(arr),
        f32(pr),
        f32(ou),
        f32(np.ones(len(arr))),
        jnp.ones(3),
        batch_cap=64,
        horizon=horizon,
    )
    got = V.state_shares(np.asarray(start)[:, 0], np.asarray(state)[:, 0], 0.0, horizon)
    assert ref["idle"] > 0.2 and ref["decode"] > 0.2
    for k in ref:
        assert abs(got[k] - ref[k]) < 0.03, (k, got, ref)


def test_assignment_policies():
    tab = T.request_table(np.arange(12) * 0.1, T.AZURE_CONV_TOKENS)
    np.testing.assert_array_equal(V.assign_requests(tab, 3, "round_robin"), np.arange(12) % 3)
    ll = V.assign_requests(tab, 3, "least_loaded", mean_service_s=0.25)
    assert set(ll) == {0, 1, 2}
    spread = pd.Series(ll).value_counts()
    assert spread.max() - spread.min() <= 1
    with pytest.raises(ValueError, match="unknown assignment policy"):
        V.assign_requests(tab, 3, "fastest")
    arr, _pr, _ou, _bs = V.requests_to_groups(tab, np.arange(12) % 3, 3, tab["start"].min())
    assert arr.shape == (4, 3) and np.isfinite(arr).all()


def test_vectorised_batch_cap_delays_admission():
    prm = example_config_params(1, seed=0)
    prm["dwell_sigma"][:] = 0.0
    p = take_draw(emission_params(prm), 0)
    arr = jnp.linspace(0.0, 0.1, 12, dtype=jnp.float32)[:, None]
    ones = jnp.ones_like(arr)
    args = (jax.random.key(0), p, arr, ones * 10, ones * 200, ones, jnp.ones(3))
    s_cap, _, _, occ = V.serve_requests(*args, batch_cap=4, horizon=100.0)
    s_free, *_ = V.serve_requests(*args, batch_cap=64, horizon=100.0)
    assert float(occ.max()) <= 4
    decode_s = 200 * float(p.itl_base_s)
    assert float(s_cap[4, 0]) >= decode_s  # the 5th request waits for a slot
    assert float(s_free[4, 0]) < 1.0  # without the cap it is admitted at once
