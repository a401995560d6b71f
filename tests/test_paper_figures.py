"""Figure scripts on tiny synthetic results in tmp_path: a PNG is written, a missing input is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from paper_figures import _style as S
from paper_figures import all as all_figures
from paper_figures import baselines, calibration, facility, state_power

METHODS = ("model", "tdp", "mean", "splitwise", "replay")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _accuracy(path, n_runs: int = 8, seed: int = 0) -> pd.DataFrame:
    """A small accuracy.csv in the evaluate contract: one row per (run, method, period)."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_runs):
        e = 1.0e5 * (1 + r)
        for period in (1.0, 30.0):
            for m in METHODS:
                model = m == "model"
                q50 = e * (1 + rng.normal(0, 0.03 if model else 0.2))
                rows.append(
                    {
                        "run_id": f"run{r}",
                        "method": m,
                        "energy_error_pct": abs(q50 / e - 1) * 100,
                        "energy_error_signed_pct": (q50 / e - 1) * 100,
                        "acf_r2": rng.uniform(0.9, 1.0) if model else rng.uniform(-20, 0.5),
                        "acf_mae": rng.uniform(0, 0.4),
                        "energy_measured_j": e,
                        "energy_q05_j": q50 * 0.95 if model else np.nan,
                        "energy_q50_j": q50 if model else np.nan,
                        "energy_q95_j": q50 * 1.05 if model else np.nan,
                        "energy_pit": rng.uniform() if model else np.nan,
                        "energy_in_50": float(rng.uniform() < 0.5) if model else np.nan,
                        "energy_in_90": float(rng.uniform() < 0.9) if model else np.nan,
                        "window_coverage_50": rng.uniform(0.3, 0.6) if model else np.nan,
                        "window_coverage_90": rng.uniform(0.8, 0.95) if model else np.nan,
                        "period_s": period,
                    }
                )
    df = pd.DataFrame(rows)
    with open(path, "w") as fh:
        fh.write("# command: synthetic test table\n")
        df.to_csv(fh, index=False)
    return df


def _profile(folder) -> None:
    folder.mkdir(parents=True)
    t = pd.date_range("2026-01-01", periods=12, freq="15min", tz="UTC")
    mid = 100 + 20 * np.sin(np.arange(12) / 3)
    df = pd.DataFrame(
        {
            "timestamp": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "interval_s": 900.0,
            "mean_kw": mid,
            "q05_kw": mid - 15,
            "q25_kw": mid - 5,
            "q50_kw": mid,
            "q75_kw": mid + 5,
            "q95_kw": mid + 15,
        }
    )
    df.to_csv(folder / "profile_15min_kw.csv", index=False)
    pd.DataFrame(
        {
            "metric": ["facility nameplate (TDP)"],
            "unit": ["kW"],
            "median": [250.0],
            "lo": [250.0],
            "hi": [250.0],
        }
    ).to_csv(folder / "load_summary.csv", index=False)


def _png_ok(path) -> None:
    assert path.is_file(), f"{path} not written"
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert 5_000 < path.stat().st_size < 300_000


@pytest.fixture
def results(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    _accuracy(res / "accuracy.csv")
    _profile(res / "planning" / "tiny")
    return res


def test_baselines_summary_is_the_median():
    df = pd.DataFrame({"method": ["a"] * 5, "energy_error_pct": [1.0, 2.0, 30.0, 4.0, 5.0], "period_s": 1.0})
    s = baselines.summary(df).set_index("metric")
    assert s.loc["energy_error_pct", "median"] == 4.0
    assert s.loc["energy_error_pct", "lo"] <= 4.0 <= s.loc["energy_error_pct", "hi"]


def test_wilson_interval_brackets_proportion():
    lo, hi = calibration.wilson(9, 10)
    assert lo < 0.9 < hi <= 1.0
    assert calibration.wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12)


def test_scripts_write_pngs(results, tmp_path):
    out = tmp_path / "figs"
    common = ["--results", str(results), "--out", str(out)]
    assert baselines.main(common) == 0
    assert calibration.main(common) == 0
    assert facility.main(common) == 0  # azure_day_1000 absent: falls back to the one generated
    for name in ("baselines", "calibration", "facility"):
        _png_ok(out / f"{name}.png")
        assert (out / f"{name}.pdf").is_file()


def test_the_current_experiments_tables_are_preferred(results):
    """``experiments.all``'s tables are drawn; the NUTS-fold ones (records of earlier models) only when
    they are all there is, or through ``--input``."""
    import argparse

    _accuracy(results / "accuracy_nuts.csv", seed=1)
    _accuracy(results / "calibration.csv", seed=2)
    _accuracy(results / "calibration_nuts.csv", seed=3)
    args = argparse.Namespace(input=None, results=str(results))
    assert baselines.accuracy_input(args).name == "accuracy.csv"
    assert calibration.calibration_input(args).name == "calibration.csv"
    (results / "calibration.csv").unlink()
    (results / "accuracy.csv").unlink()
    assert calibration.calibration_input(args).name == "calibration_nuts.csv"
    assert baselines.accuracy_input(args).name == "accuracy_nuts.csv"
    args.input = str(results / "accuracy_nuts.csv")
    assert calibration.calibration_input(args).name == "accuracy_nuts.csv"


def test_baselines_falls_back_to_baselines_only_table(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    df = _accuracy(res / "accuracy_baselines.csv")
    df[df["method"] != "model"].to_csv(res / "accuracy_baselines.csv", index=False)  # baselines only
    assert baselines.main(["--results", str(res)]) == 0
    _png_ok(res / "figures" / "baselines.png")


def test_missing_input_is_named(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert calibration.main(["--results", str(empty)]) == S.EXIT_MISSING
    err = capsys.readouterr().err
    assert str(empty / "accuracy.csv") in err
    assert facility.main(["--results", str(empty)]) == S.EXIT_MISSING
    assert "profile_15min_kw.csv" in capsys.readouterr().err


def test_calibration_without_model_rows_is_a_clear_error(tmp_path, capsys):
    res = tmp_path / "results"
    res.mkdir()
    df = _accuracy(res / "accuracy.csv")
    df[df["method"] != "model"].to_csv(res / "accuracy.csv", index=False)
    assert calibration.main(["--results", str(res)]) == S.EXIT_MISSING
    assert "no posterior-predictive interval rows" in capsys.readouterr().err


def test_all_continues_past_a_failing_figure(results, tmp_path, capsys):
    (results / "accuracy.csv").rename(results / "accuracy_baselines.csv")  # calibration's input is gone
    out = tmp_path / "figs"
    rc = all_figures.main(
        ["--results", str(results), "--out", str(out), "--only", "calibration", "baselines"]
    )
    assert rc == 1
    assert "calibration" in capsys.readouterr().err
    _png_ok(out / "baselines.png")
    assert not (out / "calibration.png").exists()


def test_posterior_falls_back_to_the_shipped_one(tmp_path, capsys, monkeypatch):
    from generation import demo

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(S, "_FALLBACK_SAID", set())
    shipped = demo.shipped_posterior()
    assert S.posterior_file(None, empty) == shipped
    assert "using the shipped posterior" in capsys.readouterr().out
    full = empty / "posterior_full.nc"
    full.write_bytes(b"")
    assert S.posterior_file(None, empty) == full  # the full fit wins when present
    with pytest.raises(S.MissingInputError, match=r"nowhere\.nc"):
        S.posterior_file(tmp_path / "nowhere.nc", empty)  # an explicit file must exist
    full.unlink()
    monkeypatch.setattr(demo, "shipped_posterior", lambda: None)
    with pytest.raises(S.MissingInputError, match=r"posterior_full\.nc"):
        S.posterior_file(None, empty)


def test_a_named_posterior_must_exist(tmp_path, capsys):
    missing = tmp_path / "nope.nc"
    assert state_power.main(["--results", str(tmp_path), "--posterior", str(missing)]) == S.EXIT_MISSING
    assert "nope.nc" in capsys.readouterr().err


def test_drive_figure_replays_one_run_both_ways(tmp_path, capsys):
    """The open- vs closed-loop figure on a demo run and the shipped posterior; an unknown run is named."""
    from wattscape.generation import demo
    from wattscape.inference.catalog import build_catalog

    import wattscape
    from paper_figures import drive

    src = Path(wattscape.__file__).parent / "data" / "demo" / "energy-inference"
    cat = build_catalog([src], tmp_path / "catalog", progress=False)
    out = tmp_path / "figs"
    common = ["--catalog", str(tmp_path / "catalog"), "--posterior", str(demo.shipped_posterior())]
    common += ["--results", str(tmp_path), "--out", str(out), "--draws", "4"]
    assert drive.main(common) == 0
    _png_ok(out / "drive.png")
    assert drive.default_run(cat) in set(cat.index["run_id"])
    assert drive.main([*common, "--run", "no-such-run"]) == S.EXIT_MISSING
    assert "no-such-run" in capsys.readouterr().err


def _level_calls(path: Path) -> pd.DataFrame:
    """A small level_shape_calls.csv: four prompt sweeps on two cards and two GPU counts, an output sweep."""
    rows = []
    # card and GPU count come from their columns, not from the run id
    for rid, card, n, outputs, repeat in (("run-a", "A100-SXM4-40GB", 1, [32], 3),
                                          ("run-b", "V100-PCIe-16GB", 1, [32], 3),
                                          ("run-c", "A100-SXM4-40GB", 1, [32, 64, 128], 3),
                                          ("run-d", "A100-SXM4-40GB", 1, [32], 2),
                                          ("run-e", "A100-SXM4-40GB", 3, [32], 1)):
        for out in outputs:
            for prompt in (8, 64, 512, 2048):
                for _ in range(repeat):
                    w = 100 + 30 * np.log2(prompt)
                    rows.append({"run_id": rid, "gpu_model": card, "n_gpus": n, "prompt_tokens": prompt,
                                 "output_tokens": out, "measured_w": w, "model_w": w + 5,
                                 "share_fit_w": w - 5})
    df = pd.DataFrame(rows)
    df.to_csv(path, index=False)
    return df


def test_level_shape_draws_one_prompt_sweep_per_card(tmp_path, capsys):
    from paper_figures import level_shape

    res = tmp_path / "results"
    res.mkdir()
    calls = _level_calls(res / "level_shape_calls.csv")
    # per card and GPU count the prompt sweep with most calls; never the output sweep
    assert level_shape.pick_runs(calls) == ["run-a", "run-e", "run-b"]
    assert level_shape.main(["--results", str(res)]) == 0
    _png_ok(res / "figures" / "level_shape.png")
    with pytest.raises(KeyError, match="nope"):
        level_shape.pick_runs(calls, ["nope"])
    calls.drop(columns="share_fit_w").to_csv(res / "level_shape_calls.csv", index=False)
    assert level_shape.main(["--results", str(res)]) == S.EXIT_MISSING
    assert "share_fit_w" in capsys.readouterr().err
    (res / "level_shape_calls.csv").unlink()
    assert level_shape.main(["--results", str(res)]) == S.EXIT_MISSING
    assert "level_shape_calls.csv" in capsys.readouterr().err


def test_runtime_cells_draws_every_cell_and_the_output_sweep(tmp_path, capsys):
    from paper_figures import runtime_cells

    res = tmp_path / "results"
    res.mkdir()
    rows = []
    for rid, card, outputs in (("run-a", "A100-SXM4-40GB", [32]), ("run-b", "V100-PCIe-16GB", [32]),
                               ("run-s", "A100-PCIe-40GB", [8, 64, 512, 2048])):
        for out in outputs:
            for prompt in (8, 512):
                logged = 0.03 * out + 0.001 * prompt
                rows.append({"run_id": rid, "gpu_model": card, "output_tokens": out, "prompt_tokens": prompt,
                             "runtime_logged_s": logged, "runtime_q05_s": 0.8 * logged,
                             "runtime_q50_s": 0.9 * logged, "runtime_q95_s": 1.1 * logged,
                             "inside_90": out < 2048})
    cells = pd.DataFrame(rows)
    cells.to_csv(res / "runtime_cells_cells.csv", index=False)
    assert runtime_cells.output_sweep(cells) == "run-s"
    assert runtime_cells.output_sweep(cells[cells["run_id"] != "run-s"]) is None
    assert runtime_cells.main(["--results", str(res)]) == 0
    _png_ok(res / "figures" / "runtime_cells.png")
    cells.drop(columns="runtime_q95_s").to_csv(res / "runtime_cells_cells.csv", index=False)
    assert runtime_cells.main(["--results", str(res)]) == S.EXIT_MISSING
    assert "runtime_q95_s" in capsys.readouterr().err


def test_acf_ceiling_draws_every_run_and_names_a_missing_column(tmp_path, capsys):
    from paper_figures import acf_ceiling

    res = tmp_path / "results"
    res.mkdir()
    table = pd.DataFrame(
        {
            "run_id": ["llm-a-A100-SXM4-40GB-x1-20240401-120000", "llm-b-V100-PCIe-16GB-x1-20240401-130000"],
            "gpu_model": ["A100-SXM4-40GB", "V100-PCIe-16GB"],
            "acf_r2": [0.93, -12.0],  # the second below the axis: drawn at its limit, labelled
            "acf_r2_median_acf": [0.97, -11.0],
            "ceiling": [0.94, 0.7],
            "ceiling_process": [0.95, 0.8],
        }
    )
    table.to_csv(res / "acf_ceiling.csv", index=False)
    assert acf_ceiling.main(["--results", str(res)]) == 0
    _png_ok(res / "figures" / "acf_ceiling.png")
    without = (res / "figures" / "acf_ceiling.png").read_bytes()
    # the measured run against itself, where it is long enough (NaN where not): one more marker
    table.assign(measured_parts=[np.nan, -0.6]).to_csv(res / "acf_ceiling.csv", index=False)
    assert acf_ceiling.main(["--results", str(res)]) == 0
    assert (res / "figures" / "acf_ceiling.png").read_bytes() != without
    table.drop(columns="ceiling").to_csv(res / "acf_ceiling.csv", index=False)
    assert acf_ceiling.main(["--results", str(res)]) == S.EXIT_MISSING
    assert "ceiling" in capsys.readouterr().err
    table.iloc[:0].to_csv(res / "acf_ceiling.csv", index=False)
    assert acf_ceiling.main(["--results", str(res)]) == S.EXIT_MISSING
    assert "no run" in capsys.readouterr().err
