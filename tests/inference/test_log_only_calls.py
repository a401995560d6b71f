"""Logged inferences without a trace: the reader, the catalog table and their segments in the fit data."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from wattscape.inference.catalog import build_catalog
from wattscape.inference.readers import IngestError
from wattscape.inference.readers.energy_inference import LOG_CALL_COLUMNS, read_log_only_calls
from wattscape.inference.stats import fit_data_from_catalog, log_call_runs
from wattscape.models import dims as D
from wattscape.models.hardware import gpu_spec

from tests.inference.ei_files import LOG_HEADER, UTC0, log_row, simple_run, write

U0 = UTC0.timestamp()


def _dataset(tmp_path):
    """A traced run (matched log) and an untraced log of the same configuration, copied under a second
    folder as the dataset does; one of its inferences falls inside the trace."""
    root = tmp_path / "ei"
    simple_run(root / "traces" / "r1")
    write(
        root / "runs_index.csv",
        [
            "trace_file,model,job_info_system_name,gpu_type_inferred,gpus_logged,utc_offset_hours,"
            "start_epoch_utc,duration_s,matched_stats_file,notes",
            f"traces/r1/nvidia-smi.csv,Llama-2-7b-chat-hf,argonne-swing,A100-40GB,1,-4,{U0},60.0,"
            "traces/r1/Llama-2-7b-chat-hf-argonne-swing-1.csv,",
        ],
    )
    day = 86400.0
    rows = [
        log_row(U0 + 25.0, "tokenizer", 0.5, 25_000),
        log_row(U0 + 26.0, "start-inference-A-8", 3.0, 900_000),  # a campaign's first: warm-up
        log_row(U0 + 30.0, "start-inference-A-9", 4.0, 1_000_000),  # inside the trace: a traced inference
        log_row(U0 + day, "tokenizer", 0.5, 25_000),
        log_row(U0 + day + 0.5, "model load", 7.5, 450_000),
        log_row(U0 + day + 10.0, "start-inference-A-0", 6.0, 600_000),  # warm-up: left out
        log_row(U0 + day + 16.1, "start-inference-A-1", 4.0, 1_200_000),  # 300 W
        log_row(U0 + day + 20.2, "start-inference-A-2", 8.0, 2_000_000, limit=64),  # 250 W
    ]
    log = write(root / "output-test" / "Llama-2-7b-chat-hf-argonne-swing-1.csv", [LOG_HEADER, *rows])
    (root / "copy").mkdir()
    shutil.copy(log, root / "copy" / log.name)
    write(root / "output-test" / "all-output-stats.csv", ["merged,table", "1,2"])  # not a log: not read
    write(root / "other" / "results.csv", ["a,b,c", "1,2,3"])  # another layout: noted and skipped
    unknown = [log_row(U0 + 2 * day + 5 * k, f"start-inference-A-{k}", 4.0, 1_000_000, model="NoSuchLLM-9b")
               for k in range(3)]
    write(root / "other" / "NoSuchLLM-9b-argonne-swing-1.csv", [LOG_HEADER, *unknown])  # unknown LLM: skipped
    return root


def test_reader_keeps_untraced_inferences_once(tmp_path):
    calls, notes = read_log_only_calls(_dataset(tmp_path))
    assert list(calls.columns) == list(LOG_CALL_COLUMNS)
    assert len(calls) == 2  # warm-up, traced and repeated inferences left out
    assert calls["source"].unique().tolist() == ["copy/Llama-2-7b-chat-hf-argonne-swing-1.csv"]
    level = calls["gpu_energy_j"] / calls["runtime_s"] / calls["n_gpus"]
    np.testing.assert_allclose(level, [300.0, 250.0])
    assert calls["output_tokens"].tolist() == [32, 64]
    assert calls["gpu_model"].unique().tolist() == ["A100-SXM4-40GB"]
    first = UTC0 + pd.Timedelta(days=1, seconds=16.1)
    assert calls["run_id"].iloc[0] == f"llama-2-7b-A100-SXM4-40GB-x1-log-{first:%Y%m%d-%H%M%S}"
    assert calls["start"].dtype == "datetime64[ns]"
    assert calls["run_id"].dtype == "str"
    text = "\n".join(notes)
    assert "other/results.csv skipped" in text
    assert "other/NoSuchLLM-9b-argonne-swing-1.csv skipped: unknown LLM 'NoSuchLLM-9b'" in text
    assert "inside a trace left out" in text
    assert "repeated from another log left out" in text
    assert "all-output-stats" not in text


def test_reader_needs_the_trace_windows(tmp_path):
    root = _dataset(tmp_path)
    idx = pd.read_csv(root / "runs_index.csv").drop(columns="duration_s")
    idx.to_csv(root / "runs_index.csv", index=False)
    with pytest.raises(IngestError, match=r"runs_index.csv, line 1: runs index lacks duration_s"):
        read_log_only_calls(root)


def test_catalog_and_fit_data(tmp_path):
    cat = build_catalog([_dataset(tmp_path)], tmp_path / "cat", progress=False)
    calls = cat.log_calls()
    assert len(calls) == 2
    assert cat.manifest["jobs"]["ei-logs"]["n_log_calls"] == 2
    assert cat.run_ids == ["llama-2-7b-A100-SXM4-40GB-x1-20240403-140000"]  # no run for the log alone
    fd = fit_data_from_catalog(cat, progress=False).ds
    run = list(fd[D.RUN].values).index(calls["run_id"].iloc[0])
    seg = fd["seg_run"].values == run
    tdp = gpu_spec("A100-SXM4-40GB")["tdp_w"]
    np.testing.assert_allclose(fd["seg_level"].values[seg], np.array([300.0, 250.0]) / tdp)
    np.testing.assert_allclose(fd["seg_duration_s"].values[seg], [4.0, 8.0])
    assert (fd["seg_state"].values[seg] == list(fd[D.STATE].values).index(D.ACTIVE)).all()
    assert fd["lag_n"].values[run].sum() == 0
    # hold-outs apply to them; so does turning them off
    for kwargs in ({"holdout_llms": ["Llama-2-7b-chat-hf"]}, {"exclude_gpus": ["A100-SXM4-40GB"]},
                   {"holdout_runs": [calls["run_id"].iloc[0]]}, {"use_log_calls": False}):
        held = fit_data_from_catalog(cat, progress=False, **kwargs).ds
        assert calls["run_id"].iloc[0] not in list(held[D.RUN].values)


def test_log_call_runs_need_the_active_state():
    calls = pd.DataFrame(
        {"run_id": ["x"], "llm": ["m"], "params_b": [7.0], "active_params_b": [7.0],
         "gpu_model": ["A100-SXM4-40GB"], "n_gpus": [2], "split": [D.SPLIT_LAYER], "tensor_parallel": [1],
         "runtime_s": [2.0], "batch_size": [4], "prompt_tokens": [100], "output_tokens": [50],
         "gpu_energy_j": [800.0]}
    )
    (run,) = log_call_runs(calls, gpu_spec)
    assert run["stats"]["segments"]["level"].iloc[0] == pytest.approx(800.0 / 2.0 / 2 / 400.0)
    assert log_call_runs(calls, gpu_spec, states=(D.IDLE, D.PREFILL, D.DECODE)) == []


@pytest.mark.realdata
def test_real_untraced_logs(shared_data):
    calls, notes = read_log_only_calls(shared_data / "energy-inference")
    assert len(calls) > 1500
    # every configuration with a traced run but the A100-SXM4-80GB one has untraced inferences too
    have = set(zip(calls["llm"], calls["gpu_model"], calls["n_gpus"], strict=True))
    assert ("Llama-2-13b-chat-hf", "A100-SXM4-40GB", 1) in have
    assert ("Llama-2-70b-chat-hf", "A100-SXM4-40GB", 4) in have
    assert ("Mixtral-8x7B-v0.1", "A100-SXM4-40GB", 3) in have
    assert not calls.duplicated(["llm", "gpu_model", "start"]).any()
    level = calls["gpu_energy_j"] / calls["runtime_s"] / calls["n_gpus"]
    tdp = calls["gpu_model"].map(lambda g: gpu_spec(g)["tdp_w"])
    assert ((level > 20) & (level < 1.2 * tdp)).all()
    assert any("Llama-2-70b-chat-hf-argonne-swing-4.csv skipped" in n for n in notes)
