"""experiments.error_split: busy masks, the busy-time / level split of the energy error, the script end to end
on a tiny synthetic catalog with stand-in fits (no fitting)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from wattscape.models import dims as D
from wattscape.models.params import example_config_params

from experiments import _common as C
from experiments import error_split as S
from tests.experiments._fakes import fake_fit_fold
from tests.inference.synthetic_runs import make_run


# --- busy masks ----------------------------------------------------------------------------------------
def test_busy_mask_counts_half_open_overlapping_intervals():
    t = np.arange(10.0)
    # [1, 3) and [2, 5) overlap; [7, 8) holds one sample; a NaN interval is ignored
    got = S.busy_mask(t, [1.0, 2.0, 7.0, np.nan], [3.0, 5.0, 8.0, 9.0])
    np.testing.assert_array_equal(np.flatnonzero(got), [1, 2, 3, 4, 7])
    # the same on datetime64 with NaT, and per draw (leading dims kept)
    t0 = np.datetime64("2024-04-01T12:00:00", "ns")
    ts = t0 + (t * 1e9).astype("timedelta64[ns]")
    s = t0 + (np.array([[1.0, 2.0, 7.0], [0.0, 0.5, 9.0]]) * 1e9).astype("timedelta64[ns]")
    e = t0 + (np.array([[3.0, 5.0, 8.0], [0.5, 1.0, 9.5]]) * 1e9).astype("timedelta64[ns]")
    s[0, 2] = np.datetime64("NaT")
    got2 = S.busy_mask(ts, s, e)
    assert got2.shape == (2, 10)
    np.testing.assert_array_equal(np.flatnonzero(got2[0]), [1, 2, 3, 4])
    np.testing.assert_array_equal(np.flatnonzero(got2[1]), [0, 9])  # [0, .5) holds 0; [.5, 1) none


def test_busy_mask_rejects_an_interval_ending_before_it_starts():
    with pytest.raises(ValueError, match="ends before it starts"):
        S.busy_mask(np.arange(5.0), [1.0, 3.0], [2.0, 2.5])


# --- the split -------------------------------------------------------------------------------------------
def test_split_of_hand_made_series_is_the_hand_computation():
    n = 100
    x = np.where(np.arange(n) < 50, 200.0, 50.0)  # busy half the time at 200 W, idle at 50 W
    bm = np.arange(n) < 50
    y1 = np.where(np.arange(n) < 25, 300.0, 50.0)  # busy a quarter of the time at 300 W
    y = np.stack([y1, y1])
    bs = np.stack([np.arange(n) < 25] * 2)
    r = S.split_energy(x, y, bm, bs)
    assert r["busy_meas"] == 0.5 and r["busy_syn"] == 0.25 and r["busy_ratio"] == pytest.approx(0.5)
    assert r["level_meas_w"] == 200.0 and r["level_syn_w"] == 300.0 and r["level_ratio"] == pytest.approx(1.5)
    assert r["idle_meas_w"] == 50.0 and r["idle_syn_w"] == 50.0
    # P_m = 125 W, P_s = 0.25·300 + 0.75·50 = 112.5 W
    assert r["energy_error_pct"] == pytest.approx(-10.0)
    assert r["busy_part_pct"] == pytest.approx(100 * (0.25 - 0.5) * (200 - 50) / 125)  # −30 %
    assert r["level_part_pct"] == pytest.approx(100 * 0.25 * (300 - 200) / 125)  # +20 %
    assert r["idle_part_pct"] == pytest.approx(0.0)
    assert r["explained_pct"] == pytest.approx(-10.0) and r["unexplained_pct"] == pytest.approx(0.0, abs=1e-9)


def test_split_order_is_idle_level_then_busy_time_then_busy_level():
    n = 100
    x = np.where(np.arange(n) < 50, 200.0, 50.0)
    y = np.where(np.arange(n) < 25, 300.0, 30.0)[None]  # replay idles at 30 W instead of 50 W
    r = S.split_energy(x, y, np.arange(n) < 50, (np.arange(n) < 25)[None])
    # P_m = 125 W, P_s = 75 + 0.75·30 = 97.5 W
    assert r["idle_part_pct"] == pytest.approx(100 * 0.5 * (30 - 50) / 125)  # −8 %
    assert r["busy_part_pct"] == pytest.approx(100 * (0.25 - 0.5) * (200 - 30) / 125)  # −34 %
    assert r["level_part_pct"] == pytest.approx(100 * 0.25 * (300 - 200) / 125)  # +20 %
    assert r["explained_pct"] == pytest.approx(-22.0) == pytest.approx(r["energy_error_pct"])


def test_split_parts_add_up_and_medians_are_over_draws():
    rng = np.random.default_rng(0)
    n = 200
    x = 60.0 + 5 * rng.random(n)
    bm = np.zeros(n, bool)
    bm[20:150] = True
    x[bm] += 200.0
    y, bs = [], []
    for k, end in enumerate((90, 120, 180)):  # three draws busy 70, 100, 160 samples
        b = np.zeros(n, bool)
        b[20:end] = True
        y.append(np.where(b, 250.0 + 10 * k, 70.0))
        bs.append(b)
    r = S.split_energy(x, np.array(y), bm, np.array(bs))
    assert r["busy_syn"] == pytest.approx(100 / n)  # median of 70, 100, 160 samples
    assert r["level_syn_w"] == pytest.approx(260.0) and r["idle_syn_w"] == pytest.approx(70.0)
    parts = r["busy_part_pct"] + r["level_part_pct"] + r["idle_part_pct"]
    assert parts == pytest.approx(r["explained_pct"])
    assert r["energy_error_pct"] == pytest.approx(
        100 * (np.median(np.array(y).mean(axis=1)) / x.mean() - 1)
    )


def test_split_without_idle_samples_uses_the_other_sides_idle_level():
    x = np.full(10, 200.0)
    r = S.split_energy(x, np.where(np.arange(10) < 5, 200.0, 40.0)[None], np.ones(10, bool),
                       (np.arange(10) < 5)[None])
    assert np.isnan(r["idle_meas_w"]) and r["idle_syn_w"] == 40.0
    assert r["busy_part_pct"] == pytest.approx(100 * (0.5 - 1.0) * (200 - 40) / 200)
    assert r["idle_part_pct"] == 0.0  # no measured idle time
    assert r["explained_pct"] == pytest.approx(r["energy_error_pct"]) == pytest.approx(-40.0)


def test_split_rejects_mismatched_shapes_and_no_busy_sample():
    with pytest.raises(ValueError, match="synthetic"):
        S.split_energy(np.ones(5), np.ones((2, 4)), np.ones(5, bool), np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="no measured sample is busy"):
        S.split_energy(np.ones(5), np.ones((2, 5)), np.zeros(5, bool), np.ones((2, 5), bool))


# --- one run through the real replay ----------------------------------------------------------------------
def _noiseless(runtime_s: float, idle_w: float, active_w: float) -> xr.Dataset:
    """Noise-free draws: every call runs ``runtime_s`` (all overhead) at ``active_w``; idle at ``idle_w``."""
    p = example_config_params(3, states=D.STATES_ACTIVE, tdp_w=400.0, n_gpus=1, tensor_parallel=1)
    for i, s in enumerate(D.STATES_ACTIVE):
        p["level_loc"][:, i, :] = {D.IDLE: idle_w, D.ACTIVE: active_w}[s]
    for name in ("level_scale", "level_slope", "resid_scale", "dwell_sigma", "prefill_s_per_token",
                 "itl_base_s", "itl_per_seq_s"):
        p[name][:] = 0.0
    p["prefill_overhead_s"][:] = runtime_s
    return p


def test_run_split_of_a_replay_with_half_the_runtime():
    # measured: 5 calls of 9.72 s at ~300 W, idle 55 W; replay: the same calls at 300 W for 4.86 s each
    run, req = make_run("a", n_gpus=1, duration_s=60.0, n_requests=5, idle_w=55.0, active_w=300.0)
    r = S.run_split(_noiseless(4.86, 55.0, 300.0), run, req, n_draws=3, seed=0)
    assert r["n_requests"] == 5 and r["n_draws"] == 3 and r["n_samples"] == run.sizes[D.TIME]
    assert r["busy_meas"] == pytest.approx(5 * 9.72 / 60.0, abs=0.01)
    assert r["busy_ratio"] == pytest.approx(0.5, abs=0.02)
    assert r["service_ratio"] == pytest.approx(0.5, abs=0.01)  # 4.86 / 9.72, no dwell noise
    assert r["level_ratio"] == pytest.approx(1.0, abs=0.05)
    assert r["level_syn_w"] == pytest.approx(300.0, abs=5.0)  # boundary bins are partial means
    # the shortfall is busy time: the busy part carries the error, the level part hardly any
    assert r["energy_error_pct"] < -30 and abs(r["busy_part_pct"]) > 5 * abs(r["level_part_pct"])
    # identical draws: the medians' product is each draw's energy
    assert r["unexplained_pct"] == pytest.approx(0.0, abs=1e-6)
    assert r["energy_meas_j"] == pytest.approx(float(run[D.POWER].sum(D.GPU).mean()) * 60.0, rel=1e-6)


def test_service_ratio_is_the_median_draws_total_over_the_logged_total():
    starts_m, ends_m = np.array([0.0, 10.0, np.nan]), np.array([10.0, 20.0, 30.0])  # 20 s logged
    starts_s = np.array([[0.0, 5.0, 9.0], [0.0, 15.0, 30.0], [0.0, 40.0, 50.0]])
    ends_s = np.array([[5.0, 9.0, 10.0], [15.0, 30.0, 40.0], [40.0, 50.0, 90.0]])  # 10, 40, 90 s
    assert S.service_ratio(starts_m, ends_m, starts_s, ends_s) == pytest.approx(2.0)
    t0 = np.datetime64("2024-04-03T17:06:04", "ns")
    sec = np.timedelta64(1_000_000_000, "ns")
    dt = S.service_ratio(t0 + np.array([0, 10]) * sec, t0 + np.array([10, 20]) * sec,
                         t0 + np.array([[0, 5]]) * sec, t0 + np.array([[5, 10]]) * sec)
    assert dt == pytest.approx(0.5)
    with pytest.raises(ValueError, match="ends before it starts"):
        S.service_ratio(starts_m, ends_m, np.array([[3.0]]), np.array([[1.0]]))
    with pytest.raises(ValueError, match="not positive"):
        S.service_ratio(np.array([1.0]), np.array([1.0]), starts_s, ends_s)


# --- the script -------------------------------------------------------------------------------------------
def test_quick_writes_one_row_per_run_and_a_generated_reading(tiny, tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(C, "fit_fold", fake_fit_fold(calls, tiny))
    assert S.main(["--quick", "--out", str(tmp_path)]) == 0
    ids = C.runs_with_log(tiny)[: S.QUICK_RUNS]
    assert [c["holdout"] for c in calls] == [[r] for r in ids]
    assert [c["seed"] for c in calls] == list(range(S.QUICK_RUNS))  # accuracy's fold seeds
    table = C.read_result(tmp_path / "error_split.csv")
    assert list(table.columns) == list(S.COLUMNS) and list(table["run_id"]) == ids
    assert (table["n_draws"] == S.QUICK_DRAWS).all()
    assert np.isfinite(table[["busy_ratio", "level_ratio", "energy_error_pct", "explained_pct"]]).all().all()
    parts = table[["busy_part_pct", "level_part_pct", "idle_part_pct"]].sum(axis=1)
    np.testing.assert_allclose(parts, table["explained_pct"], atol=1e-3)
    md = (tmp_path / "error_split.md").read_text()
    assert "Command: `python -m experiments.error_split --quick" in md
    assert f"Of {S.QUICK_RUNS} runs" in md and "| **median** |" in md
    assert all(f"| {r} |" in md for r in ids)


def test_unknown_run_is_a_key_error_naming_it(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(C, "fit_fold", fake_fit_fold([], tiny))
    with pytest.raises(KeyError, match="no-such-run"):
        S.main(["--runs", "sxm-7b-a", "no-such-run", "--out", str(tmp_path)])
    assert not (tmp_path / "error_split.csv").exists()


def test_models_from_skips_refused_or_missing_folds_and_writes_nothing(tiny, tmp_path, capsys):
    folds = tmp_path / "folds"
    folds.mkdir()
    seed = C.fold_seed(tiny, "sxm-7b-a")
    bad = C.fold_cache_path(folds, "sxm-7b-a", "nuts", seed)
    xr.Dataset({"x": ((D.TIME,), np.zeros(2))}).to_netcdf(bad, engine="h5netcdf")
    with pytest.raises(ValueError, match=str(bad.name)):
        S.load_saved_fold(bad)
    out = tmp_path / "out"
    rc = S.main(["--fit", "nuts", "--models-from", str(folds), "--runs", "sxm-7b-a", "pcie-7b",
                 "--out", str(out)])
    assert rc == 1 and not (out / "error_split.csv").exists()
    err = capsys.readouterr().err
    assert "sxm-7b-a skipped" in err and "refused" in err and "pcie-7b skipped: no saved fold" in err


def test_hold_gpu_card_splits_every_run_of_each_card_with_generalisations_folds(tiny, tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(C, "fit_fold", fake_fit_fold(calls, tiny))
    assert S.main(["--hold", "gpu_card", "--draws", "5", "--out", str(tmp_path)]) == 0
    # one fold per card, every run of the card out of it; a two-run card is cached under its group label
    assert [c["holdout"] for c in calls] == [["sxm-70b-4", "sxm-7b-a", "sxm-7b-b"], ["pcie-7b"]]
    assert [c["label"] for c in calls] == ["gpu_card-A100-SXM4-40GB", None]
    assert [c["seed"] for c in calls] == [C.fold_seed(tiny, "sxm-7b-a"), C.fold_seed(tiny, "pcie-7b")]
    table = C.read_result(tmp_path / "error_split.csv")
    assert list(table["run_id"]) == ["sxm-7b-a", "sxm-7b-b", "sxm-70b-4", "pcie-7b"]
    assert list(table["group"]) == ["A100-SXM4-40GB"] * 3 + ["A100-PCIe-40GB"]
    assert (table["hold"] == "gpu_card").all()
    md = (tmp_path / "error_split.md").read_text()
    assert "folds: leave-one-GPU-card-out" in md and "## Per held-out gpu_card group" in md
    sxm = table[table["group"] == "A100-SXM4-40GB"]["energy_error_pct"].median()
    assert "| A100-SXM4-40GB | 3 | " in md and f"| {sxm:.1f} |" in md
    assert "A100-SXM4-40GB: 3 run(s) split, 3 left out of the fit" in md


def test_hold_groups_are_checked_before_any_fit(tiny, tmp_path, monkeypatch, capsys):
    calls: list = []
    monkeypatch.setattr(C, "fit_fold", fake_fit_fold(calls, tiny))
    with pytest.raises(KeyError, match="H100-SXM5"):
        S.main(["--hold", "gpu_card", "--groups", "H100-SXM5", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        S.main(["--groups", "A100-PCIe-40GB", "--out", str(tmp_path)])  # --groups without --hold
    assert "--groups needs --hold" in capsys.readouterr().err
    assert calls == [] and not (tmp_path / "error_split.csv").exists()


def test_reading_counts_come_from_the_table():
    table = pd.DataFrame({
        "busy_ratio": [0.5, 0.95, 1.3], "level_ratio": [1.0, 0.7, 0.8],
        "busy_part_pct": [-30.0, -1.0, 20.0], "level_part_pct": [1.0, -20.0, -15.0],
        "energy_error_pct": [-29.0, -21.0, 5.0],
    })
    text = S.reading(table)
    assert "less than 0.9× the measured time in 1 and more than 1.1× in 1" in text
    assert "below 0.9× the measured one in 2 and above 1.1× in 0" in text
    assert "larger one in 2 of 3 runs" in text and "1 runs have both parts above 5 %" in text
    assert "service ratio" not in text
    text = S.reading(table.assign(service_ratio=[0.5, 1.0, 1.4]))
    assert "below 0.9× the logged one in 1 runs and above 1.1× in 1 (median 1.00)" in text
    assert "of the 1 runs that lose busy time, 1 are ones whose runtime it under-predicts" in text
