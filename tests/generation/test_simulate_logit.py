"""Segment levels on the logit link (``models.params.LOGIT_LEVEL_VARS``) in the JAX emission kernels.

The example parameters (``example_config_params``) carry only the tangent; :func:`add_logit` adds the four
logit-link variables consistently with it (same level, sd and slope at the reference workload, bounded by
``level_max_w``), so that the two forms agree near ``covariate_ref`` and differ far from it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from wattscape.generation import replay as R
from wattscape.generation import simulate as S
from wattscape.generation.site import generate_site
from wattscape.generation.topology import parse_site
from wattscape.models import dims as D
from wattscape.models.params import example_config_params, validate_config_params

from tests.generation.test_simulate import one_component_params, one_request_per_group

PROMPT_C = D.COVARIATES.index("log2_context_tokens")


def add_logit(prm: xr.Dataset, max_frac: float = 1.05, prompt_slope_frac: float = 0.04) -> xr.Dataset:
    """``prm`` with the logit-link level variables, tangent to its linear form at the reference workload.

    ``level_max_w = max_frac · tdp``; ``level_logit_loc = logit(level_loc / level_max_w)``; sd and slope
    divided by the derivative of the link (``max_w q (1 − q)``, at each component for the sd and at the
    mixture mean for the slope).  Prefill and decode also get a prompt-tokens slope of
    ``prompt_slope_frac · tdp`` per doubling (on both forms), so that the prompt covariate matters.
    """
    prm = prm.copy(deep=True)
    tdp = float(prm.attrs["tdp_w"])
    busy = prm[D.STATE] != D.IDLE
    slope = prm["level_slope"].values
    slope[:, busy.values, PROMPT_C] = prompt_slope_frac * tdp
    prm["level_slope"].values = slope
    max_w = xr.DataArray(np.full(prm.sizes[D.DRAW], max_frac * tdp), dims=(D.DRAW,))
    q = prm["level_loc"] / max_w
    qbar = (prm["level_weight"] * q).sum(D.COMPONENT)
    prm["level_logit_loc"] = np.log(q / (1 - q)).assign_attrs({D.UNITS: "1"})
    prm["level_logit_scale"] = (prm["level_scale"] / (max_w * q * (1 - q))).assign_attrs({D.UNITS: "1"})
    prm["level_logit_slope"] = (prm["level_slope"] / (max_w * qbar * (1 - qbar))).assign_attrs({D.UNITS: "1"})
    prm["level_max_w"] = max_w.assign_attrs({D.UNITS: D.WATT})
    return validate_config_params(prm)


def closed_form(prm: xr.Dataset, state: str, log2_cov, logit: bool, draw: int = 0, n: int = 2_000_000):
    """Mean and sd (W) of one segment level of draw ``draw`` in ``state`` at covariates ``log2_cov`` (numpy
    Monte Carlo over the mixture and z, float64): logit link or tangent."""
    d = prm.isel({D.DRAW: draw}).sel({D.STATE: state})
    x = np.asarray(log2_cov, float) - np.asarray(prm.attrs["covariate_ref"], float)
    rng = np.random.default_rng(123)
    k = rng.choice(d.sizes[D.COMPONENT], size=n, p=d["level_weight"].values)
    z = rng.standard_normal(n)
    if logit:
        eta = d["level_logit_loc"].values[k] + d["level_logit_slope"].values @ x
        lv = float(d["level_max_w"]) / (1 + np.exp(-(eta + d["level_logit_scale"].values[k] * z)))
    else:
        lv = d["level_loc"].values[k] + d["level_slope"].values @ x + d["level_scale"].values[k] * z
    return lv.mean(), lv.std()


@pytest.fixture(scope="module")
def prm():
    return add_logit(example_config_params(4, seed=3))


@pytest.fixture(scope="module")
def p(prm):
    return S.take_draw(S.emission_params(prm), 0)


def _cov(n: int, log2_cov) -> jax.Array:
    return jnp.broadcast_to(jnp.asarray(log2_cov, jnp.float32), (n, 1, len(D.COVARIATES)))


def test_logit_vars_are_carried(prm, p):
    tangent = S.emission_params(example_config_params(4, seed=3))
    assert not S.has_logit(tangent) and S.has_logit(p)
    assert tangent.lg_loc.shape == (4, 3, 0) and p.lg_loc.shape == (3, 2)
    assert float(p.max_w) == pytest.approx(float(prm["level_max_w"][0]))
    # the numpy form cached by generate_site and a jitted take_draw keep the static flag
    host = S.EmissionParams(*(np.asarray(a) for a in S.emission_params(prm)))
    assert S.has_logit(jax.jit(S.take_draw)(host, np.int32(1)))


def test_logit_levels_match_closed_form_and_stay_below_max(prm, p):
    """Per-segment levels (summed path, per-GPU path and the request path) = the logit closed form."""
    n, max_w = 400_000, float(p.max_w)
    batch, prompt, output = 8.0, 100.0, 200.0
    cov = (np.log2(batch), np.log2(D.context_tokens(prompt, output)), np.log2(output))
    mean, sd = closed_form(prm, D.PREFILL, cov, logit=True)
    state = jnp.full((n, 1), S.PREFILL_I)
    summed = np.asarray(S.group_levels(p, jax.random.key(0), state, _cov(n, cov), jnp.ones((1,), jnp.int32)))
    per_gpu = np.asarray(S.gpu_levels(p, jax.random.key(1), state, _cov(n, cov), 2))[..., 0]
    occ, pr, ou = (jnp.full((n, 1), v, jnp.float32) for v in (batch, prompt, output))
    lp, ld, li, l0 = (np.asarray(x) for x in S._request_levels(jax.random.key(2), p, occ, pr, ou, None))
    for lv in (summed, per_gpu, lp):
        assert lv.mean() == pytest.approx(mean, rel=3e-3)
        assert lv.std() == pytest.approx(sd, rel=0.02)
        assert lv.max() <= max_w and lv.min() >= 0
    mean_d, sd_d = closed_form(prm, D.DECODE, cov, logit=True)
    assert ld.mean() == pytest.approx(mean_d, rel=3e-3) and ld.std() == pytest.approx(sd_d, rel=0.02)
    mean_i, _ = closed_form(prm, D.IDLE, prm.attrs["covariate_ref"], logit=True)  # idle: reference workload
    assert li.mean() == pytest.approx(mean_i, rel=3e-3) and 0 < float(l0[0, 0]) <= max_w  # l0: (1, 1)
    assert max(ld.max(), li.max()) <= max_w


def test_logit_levels_match_replay_levels(prm, p):
    """Same distribution as the workload replay's ``_levels`` (quantiles within 0.5 % of max_w)."""
    n = 200_000
    cov = (4.0, 6.0, 9.5)
    rp, _, logit = R.replay_arrays(prm)
    assert logit
    rp0 = type(rp)(*(a[0] for a in rp))
    qs = np.linspace(0.02, 0.98, 25)
    for i in (S.PREFILL_I, S.DECODE_I):
        ours = np.asarray(S.gpu_levels(p, jax.random.key(3), jnp.full((n, 1), i), _cov(n, cov), 1)).ravel()
        theirs = np.asarray(
            R._levels(rp0, jax.random.key(4), i, jnp.broadcast_to(jnp.asarray(cov), (n, 3)), True)
        )
        np.testing.assert_allclose(
            np.quantile(ours, qs), np.quantile(theirs, qs), atol=0.005 * float(p.max_w)
        )


def test_logit_differs_from_tangent_far_from_reference(prm, p):
    """8 prompt and 4 output tokens (context 10, reference 512): the tangent over-states the prefill level,
    the logit link does not; a huge batch: the tangent exceeds level_max_w, the logit link stays below.
    Fails on a tangent path."""
    n, ref = 400_000, list(prm.attrs["covariate_ref"])
    batch, prompt, output = 2.0 ** ref[0], 8.0, 4.0
    short = [ref[0], np.log2(D.context_tokens(prompt, output)), np.log2(output)]
    logit_mean, _ = closed_form(prm, D.PREFILL, short, logit=True)
    tangent_mean, _ = closed_form(prm, D.PREFILL, short, logit=False)
    assert tangent_mean > 1.1 * logit_mean  # the two forms differ here by more than the tolerance below
    occ, pr, ou = (jnp.full((n, 1), v, jnp.float32) for v in (batch, prompt, output))
    lp = np.asarray(S._request_levels(jax.random.key(5), p, occ, pr, ou, None)[0])
    lv = np.asarray(
        S.group_levels(p, jax.random.key(6), jnp.full((n, 1), S.PREFILL_I), _cov(n, short), jnp.ones(1))
    )
    for x in (lp, lv):
        assert x.mean() == pytest.approx(logit_mean, rel=3e-3)
    big = [12.0, ref[1], ref[2]]  # batch 4096
    assert closed_form(prm, D.PREFILL, big, logit=False)[0] > float(p.max_w)
    lv = np.asarray(S.gpu_levels(p, jax.random.key(7), jnp.full((n, 1), S.PREFILL_I), _cov(n, big), 1))
    assert lv.max() <= float(p.max_w)
    assert lv.mean() == pytest.approx(closed_form(prm, D.PREFILL, big, logit=True)[0], rel=3e-3)


def test_logit_mean_levels_and_cap(prm, p):
    """mean_levels is the logit mixture mean at the reference workload; the cap clips the level."""
    means = np.asarray(S.mean_levels(p))
    for i, s in enumerate(S.SIM_STATES):
        assert means[i] == pytest.approx(
            closed_form(prm, s, prm.attrs["covariate_ref"], logit=True)[0], rel=2e-3
        )
    all_draws = np.asarray(S.mean_levels(S.emission_params(prm)))
    np.testing.assert_allclose(all_draws[0], means, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(S.cap_stretch(p, 400.0)), np.maximum(1, means / 400.0), rtol=1e-6)
    jitted = jax.jit(S.cap_stretch, static_argnums=(1, 2))(p, 400.0, 1.0)  # as generate_site calls it
    np.testing.assert_allclose(np.asarray(jitted), np.maximum(1, means / 400.0), rtol=1e-6)
    n = 100_000
    state = jnp.full((n, 1), S.PREFILL_I)
    capped = np.asarray(
        S.gpu_levels(p, jax.random.key(8), state, _cov(n, prm.attrs["covariate_ref"]), 1, 400.0)
    )
    free = np.asarray(S.gpu_levels(p, jax.random.key(8), state, _cov(n, prm.attrs["covariate_ref"]), 1))
    np.testing.assert_array_equal(capped, np.minimum(free, np.float32(400.0)))
    assert (free > 400.0).mean() > 0.5


@pytest.fixture(scope="module")
def one_component():
    """One draw, one mixture component, wide segment levels and a small residual, on the logit link."""
    prm = add_logit(one_component_params())
    return prm, S.take_draw(S.emission_params(prm), 0)


def test_tp_group_shares_one_level_on_the_logit_link(one_component):
    prm, p = one_component
    n, m = 8, 20_000
    ref = prm.attrs["covariate_ref"]
    mean, sd = closed_form(prm, D.PREFILL, ref, logit=True)
    state = jnp.full((m, 1), S.PREFILL_I)
    summed = np.asarray(S.group_levels(p, jax.random.key(1), state, _cov(m, ref), jnp.full((1,), n)))[:, 0]
    per_gpu = np.asarray(S.gpu_levels(p, jax.random.key(2), state, _cov(m, ref), n))[:, 0]
    np.testing.assert_array_equal(per_gpu, per_gpu[:, :1].repeat(n, 1))
    for x in (summed, per_gpu.sum(1)):
        assert x.std() == pytest.approx(n * sd, rel=0.03)
        assert x.mean() == pytest.approx(n * mean, rel=0.01)


def test_request_paths_agree_on_group_sums_logit(one_component):
    """Mirror of the tangent path-agreement test: summed (request_grid) = per-GPU path summed over the group,
    and both match the logit closed form at the requests' covariates (batch, prompt and output of 1: mean
    context 1.5)."""
    prm, p = one_component
    n = 4
    summed, gpu = one_request_per_group(p, n=n, g=3000)
    for b, state in ((0, D.PREFILL), (7, D.DECODE)):
        mean, sd = closed_form(prm, state, (0.0, np.log2(D.context_tokens(1.0, 1.0)), 0.0), logit=True)
        assert gpu[b].mean() == pytest.approx(summed[b].mean(), rel=0.01)
        assert gpu[b].var() == pytest.approx(summed[b].var(), rel=0.1)
        assert summed[b].mean() == pytest.approx(n * mean, rel=0.01)
        assert summed[b].std() == pytest.approx(n * sd, rel=0.05)  # the level dominates (residual 1 W)


SITE = """
[site]
name = "logit"
start = "2026-01-01T00:00:00"
duration_s = 600
dt_s = 1.0
levels = ["gpu", "facility"]
draws = 1
[layout]
rows = 1
racks_per_row = 1
servers_per_rack = 1
[traffic]
kind = "poisson"
rate_per_server = 2.0
tokens = "azure_conv"
policy = "round_robin"
[[fleet]]
name = "a"
config = "a"
servers = 1
gpus_per_server = 8
tensor_parallel = 8
non_gpu_w = 800.0
"""


def test_generate_site_uses_the_logit_link():
    """generate_site carries the logit variables through its parameter caches: a link pinned near
    ``max_w · sigmoid(-3)`` (the tangent gives 12-85 % of TDP) sets every GPU's power."""
    site = parse_site(SITE, "logit.toml")
    prm = add_logit(example_config_params(2, tdp_w=700.0, n_gpus=8, tensor_parallel=8, seed=0))
    prm["level_logit_loc"][:] = -3.0
    prm["level_logit_scale"][:] = 0.01
    prm["level_logit_slope"][:] = 0.0
    level = float(prm["level_max_w"][0]) / (1 + np.exp(3.0))
    gpu = generate_site({"a": prm}, site, seed=3, progress=False)[D.GPU_POWER].values
    assert abs(gpu.mean() - level) < 3.0
    tangent = generate_site({"a": example_config_params(2, seed=0)}, site, seed=3, progress=False)
    assert tangent[D.GPU_POWER].values.mean() > level + 20.0
