"""Known-answer and equivalence tests of the JAX emission kernels (wattscape.generation.simulate)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from wattscape.generation import simulate as S
from wattscape.models.params import example_config_params


@pytest.fixture(scope="module")
def p():
    return S.take_draw(S.emission_params(example_config_params(4, seed=3)), 0)


def test_fast_normal_moments_and_keys():
    z = np.asarray(S.fast_normal(jax.random.key(0), (400_000,)))
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs((z**4).mean() - 3) < 0.05
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 0.01
    assert np.isfinite(z).all()
    same = np.asarray(S.fast_normal(jax.random.key(0), (400_000,)))
    other = np.asarray(S.fast_normal(jax.random.key(1), (400_000,)))
    np.testing.assert_array_equal(z, same)
    assert abs(np.corrcoef(z, other)[0, 1]) < 0.01
    u = np.asarray(S.fast_uniform(jax.random.key(2), (200_000,)))
    assert u.min() > 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.005


def test_ar1_filter_matches_recursion():
    e = np.random.default_rng(0).normal(size=(1000, 3)).astype(np.float32)
    y = np.asarray(S.ar1_filter(jnp.asarray(e), 0.7))
    ref = np.zeros_like(e)
    acc = np.zeros(3)
    for t in range(len(e)):
        acc = 0.7 * acc + e[t]
        ref[t] = acc
    np.testing.assert_allclose(y, ref, atol=1e-4)


def test_scatter_steps_exact_bin_means():
    rng = np.random.default_rng(1)
    dt, n_steps = 0.5, 40
    starts = np.concatenate([[0.0], np.sort(rng.uniform(0, n_steps * dt, 30))]).astype(np.float32)
    vals = rng.normal(100, 20, len(starts)).astype(np.float32)
    grid = np.asarray(
        S.scatter_steps(
            jnp.asarray(starts)[:, None],
            jnp.asarray(vals)[:, None, None],
            jnp.zeros(1, jnp.int32),
            1,
            n_steps,
            dt,
        )
    )[:, 0, 0]
    fine = np.linspace(0, n_steps * dt, n_steps * 2000, endpoint=False) + dt / 4000
    level = vals[np.searchsorted(starts, fine, side="right") - 1]
    np.testing.assert_allclose(grid, level.reshape(n_steps, -1).mean(1), rtol=2e-3)
    # energy of the step function is kept exactly
    ends = np.append(starts[1:], n_steps * dt)
    np.testing.assert_allclose(grid.sum() * dt, (vals * (ends - starts)).sum(), rtol=1e-5)


def test_block_var_factor_matches_simulation():
    phi, m = 0.6, 10
    rng = np.random.default_rng(2)
    e = rng.normal(size=(200_000,)) * np.sqrt(1 - phi**2)
    x = np.asarray(S.ar1_filter(jnp.asarray(e, jnp.float32)[:, None], phi))[:, 0]
    means = x[: len(x) // m * m].reshape(-1, m).mean(1)
    assert abs(means.var() / float(S.block_var_factor(jnp.float32(phi), m)) - 1) < 0.05


def test_naive_markov_scan_runs(p):
    out = S.naive_markov_scan(
        jax.random.key(0),
        p,
        jnp.array([5.0, 0.2, 3.0]),
        jnp.array([[0, 1, 0], [0, 0, 1], [0.5, 0.5, 0]], jnp.float32),
        n_gpus=4,
        n_steps=500,
        dt=0.1,
    )
    out = np.asarray(out)
    assert out.shape == (4, 500) and np.isfinite(out).all()
    assert 0.05 * 700 < out.mean() < 700


def test_cap_clips_levels_and_stretches_time(p):
    stretch = np.asarray(S.cap_stretch(p, 400.0))
    means = np.asarray(S.mean_levels(p))
    np.testing.assert_allclose(stretch, np.maximum(1, means / 400.0), rtol=1e-6)
    assert stretch[S.PREFILL_I] > 1 and stretch[S.IDLE_I] == 1
    lv = S.gpu_levels(
        p, jax.random.key(0), jnp.full((1000, 1), S.PREFILL_I), jnp.zeros((1000, 1, 3)), 8, 400.0
    )
    assert float(jnp.max(lv)) <= 400.0


def one_component_params():
    """Parameter draws with one mixture component, wide segment levels and a small residual."""
    prm = example_config_params(2, seed=5)
    prm["level_weight"][:] = np.array([1.0, 0.0])
    prm["level_scale"][:] = 40.0
    prm["resid_scale"][:] = 1.0
    return prm


@pytest.fixture(scope="module")
def one_component():
    """One draw of :func:`one_component_params`."""
    return S.take_draw(S.emission_params(one_component_params()), 0)


def test_tp_group_shares_one_level_so_the_sum_spreads_n_sigma(one_component):
    """A TP group's GPUs share the segment level: the group sum has sd n·σ (not sqrt(n)·σ), both paths."""
    p, n = one_component, 8
    state = jnp.full((20_000, 1), S.PREFILL_I)
    cov = jnp.broadcast_to(p.cov_ref, (20_000, 1, 3))
    summed = np.asarray(S.group_levels(p, jax.random.key(1), state, cov, jnp.full((1,), n)))[:, 0]
    per_gpu = np.asarray(S.gpu_levels(p, jax.random.key(2), state, cov, n))[:, 0]  # (segments, n)
    np.testing.assert_array_equal(per_gpu, per_gpu[:, :1].repeat(n, 1))  # one level per group
    for x in (summed, per_gpu.sum(1)):
        assert x.std() == pytest.approx(n * 40.0, rel=0.03)
        assert x.mean() == pytest.approx(n * float(p.loc[S.PREFILL_I, 0]), rel=0.01)


def one_request_per_group(p, n: int, g: int):
    """``g`` groups of ``n`` GPUs, each running one request (prefill over [0, 50) s, decode until 100 s) on
    a 10 s grid: the group sums of the summed path (request_grid) and of the per-GPU path, (steps, groups)."""
    s = jnp.zeros((1, g))
    f = jnp.full((1, g), 50.0)
    e = jnp.full((1, g), 100.0)
    ones = jnp.ones((1, g))
    kw = {"n_gpu": n, "n_steps": 10, "dt": 10.0}
    grid = np.asarray(
        S.request_grid(jax.random.key(3), p, s, f, e, ones, ones, ones, jnp.arange(g), n_rows=g, **kw)
    )
    gpu = np.asarray(
        S.request_gpu_power(jax.random.key(4), p, s, f, e, ones, ones, ones, ar_step_s=0.1, **kw)
    ).sum(-1)
    return grid[..., 0], gpu


def test_request_paths_agree_on_group_sums(one_component):
    """Summed path (request_grid, one row per group) = per-GPU path summed over the group, in distribution.

    Every group runs one request (prefill over [0, 50) s, decode until 100 s); the bin means of the group
    sums must have the same mean and variance across groups: n² σ² from the shared level plus the residual.
    """
    n = 4
    summed, gpu = one_request_per_group(one_component, n=n, g=3000)
    for b in (0, 7):  # a prefill bin and a decode bin
        assert gpu[b].mean() == pytest.approx(summed[b].mean(), rel=0.01)
        assert gpu[b].var() == pytest.approx(summed[b].var(), rel=0.1)
        assert summed[b].std() == pytest.approx(n * 40.0, rel=0.05)  # the level dominates (residual 1 W)


def test_updates_to_grid_under_x64():
    """A PyMC/numpyro fit turns jax_enable_x64 on for the process; the float32 grid must still take the
    float64 start levels without a dtype-promotion warning (an error under this suite's filters)."""
    with jax.enable_x64(True):
        upd = jnp.zeros((2, 3), jnp.float32)
        idx = jnp.array([0, 1], jnp.int32)
        first = jnp.stack([jnp.array([2.0, 4.0]), jnp.zeros(2), jnp.ones(2)], -1)  # float64 here
        assert first.dtype == jnp.float64
        out = S._updates_to_grid(upd, idx, first, jnp.array([0, 1], jnp.int32), n_rows=2, n_steps=3)
    np.testing.assert_allclose(np.asarray(out[..., 0]), [[2.0, 4.0]] * 3)  # the start level held
    np.testing.assert_allclose(np.asarray(out[..., 1]), [[1.0, 1.0]] * 3)
