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
    import wattscape.inference.stats as stats
    import wattscape.models.hierarchical as H

    fits = []

    class Fake:
        def __init__(self, model_config=None):
            self.id = "new" if model_config else "default"

        @classmethod
        def load(cls, path):
            m = cls()
            m.id = path.read_text()
            return m

        def fit(self, fd, **kw):
            fits.append(kw["sampler"])

        def save(self, path):
            path.write_text(self.id)

    monkeypatch.setattr(H, "PowerModel", Fake)
    monkeypatch.setattr(stats, "fit_data_from_catalog", lambda *a, **k: None)
    cat = tiny_catalog()
    with pytest.raises(ValueError, match="needs a cache label"):
        C.fit_fold(cat, ["a", "b"], mode="fast", seed=0)
    (tmp_path / "r-fast-s0.nc").write_text("default")
    assert C.fit_fold(cat, ["r"], mode="fast", seed=0, cache=tmp_path).id == "default"
    assert fits == []  # reused
    C.fit_fold(cat, ["r"], mode="nuts", seed=0, cache=tmp_path, model_config={"x": 1})
    (tmp_path / "r-fast-s0.nc").write_text("stale")
    C.fit_fold(cat, ["r"], mode="fast", seed=0, cache=tmp_path)
    assert fits == ["numpyro", "fast"] and (tmp_path / "r-fast-s0.nc").read_text() == "default"
