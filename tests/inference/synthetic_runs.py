"""Tiny synthetic run datasets and catalogs (per models/dims.py) for the evaluation tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from wattscape.models import dims as D


def make_run(
    run_id: str,
    *,
    llm: str = "Llama-2-7b-chat-hf",
    gpu_model: str = "A100-SXM4-40GB",
    n_gpus: int = 1,
    params_b: float = 7.0,
    idle_w: float = 55.0,
    active_w: float = 300.0,
    duration_s: float = 60.0,
    period_s: float = 0.1,
    n_requests: int = 5,
    seed: int = 0,
    start: str = "2024-04-01T12:00:00",
) -> tuple[xr.Dataset, pd.DataFrame]:
    """A run with idle lead-in, ``n_requests`` active inferences and AR(1) noise; and its request table."""
    rng = np.random.default_rng(seed)
    n = round(duration_s / period_s)
    t0 = np.datetime64(start, "ns")
    time = t0 + (np.arange(n) * period_s * 1e9).astype("timedelta64[ns]")
    ts = np.arange(n) * period_s
    # requests: after a 10 % idle lead-in, back to back with short gaps
    lead = 0.1 * duration_s
    span = (duration_s - lead) / n_requests
    starts = lead + np.arange(n_requests) * span
    ends = starts + 0.9 * span
    state = np.full(n, D.STATE_CODES[D.IDLE], dtype=np.int8)
    segment = np.full(n, -1, dtype=np.int32)
    level = np.full(n, idle_w)
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        m = (ts >= a) & (ts < b)
        state[m] = D.STATE_CODES[D.ACTIVE]
        segment[m] = i
        level[m] = active_w * (1 + 0.05 * rng.standard_normal())
    noise = np.zeros(n)
    e = rng.standard_normal(n) * 5.0
    for k in range(1, n):
        noise[k] = 0.8 * noise[k - 1] + e[k]
    power = np.stack([level + noise + g for g in range(n_gpus)]).astype(np.float32)
    ds = xr.Dataset(
        {
            D.POWER: ((D.GPU, D.TIME), power, {D.UNITS: D.WATT}),
            D.STATE_VAR: ((D.TIME,), state, D.state_attrs()),
            D.SEGMENT_VAR: ((D.TIME,), segment),
        },
        coords={D.TIME: time, D.GPU: np.arange(n_gpus)},
        attrs={
            "run_id": run_id,
            "llm": llm,
            "params_b": params_b,
            "active_params_b": params_b,
            "architecture": D.ARCH_DENSE,
            "gpu_model": gpu_model,
            "n_gpus": n_gpus,
            "split": D.SPLIT_NONE if n_gpus == 1 else D.SPLIT_LAYER,
            "tensor_parallel": 1,
            "sample_period_s": period_s,
            "source": "synthetic",
            "state_labels": D.LABELS_ACTIVE,
            "quirks": "",
        },
    )
    req = pd.DataFrame(
        {
            "run_id": run_id,
            "request_id": np.arange(n_requests),
            "start": t0 + (starts * 1e9).astype("timedelta64[ns]"),
            "end": t0 + (ends * 1e9).astype("timedelta64[ns]"),
            "prompt_tokens": np.full(n_requests, 64),
            "output_tokens": np.full(n_requests, 32),
            "batch_size": np.full(n_requests, 32),
        }
    )
    return ds, req


class TinyCatalog:
    """A catalog with the interface of ``inference.catalog``: ``.index``, ``.run``, ``.requests``."""

    def __init__(self, runs: dict[str, tuple[xr.Dataset, pd.DataFrame]]):
        self._runs = runs
        rows = []
        for ds, req in runs.values():
            rows.append({**{k: ds.attrs[k] for k in D.RUN_ATTRS}, "n_inferences": len(req)})
        self.index = pd.DataFrame(rows)

    def run(self, run_id: str) -> xr.Dataset:
        return self._runs[run_id][0]

    def requests(self, run_id: str) -> pd.DataFrame:
        return self._runs[run_id][1]


def tiny_catalog() -> TinyCatalog:
    """Four runs on two cards (SXM and PCIe A100), one multi-GPU."""
    specs = {
        "sxm-7b-a": dict(gpu_model="A100-SXM4-40GB", active_w=310, idle_w=55, seed=1),
        "sxm-7b-b": dict(gpu_model="A100-SXM4-40GB", active_w=320, idle_w=55, seed=2),
        "pcie-7b": dict(gpu_model="A100-PCIe-40GB", active_w=235, idle_w=32, seed=3),
        "sxm-70b-4": dict(
            gpu_model="A100-SXM4-40GB", n_gpus=4, params_b=70.0, llm="Llama-2-70b-chat-hf",
            active_w=140, seed=4,
        ),
    }
    return TinyCatalog({rid: make_run(rid, **kw) for rid, kw in specs.items()})
