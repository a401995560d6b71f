"""experiments.acf_ceiling: the measured ACF against the model's own draw-to-draw spread."""

from __future__ import annotations

import numpy as np
import pytest
from wattscape.models import dims as D
from wattscape.models.params import example_config_params

from experiments import _common as C
from experiments import acf_ceiling as A
from tests.experiments._fakes import FakeModel, fake_fit_fold
from tests.inference.synthetic_runs import make_run


def _params():
    return example_config_params(30, states=D.STATES_ACTIVE, tdp_w=400.0, n_gpus=1, tensor_parallel=1)


def test_run_row_scores_the_replay_and_its_ceilings():
    run, req = make_run("a", n_requests=12, duration_s=600.0)
    row = A.run_row(_params(), run, req, n_draws=20, seed=0, param_draws=2, process_draws=5)
    assert list(row) == list(A.COLUMNS)
    assert row["n_draws"] == 20 and row["n_windows"] > 60
    for col in ("acf_r2", "acf_r2_median_acf", "ceiling", "ceiling_process"):
        assert np.isfinite(row[col]) and row[col] <= 1.0
    assert row["acf_ss"] > 0
    # the ceiling is the draws against each other: scoring one of the draws as the measured run ...
    from wattscape.generation.replay import replay_run
    from wattscape.inference import metrics as M

    y = M.prepare_series(replay_run(_params(), run, req, n_draws=20, seed=0), period_s=1.0, n_gpus=1)
    ys = y.transpose(D.DRAW, D.TIME).values[:, : row["n_windows"]]
    assert row["ceiling"] == pytest.approx(M.acf_r2_ceiling(ys))
    # ... and the measured run against itself needs no model: its halves, then its 150 s stretches
    x = M.prepare_series(run[D.POWER], period_s=1.0, n_gpus=1).values[: row["n_windows"]]
    assert row["measured_halves"] == pytest.approx(M.acf_r2_between_parts(x, x.size // 2))
    assert row["measured_parts"] == pytest.approx(M.acf_r2_between_parts(x, 150))


def test_a_run_too_short_to_split_has_no_measured_self_agreement():
    run, req = make_run("a", n_requests=6, duration_s=200.0)
    row = A.run_row(_params(), run, req, n_draws=4, seed=0, param_draws=1, process_draws=2)
    assert row["n_windows"] < 2 * A.MIN_HALF
    assert np.isnan(row["measured_halves"]) and np.isnan(row["measured_parts"])
    assert np.isfinite(row["acf_r2"])  # the model's scores are there all the same


def test_run_row_refuses_too_few_draws():
    run, req = make_run("a", n_requests=4, duration_s=200.0)
    with pytest.raises(ValueError, match="at least 2 draws"):
        A.run_row(_params(), run, req, n_draws=1, seed=0, param_draws=1, process_draws=5)


def test_main_uses_accuracy_folds_and_writes_both_files(tiny, tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(C, "fit_fold", fake_fit_fold(calls, tiny))
    assert A.main(["--quick", "--out", str(tmp_path)]) == 0
    table = C.read_result(tmp_path / "acf_ceiling.csv")
    assert list(table.columns) == list(A.COLUMNS) and len(table) == len(calls) >= 1
    order = {r: k for k, r in enumerate(C.runs_with_log(tiny))}
    assert [c["seed"] for c in calls] == [order[r] for r in table["run_id"]]  # accuracy's fold seeds
    assert all(c["holdout"] == [r] for c, r in zip(calls, table["run_id"], strict=True))
    md = (tmp_path / "acf_ceiling.md").read_text()
    assert md.startswith("# acf_ceiling\n\nCommand: `python -m experiments.acf_ceiling --quick")
    assert "| **median** |" in md and "ceiling" in md and "measured: half vs half" in md


def test_unknown_run_is_named_before_anything_is_written(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(C, "fit_fold", lambda *a, **k: FakeModel([]))
    with pytest.raises(KeyError, match="no-such-run"):
        A.main(["--runs", "no-such-run", "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_a_leaking_fold_is_refused(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(C, "fit_fold", lambda catalog, held, **k: FakeModel(list(held)))
    with pytest.raises(ValueError, match="fitted on 1 of the runs"):
        A.main(["--quick", "--out", str(tmp_path)])
