"""``wattscape ingest`` and ``wattscape demo`` from the command line entry point."""

from __future__ import annotations

import pytest

from tests.inference.ei_files import UTC_OFFSET, simple_run
from wattscape.cli import main
from wattscape.cli.demo import demo_data


def test_ingest_prints_per_run_summary(tmp_path, capsys):
    assert main(["ingest", str(demo_data()), "--out", str(tmp_path / "cat"), "--quiet"]) == 0
    out = capsys.readouterr().out
    head = out.splitlines()[0].split()
    assert head[:5] == ["llm", "gpu_model", "gpus", "duration", "samples"]
    assert {"%excl", "%idle", "%active", "W", "status"} <= set(head)
    for text in ("Mixtral-8x7B-v0.1", "A100-SXM4-40GB", "0:11:54", "power-only (no per-inference log)",
                 "catalog written to"):
        assert text in out
    assert main(["ingest", str(demo_data()), "--out", str(tmp_path / "cat"), "--quiet"]) == 0
    assert "catalog unchanged at" in capsys.readouterr().out


def test_ingest_single_run_dir_with_options(tmp_path, capsys):
    run = tmp_path / "run"
    _, log = simple_run(run)
    argv = ["ingest", str(run), "--out", str(tmp_path / "cat"), "--utc-offset", str(UTC_OFFSET),
            "--log", str(log), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Llama-2-7b-chat-hf" in out and "labelled" in out


def test_ingest_error_names_file(tmp_path, capsys):
    run = tmp_path / "run"
    simple_run(run, log_shift_h=-2.0)
    assert main(["ingest", str(run), "--out", str(tmp_path / "cat"), "--utc-offset", "-4", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "argonne-swing-1.csv, line 4" in err and "2 h behind the trace" in err
    assert not (tmp_path / "cat").exists()


def test_demo(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "grantwilkins/energy-inference" in out and "Llama-2-7b-chat-hf" in out
    assert (tmp_path / "catalog" / "index.parquet").is_file()


@pytest.mark.realdata
def test_ingest_acceptance_counts(shared_data, tmp_path, capsys):
    argv = ["ingest", str(shared_data / "mlenergy-leaderboard-v3"),
            str(shared_data / "azure-llm-inference-trace-2023"), "--out", str(tmp_path / "cat"), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "traffic azure-llm-inference-trace-2023: 28,185 requests" in out
    assert "configuration summaries:" in out
