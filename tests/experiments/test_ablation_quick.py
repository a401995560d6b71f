"""experiments.ablation: the variants' transforms, the generic no-pooling overrides, the quick run."""

from __future__ import annotations

import numpy as np
from wattscape.models import dims as D
from wattscape.models.params import example_config_params

from experiments import _common as C
from experiments import ablation as A
from tests.experiments._fakes import fake_fit_fold
from tests.inference.synthetic_runs import make_run


def _params(n=6):
    return example_config_params(n, states=D.STATES_ACTIVE, tdp_w=400.0, n_gpus=1, tensor_parallel=1)


def test_no_pooling_overrides_replace_every_learnt_sigma():
    from pymc_extras.prior import Prior
    from wattscape.models.hierarchical import PowerModel

    base = PowerModel().model_config
    pooled = {
        k for k, v in base.items() if isinstance(v, Prior) and isinstance(v.parameters.get("sigma"), Prior)
    }
    over = A.no_pooling_overrides(0.7)
    assert pooled and set(over) == pooled
    for key, prior in over.items():
        assert prior.parameters["sigma"] == 0.7
        assert prior.dims == base[key].dims and prior.distribution == base[key].distribution
    model = PowerModel(model_config=over)  # accepted as overrides
    assert model.id != PowerModel().id
    # generic: a made-up configuration with one pooled and one fixed prior
    cfg = {"a": Prior("Normal", mu=0, sigma=Prior("HalfNormal", sigma=1.0), dims=("x",)),
           "b": Prior("Normal", mu=0, sigma=2.0), "n": 3}
    assert set(A.no_pooling_overrides(1.0, cfg)) == {"a"}


def test_transforms_change_only_their_part():
    p = _params()
    lv = A.no_levels(p)
    for name in A.level_spread_vars(p):
        assert float(np.abs(lv[name]).max()) == 0.0
    assert {"level_scale", "level_slope"} <= set(A.level_spread_vars(p))
    np.testing.assert_array_equal(lv["level_loc"], p["level_loc"])
    ar = A.no_ar(p)
    assert float(ar["ar_coef"].max()) == 0.0
    np.testing.assert_array_equal(ar["resid_scale"], p["resid_scale"])
    nm = A.no_meter(p)
    assert nm.attrs["meter_window_s"] == 0.0 and p.attrs["meter_window_s"] > 0
    assert float(p["ar_coef"].min()) > 0  # the input is untouched


def test_meter_ablation_acts_only_when_the_kernel_spans_samples():
    p = _params().copy()
    p.attrs = {**p.attrs, "meter_window_s": 0.1}
    fine, req = make_run("fine", duration_s=20.0, period_s=0.025, n_requests=3)
    coarse, _ = make_run("coarse", duration_s=20.0, period_s=0.1, n_requests=3)
    assert A.meter_samples(p, fine) == 4 and A.meter_samples(p, coarse) == 1  # 1: the replay's no-op
    assert A.meter_samples(A.no_meter(p), fine) == 0
    full = A.transformed_generator(p)(fine, req, 4, 0).values
    # each ablation changes the trace (same draws and keys: the difference is the ablated part)
    for t in (A.no_meter, A.no_levels, A.no_ar):
        assert not np.allclose(full, A.transformed_generator(p, t)(fine, req, 4, 0).values), t.__name__
    # the meter kernel smooths: the ablated trace is rougher
    raw = A.transformed_generator(p, A.no_meter)(fine, req, 4, 0).values
    assert np.abs(np.diff(raw, axis=1)).mean() > np.abs(np.diff(full, axis=1)).mean()


def test_quick_scores_every_variant(tiny, tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(C, "fit_fold", fake_fit_fold(calls, tiny))
    assert A.main(["--quick", "--draws", "4", "--periods", "1", "--out", str(tmp_path)]) == 0
    first = C.runs_with_log(tiny)[0]
    assert sorted(c["label"] or "" for c in calls) == ["", f"{first}-nopool"]
    nopool = next(c for c in calls if c["label"])
    assert nopool["model_config"] == A.no_pooling_overrides(1.0)
    table = C.read_result(tmp_path / "ablation.csv")
    assert set(table["method"]) == set(A.VARIANTS) and set(table["run_id"]) == {first}
    for col in ("energy_error_pct", "acf_r2", "acf_mae", "ks", "energy_in_90", "window_coverage_90"):
        assert np.isfinite(table[col].to_numpy(float)).all(), col
    md = (tmp_path / "ablation.md").read_text()
    assert "Command: `python -m experiments.ablation --quick" in md
    assert "| no_levels |" in md and "Median change against `full`" in md
