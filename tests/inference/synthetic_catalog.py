"""A small synthetic catalog with the interface of ``wattscape.inference.catalog`` (tests only).

Runs are simulated from the structure the model assumes: an idle stretch, then logged inferences whose
per-GPU level is ``max_frac · sigmoid(eta + slope · (log2 workload - ref) + N(0, level_sd))`` with an
AR(1) residual inside each inference; durations follow the latency formula.  Configuration summaries
are drawn from the same levels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from wattscape.models import dims as D
from wattscape.models.hardware import gpu_spec

TRUTH = {
    "eta_idle": -2.2,
    "eta_active": 0.4,
    "gpu_active": {
        "A100-SXM4-40GB": 0.3,
        "A100-PCIe-40GB": -0.1,
        "V100-PCIe-16GB": -0.3,
        "H100-SXM5-80GB": 0.2,
    },
    "llm_active": {"llm-a": 0.2, "llm-b": -0.2, "llm-c": 0.0},
    "slope_context": 0.15,
    "level_sd": 0.15,
    "ar": 0.6,
    "resid_sd": 0.03,  # of the GPU-mean residual
    "gpu_dev_sd": 0.1,  # per-GPU deviations that cancel in the mean (multi-GPU runs)
    "itl": 0.03,
}
PARAMS_B = {"llm-a": 7.0, "llm-b": 13.0, "llm-c": 40.0}
MAX_FRAC = 1.05


def _sig(x):
    return 1 / (1 + np.exp(-x))


class SyntheticCatalog:
    """``index``, ``run(run_id)``, ``requests(run_id)``, ``configs()`` on simulated data."""

    def __init__(self, n_inferences: int = 12, seed: int = 0, runs=None):
        rng = np.random.default_rng(seed)
        runs = runs or [
            ("r0", "llm-a", "A100-SXM4-40GB", 1),
            ("r1", "llm-b", "A100-SXM4-40GB", 1),
            ("r2", "llm-a", "A100-PCIe-40GB", 1),
            ("r3", "llm-b", "V100-PCIe-16GB", 1),
            ("r4", "llm-c", "A100-SXM4-40GB", 3),
        ]
        self._runs: dict[str, xr.Dataset] = {}
        self._req: dict[str, pd.DataFrame] = {}
        rows = []
        for run_id, llm, gpu, n_gpus in runs:
            ds, req = self._simulate(rng, run_id, llm, gpu, n_gpus, n_inferences)
            self._runs[run_id], self._req[run_id] = ds, req
            rows.append(
                {
                    "run_id": run_id,
                    "llm": llm,
                    "gpu_model": gpu,
                    "n_gpus": n_gpus,
                    "split": D.SPLIT_LAYER if n_gpus > 1 else D.SPLIT_NONE,
                    "status": "ok",
                }
            )
        self.index = pd.DataFrame(rows)
        summ = []
        for llm in ("llm-a", "llm-b"):
            for gpu in ("A100-SXM4-40GB", "H100-SXM5-80GB"):
                for batch in (8, 32, 128):
                    eta = TRUTH["eta_active"] + TRUTH["gpu_active"][gpu] + TRUTH["llm_active"][llm]
                    eta += 0.1 * (np.log2(batch) - 5) + rng.normal(0, 0.05)
                    tdp = gpu_spec(gpu)["tdp_w"]
                    summ.append(
                        {
                            "source": "synthetic-bench",
                            "llm": llm,
                            "params_b": PARAMS_B[llm],
                            "active_params_b": PARAMS_B[llm],
                            "architecture": D.ARCH_DENSE,
                            "precision": "bfloat16",
                            "gpu_model": gpu,
                            "n_gpus": 1,
                            "tensor_parallel": 1,
                            "batch": batch,
                            "avg_batch_size": float(batch),
                            "avg_power_w": MAX_FRAC * tdp * _sig(eta),
                            "energy_per_token_j": np.nan,
                            "task": "chat",
                            "median_itl_ms": 1e3
                            * TRUTH["itl"]
                            * (1 + 0.01 * batch)
                            * np.exp(rng.normal(0, 0.1)),
                        }
                    )
        self._configs = pd.DataFrame(summ)

    @staticmethod
    def _simulate(rng, run_id, llm, gpu, n_gpus, n_inf):
        tdp = gpu_spec(gpu)["tdp_w"]
        period = 0.1
        frac_parts, state_parts, seg_parts = [], [], []
        n_idle = int(rng.integers(20, 80))
        frac_parts.append(MAX_FRAC * _sig(TRUTH["eta_idle"]) + 0.005 * rng.standard_normal((n_gpus, n_idle)))
        state_parts.append(np.zeros(n_idle, dtype=np.int8))
        seg_parts.append(np.full(n_idle, -1))
        t0 = np.datetime64("2024-04-01T00:00:00", "ns")
        reqs = []
        t = n_idle
        for i in range(n_inf):
            prompt = int(2 ** rng.uniform(3, 11))
            out = int(2 ** rng.uniform(4, 7))
            batch = 32
            dur = 0.05 + out * TRUTH["itl"] * (1 + 0.01 * batch) * np.exp(rng.normal(0, 0.1))
            n = max(round(dur / period), 3)
            eta = (
                TRUTH["eta_active"]
                + TRUTH["gpu_active"][gpu]
                + TRUTH["llm_active"][llm]
                - 0.4 * np.log2(n_gpus)
            )
            # the level moves with the mean context of the inference (dims.COVARIATES)
            ctx = prompt + out / 2
            eta += TRUTH["slope_context"] * (np.log2(ctx) - 8) + rng.normal(0, TRUTH["level_sd"])
            level = MAX_FRAC * _sig(eta)
            # residual of the GPU-mean: AR(1) with sd resid_sd; on top, per-GPU deviations that cancel in
            # the mean (a layer split hands the batch from GPU to GPU), which the fit must not count
            e = np.zeros(n)
            innov = TRUTH["resid_sd"] * np.sqrt(1 - TRUTH["ar"] ** 2)
            e[0] = rng.normal(0, TRUTH["resid_sd"])
            for k in range(1, n):
                e[k] = TRUTH["ar"] * e[k - 1] + rng.normal(0, innov)
            dev = rng.normal(0, TRUTH["gpu_dev_sd"], (n_gpus, n))
            frac_parts.append(level + e[None, :] + dev - dev.mean(axis=0, keepdims=True))
            state_parts.append(np.full(n, D.STATE_CODES[D.ACTIVE], dtype=np.int8))
            seg_parts.append(np.full(n, i))
            start = t0 + np.timedelta64(int(t * period * 1e9), "ns")
            reqs.append(
                {
                    "run_id": run_id,
                    "request_id": i,
                    "start": start,
                    "end": start + np.timedelta64(int(dur * 1e9), "ns"),
                    "prompt_tokens": prompt,
                    "output_tokens": out,
                    "batch_size": batch,
                    "gpu_energy_j": np.nan,
                }
            )
            t += n
        frac = np.concatenate(frac_parts, axis=1)
        times = t0 + (np.arange(frac.shape[1]) * period * 1e9).astype("timedelta64[ns]")
        ds = xr.Dataset(
            {
                D.POWER: ((D.GPU, D.TIME), (frac * tdp).astype(np.float32), {D.UNITS: D.WATT}),
                D.STATE_VAR: ((D.TIME,), np.concatenate(state_parts), D.state_attrs()),
                D.SEGMENT_VAR: ((D.TIME,), np.concatenate(seg_parts).astype(np.int32)),
            },
            coords={D.TIME: times, D.GPU: np.arange(n_gpus)},
            attrs={
                "run_id": run_id,
                "llm": llm,
                "params_b": PARAMS_B[llm],
                "active_params_b": PARAMS_B[llm],
                "architecture": D.ARCH_DENSE,
                "gpu_model": gpu,
                "n_gpus": n_gpus,
                "split": D.SPLIT_LAYER if n_gpus > 1 else D.SPLIT_NONE,
                "tensor_parallel": 1,
                "sample_period_s": period,
                "source": "synthetic",
                "state_labels": D.LABELS_ACTIVE,
                "quirks": "",
            },
        )
        return ds, pd.DataFrame(reqs)

    def run(self, run_id: str) -> xr.Dataset:
        return self._runs[run_id]

    def requests(self, run_id: str) -> pd.DataFrame:
        return self._req[run_id]

    def configs(self) -> pd.DataFrame:
        return self._configs
