"""experiments.calibration on a tiny synthetic catalog with stand-in fits (the real replay and scoring)."""

from __future__ import annotations

import numpy as np
import pytest

from experiments import _common as C
from experiments import calibration as K
from tests.experiments._fakes import fake_fit_fold


def test_quick_writes_pit_and_coverage(tiny, tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(C, "fit_fold", fake_fit_fold(calls, tiny))
    assert K.main(["--quick", "--draws", "5", "--out", str(tmp_path)]) == 0
    # one cold fit per held-out run, the run itself left out, seeds as experiments.accuracy's
    assert [c["holdout"] for c in calls] == [[r] for r in C.runs_with_log(tiny)[: K.QUICK_RUNS]]
    assert [c["seed"] for c in calls] == list(range(K.QUICK_RUNS))
    table = C.read_result(tmp_path / "calibration.csv")
    assert list(table.columns) == list(K.COLUMNS)
    assert len(table) == K.QUICK_RUNS * 2 and set(table["period_s"]) == {1.0, 30.0}
    assert (table["method"] == "model").all() and (table["n_draws"] == 5).all()
    num = table[list(K.COLUMNS[6:])].to_numpy(float)
    assert np.isfinite(num).all()
    assert table["energy_pit"].between(0, 1).all()
    assert (table["energy_q05_j"] <= table["energy_q50_j"]).all()
    assert (table["energy_q50_j"] <= table["energy_q95_j"]).all()
    md = (tmp_path / "calibration.md").read_text()
    assert "Command: `python -m experiments.calibration --quick" in md
    assert "## PIT of the measured run energy" in md and "| 90 % |" in md


def test_calibration_rows_match_the_pit_definition():
    from wattscape.inference import metrics as M
    from wattscape.models import dims as D

    from tests.inference.synthetic_runs import make_run

    run, _ = make_run("a", duration_s=20.0)
    total = run[D.POWER].sum(D.GPU)
    # 9 draws: the measured trace scaled by 0.8 … 1.2: the measured energy sits in the middle
    scales = np.linspace(0.8, 1.2, 9)
    y = (total.expand_dims({D.DRAW: 9}) * scales[:, None]).assign_coords({D.DRAW: np.arange(9)})
    (row,) = K.calibration_rows(run, y, periods_s=[1.0])
    assert row["energy_pit"] == pytest.approx(0.5)
    assert row["energy_in_50"] == 1.0 and row["energy_in_90"] == 1.0
    assert row["energy_q50_j"] == pytest.approx(row["energy_measured_j"])
    assert row["energy_error_pct"] == pytest.approx(0.0, abs=1e-9)
    x = M.prepare_series(run[D.POWER], period_s=1.0)
    assert row["n_windows"] == x.sizes[D.TIME]
    # every draw below the measurement: PIT 1, outside both intervals
    (low,) = K.calibration_rows(run, y * 0.5, periods_s=[1.0])
    assert low["energy_pit"] == 1.0 and low["energy_in_90"] == 0.0 and low["window_coverage_90"] < 0.2


def test_wilson_interval():
    lo, hi = K.wilson(5, 10)
    assert lo < 0.5 < hi and 0 < lo and hi < 1
    assert np.isnan(K.wilson(0, 0)[0])


def test_paper_figure_reads_the_csv(tiny, tmp_path, monkeypatch):
    from paper_figures import calibration as F

    monkeypatch.setattr(C, "fit_fold", fake_fit_fold([], tiny))
    assert K.main(["--quick", "--draws", "5", "--out", str(tmp_path)]) == 0
    assert F.main(["--results", str(tmp_path), "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig" / "calibration.png").stat().st_size > 0
