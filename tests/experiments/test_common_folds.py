"""The fold helpers of experiments._common: seeds and cache files shared with experiments.accuracy."""

from __future__ import annotations

import pytest

from experiments import _common as C
from tests.inference.synthetic_runs import tiny_catalog


def test_fold_seed_and_cache_name_follow_accuracy():
    cat = tiny_catalog()
    ids = C.runs_with_log(cat)
    assert [C.fold_seed(cat, r, 10) for r in ids] == [10 + k for k in range(len(ids))]
    path = C.fold_cache_path("cache", ids[1], "fast", 3)
    assert str(path) == f"cache/{ids[1]}-fast-s3.nc"  # experiments.accuracy.fit_holdout's file
    assert C.fold_cache_path(None, "x", "fast", 0) is None
    assert C.fold_cache_path("c", "llm-a/b c", "nuts", 1).name == "llm-a_b_c-nuts-s1.nc"


def test_fit_fold_reuses_a_matching_cache_and_refits_a_stale_one(tmp_path, monkeypatch):
    import types

    import pandas as pd
    import wattscape.inference.stats as stats
    import wattscape.models.hierarchical as H

    fits = []

    class Fake:  # the file holds "<model id>|<summaries fingerprint>[|<fold sampler>]"
        def __init__(self, model_config=None):
            self.id = "new" if model_config else "default"
            self.idata = types.SimpleNamespace(attrs={})

        @classmethod
        def load(cls, path):
            m = cls()
            m.id, m.idata.attrs["fold_summaries"], *how = path.read_text().split("|")
            m.idata.attrs["sampler"] = "fast" if path.name.endswith("-fast-s0.nc") else "numpyro"
            if how:
                m.idata.attrs["fold_sampler"] = how[0]
            return m

        def fit(self, fd, **kw):
            fits.append(kw["sampler"])
            if kw["sampler"] == "numpyro":
                assert kw["dense_mass"] is False  # the fold settings reach the sampler

        def save(self, path):
            path.write_text(f"{self.id}|{self.idata.attrs['fold_summaries']}|{self.idata.attrs['fold_sampler']}")

    monkeypatch.setattr(H, "PowerModel", Fake)
    monkeypatch.setattr(stats, "fit_data_from_catalog", lambda *a, **k: None)
    cat = tiny_catalog()
    with pytest.raises(ValueError, match="needs a cache label"):
        C.fit_fold(cat, ["a", "b"], mode="fast", seed=0)
    advi = C.fold_sampler("fast")
    assert "n_mc=" in advi and "iterations=" in advi  # the ADVI settings key the cache
    (tmp_path / "r-fast-s0.nc").write_text(f"default|none|{advi}")
    assert C.fit_fold(cat, ["r"], mode="fast", seed=0, cache=tmp_path).id == "default"
    assert fits == []  # reused
    # a fold cached before the sampler was recorded (ADVI of other settings) is refitted
    (tmp_path / "r-fast-s0.nc").write_text("default|none")
    C.fit_fold(cat, ["r"], mode="fast", seed=0, cache=tmp_path)
    assert fits == ["fast"] and (tmp_path / "r-fast-s0.nc").read_text() == f"default|none|{advi}"
    C.fit_fold(cat, ["r"], mode="nuts", seed=0, cache=tmp_path, model_config={"x": 1})
    (tmp_path / "r-fast-s0.nc").write_text(f"stale|none|{advi}")
    C.fit_fold(cat, ["r"], mode="fast", seed=0, cache=tmp_path)
    assert fits == ["fast", "numpyro", "fast"]
    assert (tmp_path / "r-fast-s0.nc").read_text() == f"default|none|{advi}"
    # the same model fitted with other summaries is refitted, and the file records the new ones
    summ = pd.DataFrame({"source": ["s"], "llm": ["m"], "gpu_model": ["g"], "n_gpus": [1], "batch": [8],
                         "avg_power_w": [300.0]})
    C.fit_fold(cat, ["r"], mode="fast", seed=0, cache=tmp_path, summaries=summ)
    assert fits[-1] == "fast" and len(fits) == 4
    assert (tmp_path / "r-fast-s0.nc").read_text() == f"default|{C.summaries_fingerprint(summ)}|{advi}"
    C.fit_fold(cat, ["r"], mode="fast", seed=0, cache=tmp_path, summaries=summ)
    assert len(fits) == 4  # reused


def test_fold_summaries_add_the_shared_sources_and_drop_a_held_out_group(shared_data):
    cat = tiny_catalog()
    base = C.catalog_summaries(cat)
    assert base is not None and {"mlenergy-v3", "llm-inference-bench"} <= set(base["source"])
    assert C.catalog_summaries(cat, shared=False) is None  # the tiny catalog has none of its own
    # an LLM goes with its other releases: Llama-2-7b-chat-hf drops LLM-Inference-Bench's Llama-2-7b-hf
    no_llama = C.catalog_summaries(cat, exclude={"llm": "Llama-2-7b-chat-hf"})
    assert (base["llm"] == "Llama-2-7b-hf").any() and not (no_llama["llm"] == "Llama-2-7b-hf").any()
    assert len(no_llama) < len(base)
    no_card = C.catalog_summaries(cat, exclude={"gpu_model": "A100-SXM4-40GB"})
    assert not (no_card["gpu_model"] == "A100-SXM4-40GB").any() and len(no_card) > 0
    no_count = C.catalog_summaries(cat, exclude={"n_gpus": 8})
    assert not (no_count["n_gpus"].astype(int) == 8).any()
    assert C.summaries_fingerprint(base) != C.summaries_fingerprint(no_card)
    assert C.summaries_fingerprint(None) == "none"
    with pytest.raises(KeyError, match="task"):
        C.catalog_summaries(cat, exclude={"task": "chat"})


@pytest.fixture
def fake_fits(monkeypatch):
    """``PowerModel`` replaced by a fake whose fits are recorded (their keyword arguments, in the returned
    list) and whose saved file holds only its ``fold_sampler``; no fit data are built."""
    import types

    import wattscape.inference.stats as stats
    import wattscape.models.hierarchical as H

    fits = []

    class Fake:
        def __init__(self, model_config=None):
            self.id = "default"
            self.idata = types.SimpleNamespace(attrs={})

        @classmethod
        def load(cls, path):
            m = cls()
            m.idata.attrs.update(sampler="numpyro", fold_summaries="none")
            if path.read_text():
                m.idata.attrs["fold_sampler"] = path.read_text()
            return m

        def fit(self, fd, **kw):
            fits.append(kw)

        def save(self, path):
            path.write_text(self.idata.attrs["fold_sampler"])

    monkeypatch.setattr(H, "PowerModel", Fake)
    monkeypatch.setattr(stats, "fit_data_from_catalog", lambda *a, **k: None)
    return fits


def test_a_nuts_fold_cached_with_another_sampler_setting_is_refitted(tmp_path, fake_fits):
    """NUTS folds cached before the sampler was recorded had a dense metric: refitted, then reused."""
    fits = fake_fits
    cat = tiny_catalog()
    (tmp_path / "r-nuts-s0.nc").write_text("")  # an unrecorded (dense-metric) NUTS fold
    C.fit_fold(cat, ["r"], mode="nuts", seed=0, cache=tmp_path)
    assert len(fits) == 1 and fits[0]["sampler"] == "numpyro" and fits[0]["dense_mass"] is False
    assert (tmp_path / "r-nuts-s0.nc").read_text() == C.fold_sampler("nuts")
    assert "dense_mass=False" in C.fold_sampler("nuts") and C.fold_sampler("fast").startswith("advi ")
    C.fit_fold(cat, ["r"], mode="nuts", seed=0, cache=tmp_path)
    assert len(fits) == 1  # reused


def test_fold_sampler_names_a_non_default_advi_family(monkeypatch):
    """Folds of another variational family are refitted; mean-field folds keep their cache key."""
    from wattscape.inference import fit

    default = C.fold_sampler("fast")
    assert "fullrank" not in default and "meanfield" not in default
    assert C.fold_sampler("fast-fullrank").startswith("advi fullrank ")
    monkeypatch.setattr(fit, "ADVI_FAMILY", "fullrank")
    assert C.fold_sampler("fast").startswith("advi fullrank ") and C.fold_sampler("fast") != default


def test_fit_fold_full_rank_mode_reaches_the_fit_and_its_own_cache_file(tmp_path, fake_fits):
    C.fit_fold(tiny_catalog(), ["r"], mode="fast-fullrank", seed=0, cache=tmp_path)
    assert [(kw["sampler"], kw.get("advi_family")) for kw in fake_fits] == [("fast", "fullrank")]
    assert (tmp_path / "r-fast-fullrank-s0.nc").read_text() == C.fold_sampler("fast-fullrank")
    with pytest.raises(ValueError, match="mode must be one of"):
        C.fit_fold(tiny_catalog(), ["r"], mode="fast-lowrank", seed=0)


def test_fold_log_calls_drop_a_held_out_group_and_key_the_cache():
    """Logged inferences without a trace: a leave-one-group-out fold drops its group's (an LLM by family),
    a leave-one-run-out fold keeps them all, and the cache key follows what the fold saw."""
    import types

    import pandas as pd

    calls = pd.DataFrame(
        {
            "run_id": ["a-log", "a-log", "b-log"],
            "llm": ["Llama-2-7b-chat-hf", "Llama-2-7b-chat-hf", "falcon-7b"],
            "gpu_model": ["A100-SXM4-40GB", "A100-SXM4-40GB", "V100-PCIe-16GB"],
            "n_gpus": [1, 1, 3],
            "start": pd.to_datetime(["2024-04-01 10:00", "2024-04-01 10:01", "2024-04-02 09:00"]),
            "runtime_s": [2.0, 3.0, 4.0],
            "gpu_energy_j": [500.0, 700.0, 900.0],
        }
    )
    cat = types.SimpleNamespace(log_calls=lambda: calls)
    assert len(C.catalog_log_calls(cat)) == 3
    assert C.catalog_log_calls(cat, exclude={"llm": "Llama-2-7b-hf"})["run_id"].tolist() == ["b-log"]
    assert C.catalog_log_calls(cat, exclude={"gpu_model": "V100-PCIe-16GB"})["run_id"].nunique() == 1
    assert C.catalog_log_calls(cat, exclude={"n_gpus": 3})["run_id"].tolist() == ["a-log", "a-log"]
    with pytest.raises(KeyError, match="cannot exclude logged inferences by 'site'"):
        C.catalog_log_calls(cat, exclude={"site": "x"})
    assert C.catalog_log_calls(types.SimpleNamespace()) is None
    full = C.log_calls_fingerprint(calls)
    assert full == C.log_calls_fingerprint(calls.iloc[::-1])  # order-free
    assert full != C.log_calls_fingerprint(calls.iloc[:2])
    assert C.log_calls_fingerprint(None) == C.log_calls_fingerprint(calls.iloc[:0]) == "none"


def test_the_held_out_experiments_draw_alike_by_default():
    """accuracy, generalisation, calibration, ablation and error_split score a held-out run on the same
    number of draws by default (``C.HELD_OUT_DRAWS``), so their energy medians carry the same Monte Carlo
    error (ablation's ``full`` row and error_split's energy error are then accuracy's)."""
    from experiments import ablation, accuracy, calibration, error_split, generalisation

    assert C.HELD_OUT_DRAWS >= 1000
    for module in (accuracy, generalisation, calibration, ablation, error_split):
        assert module.parse_args([]).draws == C.HELD_OUT_DRAWS, module.__name__
        assert module.parse_args(["--draws", "7"]).draws == 7
