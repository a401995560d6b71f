"""The small fitted posterior shipped for the demo loads, matches this package, and predicts."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
from wattscape.models import dims as D
from wattscape.models.hierarchical import PowerModel, summarise_prediction
from wattscape.models.params import validate_config_params

SHIPPED = files("wattscape") / "data" / "posterior" / "posterior.nc"


def test_shipped_posterior_loads_and_predicts():
    path = SHIPPED
    assert path.is_file(), f"missing shipped posterior {path} (python benchmarks/fit.py --ship)"
    assert path.stat().st_size < 8e6
    model = PowerModel.load(str(path))
    assert "fit_data" in model.idata.groups() and model.posterior.sizes[D.DRAW] >= 50
    cp = model.config_params(
        {
            "llm": "Llama-2-7b-chat-hf",
            "params_b": 6.74,
            "gpu_model": "A100-SXM4-40GB",
            "precision": "float16",
        },
        n_draws=50,
    )
    validate_config_params(cp)
    loc = cp["level_loc"].mean(D.DRAW)
    assert 0 < float(loc.sel(state=D.IDLE).max()) < float(loc.sel(state=D.ACTIVE).min()) < 1.05 * 400
    pred = summarise_prediction(
        model.predict_config(
            {"llm": "Llama-3.1-70B-Instruct", "params_b": 70.0, "gpu_model": "H100-SXM5-80GB", "n_gpus": 4},
            batch=64,
            n_draws=200,
        )
    )["active_power_w"]
    assert 0 < pred["q05"] < pred["q50"] < pred["q95"] <= 4 * 700 * 1.05 and np.isfinite(pred["mean"])
