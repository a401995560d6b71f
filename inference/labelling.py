"""State labels from a request/inference table onto the power time grid.

Rules (:func:`label_states`)
----------------------------
- A sample at time ``t`` belongs to inference ``i`` when ``start_i <= t < end_i``; ``segment(t) = i`` (the
  row position in the table sorted by start), -1 for samples outside every inference.
- States: ``idle/active`` (:data:`~wattscape.models.dims.LABELS_ACTIVE`) by default.  When the table has a
  ``first_token`` column (UTC time the first output token was produced, i.e. the end of prefill) the labels
  are ``idle/prefill/decode``: prefill on ``[start, first_token)``, decode on ``[first_token, end)``.
  The ``energy-inference`` runs cannot tell prefill from decode (the ~100 ms sample period exceeds the
  prefill time and the logs have no first-token time), so they are ``idle/active``.
- A gap between two inferences shorter than ``min_idle_s`` (default 0.5 s; the logged gaps are 10-50 ms,
  shorter than one sample period) belongs to the inference before it: the meter averages over the sample
  period, so a sample inside such a gap shows active power.  Longer gaps are ``idle``.
- Start-up and model loading are ``excluded``: every sample before ``startup_end`` (end of the log's
  ``model load`` row), or, when that is unknown, before the first inference.  Samples from ``startup_end``
  to the first inference are ``idle`` (model loaded, waiting).  The GPU before the job started (no CUDA
  context, lower P-state) is not the serving idle state, hence excluded too.
- The first inference of a run carries a 1-6 s warm-up at near-idle power (CUDA kernels compiled, caches
  filled): with ``exclude_first=True`` (default) its samples are ``excluded`` (its segment id is kept).
- After the last logged inference, samples whose total power stays above the busy threshold (work that was
  not logged, or the run continuing past its log) are ``excluded``; the others are ``idle``.  The threshold
  is ``idle + 0.25 (active - idle)`` of the run's own median levels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from wattscape.models import dims as D

EXCLUDED = D.state_code(D.EXCLUDED)
IDLE = D.state_code(D.IDLE)
ACTIVE = D.state_code(D.ACTIVE)
PREFILL = D.state_code(D.PREFILL)
DECODE = D.state_code(D.DECODE)


def _ns(values) -> np.ndarray:
    return pd.to_datetime(pd.Series(values)).to_numpy(dtype="datetime64[ns]").astype(np.int64)


def label_states(
    time,
    total_power: np.ndarray,
    requests: pd.DataFrame,
    *,
    startup_end=None,
    exclude_first: bool = True,
    min_idle_s: float = D.MIN_IDLE_S,
    busy_fraction: float = 0.25,
) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """Label every sample of a run.

    Parameters
    ----------
    time : array of datetime64[ns]
        Sample times (UTC), increasing.
    total_power : array of float
        Power summed over the run's GPUs at each sample, W (NaN allowed).
    requests : pd.DataFrame
        Inference/request table with ``start`` and ``end`` (UTC) and optionally ``first_token``.
    startup_end : datetime-like, optional
        End of start-up and model loading; samples before it are excluded.  Default: the first start.
    exclude_first : bool
        Exclude the first inference (warm-up).
    min_idle_s : float
        Gaps between inferences shorter than this belong to the inference before them.
    busy_fraction : float
        Busy threshold after the last inference, as a fraction of the way from idle to active level.

    Returns
    -------
    state : np.ndarray of int8
        State codes (:data:`~wattscape.models.dims.STATE_CODES`).
    segment : np.ndarray of int32
        Index (in start order) of the inference covering each sample, -1 for none.
    state_labels : str
        :data:`~wattscape.models.dims.LABELS_PHASES` or :data:`~wattscape.models.dims.LABELS_ACTIVE`.
    quirks : list of str
    """
    t = _ns(time)
    power = np.asarray(total_power, dtype=np.float64)
    n = len(t)
    state = np.full(n, IDLE, dtype=np.int8)
    segment = np.full(n, -1, dtype=np.int32)
    quirks: list[str] = []
    if len(requests) == 0:
        return np.full(n, EXCLUDED, np.int8), segment, "none", ["no inference to label"]
    req = requests.sort_values("start", kind="stable").reset_index(drop=True)
    starts = _ns(req["start"])
    ends = _ns(req["end"])
    phases = "first_token" in req.columns and req["first_token"].notna().any()
    labels = D.LABELS_PHASES if phases else D.LABELS_ACTIVE

    # extend each inference over a following gap shorter than min_idle_s
    ends_ext = ends.copy()
    gap = starts[1:] - ends[:-1]
    short = (gap >= 0) & (gap < min_idle_s * 1e9)
    ends_ext[:-1][short] = starts[1:][short]

    i = np.searchsorted(starts, t, side="right") - 1
    covered = (i >= 0) & (t < ends_ext[np.maximum(i, 0)])
    segment[covered] = i[covered]
    if phases:
        ft = _ns(req["first_token"].fillna(req["start"]))
        in_prefill = covered & (t < ft[np.maximum(i, 0)])
        state[covered] = DECODE
        state[in_prefill] = PREFILL
    else:
        state[covered] = ACTIVE

    # start-up and model loading
    cut = starts[0] if startup_end is None else min(int(_ns([startup_end])[0]), int(starts[0]))
    state[t < cut] = EXCLUDED
    if exclude_first:
        state[segment == 0] = EXCLUDED

    # after the last logged inference
    after = t >= ends_ext[-1]
    if after.any():
        busy_codes = [ACTIVE, PREFILL, DECODE]
        act = power[np.isin(state, busy_codes) & np.isfinite(power)]
        idle_samples = power[(state == IDLE) & ~after & np.isfinite(power)]
        finite = power[np.isfinite(power)]
        if len(idle_samples) >= 10:
            idle_ref = float(np.median(idle_samples))
        else:
            idle_ref = float(np.percentile(finite, 5))
        active_ref = float(np.median(act)) if len(act) else float(np.percentile(finite, 95))
        threshold = idle_ref + busy_fraction * max(active_ref - idle_ref, 0.0)
        busy = after & (power > threshold)
        state[busy] = EXCLUDED
        if busy.any():
            dt = np.median(np.diff(t)) / 1e9 if n > 1 else 0.0
            busy_s = float(busy.sum() * dt)
            if busy_s > 1.0:
                quirks.append(
                    f"power above idle for {busy_s:.1f} s after the last logged inference "
                    f"(threshold {threshold:.0f} W; unlogged work); excluded"
                )
    if ends[-1] > t[-1]:
        n_cut = int(np.sum(ends > t[-1]))
        quirks.append(
            f"trace ends {(ends[-1] - t[-1]) / 1e9:.1f} s before the end of the last logged inference "
            f"({n_cut} inference(s) not fully covered)"
        )
    return state, segment, labels, quirks


def state_fractions(state: np.ndarray) -> dict[str, float]:
    """Fraction of samples in each state, keyed by state name (all states of ``STATE_CODES``)."""
    n = max(len(state), 1)
    return {name: float(np.sum(state == code)) / n for name, code in D.STATE_CODES.items()}
