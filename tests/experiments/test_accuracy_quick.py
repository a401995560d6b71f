"""The accuracy experiment end to end on a tiny synthetic catalog (baselines, and the model plumbing)."""

from __future__ import annotations

from wattscape.inference import evaluate as E

from experiments import _common as C
from experiments import accuracy as A
from tests.inference.test_evaluate import standin_generator


def test_baselines_only_writes_headed_results(tiny, tmp_path, capsys):
    assert A.main(["--quick", "--baselines-only", "--out", str(tmp_path), "--periods", "1", "5"]) == 0
    md = (tmp_path / "accuracy.md").read_text()
    assert "Command: `python -m experiments.accuracy --quick --baselines-only" in md
    assert "wattscape " in md and "| splitwise |" in md
    lines = (tmp_path / "accuracy.csv").read_text().splitlines()
    assert lines[0].startswith("# command: python -m experiments.accuracy")
    assert lines[1].startswith("# wattscape ")
    table = C.read_result(tmp_path / "accuracy.csv")
    assert set(table["method"]) == set(A.METHODS_BASELINE)
    assert table["run_id"].nunique() == A.QUICK_RUNS
    assert set(table["period_s"]) == {1.0, 5.0}


def test_model_leave_one_run_out_plumbing(tiny, tmp_path, monkeypatch):
    fitted = []

    class Fitted:
        def __init__(self, holdout):
            self.fitted_run_ids = [r for r in tiny.index["run_id"] if r != holdout]

    def fake_fit(catalog, holdout, *, mode, seed, summaries=None, cache=None):
        fitted.append(holdout)
        return Fitted(holdout)

    monkeypatch.setattr(A, "fit_holdout", fake_fit)
    monkeypatch.setattr(E, "default_generator", lambda model, drive="open": standin_generator)
    assert A.main(["--runs", "pcie-7b", "sxm-7b-a", "--draws", "8", "--out", str(tmp_path)]) == 0
    assert fitted == ["pcie-7b", "sxm-7b-a"]  # one cold fit per held-out run
    table = C.read_result(tmp_path / "accuracy.csv")
    model = table[table["method"] == "model"]
    assert len(model) == 2 * 2  # runs x periods (1 s, 30 s)
    assert model["energy_q50_j"].notna().all()
    assert "model not scored" not in (tmp_path / "accuracy.md").read_text()


def test_a_leaking_fit_is_caught(tiny, tmp_path, monkeypatch):
    class Leaky:
        fitted_run_ids = tuple(tiny.index["run_id"])

    monkeypatch.setattr(A, "fit_holdout", lambda *a, **k: Leaky())
    monkeypatch.setattr(E, "default_generator", lambda model, drive="open": standin_generator)
    A.main(["--runs", "pcie-7b", "--draws", "4", "--out", str(tmp_path)])
    md = (tmp_path / "accuracy.md").read_text()
    assert "model not scored: SeenRunsError" in md


def test_acceptance_table_reads_the_medians():
    import pandas as pd

    rows = []
    for rid, (m_err, m_acf, t_err) in {"a": (1.0, 0.99, 20.0), "b": (2.0, 0.97, 30.0)}.items():
        rows += [
            {"run_id": rid, "method": "model", "period_s": 1.0, "energy_error_pct": m_err, "acf_r2": m_acf},
            {"run_id": rid, "method": "tdp", "period_s": 1.0, "energy_error_pct": t_err, "acf_r2": -5.0},
        ]
    text = A.acceptance(pd.DataFrame(rows))
    assert "| median |energy error| ≤ 3 % | 1.50 % | yes |" in text
    assert "| median ACF R² ≥ 0.96 | 0.980 | yes |" in text
    assert "NO" not in text


def test_package_replay_follows_the_params():
    import numpy as np
    from wattscape.generation.replay import replay_params
    from wattscape.models import dims as D
    from wattscape.models.params import example_config_params

    from tests.inference.synthetic_runs import make_run

    run, req = make_run("a", n_gpus=2, duration_s=60.0, n_requests=3)
    params = example_config_params(20, states=D.STATES_ACTIVE, tdp_w=400.0, n_gpus=2, tensor_parallel=1)
    y = replay_params(params, run, req, seed=0)
    assert y.dims == (D.DRAW, D.TIME) and y.shape == (20, run.sizes[D.TIME])
    assert np.isfinite(y.values).all() and (y.values >= 0).all()
    # the first logged request starts after a 6 s lead-in: idle (12 % of TDP per GPU) until then
    idle = float(y.isel({D.TIME: slice(0, 50)}).mean())
    assert 2 * 0.12 * 400 * 0.8 < idle < 2 * 0.12 * 400 * 1.2
    assert float(y.max()) > 2 * 0.5 * 400  # active levels near 60 % of TDP per GPU
