"""Catalog: build, idempotent re-run, reading API, dispatch, and the real-data energy checks."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from wattscape.inference.catalog import build_catalog
from wattscape.inference.readers import IngestError
from wattscape.models import dims as D

from tests.conftest import REPO
from tests.inference.ei_files import UTC_OFFSET, simple_run
from wattscape.cli.demo import demo_data


@pytest.fixture(scope="module")
def demo_catalog(tmp_path_factory):
    return build_catalog([demo_data()], tmp_path_factory.mktemp("demo") / "catalog", progress=False)


def test_demo_catalog_contents(demo_catalog):
    idx = demo_catalog.index
    assert len(idx) == 4
    cards = ["A100-PCIe-40GB", "A100-SXM4-40GB", "A100-SXM4-80GB", "V100-PCIe-16GB"]
    assert sorted(idx["gpu_model"]) == cards
    assert (idx["status"] == "labelled").sum() == 3
    assert idx.loc[idx["status"] != "labelled", "status"].item() == "power-only: no per-inference log"
    mix = idx[idx["llm"] == "Mixtral-8x7B-v0.1"].iloc[0]
    assert (mix["n_gpus"], mix["split"], mix["architecture"]) == (3, D.SPLIT_LAYER, D.ARCH_MOE)
    assert mix["frac_idle"] > 0.05  # the 49 s gap between inferences
    fracs = idx[[f"frac_{s}" for s in (D.EXCLUDED, D.IDLE, D.PREFILL, D.DECODE, D.ACTIVE)]].sum(axis=1)
    np.testing.assert_allclose(fracs, 1.0)
    assert (demo_catalog.path / "index.csv").is_file()


def test_run_roundtrip(demo_catalog):
    run_id = demo_catalog.index.loc[demo_catalog.index["n_gpus"] == 3, "run_id"].item()
    ds = demo_catalog.run(run_id)
    assert ds[D.POWER].dims == (D.GPU, D.TIME) and ds[D.POWER].dtype == np.float32
    assert ds[D.POWER].attrs[D.UNITS] == D.WATT
    assert ds[D.STATE_VAR].dtype == np.int8 and ds[D.SEGMENT_VAR].dtype == np.int32
    assert ds[D.TIME].attrs["timezone"] == "UTC"
    assert ds.attrs["run_id"] == run_id
    assert all(k in ds.attrs for k in D.RUN_ATTRS)
    req = demo_catalog.requests(run_id)
    assert len(req) == ds.attrs["n_inferences"] == 63
    assert set(np.unique(ds[D.SEGMENT_VAR].values)) - {-1} <= set(req["request_id"])
    assert len(list(demo_catalog.runs())) == 4
    with pytest.raises(KeyError, match="no run"):
        demo_catalog.run("nope")
    assert demo_catalog.configs().empty


def test_idempotent_and_reuse(tmp_path):
    out = tmp_path / "cat"
    first = build_catalog([demo_data()], out, progress=False)
    assert first.changed
    files = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    t = time.perf_counter()
    again = build_catalog([demo_data()], out, progress=False)
    assert not again.changed and time.perf_counter() - t < 5
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()} == files
    run = tmp_path / "extra"
    simple_run(run)
    grown = build_catalog([demo_data(), run], out, utc_offset_hours=UTC_OFFSET, progress=False)
    assert grown.changed and len(grown.index) == 5
    for p, (_, content) in files.items():
        if p.suffix == ".nc":
            assert p.read_bytes() == content  # reused, not rebuilt


def test_powertrace_sim_run_dispatch(tmp_path):
    bundle = REPO / "tests" / "inference" / "data" / "powertrace_sim" / "h100_test_tp2"
    cat = build_catalog([bundle], tmp_path / "cat", progress=False)
    row = cat.index.iloc[0]
    assert (row["n_gpus"], row["split"], row["state_labels"]) == (2, D.SPLIT_TENSOR, D.LABELS_PHASES)
    assert row["frac_prefill"] > 0 and row["frac_decode"] > 0
    assert len(cat.requests(row["run_id"])) > 0


def test_refuses_to_replace_a_folder_that_is_not_a_catalog(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(IngestError, match="not a wattscape catalog"):
        build_catalog([demo_data()], tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_unknown_source(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("hello")
    with pytest.raises(IngestError, match="not a known source"):
        build_catalog([tmp_path / "x"], tmp_path / "cat", progress=False)


# --- real data ---------------------------------------------------------------------------------------------
def _raw_energy(path, offset_h: float, n_gpus: int) -> float:
    """Independent energy of a raw nvidia-smi CSV: complete frames, trapezoid rule on the summed power."""
    stamps, watts = [], []
    for line in path.read_text().splitlines()[1:]:
        parts = line.split(", ")
        if len(parts) == 4 and parts[1].endswith(" W") and len(parts[0]) == 23:
            stamps.append(parts[0])
            watts.append(float(parts[1][:-2]))
    n = len(watts) // n_gpus * n_gpus
    t = pd.to_datetime(pd.Series(stamps[:n:n_gpus]), format="%Y/%m/%d %H:%M:%S.%f")
    t = (t - pd.Timestamp("1970-01-01")).dt.total_seconds().to_numpy() - offset_h * 3600
    p = np.array(watts[:n]).reshape(-1, n_gpus).sum(axis=1)
    return float(np.sum(0.5 * (p[1:] + p[:-1]) * np.diff(t)))


@pytest.mark.realdata
def test_real_energy_inference(shared_data, tmp_path):
    ei = shared_data / "energy-inference"
    cat = build_catalog([ei], tmp_path / "cat", progress=False)
    runs = pd.read_csv(ei / "runs_index.csv")
    assert len(cat.index) == len(runs) == 17
    assert (cat.index["status"] == "labelled").sum() == 13
    by_source = cat.index.set_index("source")
    worst = 0.0
    for row in runs.itertuples():
        mine = by_source.loc[f"energy-inference/{row.trace_file}"]
        raw = _raw_energy(ei / row.trace_file, row.utc_offset_hours, row.gpus_logged)
        worst = max(worst, abs(mine["energy_j"] / raw - 1))
    assert worst < 1e-3
    labelled = cat.index[cat.index["status"] == "labelled"]
    assert np.all(np.abs(labelled["log_energy_ratio"] - 1) < 0.02)
    req = cat.requests()
    assert len(req) == labelled["n_inferences"].sum()
    for _, ids in req.groupby("run_id")["request_id"]:
        assert ids.tolist() == list(range(len(ids)))


@pytest.mark.realdata
def test_real_summaries_and_traffic(shared_data, tmp_path):
    cat = build_catalog(
        [shared_data / "mlenergy-leaderboard-v3", shared_data / "azure-llm-inference-trace-2023"],
        tmp_path / "cat",
        progress=False,
    )
    assert cat.index.empty
    jobs = cat.manifest["jobs"]
    n_configs = jobs["summaries-mlenergy-leaderboard-v3"]["n_configs"]
    assert len(cat.configs()) == n_configs > 0
    assert cat.traffic_names() == ["azure-llm-inference-trace-2023"]
    assert len(cat.traffic("azure-llm-inference-trace-2023")) == 28_185
