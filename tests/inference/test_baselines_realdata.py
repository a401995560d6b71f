"""The baselines on the measured energy-inference runs reproduce PROTOCOL.md's reference figures."""

from __future__ import annotations

import pytest
from wattscape.inference import baselines as B
from wattscape.inference import evaluate as E


@pytest.fixture(scope="module")
def energy_catalog(shared_data, tmp_path_factory):
    from wattscape.inference.catalog import build_catalog

    out = tmp_path_factory.mktemp("catalog") / "energy-inference"
    return build_catalog([shared_data / "energy-inference"], out, progress=False)


@pytest.mark.realdata
def test_leave_one_run_out_baselines_match_protocol(energy_catalog):
    cat = energy_catalog
    ids = [r for r, n in zip(cat.index["run_id"], cat.index["n_inferences"], strict=True) if n > 0]
    assert len(ids) == 13  # the 13 runs with a per-inference log
    table = E.evaluate_runs(cat, runs=ids, methods=B.ALL_BASELINES, periods_s=(1.0,), progress=False)
    med = table.groupby("method")["energy_error_pct"].median()
    # PROTOCOL.md: TDP ≈ 25 %, Splitwise ≈ 24 %, exact card + single/multi-GPU pooling ≈ 6 %
    assert 20 < med["tdp"] < 30
    assert 20 < med["splitwise"] < 35
    assert med["mean"] < 10
    assert med["mean"] < med["mean_generation"]  # pooling by exact card beats the generation
    # the scored run never trains its own mean or replay baseline
    assert not any(rid in d for rid, d in zip(table["run_id"], table["detail"], strict=True))
