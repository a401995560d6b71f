"""Traffic: request arrivals and token counts (Poisson, diurnal, bursty MMPP, replay of request tables).

Every generator takes an explicit seed and returns a request table with the columns of
``dims.REQUEST_COLUMNS`` (``start`` UTC, ``prompt_tokens``, ``output_tokens``, ``batch_size`` 1, ...).
For large sites the rate-driven arrivals are drawn directly per TP group in JAX
(:func:`group_arrivals`), never as one table.

The Azure-shaped default profile (:data:`AZURE_DIURNAL_24H`) is a stylised weekday: night trough about
40 % of the daily mean, a morning ramp, a midday/afternoon plateau at 1.3–1.4× the mean.  The public Azure
2023 trace (``../shared/data/azure-llm-inference-trace-2023``) covers one hour only, so the *shape* over the
day is an assumption (documented, replaceable by ``rate_profile`` in a scenario); its *token mix* is fitted:
:data:`AZURE_CONV_TOKENS` and :data:`AZURE_CODE_TOKENS` are log-normal fits (geometric mean, log-sd) of the
``conv`` and ``code`` traces' context and generated tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from wattscape.models import dims as D

from .simulate import fast_normal, fast_uniform, scan0

#: Relative hourly request rate over a day (UTC hour 0 … 23), mean 1.
_AZ = np.array(
    [
        0.45,
        0.40,
        0.38,
        0.37,
        0.40,
        0.50,
        0.68,
        0.90,
        1.12,
        1.28,
        1.36,
        1.40,
        1.38,
        1.40,
        1.42,
        1.40,
        1.34,
        1.24,
        1.10,
        0.98,
        0.88,
        0.78,
        0.66,
        0.55,
    ]
)
AZURE_DIURNAL_24H: np.ndarray = _AZ / _AZ.mean()


@dataclass(frozen=True)
class TokenDistribution:
    """Independent log-normal prompt and output token counts, rounded and clipped to [1, max]."""

    prompt_median: float = 760.0
    prompt_sigma: float = 0.985
    output_median: float = 151.3
    output_sigma: float = 0.859
    prompt_max: int = 32768
    output_max: int = 4096

    def sample(self, n: int, seed: int | np.random.Generator = 0) -> tuple[np.ndarray, np.ndarray]:
        """``n`` (prompt, output) token counts as int64 arrays."""
        rng = np.random.default_rng(seed)
        p = np.exp(np.log(self.prompt_median) + self.prompt_sigma * rng.standard_normal(n))
        o = np.exp(np.log(self.output_median) + self.output_sigma * rng.standard_normal(n))
        return (
            np.clip(np.rint(p), 1, self.prompt_max).astype(np.int64),
            np.clip(np.rint(o), 1, self.output_max).astype(np.int64),
        )

    def sample_jax(self, key, shape) -> tuple[jax.Array, jax.Array]:
        """Same distribution in JAX (float32 token counts)."""
        z = fast_normal(key, (2, *shape))
        p = jnp.exp(np.log(self.prompt_median) + self.prompt_sigma * z[0])
        o = jnp.exp(np.log(self.output_median) + self.output_sigma * z[1])
        return jnp.clip(jnp.round(p), 1, self.prompt_max), jnp.clip(jnp.round(o), 1, self.output_max)


#: Log-normal fits to the Azure LLM inference trace 2023 (conv: 19,366 requests; code: 8,819).
AZURE_CONV_TOKENS = TokenDistribution(760.0, 0.985, 151.3, 0.859)
AZURE_CODE_TOKENS = TokenDistribution(1095.1, 1.36, 16.3, 0.847)


def fit_token_distribution(requests: pd.DataFrame) -> TokenDistribution:
    """Log-normal fit (geometric mean and log-sd) of a request table's prompt and output tokens."""
    lp = np.log(np.maximum(requests["prompt_tokens"].to_numpy(float), 1))
    lo = np.log(np.maximum(requests["output_tokens"].to_numpy(float), 1))
    return TokenDistribution(
        float(np.exp(lp.mean())),
        float(lp.std()),
        float(np.exp(lo.mean())),
        float(lo.std()),
        int(requests["prompt_tokens"].max()),
        int(requests["output_tokens"].max()),
    )


# --- rate profiles --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RateProfile:
    """Piecewise-constant arrival rate (requests/s) on bins of ``step_s``, repeating with ``period_s``."""

    rates: np.ndarray
    step_s: float

    @property
    def period_s(self) -> float:
        return len(self.rates) * self.step_s

    def rate_at(self, t: np.ndarray) -> np.ndarray:
        """Rate at times ``t`` (s)."""
        k = (np.floor(np.asarray(t) / self.step_s).astype(np.int64)) % len(self.rates)
        return self.rates[k]

    def cumulative(self, t: np.ndarray) -> np.ndarray:
        """Expected number of arrivals in ``[0, t)``."""
        t = np.asarray(t, float)
        per = self.rates.sum() * self.step_s
        whole, rem = np.divmod(t, self.period_s)
        edges = np.concatenate([[0.0], np.cumsum(self.rates) * self.step_s])
        return whole * per + np.interp(rem, np.arange(len(self.rates) + 1) * self.step_s, edges)

    def grid(self, duration_s: float, dt: float) -> np.ndarray:
        """Cumulative intensity at ``0, dt, …, ≥ duration`` (for :func:`group_arrivals`)."""
        n = int(np.ceil(duration_s / dt)) + 1
        return self.cumulative(np.arange(n) * dt)


def constant_profile(rate: float) -> RateProfile:
    """Constant-rate Poisson traffic, ``rate`` requests/s."""
    return RateProfile(np.array([float(rate)]), 3600.0)


def diurnal_profile(
    mean_rate: float, shape: np.ndarray | None = None, *, start_hour: float = 0.0
) -> RateProfile:
    """A 24-hour profile (hourly bins) with mean ``mean_rate``; ``shape`` defaults to the Azure-shaped day.

    ``start_hour`` rotates the profile so that ``t = 0`` falls at that hour of day.
    """
    shape = AZURE_DIURNAL_24H if shape is None else np.asarray(shape, float)
    if len(shape) != 24 or np.any(shape < 0):
        raise ValueError(f"a diurnal shape needs 24 non-negative hourly values, got {len(shape)}")
    shape = shape / shape.mean()
    k = round(start_hour) % 24
    return RateProfile(np.roll(shape, -k) * float(mean_rate), 3600.0)


def _inverse_cumulative(profile: RateProfile, targets: np.ndarray, duration_s: float) -> np.ndarray:
    grid_t = np.linspace(0.0, duration_s, int(duration_s / min(profile.step_s, 60.0)) + 2)
    grid_l = profile.cumulative(grid_t)
    return np.interp(targets, grid_l, grid_t, right=np.inf)


def poisson_arrivals(profile: RateProfile, duration_s: float, seed: int = 0) -> np.ndarray:
    """Arrival times (s) of a (non-homogeneous) Poisson process with the profile's rate, ``[0, duration)``."""
    rng = np.random.default_rng(seed)
    total = float(profile.cumulative(np.array([duration_s]))[0])
    n = rng.poisson(total)
    u = np.sort(rng.uniform(0.0, total, n))
    t = _inverse_cumulative(profile, u, duration_s)
    return t[t < duration_s]


def mmpp_arrivals(
    rates: tuple[float, ...], mean_sojourn_s: tuple[float, ...], duration_s: float, seed: int = 0
) -> np.ndarray:
    """Bursty traffic: a Markov-modulated Poisson process.

    The modulating chain stays in phase ``k`` for an exponential time of mean ``mean_sojourn_s[k]``, then
    jumps to another phase uniformly; arrivals are Poisson with rate ``rates[k]`` meanwhile.
    """
    rng = np.random.default_rng(seed)
    rates, soj = np.asarray(rates, float), np.asarray(mean_sojourn_s, float)
    if rates.shape != soj.shape or len(rates) < 2:
        raise ValueError("mmpp needs matching rates and mean_sojourn_s with at least two phases")
    t, k, out = 0.0, 0, []
    while t < duration_s:
        end = min(t + rng.exponential(soj[k]), duration_s)
        n = rng.poisson(rates[k] * (end - t))
        out.append(np.sort(rng.uniform(t, end, n)))
        t = end
        k = (k + 1 + rng.integers(0, len(rates) - 1)) % len(rates)
    return np.concatenate(out) if out else np.zeros(0)


def request_table(
    arrival_s: np.ndarray,
    tokens: TokenDistribution | tuple[np.ndarray, np.ndarray],
    *,
    start: str | pd.Timestamp = "2026-01-01",
    run_id: str = "synthetic",
    seed: int = 0,
) -> pd.DataFrame:
    """A request table (``dims.REQUEST_COLUMNS``) from arrival times (s after ``start``) and token counts."""
    arrival_s = np.asarray(arrival_s, float)
    if isinstance(tokens, TokenDistribution):
        prompt, output = tokens.sample(len(arrival_s), seed)
    else:
        prompt, output = (np.asarray(x, np.int64) for x in tokens)
    t0 = pd.Timestamp(start)
    starts = t0 + pd.to_timedelta(np.round(arrival_s * 1e9).astype("int64"), unit="ns")
    return pd.DataFrame(
        {
            "run_id": pd.Series([run_id] * len(arrival_s), dtype="str"),
            "request_id": np.arange(len(arrival_s), dtype=np.int64),
            "start": pd.DatetimeIndex(starts).astype("datetime64[ns]"),
            "end": pd.Series(pd.NaT, index=range(len(arrival_s)), dtype="datetime64[ns]"),
            "prompt_tokens": prompt,
            "output_tokens": output,
            "batch_size": np.ones(len(arrival_s), np.int64),
        }
    )[list(D.REQUEST_COLUMNS)]


def replay(
    requests: pd.DataFrame,
    *,
    rate_scale: float = 1.0,
    time_shift_s: float = 0.0,
    duration_s: float | None = None,
    start: str | pd.Timestamp | None = None,
    loop: bool = False,
) -> pd.DataFrame:
    """Replay a request table: compress time by ``rate_scale``, shift it, optionally tile it, cut it.

    Parameters
    ----------
    requests : DataFrame with ``dims.REQUEST_COLUMNS`` (e.g. from ``inference.readers.traffic.read_requests``)
    rate_scale : float
        Arrival rate multiplier (inter-arrival times divided by it); tokens are kept.
    time_shift_s : float
        Seconds added to every arrival (after scaling); negative values cut the beginning.
    duration_s : float, optional
        Keep arrivals in ``[start, start + duration)``.
    start : timestamp, optional
        New time origin (default: the table's first arrival).
    loop : bool
        Tile the scaled trace end to end until ``duration_s`` is covered.
    """
    if rate_scale <= 0:
        raise ValueError(f"rate_scale must be positive, got {rate_scale}")
    req = requests.sort_values("start").reset_index(drop=True)
    t = pd.to_datetime(req["start"])
    rel = (t - t.min()).dt.total_seconds().to_numpy() / rate_scale
    span = (rel.max() if len(rel) else 0.0) + (np.median(np.diff(rel)) if len(rel) > 1 else 1.0)
    reps = int(np.ceil(duration_s / span)) if (loop and duration_s) else 1
    rel = np.concatenate([rel + k * span for k in range(reps)]) + time_shift_s
    idx = np.tile(np.arange(len(req)), reps)
    keep = rel >= 0
    if duration_s is not None:
        keep &= rel < duration_s
    rel, idx = rel[keep], idx[keep]
    origin = pd.Timestamp(start) if start is not None else t.min()
    out = req.iloc[idx].reset_index(drop=True).copy()
    out["start"] = (origin + pd.to_timedelta(np.round(rel * 1e9).astype("int64"), unit="ns")).astype(
        "datetime64[ns]"
    )
    if "end" in out:
        out["end"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns]")
    out["request_id"] = np.arange(len(out), dtype=np.int64)
    return out


# --- per-group arrivals in JAX (the fast path for big sites) -----------------------------------------------
def max_requests(profile: RateProfile, duration_s: float, n_groups: int, *, sigmas: float = 6.0) -> int:
    """Padding length N for :func:`group_arrivals`: the mean count per group plus ``sigmas`` sd."""
    m = float(profile.cumulative(np.array([duration_s]))[0]) / n_groups
    return int(np.ceil(m + sigmas * np.sqrt(m + 1.0) + 8))


def inverse_table(profile: RateProfile, duration_s: float, size: int = 65536) -> tuple[np.ndarray, float]:
    """Times ``t(Λ)`` at ``size + 1`` equally spaced values of the site's cumulative intensity.

    Lets :func:`group_arrivals` invert the cumulative intensity by an O(1) table look-up (linear within
    a cell; exact where the rate is constant over the cell, which holds for hourly profiles away from the
    hour edges).  Returns the table and the intensity step ``dΛ``.
    """
    total = float(profile.cumulative(np.array([duration_s]))[0])
    grid_t = np.linspace(0.0, duration_s, int(np.ceil(duration_s / min(profile.step_s, 60.0))) + 1)
    lam = np.linspace(0.0, total, size + 1)
    return np.interp(lam, profile.cumulative(grid_t), grid_t).astype(np.float32), total / size


def group_arrivals(
    key,
    inv_table: jax.Array,
    d_lambda: float,
    n_groups: int,
    n_max: int,
    policy: str = "random",
    n_site_groups: int | None = None,
) -> jax.Array:
    """Sorted arrival times (N, G), time-major, per group of the site's traffic, ``inf`` beyond the window.

    ``inv_table``/``d_lambda`` come from :func:`inverse_table` (the *site*'s traffic).  ``random`` splitting
    gives every group a Poisson stream of 1/``n_site_groups`` of the rate; ``round_robin`` (and
    ``least_loaded``, which equals it for rate-driven traffic of equal requests) gives it every
    ``n_site_groups``-th arrival of the site stream: Erlang spacing in intensity units, drawn with the
    Wilson–Hilferty approximation of the gamma distribution, from a random phase of the cycle.
    """
    k = n_site_groups or n_groups
    if policy == "random" or k == 1:
        inc = -jnp.log(fast_uniform(key, (n_max, n_groups))) * k
    elif policy in ("round_robin", "least_loaded"):
        z = fast_normal(key, (n_max, n_groups))
        inc = k * jnp.maximum(1.0 - 1.0 / (9 * k) + z / (3 * np.sqrt(k)), 0.0) ** 3
    else:
        raise ValueError(f"unknown assignment policy {policy!r} for rate-driven traffic")
    lam = scan0(jnp.add, inc)
    if policy != "random" and k > 1:
        lam = lam - inc[:1] * fast_uniform(jax.random.fold_in(key, 1), (1, n_groups))
    m = inv_table.shape[0] - 1
    x = lam / d_lambda
    i = jnp.clip(jnp.floor(x), 0, m - 1)
    t = inv_table[i.astype(jnp.int32)] + (x - i) * (
        inv_table[(i + 1).astype(jnp.int32)] - inv_table[i.astype(jnp.int32)]
    )
    return jnp.where(x < m, t, jnp.inf)
