"""energy-inference logs, job_info.yaml, runs_index.csv and whole runs (small files + the real data set)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from wattscape.inference.readers import IngestError
from wattscape.inference.readers.energy_inference import (
    gpu_model_for,
    inference_requests,
    llm_info,
    llm_key,
    normalise_system,
    read_inference_log,
    read_job_info,
    read_run,
    read_runs_index,
)
from wattscape.models import dims as D

from tests.inference.ei_files import LOG_HEADER, UTC0, UTC_OFFSET, log_row, simple_run, write

U0 = UTC0.timestamp()


@pytest.mark.parametrize(
    ("name", "key"),
    [("Llama-2 (7B)", "llama-2-7b"), ("llama2-70b", "llama-2-70b"), ("Llama-2-13b-chat-hf", "llama-2-13b"),
     ("Falcon (7B)", "falcon-7b"), ("Mixtral-8x7B-v0.1", "mixtral-8x7b"), ("Mistral-7B-v0.1", "mistral-7b")],
)
def test_llm_key(name, key):
    assert llm_key(name) == key


def test_llm_info_moe_and_dense():
    mix = llm_info("Mixtral-8x7B-v0.1")
    assert (mix["params_b"], mix["active_params_b"], mix["architecture"]) == (46.7, 12.9, D.ARCH_MOE)
    assert llm_info("Llama-2 (7B)")["llm"] == "Llama-2-7b-chat-hf"
    with pytest.raises(KeyError, match="unknown LLM"):
        llm_info("gpt-5")


@pytest.mark.parametrize(
    ("system", "memory", "card"),
    [("Palmetto Intel+A100", 40960, "A100-PCIe-40GB"), ("palmetto-v100", 16384, "V100-PCIe-16GB"),
     ("palmetto-v100", 40960, "A100-PCIe-40GB"),  # job_info says V100, the memory says A100
     ("argonne-swing", 40960, "A100-SXM4-40GB"), ("argonne-swing-gpu-large", 81920, "A100-SXM4-80GB"),
     ("argonne-swing-gpu-large", 40960, "A100-SXM4-40GB"), ("palmetto-v100", None, "V100-PCIe-16GB")],
)
def test_exact_card(system, memory, card):
    assert gpu_model_for(system, memory) == card


def test_normalise_system():
    assert normalise_system("Palmetto Intel+A100") == "palmetto-a100"
    assert normalise_system("argonne-swing") == "argonne-swing"


def test_headered_log_and_requests(tmp_path):
    _, log_path = simple_run(tmp_path)
    log, quirks = read_inference_log(log_path)
    assert log["kind"].tolist() == ["startup", "startup", "inference", "inference", "inference"]
    assert log["gpu_energy_j"].iloc[2] == pytest.approx(2400.0)  # mJ -> J
    assert any("mJ" in q for q in quirks)
    req = inference_requests(log, "r")
    assert list(req.columns[: len(D.REQUEST_COLUMNS)]) == list(D.REQUEST_COLUMNS)
    assert req["prompt_tokens"].tolist() == [9, 9, 9]
    assert req["output_tokens"].tolist() == [32, 32, 32]
    assert req["batch_size"].tolist() == [32, 32, 32]
    assert (req["end"] - req["start"]).dt.total_seconds().round(3).tolist() == [8.0, 7.95, 5.0]
    assert req["start"].iloc[0] == UTC0 + pd.Timedelta(seconds=12)


def test_headerless_log_unit_inferred(tmp_path):
    _, log_path = simple_run(tmp_path, header=False)
    log, quirks = read_inference_log(log_path)
    assert log["gpu_energy_j"].iloc[2] == pytest.approx(2400.0)
    assert any("no header" in q for q in quirks)
    assert any("inferred as mJ" in q for q in quirks)


def test_microjoule_glued_header_sci_notation_and_lost_digit(tmp_path):
    header = LOG_HEADER.replace("GPU Energy (mJ)", "GPU Energy (uJ)").replace(
        "GPU Total Memory (MB),GPU Used Memory (MB)", "GPU Total Memory (MB)GPU Used Memory (MB)"
    )
    rows = [
        log_row(U0, "tokenizer", 0.5, 25e6),
        log_row(U0 + 1, "start-inference-A-0", 2.0, 5e8),
        log_row(U0 + 3.01, "start-inference-A-1", 2.0, 5e8, iteration=1),
        log_row(U0 + 5.02, "start-inference-A-2", 2.0, 5e8, iteration=2),
    ]
    rows = [r.replace(",40960.0,14025.6875,", ",40960.0,") for r in rows]  # one field fewer, as in the glue
    rows[2] = rows[2].replace(",500000000,", ",5.00000E+08,")
    rows[3] = rows[3][1:]  # the timestamp lost its leading digit
    log, quirks = read_inference_log(write(tmp_path / "log.csv", [header, *rows]))
    assert log["gpu_energy_j"].iloc[1:].tolist() == pytest.approx([500.0, 500.0, 500.0])
    assert log["timestamp"].iloc[3] == pytest.approx(U0 + 5.02)
    assert any("glues" in q for q in quirks)
    assert any("scientific notation" in q for q in quirks)
    assert any("lost its leading digit" in q and "line 5" in q for q in quirks)


def test_two_campaigns_and_whole_second_timestamp(tmp_path):
    rows = [
        log_row(U0, "tokenizer", 0.5, 25_000),
        log_row(U0 + 0.5, "model load", 5.0, 300_000),
        log_row(U0 + 5.51, "start-inference-8-0", 0.27, 80_000, limit=8),
        log_row(U0 + 5.79, "start-inference-8-1", 0.27, 80_000, limit=8, iteration=1),
        log_row(int(U0 + 6.07 + 0.3), "start-inference-16-0", 0.53, 160_000, limit=16),  # rounded 6.07 -> 6.0
        log_row(U0 + 6.61, "start-inference-16-1", 0.53, 160_000, limit=16, iteration=1),
        log_row(U0 + 600, "tokenizer", 0.2, 10_000),
        log_row(U0 + 600.2, "model load", 7.0, 200_000),
        log_row(U0 + 607.3, "start-inference-8-0", 0.23, 70_000, limit=8),
    ]
    assert rows[4].startswith(str(int(U0 + 6.37)))
    log, quirks = read_inference_log(write(tmp_path / "log.csv", [LOG_HEADER, *rows]))
    assert log["campaign"].tolist() == [0] * 6 + [1] * 3
    assert any("2 campaigns" in q for q in quirks)
    assert any("whole seconds" in q and "1 re-estimated" in q for q in quirks)
    assert log["timestamp"].iloc[4] == pytest.approx(U0 + 6.07, abs=0.02)


def test_job_info(tmp_path):
    simple_run(tmp_path)
    job = read_job_info(tmp_path / "job_info.yaml")
    assert job["model_name"] == "Llama-2-7b-chat-hf"
    assert job["system_name"] == "argonne-swing"
    assert job["prompts"] == "A"


def test_read_run_offset_given_and_inferred(tmp_path):
    trace, log = simple_run(tmp_path)
    ds, req = read_run(trace, log=log, utc_offset_hours=UTC_OFFSET)
    assert ds.attrs["gpu_model"] == "A100-SXM4-40GB"
    assert ds.attrs["split"] == D.SPLIT_NONE
    assert ds.attrs["state_labels"] == D.LABELS_ACTIVE
    assert ds.attrs["log_energy_ratio"] == pytest.approx(1.0, abs=0.02)
    assert req["request_id"].tolist() == [0, 1, 2]
    state = ds[D.STATE_VAR].values
    t = (ds[D.TIME].values - np.datetime64(UTC0)) / np.timedelta64(1, "s")
    code = D.state_code
    assert (state[t < 10.0] == code(D.EXCLUDED)).all()  # before and during model loading
    assert (state[(t >= 10.0) & (t < 12.0)] == code(D.IDLE)).all()
    assert (state[(t >= 12.0) & (t < 20.0)] == code(D.EXCLUDED)).all()  # first inference: warm-up
    assert (state[(t >= 20.1) & (t < 28.0)] == code(D.ACTIVE)).all()
    assert (state[(t >= 28.0) & (t < 35.0)] == code(D.IDLE)).all()
    inferred, _ = read_run(trace, log=log)
    assert "UTC offset -4 h inferred from the log" in inferred.attrs["quirks"]
    np.testing.assert_array_equal(inferred[D.STATE_VAR].values, state)


def test_read_run_without_log_is_power_only(tmp_path):
    trace, _ = simple_run(tmp_path)
    ds, req = read_run(trace, utc_offset_hours=UTC_OFFSET)
    assert req is None
    assert ds.attrs["status"].startswith("power-only")
    assert ds.attrs["state_labels"] == "none"
    assert (ds[D.STATE_VAR].values == D.state_code(D.EXCLUDED)).all()
    with pytest.raises(IngestError, match="pass --utc-offset"):
        read_run(trace)


@pytest.mark.realdata
def test_real_logs_quirks(shared_data):
    ei = shared_data / "energy-inference"
    idx = read_runs_index(ei / "runs_index.csv")
    assert len(idx) == 17
    assert idx["log_path"].isna().sum() == 4
    scale = ei / "plots" / "parameter-scale-input-test"
    log, quirks = read_inference_log(scale / "Llama-2-13b-chat-hf-argonne-swing-1.csv")
    assert any("713453089.5967484" in q for q in quirks)
    assert np.all(np.diff(log["timestamp"].to_numpy()) > 0)
    log, quirks = read_inference_log(ei / "plots/output-test/falcon-7b-palmetto-a100-1.csv")
    assert log["campaign"].max() == 1
    assert any("30 energy value(s)" in q for q in quirks)
    log, quirks = read_inference_log(ei / "stats/falcon-7b-argonne-swing-gpu-large-1.csv")
    assert any("no header" in q for q in quirks)
    assert log["gpu_memory_mb"].iloc[0] == 81920
