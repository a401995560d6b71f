"""Readers for grantwilkins/powertrace-sim run bundles, on small files written here in the same format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from wattscape.inference.readers import IngestError
from wattscape.inference.readers.powertrace_sim import (
    pair_client_files,
    read_client_run,
    read_manifest,
    read_run_dir,
    read_vllm_benchmark,
)
from wattscape.models import dims as D

T0 = 1784435000.0  # epoch of the first power sample (UTC)
OFFSET_S = -7 * 3600  # local clock of the power log: UTC-7
DT = 0.25
N = 80  # 20 s of samples
UUIDS = ["GPU-aaaa", "GPU-bbbb", "GPU-cccc"]  # three logged, the first two serve (tp=2)


def _phase(t: float) -> str:
    if 5.0 <= t < 6.0:
        return "prefill"
    if 6.0 <= t < 12.0:
        return "decode"
    return "idle"


LEVEL = {"idle": 120.0, "prefill": 600.0, "decode": 400.0}


def _local(epoch: float) -> str:
    ts = pd.Timestamp(epoch, unit="s") + pd.Timedelta(seconds=OFFSET_S)
    return ts.strftime("%Y/%m/%d %H:%M:%S.") + f"{ts.microsecond // 1000:03d}"


def write_run(
    folder: Path, *, engine: bool = True, requests: bool = True, manifest: dict | None = None
) -> Path:
    """A 20 s tp=2 run: idle 0-5 s, prefill 5-6 s, decode 6-12 s, idle 12-20 s."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["timestamp,index,uuid,power.draw [W],utilization.gpu [%],memory.used [MiB],pstate,power.limit"]
    for k in range(N):
        t = T0 + k * DT
        for g, u in enumerate(UUIDS):
            p = LEVEL[_phase(k * DT)] if g < 2 else 60.0
            rows.append(f"{_local(t)},{g},{u},{p + g:.2f},0,70000,P0,700.00")
    (folder / "power.csv").write_text("\n".join(rows) + "\n")
    if engine:
        lines = [
            "timestamp,num_requests_running,num_requests_waiting,prompt_tokens_total,generation_tokens_total"
        ]
        prompt = gen = 0
        for k in range(N + 1):
            t_end = k * DT + 0.05  # scrape shortly after each power sample
            ph = _phase(t_end - 0.1)
            if ph == "prefill":
                prompt += 100
            elif ph == "decode":
                gen += 8
            running = 2 if ph != "idle" else 0
            lines.append(f"{T0 + t_end:.4f},{running}.0,0.0,{prompt}.0,{gen}.0")
        (folder / "engine.csv").write_text("\n".join(lines) + "\n")
    if requests:
        req = {
            "date": "20260718-142700",
            "backend": "vllm",
            "model_id": "meta-llama/Llama-2-13b-chat-hf",
            "duration": 7.0,
            "completed": 2,
            "input_lens": [400, 400],
            "output_lens": [96, 96],
            "ttfts": [1.0, 0.9],
            "itls": [[0.0625] * 96, [0.0625] * 96],
            "errors": ["", ""],
            "request_timestamps": [T0 + 5.0, T0 + 5.1],
        }
        (folder / "requests.json").write_text(json.dumps(req))
    man = {
        "run_id": "h100_test_tp2",
        "model": "meta-llama/Llama-2-13b-chat-hf",
        "hardware": "H100",
        "tp": 2,
        "clock": {"local_utc_offset_s": OFFSET_S, "engine_epoch_offset_s": 0.0, "reference_epoch_s": T0},
        "server": {"active_gpu_uuids": UUIDS[:2], "max_num_seqs": 64},
        "probe": {"window": {"start_epoch": T0, "end_epoch": T0 + 19.0}},
    }
    if manifest is not None:
        man = manifest
    (folder / "manifest.json").write_text(json.dumps(man))
    return folder


def test_read_run_dir_known_answer(tmp_path):
    ds, req = read_run_dir(write_run(tmp_path / "run"))
    assert ds[D.POWER].dims == (D.GPU, D.TIME)
    assert ds[D.POWER].dtype == np.float32 and ds[D.POWER].attrs[D.UNITS] == D.WATT
    assert ds.sizes[D.GPU] == 2  # the third, non-serving GPU is dropped
    assert ds.attrs["tensor_parallel"] == 2 and ds.attrs["split"] == D.SPLIT_TENSOR
    assert ds.attrs["gpu_model"] == "H100-SXM5-80GB"
    assert ds.attrs["llm"] == "Llama-2-13b-chat-hf" and ds.attrs["params_b"] == pytest.approx(13.02)
    assert ds.attrs["state_labels"] == D.LABELS_PHASES
    assert ds.attrs["sample_period_s"] == pytest.approx(DT, rel=1e-3)
    # local UTC-7 timestamps are converted to UTC
    assert ds[D.TIME].values[0] == np.datetime64(pd.Timestamp(T0, unit="s").as_unit("ns").to_datetime64())
    # state labels match the phases the power was written with (the probe window ends at 19 s)
    offs = (ds[D.TIME].values - ds[D.TIME].values[0]) / np.timedelta64(1, "s")
    expected = np.array([D.STATE_CODES[_phase(t)] for t in offs], dtype=np.int8)
    expected[offs > 19.0] = D.STATE_CODES[D.EXCLUDED]
    got = ds[D.STATE_VAR].values
    assert np.mean(got == expected) >= 0.95, (got, expected)
    # power per state is the level the file was written with
    p0 = ds[D.POWER].isel({D.GPU: 0}).values
    for name, level in LEVEL.items():
        sel = got == D.STATE_CODES[name]
        assert np.median(p0[sel]) == pytest.approx(level)
    # segments: contiguous runs, -1 only for excluded samples
    seg = ds[D.SEGMENT_VAR].values
    assert (seg[got == D.STATE_CODES[D.EXCLUDED]] == -1).all()
    assert seg.max() + 1 == 4  # idle, prefill, decode, idle
    # request table
    assert list(req.columns[: len(D.REQUEST_COLUMNS)]) == list(D.REQUEST_COLUMNS)
    assert len(req) == 2 and req["run_id"].iloc[0] == "h100_test_tp2"
    assert (req["first_token"] - req["start"]).dt.total_seconds().tolist() == pytest.approx([1.0, 0.9])
    assert req["e2e_s"].tolist() == pytest.approx([7.0, 6.9])
    assert req["batch_size"].tolist() == [1, 2]


def test_states_from_requests_without_engine(tmp_path):
    ds, _ = read_run_dir(write_run(tmp_path / "run", engine=False))
    assert ds.attrs["state_labels"] == D.LABELS_PHASES
    offs = (ds[D.TIME].values - ds[D.TIME].values[0]) / np.timedelta64(1, "s")
    state = ds[D.STATE_VAR].values
    assert state[(offs >= 5.25) & (offs < 5.9)].tolist() == [D.STATE_CODES[D.PREFILL]] * 3
    assert (state[(offs >= 6.25) & (offs < 11.75)] == D.STATE_CODES[D.DECODE]).all()
    assert (state[offs < 5.0] == D.STATE_CODES[D.IDLE]).all()


def test_power_only_run(tmp_path):
    ds, req = read_run_dir(write_run(tmp_path / "run", engine=False, requests=False))
    assert ds.attrs["state_labels"] == "none"
    assert "not labelled" in ds.attrs["quirks"]
    assert len(req) == 0 and list(req.columns[:7]) == list(D.REQUEST_COLUMNS)


def test_offset_inferred_when_missing(tmp_path):
    folder = write_run(tmp_path / "run")
    man = json.loads((folder / "manifest.json").read_text())
    del man["clock"]["local_utc_offset_s"]
    (folder / "manifest.json").write_text(json.dumps(man))
    ds, _ = read_run_dir(folder)
    assert ds.attrs["utc_offset_s"] == OFFSET_S
    assert "inferred" in ds.attrs["quirks"]


def test_truncated_json_is_refused(tmp_path):
    folder = write_run(tmp_path / "run")
    text = (folder / "requests.json").read_text()
    (folder / "requests.json").write_text(text[: len(text) // 2])
    with pytest.raises(IngestError, match=r"requests\.json.*invalid JSON"):
        read_run_dir(folder)


def test_manifest_missing_key(tmp_path):
    folder = write_run(tmp_path / "run", manifest={"run_id": "x", "hardware": "H100", "tp": 1})
    with pytest.raises(IngestError, match=r"manifest\.json.*'model'"):
        read_manifest(folder)


def test_unknown_gpu_name_is_refused(tmp_path):
    folder = write_run(tmp_path / "run")
    man = json.loads((folder / "manifest.json").read_text())
    man["hardware"] = "TPU-v5e"
    (folder / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(KeyError, match="TPU-v5e"):
        read_run_dir(folder)


def test_engine_missing_column(tmp_path):
    folder = write_run(tmp_path / "run")
    text = (folder / "engine.csv").read_text().replace("prompt_tokens_total", "prompt_tokens")
    (folder / "engine.csv").write_text(text)
    with pytest.raises(IngestError, match=r"engine\.csv.*prompt_tokens_total"):
        read_run_dir(folder)


def _stock_result(path: Path, **over) -> Path:
    data = {
        "date": "20250517-225123",
        "backend": "vllm",
        "model_id": "meta-llama/Llama-2-7b-chat-hf",
        "tensor_parallel_size": 1,
        "request_rate": 0.5,
        "duration": 10.0,
        "completed": 3,
        "input_lens": [10, 20, 30],
        "output_lens": [3, 2, 1],
        "ttfts": [0.1, 0.2, 0.3],
        "itls": [[0.05, 0.05], [0.05], []],
        "generated_texts": ["a", "b", "c"],
        "errors": ["", "", "timeout"],
        "mean_ttft_ms": 200.0,
    }
    data.update(over)
    path.write_text(json.dumps(data))
    return path


def test_read_vllm_benchmark_stock_and_bad_inputs(tmp_path):
    df = read_vllm_benchmark(_stock_result(tmp_path / "r.json"))
    assert df["start"].isna().all()  # stock vLLM: no absolute times
    assert "no request_timestamps" in "; ".join(df.attrs["quirks"])
    assert df.attrs["summary"]["request_rate"] == 0.5 and df.attrs["summary"]["mean_ttft_ms"] == 200.0
    assert df["e2e_s"].tolist() == pytest.approx([0.2, 0.25, 0.3])
    assert df["error"].tolist() == ["", "", "timeout"]
    assert df["error"].dtype == "str" and df["run_id"].dtype == "str"
    with pytest.raises(IngestError, match="differ in length"):
        read_vllm_benchmark(_stock_result(tmp_path / "a.json", output_lens=[1, 2]))
    with pytest.raises(IngestError, match="NaN or negative"):
        read_vllm_benchmark(_stock_result(tmp_path / "b.json", ttfts=[0.1, float("nan"), 0.2]))
    with pytest.raises(IngestError, match="input_lens"):
        read_vllm_benchmark(_stock_result(tmp_path / "c.json", input_lens=None))


def _client_pair(folder: Path, start: pd.Timestamp, csv_name: str, json_name: str) -> tuple[Path, Path]:
    """An index-less node CSV (4 GPUs, tp=2 busy 2-6 s) and its result JSON; the node clock is UTC."""
    rows = ["timestamp, power.draw [W], utilization.gpu [%], memory.used [MiB]"]
    for k in range(40):
        t = start + pd.Timedelta(seconds=0.25 * k)
        busy = 2.0 <= 0.25 * k < 6.0
        for g in range(4):
            p = (300.0 if busy else 70.0) if g < 2 else 60.0
            rows.append(f"{t:%Y/%m/%d %H:%M:%S}.{t.microsecond // 1000:03d}, {p:.2f} W, 0 %, 100 MiB")
    csv = folder / csv_name
    csv.write_text("\n".join(rows) + "\n")
    t0 = start.value / 1e9
    saved = start + pd.Timedelta(seconds=10)
    js = _stock_result(
        folder / json_name,
        date=f"{saved:%Y%m%d-%H%M%S}",
        tensor_parallel_size=2,
        input_lens=[10, 20],
        output_lens=[40, 40],
        ttfts=[0.5, 0.5],
        itls=[[0.0875] * 40, [0.0875] * 40],
        errors=["", ""],
        request_timestamps=[t0 + 2.0, t0 + 2.25],
    )
    return csv, js


def test_read_client_run(tmp_path):
    """Older layout: index-less node CSV (units in values) + result JSON with epoch send times."""
    start = pd.Timestamp("2025-05-17 22:00:00")
    csv, js = _client_pair(
        tmp_path,
        start,
        "llama-2-7b_tp2_p0.5_d2025-05-17-22-00-00.csv",
        "vllm-0.5qps-tp2-x-20250517-220010.json",
    )
    ds, req = read_client_run(csv, js, gpu_model="A100-SXM4-80GB")
    assert ds.sizes[D.GPU] == 2 and ds.attrs["tensor_parallel"] == 2
    assert ds.attrs["utc_offset_s"] == 0.0  # inferred: the node clock was UTC
    assert ds.attrs["gpu_model"] == "A100-SXM4-80GB"
    offs = (ds[D.TIME].values - np.datetime64(start.as_unit("ns").to_datetime64())) / np.timedelta64(1, "s")
    state = ds[D.STATE_VAR].values
    assert (state[(offs >= 2.0) & (offs < 2.5)] == D.STATE_CODES[D.PREFILL]).all()
    assert (state[(offs >= 3.0) & (offs < 5.5)] == D.STATE_CODES[D.DECODE]).all()
    assert (state[offs < 2.0] == D.STATE_CODES[D.IDLE]).all()
    assert float(ds[D.POWER].isel({D.GPU: 0}).values[(offs >= 3) & (offs < 5)].mean()) == pytest.approx(300.0)
    assert len(req) == 2


def test_pair_client_files_by_time_not_name(tmp_path):
    """Names point at the wrong partner (as in the repository); pairing follows the request times."""
    a = pd.Timestamp("2025-05-17 22:00:00")
    b = pd.Timestamp("2025-05-17 23:00:00")
    csv_a, js_a = _client_pair(tmp_path, a, "m_tp2_p0.5_d2025-05-17-23-00-00.csv", "vllm-1.0qps-tp2-m-1.json")
    csv_b, js_b = _client_pair(tmp_path, b, "m_tp2_p1.0_d2025-05-17-22-00-00.csv", "vllm-0.5qps-tp2-m-2.json")
    (tmp_path / "orphan.json").write_text(json.dumps({"input_lens": [1], "output_lens": [1]}))
    assert pair_client_files(tmp_path) == [(csv_b, js_b), (csv_a, js_a)]  # sorted by JSON name


def test_private_power_parser_fallback(tmp_path, monkeypatch):
    """Without the shared nvidia-smi reader, the module's own --query-gpu parser gives the same run."""
    from wattscape.inference.readers import nvidia_smi

    folder = write_run(tmp_path / "run")
    shared, _ = read_run_dir(folder)
    for name in ("read_query_gpu_csv", "read_nvidia_smi"):
        monkeypatch.delattr(nvidia_smi, name, raising=False)
    private, _ = read_run_dir(folder)
    np.testing.assert_array_equal(private[D.TIME].values, shared[D.TIME].values)
    np.testing.assert_allclose(private[D.POWER].values, shared[D.POWER].values)
    np.testing.assert_array_equal(private[D.STATE_VAR].values, shared[D.STATE_VAR].values)


def test_shipped_example_bundle_matches_the_writer(tmp_path):
    """The static example in tests/inference/data stays readable and equal to what write_run produces."""
    shipped = Path(__file__).parent / "data" / "powertrace_sim" / "h100_test_tp2"
    ds, req = read_run_dir(shipped)
    fresh, _ = read_run_dir(write_run(tmp_path / "run"))
    np.testing.assert_array_equal(ds[D.STATE_VAR].values, fresh[D.STATE_VAR].values)
    np.testing.assert_allclose(ds[D.POWER].values, fresh[D.POWER].values)
    assert ds.attrs["run_id"] == "h100_test_tp2" and len(req) == 2
