"""Replaying a measured run's own workload reproduces its time share per state (energy-inference data).

Open loop: the run's logged inferences (start time, prompt tokens, output-token limit, batch size) drive
the serving simulators; measured power and timing are never inputs.  The dwell parameters (prefill time per
token and overhead, inter-token latency at batch 1 and per sequence) are fitted by least squares to the
run's own logged runtimes, i.e. this checks the replay machinery given dwell parameters, not a held-out
prediction.  The measured share comes from the run's state labels (``inference.labelling``); the simulated
timeline is read at the same samples with the same convention (an idle gap shorter than 0.5 s belongs to
the inference before it, since the meter averages over its ~100 ms period).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from wattscape.generation import serving as V
from wattscape.generation.simulate import IDLE_I, emission_params, take_draw
from wattscape.models import dims as D
from wattscape.models.params import example_config_params

pytestmark = pytest.mark.realdata
RUNS = ["Mixtral-8x7B-v0.1", "Llama-2-13b-chat-hf"]


def _read(shared_data, model):
    from wattscape.inference.readers.energy_inference import read_run, read_runs_index

    idx = read_runs_index(shared_data / "energy-inference" / "runs_index.csv")
    row = idx[(idx["model"] == model) & idx["log_path"].notna()].iloc[0]
    return read_run(
        row["trace_path"],
        log=row["log_path"],
        utc_offset_hours=float(row["utc_offset_hours"]),
        n_gpus=int(row["gpus_logged"]),
        notes=str(row["notes"]),
    )


def _fit_dwell(req: pd.DataFrame) -> dict[str, float]:
    """Least-squares dwell parameters from logged runtimes (first inference left out: warm-up)."""
    r = req.iloc[1:]
    b, pr, ou = (r[c].to_numpy(float) for c in ("batch_size", "prompt_tokens", "output_tokens"))
    x = np.stack([np.ones(len(r)), pr * b, ou, ou * b], 1)
    coef, *_ = np.linalg.lstsq(x, r["runtime_s"].to_numpy(float), rcond=None)
    coef = np.maximum(coef, 0.0)
    return dict(
        prefill_overhead_s=coef[0], prefill_s_per_token=coef[1], itl_base_s=coef[2], itl_per_seq_s=coef[3]
    )


def _shares_at(times_s, start, state, min_idle_s=0.5):
    """Idle share at the sample times, short idle gaps counted as active (labelling convention)."""
    start = np.asarray(start, float)
    end = np.append(start[1:], np.inf)
    idle = np.asarray(state) == IDLE_I
    short = idle & (end - start < min_idle_s) & (np.arange(len(start)) > 0)
    k = np.searchsorted(start, times_s, side="right") - 1
    is_idle = idle[k] & ~short[k]
    return float(is_idle.mean())


@pytest.mark.parametrize("model", RUNS)
def test_replay_reproduces_time_share(shared_data, model):
    ds, req = _read(shared_data, model)
    t0 = pd.Timestamp(ds[D.TIME].values[0])
    t_s = (pd.to_datetime(ds[D.TIME].values) - t0).total_seconds().to_numpy()
    labels = ds[D.STATE_VAR].values
    keep = labels >= 0  # excluded samples (start-up, warm-up) are not scored
    measured_idle = float((labels[keep] == D.state_code(D.IDLE)).mean())
    dwell = _fit_dwell(req)
    arr = (pd.to_datetime(req["start"]) - t0).dt.total_seconds().to_numpy()
    horizon = float(t_s[-1]) + 1.0
    cols = [req[c].to_numpy(float) for c in ("prompt_tokens", "output_tokens", "batch_size")]
    cap = int(req["batch_size"].max())
    # exact event simulation
    st, sa, *_ = V.serve_events(arr, *cols, batch_cap=cap, horizon=horizon, **dwell)
    sim_idle = _shares_at(t_s[keep], st, sa)
    # the vectorised model, through the parameter contract
    prm = example_config_params(1)
    for name, v in dwell.items():
        prm[name][:] = v
    prm["dwell_sigma"][:] = 0.0
    p = take_draw(emission_params(prm), 0)
    f32 = lambda x: jnp.asarray(np.asarray(x, np.float32)[:, None])  # noqa: E731
    start, state, _, _ = V.serve_vectorised(
        jax.random.key(0), p, f32(arr), *(f32(c) for c in cols), jnp.ones(3), batch_cap=cap, horizon=horizon
    )
    vec_idle = _shares_at(t_s[keep], np.asarray(start)[:, 0], np.asarray(state)[:, 0])
    print(f"{model}: measured idle {measured_idle:.3f}, events {sim_idle:.3f}, vectorised {vec_idle:.3f}")
    assert abs(sim_idle - measured_idle) < 0.05
    assert abs(vec_idle - measured_idle) < 0.05
    # active share likewise (idle + active = 1 on the scored samples)
    assert abs((1 - sim_idle) - (1 - measured_idle)) < 0.05
