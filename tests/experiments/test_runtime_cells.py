"""experiments.runtime_cells: logged against replayed runtime per workload cell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from wattscape.models import dims as D
from wattscape.models.params import example_config_params

from experiments import _common as C
from experiments import runtime_cells as R
from tests.inference.synthetic_runs import make_run


def _calls(runtimes, prompts):
    t0 = np.datetime64("2024-04-01T12:00:00", "ns")
    start = t0 + (np.arange(len(runtimes)) * 100e9).astype("timedelta64[ns]")
    return pd.DataFrame(
        {
            "start": start,
            "end": start + (np.asarray(runtimes, float) * 1e9).astype("timedelta64[ns]"),
            "prompt_tokens": prompts,
            "output_tokens": 32,
            "batch_size": 32,
        }
    )


def test_cell_table_groups_calls_by_workload_and_scores_each_cell():
    req = _calls([1.0, 3.0, 4.0], [256, 8, 256])  # cells: prompt 8 (one call), prompt 256 (two)
    # draws: replay exact, 10 % long, 10 % short; the cell means are then 1.0, 1.1, 0.9 × logged
    replayed = np.array([[1.0, 3.0, 4.0], [1.1, 3.3, 4.4], [0.9, 2.7, 3.6]])
    cells = R.cell_table(req, replayed)
    assert cells["prompt_tokens"].tolist() == [8.0, 256.0] and cells["n_calls"].tolist() == [1, 2]
    np.testing.assert_allclose(cells["runtime_logged_s"], [3.0, 2.5])
    np.testing.assert_allclose(cells["logged_ms_per_output_token"], [3000.0 / 32, 2500.0 / 32])
    np.testing.assert_allclose(cells["time_share"], [3.0 / 8.0, 5.0 / 8.0])
    np.testing.assert_allclose(cells["runtime_q50_s"], [3.0, 2.5])
    np.testing.assert_allclose(cells["ratio"], [1.0, 1.0])
    assert cells["inside_90"].all()
    cells = R.cell_table(req, replayed * 0.5)  # every draw half the logged runtime
    np.testing.assert_allclose(cells["ratio"], [0.5, 0.5])
    assert not cells["inside_90"].any()


def test_run_row_names_the_worst_cell_and_the_time_inside():
    req = _calls([1.0, 3.0, 4.0], [256, 8, 256])
    replayed = np.array([[0.5, 3.0, 2.0], [0.5, 3.0, 2.0]])  # prompt 256 replayed at half its runtime
    cells = R.cell_table(req, replayed)
    row = R.run_row(cells, replayed, logged_total_s=8.0)
    assert row["worst_prompt"] == 256.0 and row["worst_ratio"] == pytest.approx(0.5)
    assert row["worst_time_share"] == pytest.approx(5.0 / 8.0)
    assert row["service_ratio"] == pytest.approx(5.5 / 8.0)
    assert row["cells_inside_90"] == 1 and row["time_inside_90"] == pytest.approx(3.0 / 8.0)
    assert row["n_calls"] == 3 and row["n_cells"] == 2


@pytest.mark.parametrize(
    ("replayed", "runtimes", "match"),
    [
        (np.ones((2, 2)), [1.0, 1.0, 1.0], r"\(2, 2\) do not match 3 calls"),
        (np.array([[1.0, np.nan, 1.0]]), [1.0, 1.0, 1.0], "NaN"),
        (np.ones((1, 3)), [1.0, 0.0, 1.0], "call 1: logged runtime 0.0 s is not positive"),
    ],
)
def test_cell_table_rejects_what_it_cannot_score(replayed, runtimes, match):
    with pytest.raises(ValueError, match=match):
        R.cell_table(_calls(runtimes, [8, 8, 8]), replayed)


def test_run_cells_scores_the_replay_against_the_log_without_the_warm_up_call():
    p = example_config_params(50, states=D.STATES_ACTIVE, tdp_w=400.0, n_gpus=1, tensor_parallel=1)
    run, req = make_run("a", n_requests=6, duration_s=600.0)
    req = req.assign(prompt_tokens=[64, 64, 64, 2048, 2048, 2048])
    cells, _ = R.run_cells(p, run, req, n_draws=50, seed=0)
    # the log made to say what the replay predicts: every ratio 1; then twice as long: ratio 0.5, outside
    pred = cells.set_index("prompt_tokens")["runtime_q50_s"]
    for factor, ratio, inside in ((1.0, 1.0, True), (2.0, 0.5, False)):
        secs = factor * pred.reindex(req["prompt_tokens"].astype(float)).to_numpy()
        logged = req.assign(end=req["start"] + pd.to_timedelta(secs, unit="s"))
        cells, row = R.run_cells(p, run, logged, n_draws=50, seed=0)
        np.testing.assert_allclose(cells["ratio"], ratio, rtol=1e-5)
        assert cells["inside_90"].tolist() == [inside, inside]
        assert row["n_calls"] == 5 and cells["n_calls"].tolist() == [2, 3]  # the first call left out
        assert row["service_ratio"] == pytest.approx(ratio, rel=0.05) and list(row) == list(R.COLUMNS)
    cells, row = R.run_cells(p, run, logged, n_draws=50, seed=0, skip_first=False)
    assert row["n_calls"] == 6


def test_unknown_run_is_a_key_error_naming_it_before_anything_is_written(tiny, tmp_path):
    with pytest.raises(KeyError, match="no-such-run"):
        R.main(["--runs", "no-such-run", "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_a_missing_posterior_is_named(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.nc"):
        R.main(["--posterior", str(tmp_path / "nope.nc"), "--out", str(tmp_path)])
    assert C.runs_with_log(tiny)


def test_a_call_without_runtime_is_named_by_its_log_line():
    req = _calls([1.0, 1.0, 1.0], [8, 8, 8]).assign(log_line=[4, 5, 6])
    req.loc[2, "end"] = req.loc[2, "start"] - pd.Timedelta(seconds=1)  # ends before it starts
    with pytest.raises(ValueError, match=r"call 2 \(log line 6\): logged runtime -1.0 s"):
        R.cell_table(req, np.ones((1, 3)))
