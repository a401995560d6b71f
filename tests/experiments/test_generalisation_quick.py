"""experiments.generalisation on a tiny synthetic catalog with stand-in fits (real replay and scoring)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments import _common as C
from experiments import generalisation as G
from tests.experiments._fakes import FakeModel, fake_fit_fold

# tiny_catalog: sxm-7b-a, sxm-7b-b (Llama-2-7b, A100-SXM4-40GB, 1 GPU), pcie-7b (Llama-2-7b, A100-PCIe-40GB,
# 1 GPU), sxm-70b-4 (Llama-2-70b, A100-SXM4-40GB, 4 GPUs)


def test_groups_hold_out_whole_groups(tiny):
    llm = G.groups(tiny, "llm")
    assert llm["Llama-2-7b-chat-hf"]["all"] == ["sxm-7b-a", "sxm-7b-b", "pcie-7b"]
    assert G.quick_groups(llm) == ["Llama-2-70b-chat-hf"]  # the one-run group: accuracy's fold
    assert set(G.groups(tiny, "n_gpus")) == {"1", "4"}
    assert G.groups(tiny, "gpu_model")["A100-PCIe-40GB"]["scored"] == ["pcie-7b"]


def test_time_series_protocols(tiny, tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(C, "fit_fold", fake_fit_fold(calls, tiny))
    argv = ["--protocols", "llm", "gpu_card", "n_gpus", "--draws", "4", "--periods", "1"]
    argv += ["--out", str(tmp_path)]
    assert G.main(argv) == 0
    held = sorted(tuple(c["holdout"]) for c in calls)
    assert ("pcie-7b", "sxm-7b-a", "sxm-7b-b") in held and ("sxm-70b-4",) in held
    assert ("pcie-7b",) in held and ("sxm-70b-4", "sxm-7b-a", "sxm-7b-b") in held
    one_run = [c for c in calls if len(c["holdout"]) == 1]
    # a one-run group reuses accuracy's cache file only when leaving its group out drops no summary row
    full = C.summaries_fingerprint(C.catalog_summaries(tiny))
    for c in one_run:
        assert (c["label"] is None) == (C.summaries_fingerprint(c["summaries"]) == full)
    assert [c["label"] for c in one_run if c["holdout"] == ["sxm-70b-4"]].count(None) == 1  # Llama-2-70b
    assert "n_gpus-4" in {c["label"] for c in one_run}  # summaries of 4-GPU configurations left out
    assert {
        "llm-Llama-2-7b-chat-hf", "gpu_card-A100-SXM4-40GB", "n_gpus-1"
    } <= {c["label"] for c in calls if len(c["holdout"]) > 1}
    for c in calls:  # the held-out group never reaches the fit through the summaries
        if c["label"] == "gpu_card-A100-SXM4-40GB":
            assert not (c["summaries"]["gpu_model"] == "A100-SXM4-40GB").any()
    table = C.read_result(tmp_path / "generalisation.csv")
    assert {"protocol", "group", "run_id", "method", "energy_error_pct", "acf_r2"} <= set(table.columns)
    assert set(table["protocol"]) == {v[0] for v in G.TS_PROTOCOLS.values()}
    assert {"model", "tdp", "mean", "splitwise", "replay"} <= set(table["method"])
    # every run scored once per protocol and method
    per = table.groupby(["protocol", "method"])["run_id"].nunique()
    assert (per == 4).all()
    model = table[table["method"] == "model"]
    assert np.isfinite(model[["energy_error_pct", "acf_r2", "energy_in_90"]].to_numpy(float)).all()
    md = (tmp_path / "generalisation.md").read_text()
    assert "## Acceptance" in md and "Leave-one-LLM-out median |energy error|" in md
    assert ("**pass**" in md) != ("**FAIL**" in md)


def test_mean_baseline_trains_without_the_group(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(C, "fit_fold", fake_fit_fold([], tiny))
    argv = ["--protocols", "gpu_card", "--groups", "A100-PCIe-40GB", "--baselines-only", "--periods", "1",
            "--out", str(tmp_path)]
    assert G.main(argv) == 0
    table = C.read_result(tmp_path / "generalisation.csv")
    mean = table[table["method"] == "mean"].iloc[0]
    # no run of the held-out card left to pool: the mean falls back past configuration and card
    assert "pool=" in str(mean["detail"]) and "pool=c" not in str(mean["detail"])
    assert "model" not in set(table["method"])


def test_mlenergy_rows_and_summary(monkeypatch, tmp_path):
    from experiments import model_checks as MC

    configs = pd.DataFrame({"source": [MC.MLENERGY] * 2, "llm": ["a", "b"], "gpu_model": [MC.B200] * 2})

    class Cat:
        def configs(self):
            return configs

    def fake_predict(model, rows, protocol, n_draws=1000):
        n = len(rows)
        return pd.DataFrame({
            "protocol": protocol, "llm": rows["llm"].to_numpy(), "gpu_model": rows["gpu_model"].to_numpy(),
            "n_gpus": 1, "split": "none", "task": "chat", "batch": 8.0, "observed_w": 500.0,
            "pred_q05_w": 400.0, "pred_q50_w": np.linspace(450, 550, n), "pred_q95_w": 600.0,
            "abs_error_pct": np.abs(np.linspace(450, 550, n) - 500) / 5, "covered_90": True,
            "seen_config": False,
        })

    monkeypatch.setattr(MC, "full_catalog", lambda out=None: Cat())
    monkeypatch.setattr(MC, "held_out_llms", lambda c: ["b"])
    monkeypatch.setattr(G, "mlenergy_fit", lambda *a, **k: FakeModel([]))
    monkeypatch.setattr(MC, "predict_rows", fake_predict)
    args = G.parse_args(["--quick"])
    rows = G.mlenergy_rows("mlenergy_b200", args, {}, [])
    assert len(rows) == 2 and rows["avg_power_error_pct"].tolist() == [10.0, 10.0]
    assert G.mlenergy_rows("mlenergy_llms", args, {}, [])["group"].tolist() == ["b"]
    summ = G.summary(rows)
    assert summ.iloc[0]["target"] == "average power" and summ.iloc[0]["median_error_pct"] == 10.0
    assert summ.iloc[0]["coverage_90"] == 1.0
