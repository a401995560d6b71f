"""``wattscape evaluate`` on a catalog ingested from a run directory the fit never saw (the issue's check).

One energy-inference run's raw files (its nvidia-smi trace, the matching per-inference log, its job_info
and its ``runs_index.csv`` row) are copied into a fresh folder and ingested into their own catalog; a small
fast model is fitted on three OTHER runs (ingested the same way) and saved; ``wattscape evaluate`` scores
the unseen run through the CLI entry point, and refuses a catalog holding a run the fit saw unless
``--allow-seen``.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wattscape.cli import main

#: runs_index.csv rows (trace_file prefixes) used: the unseen run, then the fit's training runs.
UNSEEN = "stats/e2dc-raw-stats/llama2-7b/2024-04-03/10-52-50/"  # Llama-2-7b, A100-PCIe-40GB, 150 s
TRAIN = (
    "stats/e2dc-raw-stats/falcon-7b/2024-04-02/07-36-20/",  # falcon-7b, A100-SXM4-40GB
    "stats/e2dc-raw-stats/falcon-7b/2024-04-03/10-47-35/",  # falcon-7b, A100-PCIe-40GB
    "stats/e2dc-raw-stats/llama2-7b/2024-03-28/11-15-46/",  # Llama-2-7b, A100-SXM4-40GB
)


def copy_runs(src: Path, dst: Path, prefixes) -> None:
    """Copy the raw files (and index rows) of the runs whose trace path starts with one of ``prefixes``."""
    with open(src / "runs_index.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, [r for r in reader if r["trace_file"].startswith(tuple(prefixes))]
    assert len(rows) == len(prefixes), f"runs_index.csv rows not found: {prefixes}"
    for r in rows:
        trace = Path(r["trace_file"])
        files = [trace, Path(r["matched_stats_file"])]
        if (src / trace.parent / "job_info.yaml").is_file():
            files.append(trace.parent / "job_info.yaml")
        for rel in files:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, dst / rel)
    dst.mkdir(parents=True, exist_ok=True)
    with open(dst / "runs_index.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.slow
def test_evaluate_scores_an_unseen_run_directory_and_refuses_a_seen_one(shared_data, tmp_path, capsys):
    src = shared_data / "energy-inference"
    copy_runs(src, tmp_path / "unseen", [UNSEEN])
    copy_runs(src, tmp_path / "train", TRAIN)
    copy_runs(src, tmp_path / "seen", TRAIN[:1])
    for name in ("unseen", "train", "seen"):
        assert main(["ingest", str(tmp_path / name), "--out", str(tmp_path / f"cat_{name}"), "--quiet"]) == 0
    model = tmp_path / "model.nc"
    fit = ["fit", str(tmp_path / "cat_train"), "--out", str(model), "--fast", "--advi-iterations", "3000",
           "--no-summaries"]
    assert main(fit) == 0 and model.is_file()
    capsys.readouterr()

    out = tmp_path / "eval"
    argv = ["evaluate", str(model), str(tmp_path / "cat_unseen"), "--out", str(out), "--draws", "10",
            "--training-catalog", str(tmp_path / "cat_train"), "--quiet"]
    assert main(argv) == 0
    table = pd.read_csv(out / "accuracy.csv")
    row = table[table["method"] == "model"]
    assert len(row) == 1 and row["run_id"].iloc[0].startswith("llama-2-7b-A100-PCIe-40GB-x1")
    assert np.isfinite(row["energy_error_pct"].iloc[0])
    assert {"tdp", "mean", "splitwise", "replay"} <= set(table["method"])
    assert (out / "accuracy.md").read_text().startswith("Command: `wattscape evaluate")

    seen_out = tmp_path / "eval_seen"
    argv = ["evaluate", str(model), str(tmp_path / "cat_seen"), "--out", str(seen_out), "--draws", "10",
            "--methods", "model", "tdp", "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "fitted on 1 of the runs" in err and "--allow-seen" in err
    assert not (seen_out / "accuracy.csv").exists()
    assert main([*argv, "--allow-seen"]) == 0
    assert "model" in set(pd.read_csv(seen_out / "accuracy.csv")["method"])
