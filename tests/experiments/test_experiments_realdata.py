"""The new experiment scripts on the measured data: one real fast fold fit (A100-SXM4-80GB, a one-run
group: its leave-one-card-out fit is the run's leave-one-run-out fold), shared through ``--cache`` by
generalisation, calibration and ablation, 3 draws each."""

from __future__ import annotations

import numpy as np
import pytest

from experiments import _common as C
from experiments import ablation as A
from experiments import calibration as K
from experiments import generalisation as G

CARD = "A100-SXM4-80GB"


@pytest.mark.slow
def test_generalisation_calibration_ablation_share_one_fold(shared_data, tmp_path):
    catalog = C.energy_inference_catalog(shared_data / "energy-inference")
    (rid,) = G.groups(catalog, "gpu_model")[CARD]["scored"]
    cache = tmp_path / "fits"
    common = ["--draws", "3", "--periods", "1", "--cache", str(cache), "--out", str(tmp_path)]
    assert G.main(["--protocols", "gpu_card", "--groups", CARD, *common]) == 0
    (fit,) = cache.glob("*.nc")
    assert fit.name == f"{rid}-fast-s{C.fold_seed(catalog, rid)}.nc"  # accuracy's fold file
    gen = C.read_result(tmp_path / "generalisation.csv")
    model = gen[gen["method"] == "model"]
    assert list(model["run_id"]) == [rid] and np.isfinite(model["energy_error_pct"]).all()
    assert "| leave-one-GPU-card-out | model |" in (tmp_path / "generalisation.md").read_text()

    assert K.main(["--runs", rid, *common]) == 0
    cal = C.read_result(tmp_path / "calibration.csv")
    assert cal["energy_pit"].between(0, 1).all() and np.isfinite(cal["window_coverage_90"]).all()

    assert A.main(["--runs", rid, "--variants", "full", "no_levels", "no_ar", *common]) == 0
    abl = C.read_result(tmp_path / "ablation.csv").set_index("method")
    assert np.isfinite(abl["energy_error_pct"]).all()
    assert abl.loc["full", "acf_mae"] != abl.loc["no_ar", "acf_mae"]
    assert len(list(cache.glob("*.nc"))) == 1  # no refit: the same fold served all three
