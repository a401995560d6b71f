"""Request-trace readers: small files in each format, bad inputs, and the real traces in ../shared/data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from wattscape.inference.readers import IngestError
from wattscape.inference.readers.traffic import TRACE_EPOCH, TraceFormatError, detect_format, read_requests
from wattscape.models import dims as D


def _check_schema(df: pd.DataFrame) -> None:
    assert list(df.columns[: len(D.REQUEST_COLUMNS)]) == list(D.REQUEST_COLUMNS)
    assert df["run_id"].dtype == "str"  # pandas 3 string dtype, not object
    assert df["start"].dtype == "datetime64[ns]" and df["end"].dtype == "datetime64[ns]"
    assert df["end"].isna().all()
    for col in ("request_id", "prompt_tokens", "output_tokens", "batch_size"):
        assert df[col].dtype == np.int64
    assert (df["batch_size"] == 1).all()


def test_azure_and_splitwise(tmp_path):
    path = tmp_path / "AzureLLMInferenceTrace_conv.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109"  # no trailing newline, as in the real files
    )
    df = read_requests(path)
    _check_schema(df)
    assert df["run_id"].tolist() == ["AzureLLMInferenceTrace_conv"] * 2
    assert df["start"].iloc[1] == pd.Timestamp("2023-11-16 18:15:50.995169")
    assert df["prompt_tokens"].tolist() == [374, 396] and df["output_tokens"].tolist() == [44, 109]
    assert df.attrs["format"] == "azure" and df.attrs["time_origin"] == "absolute"
    same = read_requests(path, name="split", fmt="splitwise")
    assert same["run_id"].iloc[0] == "split" and same["prompt_tokens"].tolist() == [374, 396]


def test_mooncake(tmp_path):
    path = tmp_path / "trace.jsonl"
    recs = [
        {"timestamp": 0, "input_length": 6758, "output_length": 500, "hash_ids": [0, 1]},
        {"timestamp": 1500, "input_length": 7322, "output_length": 490, "hash_ids": [0, 2]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    df = read_requests(path)
    _check_schema(df)
    assert (df["start"] - TRACE_EPOCH).dt.total_seconds().tolist() == [0.0, 1.5]
    assert df.attrs["format"] == "mooncake" and df.attrs["time_origin"] == "relative"
    shifted = read_requests(path, epoch="2024-01-01")
    assert shifted["start"].iloc[1] == pd.Timestamp("2024-01-01 00:00:01.5")


def test_burstgpt(tmp_path):
    path = tmp_path / "BurstGPT_1.csv"
    path.write_text(
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5,ChatGPT,472,18,490,Conversation log\n"
        "45.5,GPT-4,1087,0,1087,API log\n"
    )
    df = read_requests(path)
    _check_schema(df)
    assert (df["start"] - TRACE_EPOCH).dt.total_seconds().tolist() == [5.0, 45.5]
    assert df["output_tokens"].tolist() == [18, 0]
    assert df["model"].tolist() == ["ChatGPT", "GPT-4"] and df["model"].dtype == "str"
    assert df["log_type"].dtype == "str"


def test_vidur(tmp_path):
    path = tmp_path / "splitwise_conv.csv"
    path.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,374,44\n4.314579,396,109\n")
    df = read_requests(path)
    _check_schema(df)
    assert detect_format(path) == "vidur"
    assert (df["start"] - TRACE_EPOCH).dt.total_seconds().tolist() == pytest.approx([0.0, 4.314579])
    lengths = tmp_path / "lengths.csv"
    lengths.write_text("num_prefill_tokens,num_decode_tokens\n10,5\n")
    only = read_requests(lengths)
    assert only["start"].isna().all() and only.attrs["time_origin"].startswith("none")


def test_folder_reads_recognised_files(tmp_path):
    (tmp_path / "a.csv").write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,1,2\n")
    (tmp_path / "b.csv").write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0.5,3,4\n")
    (tmp_path / "README.md").write_text("# not a trace\n")
    df = read_requests(tmp_path)
    assert df["run_id"].tolist() == ["a", "b"]
    assert df.attrs["skipped"] == ["README.md"]


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("missing.csv", "TIMESTAMP,ContextTokens\n2023-11-16 18:15:46,1\n", "matches no known trace format"),
        ("nan.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,,4\n", r"line\(s\) \[2\]"),
        ("neg.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n0,1,2\n1,-3,2\n", r"line\(s\) \[3\]"),
        ("badtime.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,2\n", "unparseable TIMESTAMP"),
        (
            "trunc.jsonl",
            '{"timestamp": 0, "input_length": 1, "output_length": 2}\n{"timestamp": 5, "inp',
            ":2: invalid",
        ),
        ("empty.csv", "", "empty file"),
        (
            "null.jsonl",
            '{"timestamp": 0, "input_length": 1, "output_length": null}\n',
            r"output_length.*\[1\]",
        ),
        ("key.jsonl", '{"timestamp": 0, "input_length": 1}\n', "match no known trace format"),
        (
            "key2.jsonl",
            '{"timestamp": 0, "input_length": 1, "output_length": 2}\n{"timestamp": 1, "input_length": 1}\n',
            r"key2\.jsonl:2: missing key\(s\) \['output_length'\]",
        ),
    ],
)
def test_bad_inputs_name_file_and_line(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(TraceFormatError, match=match) as err:
        read_requests(path)
    assert name in str(err.value)
    assert isinstance(err.value, IngestError)


def test_forced_format_with_missing_column(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46,1\n")
    with pytest.raises(TraceFormatError, match=r"x\.csv.*missing column.*GeneratedTokens"):
        read_requests(path, fmt="azure")


@pytest.mark.realdata
def test_real_azure_2023_count(shared_data):
    df = read_requests(shared_data / "azure-llm-inference-trace-2023")
    _check_schema(df)
    assert len(df) == 28185
    assert df.groupby("run_id").size().to_dict() == {
        "AzureLLMInferenceTrace_code": 8819,
        "AzureLLMInferenceTrace_conv": 19366,
    }
    assert df["start"].min() >= pd.Timestamp("2023-11-16") and df["start"].max() < pd.Timestamp("2023-11-17")


@pytest.mark.realdata
def test_real_mooncake_count(shared_data):
    df = read_requests(shared_data / "mooncake-fast25-traces" / "conversation_trace.jsonl")
    _check_schema(df)
    assert len(df) == 12031
    span = (df["start"].max() - df["start"].min()).total_seconds()
    assert 3000 < span < 3600  # one hour of arrivals
