"""experiments.level_shape: the two-level prefill-share line, call levels, and one run end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from wattscape.models import dims as D
from wattscape.models.params import example_config_params

from experiments import _common as C
from experiments import level_shape as L
from tests.inference.synthetic_runs import make_run


def test_two_level_fit_recovers_the_phase_levels_of_an_exact_mix():
    s = np.linspace(0.0, 0.9, 10)
    fit = L.two_level_fit(s, 100.0 + 200.0 * s)
    assert fit["p_dec"] == pytest.approx(100.0) and fit["p_pre"] == pytest.approx(300.0)
    assert fit["r2"] == pytest.approx(1.0) and fit["rmse"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("share", "level", "match"),
    [
        ([0.1, 0.1, 0.1], [1.0, 2.0, 3.0], "do not vary"),
        ([0.1, 0.5, 1.2], [1.0, 2.0, 3.0], r"in \[0, 1\]"),
        ([0.1, np.nan, 0.3], [1.0, 2.0, 3.0], "finite"),
        ([0.1, 0.2], [1.0, 2.0], "three or more"),
    ],
)
def test_two_level_fit_rejects_what_identifies_no_line(share, level, match):
    with pytest.raises(ValueError, match=match):
        L.two_level_fit(share, level)


def test_fit_quality_is_r2_about_the_measured_mean_and_rmse():
    r2, rmse = L.fit_quality([1.0, 2.0, 5.0], [1.0, 3.0, 5.0])
    assert r2 == pytest.approx(1 - 1 / 8) and rmse == pytest.approx(np.sqrt(1 / 3))
    with pytest.raises(ValueError, match="two or more"):
        L.fit_quality([1.0], [1.0])


def _params():
    return example_config_params(20, states=D.STATES_ACTIVE, tdp_w=400.0, n_gpus=1, tensor_parallel=1)


def test_model_levels_on_the_tangent_are_the_weighted_components_at_the_workload():
    p = _params()
    _, req = make_run("a", n_requests=4)
    req = req.assign(batch_size=[32, 32, 64, 128])  # log2 batch 5 (the reference), 5, 6, 7
    got = L.model_levels(p, req)
    act = p.sel({D.STATE: D.ACTIVE})
    at_ref = (act["level_loc"] * act["level_weight"]).sum(D.COMPONENT)
    slope = float(act["level_slope"].sel({D.COVARIATE: D.COVARIATES[0]}).median())  # batch slope, W
    # context and output slopes are zero in the example; the batch slope is the same in every draw
    np.testing.assert_allclose(got, float(at_ref.median()) + slope * np.array([0, 0, 1, 2]), rtol=1e-6)


def test_run_shape_recovers_the_phase_levels_a_run_was_made_with():
    p = _params()
    run, req = make_run("a", n_requests=6, duration_s=120.0)
    req = req.assign(prompt_tokens=[8, 64, 256, 1024, 2048, 4096])
    s = L.prefill_shares(p, run, req)
    assert np.all(np.diff(s) > 0) and 0 < s[0] < s[-1] < 1  # more prompt, more of the call is prefill
    # measured power: 120 W per GPU in decode, 370 W in prefill, mixed by each call's share
    t = run[D.TIME].values
    power = np.full(t.size, 55.0)
    for k, (a, b) in enumerate(zip(req["start"].to_numpy(), req["end"].to_numpy(), strict=True)):
        power[(t >= a) & (t < b)] = 120.0 + 250.0 * s[k]
    run[D.POWER][:] = power[None, :]
    calls, row = L.run_shape(p, run, req, n_draws=20, seed=0)
    assert row["p_dec_w"] == pytest.approx(120.0, abs=0.5) and row["p_pre_w"] == pytest.approx(370.0, abs=0.5)
    assert row["share_r2"] > 0.9999 and row["n_calls"] == 6 and row["tdp_w"] == 400.0  # A100-SXM4-40GB
    assert row["p_pre_frac"] == pytest.approx(370.0 / 400.0, abs=0.01)
    np.testing.assert_allclose(calls["measured_w"], 120.0 + 250.0 * s, rtol=1e-6)
    np.testing.assert_allclose(calls["share_fit_w"], calls["measured_w"], atol=0.5)
    assert np.isfinite(row["model_r2"]) and list(row) == list(L.COLUMNS)
    assert set(calls["gpu_model"]) == {"A100-SXM4-40GB"} and set(calls["n_gpus"]) == {row["n_gpus"]}


def test_call_levels_ignore_calls_without_bounds_or_samples():
    run, req = make_run("a", n_requests=3)
    req.loc[1, "end"] = req.loc[1, "start"]  # no sample inside
    req.loc[2, "start"] = None
    got = L.call_levels(run, req)
    assert np.isfinite(got[0]) and np.isnan(got[1:]).all()


def test_unknown_run_is_a_key_error_naming_it_before_anything_is_written(tiny, tmp_path):
    with pytest.raises(KeyError, match="no-such-run"):
        L.main(["--runs", "no-such-run", "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_a_missing_posterior_is_named(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.nc"):
        L.main(["--posterior", str(tmp_path / "nope.nc"), "--out", str(tmp_path)])
    assert C.runs_with_log(tiny)  # the catalog was there: the posterior was what failed


def test_the_reading_flags_prefill_levels_extrapolated_from_narrow_shares():
    table = pd.DataFrame(
        {"share_min": [0.0, 0.05, 0.1], "share_max": [0.05, 0.6, 0.15], "p_pre_w": [-400.0, 500.0, 900.0]}
    )
    text = L.narrow_share_reading(table)
    assert text.startswith("In 2 of 3 runs") and "(1 of them put it below zero)" in text
    assert L.narrow_share_reading(table.iloc[[1]]) == ""  # a wide span needs no warning
