"""Configuration-summary readers: small files written here, bad inputs, and the real summaries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from wattscape.inference.readers import IngestError
from wattscape.inference.readers.summaries import (
    SummaryFormatError,
    read_llm_inference_bench,
    read_mlenergy,
    read_splitwise_perf_model,
    read_summaries,
)
from wattscape.models import dims as D

STR_COLS = ("source", "llm", "architecture", "precision", "gpu_model", "task")


def _check_schema(df: pd.DataFrame) -> None:
    assert list(df.columns[: len(D.CONFIG_SUMMARY_COLUMNS)]) == list(D.CONFIG_SUMMARY_COLUMNS)
    for col in STR_COLS:
        assert df[col].dtype == "str", col  # pandas 3 string dtype, not object
    for col in ("n_gpus", "tensor_parallel", "batch"):
        assert df[col].dtype == np.int64
    assert (df["avg_power_w"] > 0).all()
    assert set(df["architecture"]) <= {D.ARCH_DENSE, D.ARCH_MOE}


def _config(gpu="H100", n=2, tp=2, ep=1, power=900.0, tps=1800.0, batch=64):
    return {
        "avg_batch_size": batch * 0.9,
        "avg_output_len": 700.0,
        "avg_power_watts": power,
        "energy_per_request_joules": 350.0,
        "energy_per_token_joules": power / tps,
        "gpu_model": gpu,
        "max_num_seqs": batch,
        "median_itl_ms": 30.0,
        "num_gpus": n,
        "output_length_distribution": {"bins": [0, 1], "counts": [1]},
        "output_throughput_tokens_per_sec": tps,
        "p90_itl_ms": 40.0,
        "p95_itl_ms": 45.0,
        "p99_itl_ms": 50.0,
        "parallelization": {"data_parallel": 1, "expert_parallel": ep, "notes": "", "tensor_parallel": tp},
    }


def write_mlenergy(folder: Path) -> Path:
    (folder / "models").mkdir(parents=True)
    index = {"architectures": {"llm": ["gpqa", "lm-arena-chat"], "mllm": ["image-chat"]}, "models": {}}
    (folder / "index.json").write_text(json.dumps(index))
    dense = {
        "model_id": "org/Dense-8B",
        "task": "lm-arena-chat",
        "architecture": "Dense Transformer",
        "total_params_billions": 8.0,
        "activated_params_billions": 8.0,
        "weight_precision": "bfloat16",
        "configurations": [_config(), _config(gpu="B200", n=1, tp=1, power=600.0, batch=128)],
    }
    moe = {
        "model_id": "org/MoE-30B-A3B",
        "task": "gpqa",
        "architecture": "MoE",
        "total_params_billions": 30.0,
        "activated_params_billions": 3.0,
        "weight_precision": "fp8",
        "configurations": [_config(n=4, tp=1, ep=4, power=1500.0)],
    }
    vl = dict(dense, model_id="org/VL-8B", task="image-chat")
    for name, data in (
        ("org__Dense-8B__lm-arena-chat", dense),
        ("org__MoE__gpqa", moe),
        ("org__VL__image", vl),
    ):
        (folder / "models" / f"{name}.json").write_text(json.dumps(data))
    return folder


def test_mlenergy_small(tmp_path):
    df = read_mlenergy(write_mlenergy(tmp_path / "mle"))
    _check_schema(df)
    assert len(df) == 3  # the image-chat file is dropped
    assert any("image-chat" in d for d in df.attrs["dropped"])
    assert len(read_mlenergy(tmp_path / "mle", include_mllm=True)) == 5
    moe = df[df["architecture"] == D.ARCH_MOE].iloc[0]
    assert (moe["params_b"], moe["active_params_b"], moe["precision"]) == (30.0, 3.0, "fp8")
    assert (moe["n_gpus"], moe["tensor_parallel"], moe["expert_parallel"], moe["split"]) == (
        4,
        1,
        4,
        "expert",
    )
    assert set(df["gpu_model"]) == {"H100-SXM5-80GB", "B200-SXM-180GB"}
    first = df.iloc[0]
    assert (first["batch"], first["avg_power_w"], first["split"]) == (64, 900.0, D.SPLIT_TENSOR)
    assert df["energy_per_token_j"].iloc[0] == pytest.approx(0.5)


def test_mlenergy_bad_inputs(tmp_path):
    folder = write_mlenergy(tmp_path / "mle")
    path = folder / "models" / "org__MoE__gpqa.json"
    text = path.read_text()
    path.write_text(text[:100])
    with pytest.raises(SummaryFormatError, match=r"org__MoE__gpqa\.json:1: invalid JSON"):
        read_mlenergy(folder)
    data = json.loads(text)
    del data["configurations"][0]["avg_power_watts"]
    path.write_text(json.dumps(data))
    with pytest.raises(SummaryFormatError, match=r"configurations\[0\].*avg_power_watts"):
        read_mlenergy(folder)
    data["configurations"][0]["avg_power_watts"] = float("nan")
    path.write_text(json.dumps(data))
    with pytest.raises(SummaryFormatError, match="not a finite number"):
        read_mlenergy(folder)
    data["configurations"][0].update(avg_power_watts=1.0, gpu_model="TPU-v5e")
    path.write_text(json.dumps(data))
    with pytest.raises(KeyError, match=r"configurations\[0\]\.gpu_model.*TPU-v5e"):
        read_mlenergy(folder)


LIB_HEADER = (
    "Hardware,Num of Hardware,Framework,Model,Input Output Length,Batch Size,Latency,Throughput,avg_power\n"
)


def test_llm_inference_bench_small(tmp_path):
    path = tmp_path / "power_results.csv"
    path.write_text(
        LIB_HEADER + "\n"
        "Nvidia A100 GPU,1,vLLM,meta-llama/Llama-2-7b-hf,1024,1,"
        "13.976857989095151,146.5279250599716,222122.27\n"
        "\n"
        "Nvidia H100 GPU,1,vLLM,meta-llama/Meta-Llama-3-8B,1024,16,11.0,2972.2,404201.14\n"
    )
    df = read_llm_inference_bench(path)
    _check_schema(df)
    assert df.attrs["power_unit_in_file"] == "mW"
    assert df["avg_power_w"].tolist() == pytest.approx([222.12227, 404.20114])
    assert df["gpu_model"].tolist() == ["A100-SXM4-40GB", "H100-SXM5-80GB"]
    assert df["llm"].tolist() == ["Llama-2-7b-hf", "Meta-Llama-3-8B"]
    assert df["line"].tolist() == [3, 5]  # file lines, blank lines counted
    # energy per output token = power x latency / (batch x output length)
    assert df["energy_per_token_j"].iloc[0] == pytest.approx(222.12227 * 13.976857989095151 / 1024)
    # Throughput counts prompt + output tokens: batch x 2 x length / latency
    assert df["throughput_tps"].iloc[0] == pytest.approx(2 * 1024 / 13.976857989095151, rel=1e-6)
    watts = tmp_path / "w.csv"
    watts.write_text(LIB_HEADER + "Nvidia A100 GPU,1,vLLM,meta-llama/Llama-2-7b-hf,1024,1,14,146,222.1\n")
    assert read_llm_inference_bench(watts).attrs["power_unit_in_file"] == "W"


@pytest.mark.parametrize(
    ("row", "match", "exc"),
    [
        (
            "Nvidia A100 GPU,1,vLLM,meta-llama/Llama-2-7b-hf,1024,1,14,146,",
            r"avg_power.*line\(s\) \[2\]",
            SummaryFormatError,
        ),
        (
            "Nvidia A100 GPU,1,vLLM,meta-llama/Llama-2-7b-hf,1024,1,14,146,2221222000",
            r"x TDP at line\(s\) \[2\]",
            SummaryFormatError,
        ),
        (
            "Cerebras CS-3,1,vLLM,meta-llama/Llama-2-7b-hf,1024,1,14,146,222122",
            r"p\.csv:2: Hardware.*Cerebras",
            KeyError,
        ),
        (
            "Nvidia A100 GPU,1,vLLM,acme/Unknown-7B,1024,1,14,146,222122",
            r"p\.csv:2: Model.*Unknown-7B",
            KeyError,
        ),
    ],
)
def test_llm_inference_bench_bad_inputs(tmp_path, row, match, exc):
    path = tmp_path / "p.csv"
    path.write_text(LIB_HEADER + row + "\n")
    with pytest.raises(exc, match=match):
        read_llm_inference_bench(path)


def test_llm_inference_bench_missing_column(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("Hardware,Framework,Model\nNvidia A100 GPU,vLLM,meta-llama/Llama-2-7b-hf\n")
    with pytest.raises(SummaryFormatError, match=r"p\.csv: missing column.*avg_power") as err:
        read_llm_inference_bench(path)
    assert isinstance(err.value, IngestError)
    with pytest.raises(SummaryFormatError, match="not a known configuration summary"):
        read_summaries(path)


def test_splitwise_perf_model_small(tmp_path):
    path = tmp_path / "perf_model.csv"
    head = (
        "model,hardware,prompt_size,batch_size,token_size,peak_power,average_power,"
        "prompt_time,token_time,e2e_time,tensor_parallel\n"
    )
    path.write_text(
        head
        + "llama2-70b,a100-80gb,512,1,128,1.0,0.70,196.0,54.0,7000.0,2\n"
        + "llama2-70b,a100-80gb,512,1,128,1.0,0.72,196.0,54.0,7200.0,2\n"
        + "llama2-70b,h100-80gb,512,1,128,0,0,100.0,30.0,4000.0,2\n"
    )
    df = read_splitwise_perf_model(path)
    _check_schema(df)
    assert len(df) == 1 and df["n_repeats"].iloc[0] == 2
    assert df["avg_power_w"].iloc[0] == pytest.approx(0.71 * 400 * 2)
    assert df["gpu_model"].iloc[0] == "A100-SXM4-80GB"


@pytest.mark.realdata
def test_real_mlenergy(shared_data):
    df = read_summaries(shared_data / "mlenergy-leaderboard-v3")
    _check_schema(df)
    assert len(df) == 444  # llm tasks; the 270 image-chat/video-chat configurations are dropped
    assert len(df.attrs["dropped"]) == 16
    assert len(df.attrs["repeated_configurations"]) == 2  # kept: repeated measurements of one configuration
    assert df["config_index"].dtype == np.int64
    assert set(df["gpu_model"]) == {"H100-SXM5-80GB", "B200-SXM-180GB"}
    # avg_power is the power of all GPUs: energy/token x token throughput gives it back
    ratio = df["energy_per_token_j"] * df["output_throughput_tps"] / df["avg_power_w"]
    assert np.allclose(ratio, 1.0, rtol=1e-3)
    per_gpu = df["avg_power_w"] / df["n_gpus"]
    tdp = df["gpu_model"].map({"H100-SXM5-80GB": 700.0, "B200-SXM-180GB": 1000.0})
    assert (per_gpu < tdp * 1.05).all() and (per_gpu > 0.1 * tdp).all()


@pytest.mark.realdata
def test_real_llm_inference_bench(shared_data):
    df = read_summaries(shared_data / "llm-inference-bench")
    _check_schema(df)
    assert len(df) == 48
    assert df.attrs["power_unit_in_file"] == "mW"
    assert df["avg_power_w"].between(200, 700).all()


@pytest.mark.realdata
def test_real_splitwise_perf_model(shared_data):
    df = read_summaries(shared_data / "splitwise-sim-perf-model")
    _check_schema(df)
    assert set(df["gpu_model"]) == {"A100-SXM4-80GB"} and len(df) > 0
