"""Tests of the naive baselines (TDP, mean power, Splitwise per phase, static replay)."""

from __future__ import annotations

import numpy as np
import pytest
from wattscape.inference import baselines as B
from wattscape.inference import metrics as M
from wattscape.models import dims as D

from tests.inference.synthetic_runs import make_run, tiny_catalog


def test_tdp_uses_the_exact_card():
    sxm, _ = make_run("a", gpu_model="A100-SXM4-40GB", n_gpus=2)
    pcie, _ = make_run("b", gpu_model="A100-PCIe-40GB")
    assert float(B.tdp_baseline(sxm)[0]) == 800.0
    assert float(B.tdp_baseline(pcie)[0]) == 250.0
    y = B.tdp_baseline(pcie, non_gpu_w=100.0)
    assert y.dims == (D.TIME,) and y.sizes[D.TIME] == pcie.sizes[D.TIME]
    assert float(y[0]) == 350.0 and y.attrs[D.UNITS] == D.WATT


def test_mean_pools_nearest_group_and_never_uses_the_scored_run():
    cat = tiny_catalog()
    training = B.TrainingSet.from_catalog(cat)
    run = cat.run("sxm-7b-a")
    y = B.mean_power_baseline(run, training)
    assert y.attrs["pool"] == "configuration"
    assert y.attrs["pool_runs"] == "sxm-7b-b"  # the scored run is left out
    other = training.runs[training.run_ids.index("sxm-7b-b")]
    assert float(y[0]) == pytest.approx(other.mean_w)
    # PCIe run alone on its card: falls back to the generation (ampere: all others)
    y2 = B.mean_power_baseline(cat.run("pcie-7b"), training)
    assert y2.attrs["pool"] == "generation"
    # multi-GPU run: same card but different n_gpus -> "card"; the constant is per GPU x 4
    y4 = B.mean_power_baseline(cat.run("sxm-70b-4"), training)
    assert y4.attrs["pool"] == "card"
    per_gpu = np.mean([r.mean_w for r in training.runs if r.run_id.startswith("sxm-7b")])
    assert float(y4[0]) == pytest.approx(4 * per_gpu, rel=1e-6)


def test_mean_of_identical_training_run_scores_small_energy_error():
    a, _ = make_run("a", seed=1)
    b, _ = make_run("b", seed=1)  # the same trace under another id
    y = B.mean_power_baseline(a, B.TrainingSet.from_datasets([a, b]))
    r = M.score(a[D.POWER], y)
    assert r["energy_error_pct"] < 1.0
    assert r["ks"] > 0.3  # a constant has the wrong distribution


def test_splitwise_scaling_and_timeline():
    w = B.splitwise_watts("A100-SXM4-80GB")
    assert (w["idle"], w["prompt"], w["token"]) == (63.0, 400.0, 250.0)
    w = B.splitwise_watts("A100-PCIe-40GB")
    assert w["token"] == pytest.approx(250 * 250 / 400)
    w = B.splitwise_watts("H100-SXM5-80GB")
    assert (w["idle"], w["prompt"], w["token"]) == (75.0, 700.0, 380.0)
    run, req = make_run("a", gpu_model="A100-SXM4-40GB", n_gpus=2)
    y = B.splitwise_baseline(run, req)
    active = run[D.STATE_VAR].values == D.STATE_CODES[D.ACTIVE]
    # the request table reproduces the active samples of the synthetic run
    assert abs(y.attrs["active_fraction"] - active.mean()) < 0.01
    vals = np.unique(np.round(y.values, 6))
    np.testing.assert_allclose(vals, [2 * 63.0, 2 * 250.0])
    y_mix = B.splitwise_baseline(run, req, active_prompt_share=0.5)
    assert y_mix.values.max() == pytest.approx(2 * 325.0)
    # an explicit phase timeline
    phases = np.full(run.sizes[D.TIME], D.STATE_CODES[D.PREFILL], dtype=np.int8)
    assert B.splitwise_baseline(run, phases=phases).values[0] == pytest.approx(800.0)


def test_phases_from_requests_fills_missing_end():
    run, req = make_run("a", n_requests=3)
    req = req.copy()
    req["end"] = np.datetime64("NaT")
    codes = B.phases_from_requests(run[D.TIME].values, req)
    first = np.searchsorted(run[D.TIME].values, req["start"].to_numpy(dtype="datetime64[ns]")[0])
    assert (codes[:first] == D.STATE_CODES[D.IDLE]).all()
    assert (codes[first:] == D.STATE_CODES[D.ACTIVE]).all()


def test_replay_picks_similar_run_and_tiles():
    cat = tiny_catalog()
    training = B.TrainingSet.from_catalog(cat)
    assert B.most_similar_run(cat.run("sxm-7b-a"), training).run_id == "sxm-7b-b"
    assert B.most_similar_run(cat.run("sxm-70b-4"), training).gpu_model == "A100-SXM4-40GB"
    short, _ = make_run("short", duration_s=10.0, active_w=200)
    long_, _ = make_run("long", duration_s=35.0)
    y = B.replay_baseline(long_, B.TrainingSet.from_datasets([short]))
    assert y.sizes[D.TIME] == long_.sizes[D.TIME]
    src = short[D.POWER].values[0]
    np.testing.assert_allclose(y.values[:100], src, rtol=1e-5)
    np.testing.assert_allclose(y.values[100:200], src, rtol=1e-5)  # tiled
    assert y.attrs["source_run"] == "short"


def test_dispatch_and_errors():
    run, req = make_run("a")
    for m in ("tdp", "splitwise"):
        assert B.baseline(m, run, req).sizes[D.TIME] == run.sizes[D.TIME]
    with pytest.raises(ValueError, match="training set"):
        B.baseline("mean", run, req)
    with pytest.raises(ValueError, match="unknown baseline"):
        B.baseline("nope", run, req)
    with pytest.raises(ValueError, match="no training run"):
        B.mean_power_baseline(run, B.TrainingSet.from_datasets([run]))


def test_workload_window_cuts_to_logged_requests():
    run, req = make_run("a", duration_s=60.0, n_requests=4)
    cut = B.workload_window(run, req)
    t = cut[D.TIME].values
    assert t[0] >= req["start"].min() and t[-1] <= req["end"].max()
    assert cut.sizes[D.TIME] < run.sizes[D.TIME]
    assert cut.attrs["window"] == "workload" and cut.attrs["run_id"] == "a"
    assert B.workload_window(run, req.iloc[:0]) is run
    # training runs are cut the same way by default
    cat = tiny_catalog()
    full = B.TrainingSet.from_catalog(cat, ["pcie-7b"], window="run").runs[0]
    work = B.TrainingSet.from_catalog(cat, ["pcie-7b"]).runs[0]
    assert work.duration_s < full.duration_s and work.mean_w > full.mean_w  # idle lead-in left out
