"""Stand-ins for the held-out fits of the experiment scripts (no sampling): a model whose
``config_params`` returns physics-plausible example draws, so the real replay and scoring run."""

from __future__ import annotations

from wattscape.models import dims as D
from wattscape.models.params import example_config_params


class FakeModel:
    """A "fitted" model: ``fitted_run_ids`` and ``config_params`` (``models.params`` example draws)."""

    def __init__(self, fitted_run_ids, level_w: float = 0.6):
        self.fitted_run_ids = list(fitted_run_ids)
        self.level_w = level_w

    def config_params(self, config, n_draws=100, seed=0):
        cfg = dict(config)
        tdp = 250.0 if "PCIe" in cfg["gpu_model"] else 400.0
        return example_config_params(
            n_draws, states=D.STATES_ACTIVE, tdp_w=tdp, n_gpus=int(cfg["n_gpus"]), tensor_parallel=1,
            llm=cfg["llm"], gpu_model=cfg["gpu_model"], seed=seed,
        )


def fake_fit_fold(calls: list, catalog):
    """A replacement of ``experiments._common.fit_fold`` that records its calls."""
    all_ids = [str(r) for r in catalog.index["run_id"]]

    def fit_fold(catalog_, holdout_runs, *, mode, seed, label=None, summaries=None, cache=None,
                 model_config=None, log_calls=None):
        calls.append({"holdout": sorted(holdout_runs), "label": label, "seed": seed,
                      "model_config": model_config, "summaries": summaries, "log_calls": log_calls})
        return FakeModel([r for r in all_ids if r not in set(holdout_runs)])

    return fit_fold
