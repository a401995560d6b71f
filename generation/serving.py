"""Serving: requests → servers (TP groups) → state segments (idle / prefill / decode).

Two simulators produce the same segment form (contiguous segments per TP group, see
:class:`GroupSegments`):

* :func:`serve_vectorised` — pure ``jit``-ed JAX, vectorised over groups (and ``vmap``-able over draws):
  the serving model is written as max-plus recursions that need only ``cumsum``/``cummax``, so a day of
  1,250 servers is a handful of array passes.  Model: prefills run one at a time (an arrival waits for the
  previous prefill, ``f_i = max(a_i, f_{i−1}) + p_i``); a request then decodes for ``out_i × ITL(n_i)``
  where ``n_i`` is the number of sequences in the batch when it joins (counted among the previous
  ``lookback`` requests) and ``ITL(n) = itl_base + itl_per_seq·n``; the group is in decode until the last
  admitted request completes (``E_i = max_j≤i c_j``), idle otherwise.  Batch cap: a request is admitted
  only when the request ``cap`` places before it has completed (FIFO slot release), and ``n`` never
  exceeds the cap.  Two passes resolve the dependence of ``n`` on completions (the second counts
  occupancy from the first pass's completion times).  Not modelled:
  the pause of other sequences' decode during a prefill, and the change of ITL while a request decodes.
* :func:`serve_events` — an exact discrete-event continuous-batching simulation in numpy (one group at a
  time): iteration-level decode at ``ITL(n)``, a prefill per admission that pauses decode, a FIFO queue when
  the batch is at its cap.  For replaying measured runs, small scenarios and checking the vectorised model.

Request assignment (:func:`assign_requests`): ``round_robin`` or ``least_loaded`` (join the group with the
least outstanding work, estimated from the configuration's mean latencies) for request tables; the
rate-driven fast path uses random splitting (``random``) or round robin of the arrival stream (see
``wattscape.generation.traffic.group_arrivals``).

Tensor-parallel groups share one state sequence: segments are produced per group and every GPU of the
group takes them.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from wattscape.models import dims as D

from .simulate import DECODE_I, IDLE_I, PREFILL_I, EmissionParams, fast_normal, scan0


@dataclass
class GroupSegments:
    """Contiguous segments of G groups, padded to S: segment j of group g is ``[start[j, g], start[j+1, g])``.

    Padding segments start at or after the horizon.  ``cov`` holds log2 batch occupancy, log2 mean context
    tokens (``prompt + output / 2``), log2 output tokens (order of ``dims.COVARIATES``); idle segments carry
    the reference covariates.
    """

    start: np.ndarray  # (S, G) s, time-major
    state: np.ndarray  # (S, G) int32, index into simulate.SIM_STATES
    cov: np.ndarray  # (S, G, 3)
    batch: np.ndarray  # (S, G) sequences in the batch

    @property
    def n_groups(self) -> int:
        return self.start.shape[1]


# --- vectorised (JAX) ------------------------------------------------------------------------------------
def _cum(op, x):
    """Inclusive scan along axis 0 (see :func:`simulate.scan0`)."""
    return scan0(op, x)


def _lag(x, k, fill):
    """``x`` shifted by ``k`` along axis 0 (``fill`` in front)."""
    return jnp.concatenate([jnp.full_like(x[:k], fill), x[:-k]], axis=0)


@partial(jax.jit, static_argnames=("batch_cap", "lookback", "horizon"))
def serve_requests(
    key,
    p: EmissionParams,
    arrival,
    prompt,
    output,
    batch,
    stretch,
    *,
    batch_cap: int,
    horizon: float,
    lookback: int = 8,
):
    """Per-request serving times of groups fed by sorted arrivals (vectorised continuous batching).

    Arrays are **time-major**: request ``i`` of group ``g`` is ``[i, g]``.  Request ``i`` is in prefill over
    ``[s_i, f_i)``, the group decodes over ``[f_i, e_i)`` and is idle over ``[e_i, s_{i+1})`` (either may be
    empty); before ``s_0`` it is idle.

    Parameters
    ----------
    key : jax.random key (dwell-time noise)
    p : EmissionParams of one draw
    arrival : (N, G) float32 arrival times (s), sorted per group, ``inf`` for padding
    prompt, output, batch : (N, G) prompt tokens, output tokens, sequences per request (1 for traffic)
    stretch : (3,) dwell stretch per state (power cap; ones without a cap)
    batch_cap : int, the most sequences decoding together
    horizon : float, end of the simulated window (s)
    lookback : int, previous requests searched when counting batch occupancy

    Returns
    -------
    (s, f, e, occ): (N, G) arrays; padding requests have all three times far beyond the horizon.
    """
    n, g = arrival.shape
    z = fast_normal(key, (2, n, g))
    valid = jnp.isfinite(arrival)
    big = jnp.float32(horizon * 4 + 1e6)
    a = jnp.where(valid, arrival, big)
    seqs = jnp.where(valid, batch, 0.0)
    sp, sd = p.dwell_sigma[PREFILL_I], p.dwell_sigma[DECODE_I]
    # median-one noise: the fitted likelihood is log runtime ~ Normal(log expected, dwell_sigma)
    ln_p = jnp.exp(sp * z[0])
    ln_d = jnp.exp(sd * z[1])
    pre = (p.prefill_overhead_s + p.prefill_s_per_token * prompt * batch) * ln_p * stretch[PREFILL_I]
    pre = jnp.where(valid, pre, 0.0)
    cum_p = _cum(jnp.add, pre)
    lb = max(0, min(lookback, n - 1))
    seqs_pad = jnp.pad(seqs, ((lb, 0), (0, 0)))
    # pass 1: no cap, batch of one; pass 2: cap from pass-1 completions, occupancy counted among the
    # previous `lookback` requests
    f = cum_p + _cum(jnp.maximum, a - (cum_p - pre))
    c = f + output * (p.itl_base_s + p.itl_per_seq_s * seqs) * stretch[DECODE_I] * ln_d
    if batch_cap < n:  # the cap pass changes nothing unless a request arrives before its slot frees
        a_cap = jnp.maximum(a, _lag(c, batch_cap, 0.0))
        f = jax.lax.cond(
            jnp.any(a_cap > a), lambda: cum_p + _cum(jnp.maximum, a_cap - (cum_p - pre)), lambda: f
        )
    c_pad = jnp.pad(c, ((lb, 0), (0, 0)), constant_values=-1.0)
    occ = seqs + sum(
        seqs_pad[lb - k : lb - k + n] * (c_pad[lb - k : lb - k + n] > f) for k in range(1, lb + 1)
    )
    occ = jnp.clip(occ, 1.0, batch_cap)
    c = f + output * (p.itl_base_s + p.itl_per_seq_s * occ) * stretch[DECODE_I] * ln_d
    s = f - pre
    e = _cum(jnp.maximum, c)
    s_next = jnp.concatenate([s[1:], jnp.full((1, g), big)], axis=0)
    return s, f, jnp.minimum(jnp.maximum(e, f), s_next), occ


@partial(jax.jit, static_argnames=("batch_cap", "lookback", "horizon"))
def serve_vectorised(
    key,
    p: EmissionParams,
    arrival,
    prompt,
    output,
    batch,
    stretch,
    *,
    batch_cap: int,
    horizon: float,
    lookback: int = 8,
):
    """Interleaved segments (start, state, cov, occupancy; 3N+1 per group) of :func:`serve_requests`."""
    s, f, dec_end, occ = serve_requests(
        key,
        p,
        arrival,
        prompt,
        output,
        batch,
        stretch,
        batch_cap=batch_cap,
        horizon=horizon,
        lookback=lookback,
    )
    n, g = s.shape
    start = jnp.stack([s, f, dec_end], 1).reshape(3 * n, g)
    start = jnp.concatenate([jnp.zeros((1, g)), start], 0)
    st = jnp.broadcast_to(jnp.array([PREFILL_I, DECODE_I, IDLE_I], jnp.int32)[None, :, None], (n, 3, g))
    st = jnp.concatenate([jnp.full((1, g), IDLE_I, jnp.int32), st.reshape(3 * n, g)], 0)
    ref = p.cov_ref
    one = jnp.stack(
        [
            jnp.log2(occ),
            jnp.log2(jnp.maximum(D.context_tokens(prompt, output), 1.0)),
            jnp.log2(jnp.maximum(output, 1.0)),
        ],
        -1,
    )
    cov = jnp.stack([one, one, jnp.broadcast_to(ref, one.shape)], 1).reshape(3 * n, g, 3)
    cov = jnp.concatenate([jnp.broadcast_to(ref, (1, g, 3)), cov], 0)
    occ3 = jnp.stack([occ, occ, jnp.zeros_like(occ)], 1).reshape(3 * n, g)
    return start, st, cov, jnp.concatenate([jnp.zeros((1, g)), occ3], 0)


# --- exact event simulation (numpy) -------------------------------------------------------------------------
def serve_events(
    arrival,
    prompt,
    output,
    batch,
    *,
    prefill_s_per_token: float,
    prefill_overhead_s: float,
    itl_base_s: float,
    itl_per_seq_s: float,
    batch_cap: int,
    horizon: float,
    dwell_sigma: tuple[float, float] = (0.0, 0.0),
    stretch=(1.0, 1.0, 1.0),
    seed: int | np.random.Generator = 0,
):
    """Exact continuous batching of one group (numpy event loop).

    Parameters
    ----------
    arrival, prompt, output, batch : 1-D arrays, one entry per request (arrival in s, sorted)
    prefill_s_per_token, prefill_overhead_s, itl_base_s, itl_per_seq_s : dwell parameters of one draw
    batch_cap : int, sequences decoding together at most (requests wait FIFO beyond it)
    horizon : float, end of the window (s)
    dwell_sigma : (prefill, decode) log-normal noise (median one) on prefill time and on each request's ITL
    stretch : (3,) dwell stretch per state (power cap)
    seed : int or Generator

    Returns
    -------
    (start, state, batch, prompt, output) arrays of contiguous segments starting at 0.
    """
    rng = np.random.default_rng(seed)
    order = np.argsort(arrival, kind="stable")
    arr = np.asarray(arrival, float)[order]
    pr, out, bs = (np.asarray(x, float)[order] for x in (prompt, output, batch))
    nreq = len(arr)
    zp = np.exp(dwell_sigma[0] * rng.standard_normal(nreq))  # median one, as in serve_requests
    zd = np.exp(dwell_sigma[1] * rng.standard_normal(nreq))
    segs: list[tuple[float, int, float, float, float]] = []

    def emit(t, state, n, p_tok, o_tok):
        if segs and segs[-1][0] >= t:  # zero-length previous segment: replace it
            segs.pop()
        segs.append((t, state, n, p_tok, o_tok))

    t, i = 0.0, 0
    queue: list[int] = []
    active: dict[int, float] = {}  # request -> tokens left
    emit(0.0, IDLE_I, 0, 0, 0)
    while t < horizon:
        while i < nreq and arr[i] <= t:
            queue.append(i)
            i += 1
        n_seq = sum(bs[j] for j in active)
        if queue and n_seq + bs[queue[0]] <= max(batch_cap, bs[queue[0]]):
            j = queue.pop(0)
            dur = (prefill_overhead_s + prefill_s_per_token * pr[j] * bs[j]) * zp[j] * stretch[PREFILL_I]
            emit(t, PREFILL_I, n_seq + bs[j], pr[j], out[j])
            t += dur
            active[j] = out[j]
            continue
        nxt_arr = arr[i] if i < nreq else np.inf
        if not active:
            emit(t, IDLE_I, 0, 0, 0)
            if not np.isfinite(nxt_arr):
                break
            t = nxt_arr
            continue
        itl = {j: (itl_base_s + itl_per_seq_s * n_seq) * zd[j] * stretch[DECODE_I] for j in active}
        t_done = {j: active[j] * itl[j] for j in active}
        j_min = min(t_done, key=t_done.get)
        lead = max(active, key=lambda j: pr[j])
        emit(t, DECODE_I, n_seq, pr[lead], out[lead])
        step = min(t_done[j_min], nxt_arr - t, horizon - t)
        for j in list(active):
            active[j] -= step / itl[j]
            if active[j] <= 1e-9 or (j == j_min and step == t_done[j_min]):
                del active[j]
        t += step
    s = np.array(segs, dtype=float).reshape(-1, 5)
    return s[:, 0], s[:, 1].astype(np.int32), s[:, 2], s[:, 3], s[:, 4]


def events_to_segments(results, cov_ref) -> GroupSegments:
    """Pad per-group :func:`serve_events` results into one :class:`GroupSegments`."""
    g = len(results)
    n = max(len(r[0]) for r in results)
    start = np.full((n, g), 1e12, np.float32)
    state = np.zeros((n, g), np.int32)
    batch = np.zeros((n, g), np.float32)
    cov = np.broadcast_to(np.asarray(cov_ref, np.float32), (n, g, 3)).copy()
    for k, (st, sa, nb, pr, ou) in enumerate(results):
        m = len(st)
        start[:m, k], state[:m, k], batch[:m, k] = st, sa, nb
        act = sa != IDLE_I
        ctx = D.context_tokens(pr, ou)
        c = np.log2(np.maximum(np.stack([nb, ctx, ou], -1), 1))
        cov[:m, k][act] = c[act]
        state[m:, k] = sa[-1] if m else IDLE_I
        cov[m:, k] = cov[m - 1, k] if m else cov[0, k]
        batch[m:, k] = nb[-1] if m else 0
    return GroupSegments(start=start, state=state, cov=cov, batch=batch)


# --- assignment -----------------------------------------------------------------------------------------
POLICIES = ("round_robin", "least_loaded", "random")


def assign_requests(
    requests: pd.DataFrame,
    n_groups: int,
    policy: str = "round_robin",
    *,
    mean_service_s: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Group index of each request (rows in time order).

    ``least_loaded`` sends each request to the group with the least outstanding work, counting
    ``mean_service_s`` of work per request and draining it in real time.
    """
    n = len(requests)
    if policy == "round_robin":
        return np.arange(n) % n_groups
    if policy == "random":
        return np.random.default_rng(seed).integers(0, n_groups, n)
    if policy != "least_loaded":
        raise ValueError(f"unknown assignment policy {policy!r}; known: {POLICIES}")
    t = (pd.to_datetime(requests["start"]) - pd.to_datetime(requests["start"]).min()).dt.total_seconds()
    heap = [(0.0, k) for k in range(n_groups)]  # (time the group's queue empties, group)
    out = np.empty(n, np.int64)
    for r, ti in enumerate(t.to_numpy()):
        busy, k = heap[0]
        if busy > ti:  # all busy: the one that frees first
            heapq.heapreplace(heap, (busy + mean_service_s, k))
        else:  # the idle group with the smallest index among those popped
            idle = []
            while heap and heap[0][0] <= ti:
                idle.append(heapq.heappop(heap))
            idle.sort(key=lambda x: x[1])
            k = idle[0][1]
            heapq.heappush(heap, (ti + mean_service_s, k))
            for x in idle[1:]:
                heapq.heappush(heap, x)
        out[r] = k
    return out


def requests_to_groups(
    requests: pd.DataFrame, groups: np.ndarray, n_groups: int, t0: pd.Timestamp, *, batch_default: int = 1
) -> tuple[np.ndarray, ...]:
    """Padded time-major (N, G) arrays of arrival (s from ``t0``, inf padding), prompt, output, batch."""
    t = (pd.to_datetime(requests["start"]) - t0).dt.total_seconds().to_numpy()
    cnt = np.bincount(groups, minlength=n_groups)
    n = max(int(cnt.max()), 1)
    arr = np.full((n_groups, n), np.inf, np.float32)
    pr, ou = np.ones((n_groups, n), np.float32), np.ones((n_groups, n), np.float32)
    bs = np.ones((n_groups, n), np.float32)
    b = requests["batch_size"].to_numpy() if "batch_size" in requests else np.full(len(t), batch_default)
    order = np.lexsort((t, groups))
    gi = groups[order]
    pos = np.arange(len(order)) - np.concatenate([[0], np.cumsum(cnt)[:-1]])[gi]
    arr[gi, pos] = t[order]
    pr[gi, pos] = requests["prompt_tokens"].to_numpy()[order]
    ou[gi, pos] = requests["output_tokens"].to_numpy()[order]
    bs[gi, pos] = b[order]
    return arr.T.copy(), pr.T.copy(), ou.T.copy(), bs.T.copy()


def state_shares(start: np.ndarray, state: np.ndarray, t0: float, t1: float) -> dict[str, float]:
    """Time share of each state over ``[t0, t1)`` of one group's contiguous segments."""
    st = np.clip(np.asarray(start, float), t0, t1)
    end = np.append(st[1:], t1)
    dur = np.clip(end, t0, t1) - st
    tot = t1 - t0
    names = (D.IDLE, D.PREFILL, D.DECODE)
    return {names[k]: float(dur[np.asarray(state) == k].sum() / tot) for k in range(3)}
