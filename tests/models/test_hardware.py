"""GPU and LLM specification tables and their name normalisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from wattscape.models.hardware import SPEC_COLUMNS, gpu_spec, gpu_table, known_gpus, normalise_gpu_name
from wattscape.models.llm_specs import llm_spec, llm_table, normalise_llm_name

REQUIRED = (
    "V100-PCIe-16GB",
    "V100-SXM2-16GB",
    "V100-SXM2-32GB",
    "A100-PCIe-40GB",
    "A100-SXM4-40GB",
    "A100-PCIe-80GB",
    "A100-SXM4-80GB",
    "H100-PCIe-80GB",
    "H100-SXM5-80GB",
    "H100-NVL-94GB",
    "H200-SXM-141GB",
    "H200-NVL-141GB",
    "GH200-96GB",
    "B200-SXM-180GB",
    "L40S-48GB",
    "RTX4090-24GB",
)


def test_table_has_every_required_card_with_plausible_figures():
    table = gpu_table()
    assert tuple(table.columns) == SPEC_COLUMNS
    assert set(REQUIRED) <= set(known_gpus())
    assert table["name"].is_unique
    assert table["tdp_w"].between(200, 1200).all()
    assert table["mem_bw_gbs"].between(500, 9000).all()
    assert table["bf16_dense_tflops"].between(50, 3000).all()
    assert (table["source"].str.len() > 10).all()
    assert table["name"].dtype == "str"  # pandas 3 string dtype
    # the idle figure, where known, is a small fraction of TDP
    idle = table["idle_w_typical"].dropna()
    assert ((idle / table.loc[idle.index, "tdp_w"]).between(0.05, 0.3)).all()


def test_pcie_and_sxm_are_different_cards():
    assert gpu_spec("A100-PCIe-40GB")["tdp_w"] == 250
    assert gpu_spec("A100-SXM4-40GB")["tdp_w"] == 400
    assert gpu_spec("H100-PCIe-80GB")["tdp_w"] < gpu_spec("H100-SXM5-80GB")["tdp_w"] == 700
    assert gpu_spec("B200-SXM-180GB")["memory_gb"] == 180


def test_gpu_spec_unknown_names_known_cards():
    with pytest.raises(KeyError, match="known cards: V100-PCIe-16GB"):
        gpu_spec("A100")


@pytest.mark.parametrize(
    ("text", "kwargs", "card"),
    [
        ("H100", {}, "H100-SXM5-80GB"),
        ("B200", {}, "B200-SXM-180GB"),
        ("Nvidia A100 GPU", {}, "A100-SXM4-40GB"),
        ("Nvidia H100 GPU", {}, "H100-SXM5-80GB"),
        ("Nvidia GH200 GPU", {}, "GH200-96GB"),
        ("a100-80gb", {}, "A100-SXM4-80GB"),
        ("h100-80gb", {}, "H100-SXM5-80GB"),
        ("NVIDIA A100-SXM4-40GB", {}, "A100-SXM4-40GB"),
        ("NVIDIA A100-PCIE-40GB", {}, "A100-PCIe-40GB"),
        ("NVIDIA H100 80GB HBM3", {}, "H100-SXM5-80GB"),
        ("NVIDIA H100 PCIe", {}, "H100-PCIe-80GB"),
        ("NVIDIA H100 NVL", {}, "H100-NVL-94GB"),
        ("NVIDIA H200 NVL", {}, "H200-NVL-141GB"),
        ("Tesla V100-SXM2-32GB", {}, "V100-SXM2-32GB"),
        ("V100-16GB", {}, "V100-PCIe-16GB"),
        ("A100-40GB", {"form_factor": "pcie"}, "A100-PCIe-40GB"),
        ("A100", {"memory_gb": 80}, "A100-SXM4-80GB"),
        ("NVIDIA GeForce RTX 4090", {}, "RTX4090-24GB"),
        ("AMD MI300X GPU", {}, "MI300X-192GB"),
        ("Habana Gaudi2", {}, "Gaudi2-96GB"),
        ("L40S-48GB", {}, "L40S-48GB"),
    ],
)
def test_normalise_gpu_name(text, kwargs, card):
    assert normalise_gpu_name(text, **kwargs) == card


@pytest.mark.parametrize(("text", "kwargs"), [("TPU v5e", {}), ("A100", {"memory_gb": 48}), ("", {})])
def test_normalise_gpu_name_refuses_unknown(text, kwargs):
    with pytest.raises(KeyError, match="GPU"):
        normalise_gpu_name(text, **kwargs)


def test_llm_table_and_names():
    table = llm_table()
    assert (table["active_params_b"] <= table["params_b"]).all()
    assert table["name"].dtype == "str"
    mix = llm_spec("mistralai/Mixtral-8x7B-v0.1")
    assert (mix["params_b"], mix["active_params_b"], mix["architecture"]) == (46.7, 12.9, "moe")
    assert llm_spec("Mistral-7B-v0.1")["params_b"] == pytest.approx(7.24)
    assert llm_spec("falcon-7b")["params_b"] == pytest.approx(7.2)
    assert llm_spec("falcon-40b")["params_b"] == pytest.approx(40.0)
    for name in ("Llama-2-7b-chat-hf", "Llama-2-13b-chat-hf", "Llama-2-70b-chat-hf"):
        spec = llm_spec(name)
        assert spec["architecture"] == "dense" and spec["params_b"] == spec["active_params_b"]
    assert normalise_llm_name("meta-llama/Llama-2-7b-hf") == "Llama-2-7b-hf"
    assert normalise_llm_name("Llama-2 (7B)") == "Llama-2-7b-chat-hf"
    assert normalise_llm_name("llama2-70b") == "Llama-2-70b-chat-hf"
    assert normalise_llm_name("mistral7b") == "Mistral-7B-v0.1"
    with pytest.raises(KeyError, match="unknown LLM 'GPT-5'"):
        llm_spec("GPT-5")


@pytest.mark.realdata
def test_every_gpu_and_llm_of_the_real_summaries_is_known(shared_data):
    bench = pd.read_csv(shared_data / "llm-inference-bench" / "All_results.csv")
    hardware = {h for h in bench["Hardware"].unique() if "SN40L" not in h}  # SambaNova RDU: no GPU row
    cards = {normalise_gpu_name(h) for h in hardware}
    assert len(cards) == len(hardware) - 1  # "Intel PVC GPU" and "Intel Max 1550" are one card
    assert {normalise_llm_name(m) for m in bench["Model"].unique()} <= set(llm_table().index)
    assert np.isfinite([gpu_spec(c)["tdp_w"] for c in cards]).all()


@pytest.mark.realdata
def test_llm_table_agrees_with_mlenergy_params(shared_data):
    from wattscape.inference.readers.summaries import read_mlenergy

    mle = read_mlenergy(shared_data / "mlenergy-leaderboard-v3").drop_duplicates("llm").set_index("llm")
    shared = [name for name in mle.index if name in llm_table().index]
    assert len(shared) >= 10
    for name in shared:
        spec = llm_spec(name)
        assert spec["params_b"] == pytest.approx(mle.loc[name, "params_b"])
        assert spec["active_params_b"] == pytest.approx(mle.loc[name, "active_params_b"])


def test_context_traffic_ratio_known_answers():
    from wattscape.models.hardware import context_traffic_ratio

    # Llama-2-7B is the reference; Mixtral-8x7B: 32 layers x 32 heads x 128 over all 46.7 B weights
    assert context_traffic_ratio("Llama-2-7b-chat-hf", 6.74) == pytest.approx(0.0, abs=1e-12)
    assert context_traffic_ratio("Mixtral-8x7B-v0.1", 46.7) == pytest.approx(np.log(6.74 / 46.7))
    # falcon-7b: 71 heads of 64
    assert context_traffic_ratio("falcon-7b", 7.2) == pytest.approx(
        np.log(32 * 71 * 64 / 7.2 / (32 * 32 * 128 / 6.74))
    )
    # unknown LLM, an LLM without layer/head counts, a missing or zero parameter count: the reference
    assert context_traffic_ratio("no-such-llm-1b", 1.0) == 0.0
    assert context_traffic_ratio("DeciLM-7B", 7.04) == 0.0
    assert context_traffic_ratio("falcon-7b", float("nan")) == 0.0
    assert context_traffic_ratio("falcon-7b", 0.0) == 0.0
    assert np.isnan(llm_spec("DeciLM-7B")["head_dim"]) and llm_spec("falcon-40b")["head_dim"] == 64


def test_attention_score_ratio_known_answers():
    from wattscape.models.hardware import attention_score_ratio

    # Llama-2-7B is the reference; falcon-7b: 32 layers x 71 query heads at 7.2 B
    assert attention_score_ratio("Llama-2-7b-chat-hf", 6.74) == pytest.approx(0.0, abs=1e-12)
    assert attention_score_ratio("falcon-7b", 7.2) == pytest.approx(np.log(32 * 71 / 7.2 / (32 * 32 / 6.74)))
    # a MoE counts its active parameters (the caller passes them)
    assert attention_score_ratio("Mixtral-8x7B-v0.1", 12.9) == pytest.approx(np.log(6.74 / 12.9))
    # unknown LLM, an LLM without layer/head counts, a missing parameter count: the reference
    assert attention_score_ratio("no-such-llm-1b", 1.0) == 0.0
    assert attention_score_ratio("DeciLM-7B", 7.04) == 0.0
    assert attention_score_ratio("falcon-7b", float("nan")) == 0.0
    assert np.isnan(llm_spec("DeciLM-7B")["n_layers"]) and llm_spec("falcon-7b")["n_heads"] == 71
