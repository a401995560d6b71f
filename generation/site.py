"""High-level API: a posterior (per-configuration parameter draws) and a site scenario → a site trace.

>>> from wattscape.generation.site import generate_site, example_params_for_site
>>> from wattscape.generation.topology import load_site
>>> site = load_site("one_server")
>>> ds = generate_site(example_params_for_site(site, 20), site, seed=1)   # doctest: +SKIP

Pipeline per server type and posterior draw, in chunks of TP groups: traffic (rate-driven arrivals drawn
per group in JAX, or a request table assigned to groups) → :func:`serving.serve_vectorised` (state segments)
→ :func:`simulate.aggregate_emissions` / :func:`simulate.gpu_emissions` onto the finest requested level →
the residual of each output element drawn once per server type → float64 sums up to the facility
(``aggregate.build_dataset``).  Memory: a chunk's segments plus the finest level's grid; per-GPU arrays only
when the ``gpu`` level is asked for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm
from wattscape.models import dims as D

from wattscape.io import atomic_path

from . import traffic as T
from .aggregate import build_dataset, finest_level, power_vars
from .serving import assign_requests, requests_to_groups, serve_requests, serve_vectorised
from .simulate import (
    aggregate_levels,
    cap_stretch,
    emission_params,
    gpu_emissions,
    request_grid,
    row_residual,
    take_draw,
)
from .topology import FleetType, Site, load_site

#: Most GPU-steps × draws the per-GPU level may hold in memory.
MAX_GPU_CELLS = 200_000_000
TOKENS = {"azure_conv": T.AZURE_CONV_TOKENS, "azure_code": T.AZURE_CODE_TOKENS}


# --- parameters for a site -----------------------------------------------------------------------------
def fleet_config(f: FleetType) -> dict:
    """The ``ServingConfig`` fields of a server type (one TP group = one configuration)."""
    return {
        "llm": f.llm,
        "params_b": f.params_b,
        "gpu_model": f.gpu_model,
        "n_gpus": f.tensor_parallel,
        "tensor_parallel": f.tensor_parallel,
    }


def _tdp(gpu_model: str, default: float = 700.0) -> float:
    try:
        from wattscape.models.hardware import gpu_spec

        return float(gpu_spec(gpu_model)["tdp_w"])
    except (ImportError, KeyError):
        return default


def example_params_for_site(site: Site, n_draws: int = 100, seed: int = 0) -> dict[str, xr.Dataset]:
    """Physics-plausible parameter draws (``models.params.example_config_params``) for each server type."""
    from wattscape.models.params import example_config_params

    out = {}
    for i, f in enumerate(site.fleet):
        if f.config not in out:
            out[f.config] = example_config_params(
                n_draws,
                tdp_w=_tdp(f.gpu_model),
                n_gpus=f.tensor_parallel,
                tensor_parallel=f.tensor_parallel,
                llm=f.llm,
                gpu_model=f.gpu_model,
                seed=seed + i,
            )
    return out


def posterior_params_for_site(
    path: str, site: Site, n_draws: int = 100, seed: int = 0
) -> dict[str, xr.Dataset]:
    """Parameter draws for each server type from a saved ``PowerModel`` posterior (``PowerModel.load``)."""
    from wattscape.models.hierarchical import PowerModel

    model = PowerModel.load(path)
    out = {}
    for f in site.fleet:
        if f.config not in out:
            out[f.config] = model.config_params(fleet_config(f), n_draws=n_draws, seed=seed)
    return out


# --- traffic of a server type --------------------------------------------------------------------------
def _tokens(spec) -> T.TokenDistribution:
    if isinstance(spec, Mapping):
        return T.TokenDistribution(**spec)
    if spec in TOKENS:
        return TOKENS[spec]
    raise KeyError(f"unknown token distribution {spec!r}; known: {sorted(TOKENS)} or a table of values")


def fleet_traffic(site: Site, f: FleetType, seed: int = 0):
    """``("rate", RateProfile, TokenDistribution, policy)`` or ``("table", DataFrame, policy)`` of a type."""
    tr = dict(f.traffic)
    kind = tr.get("kind", "poisson")
    policy = tr.get("policy", "round_robin")
    if kind == "replay":
        from wattscape.inference.readers.traffic import read_requests

        path = Path(tr["path"])
        if not path.is_absolute() and site.source and not path.exists():
            path = Path(site.source).parent / path  # relative to the scenario file
        req = read_requests(path, tr.get("name"))
        req = T.replay(
            req,
            rate_scale=float(tr.get("rate_scale", 1.0)),
            time_shift_s=float(tr.get("time_shift_s", 0.0)),
            duration_s=site.duration_s,
            start=site.start,
            loop=bool(tr.get("loop", True)),
        )
        return ("table", req, policy)
    rate = float(tr["rate"]) if "rate" in tr else float(tr.get("rate_per_server", 0.5)) * f.servers
    tokens = _tokens(tr.get("tokens", "azure_conv"))
    if kind == "poisson":
        prof = T.constant_profile(rate)
    elif kind == "diurnal":
        shape = tr.get("shape", "azure")
        shape = None if shape == "azure" else np.asarray(shape, float)
        hour = site.start.hour + site.start.minute / 60
        prof = T.diurnal_profile(rate, shape, start_hour=hour)
    elif kind == "mmpp":
        arr = T.mmpp_arrivals(
            tuple(r * f.servers for r in tr["rates_per_server"]),
            tuple(tr["mean_sojourn_s"]),
            site.duration_s,
            seed,
        )
        return ("table", T.request_table(arr, tokens, start=site.start, seed=seed), policy)
    else:
        raise ValueError(f"{site.source}: unknown traffic kind {kind!r} (poisson, diurnal, mmpp, replay)")
    return ("rate", prof, tokens, policy)


# --- generation -------------------------------------------------------------------------------------------
def _draw_positions(n_avail: int, n_draws: int, seed: int) -> np.ndarray:
    if n_draws <= n_avail:
        return np.sort(np.random.default_rng(seed).choice(n_avail, n_draws, replace=False))
    return np.random.default_rng(seed).choice(n_avail, n_draws, replace=True)


def _group_layout(site: Site, fleet_index: int):
    """Server index of every TP group of a server type."""
    f = site.fleet[fleet_index]
    servers = np.flatnonzero(site.server_fleet() == fleet_index)
    return np.repeat(servers, f.groups_per_server)


def generate_site(
    params_by_config: Mapping[str, xr.Dataset] | Callable[[FleetType], xr.Dataset],
    scenario: Site | str,
    seed: int = 0,
    *,
    draws: int | None = None,
    levels: tuple[str, ...] | None = None,
    chunk_groups: int = 128,
    progress: bool = True,
    draw_ids: np.ndarray | None = None,
) -> xr.Dataset:
    """Posterior-predictive power trace of a site.

    Parameters
    ----------
    params_by_config : mapping config key → parameter draws (``models.params`` form), or a callable
        taking a :class:`FleetType` and returning them.
    scenario : Site or path / shipped name of a scenario TOML
    seed : int
        Root seed; the same seed gives the same trace.
    draws : int, optional
        Number of posterior draws (default: the scenario's ``draws``).
    levels : tuple of str, optional
        Override the scenario's output levels (``gpu``, ``server``, ``rack``, ``row``, ``facility``).
    chunk_groups : int
        TP groups simulated together (memory ∝ chunk × requests per group).
    progress : bool
        Show a progress bar.
    draw_ids : array of int, optional
        Compute only these of the ``draws`` draws (their values are the same as in a full run: used by
        :func:`generate_site_zarr` to stream draw blocks).

    Returns
    -------
    xr.Dataset
        See ``wattscape.generation.aggregate`` for the variables.
    """
    site = load_site(scenario) if isinstance(scenario, str) else scenario
    if levels is not None:
        site = Site(**{**site.__dict__, "levels": tuple(levels)})
    n_draws = int(draws or site.draws)
    draw_ids = np.arange(n_draws) if draw_ids is None else np.asarray(draw_ids, int)
    lv = finest_level(site.levels)
    n_steps, dt = site.n_steps, site.dt_s
    if lv == D.GPU and site.n_gpus * n_steps * len(draw_ids) > MAX_GPU_CELLS:
        raise ValueError(
            f"{site.source}: per-GPU output of {site.n_gpus} GPUs × {n_steps} steps × {n_draws} draws "
            f"exceeds {MAX_GPU_CELLS:.0e} values; ask for server level or above"
        )
    n_rows = site.n_gpus if lv == D.GPU else site.level_size(lv)
    finest = np.zeros((len(draw_ids), n_steps, n_rows), np.float64)
    root = jax.random.key(seed)
    devices = jax.local_devices(backend="cpu")
    tdps, model_ids, _t0 = [], {}, time.perf_counter()
    total_work = len(draw_ids) * sum(
        -(-f.servers * f.groups_per_server // min(chunk_groups, f.servers * f.groups_per_server))
        for f in site.fleet
    )
    bar = tqdm(total=total_work, desc=f"generate {site.name}", unit="chunk", disable=not progress)
    gpu_offset = np.concatenate(
        [[0], np.cumsum([site.fleet[f].gpus_per_server for f in site.server_fleet()])]
    )
    for fi, f in enumerate(site.fleet):
        prm = params_by_config(f) if callable(params_by_config) else params_by_config[f.config]
        tdps.append(float(prm.attrs.get("tdp_w", _tdp(f.gpu_model))))
        model_ids[f.config] = str(prm.attrs.get("model_id", ""))
        pos = _draw_positions(prm.sizes[D.DRAW], n_draws, seed + 7919 * fi)
        ep = emission_params(prm, pos)
        ar_step = float(prm.attrs["ar_step_s"])
        meter_k = max(1, round(float(prm.attrs.get("meter_window_s", dt)) / dt))
        servers_of_group = _group_layout(site, fi)
        n_groups = len(servers_of_group)
        if lv == D.GPU:
            rows = None
        elif lv == D.FACILITY:
            rows = np.zeros(n_groups, np.int32)
        else:
            rows = site.level_index(lv)[servers_of_group].astype(np.int32)
        trf = fleet_traffic(site, f, seed + 104729 * fi)
        if trf[0] == "table":
            req = trf[1]
            mean_service = float(np.mean(req["output_tokens"])) * 0.03 if len(req) else 1.0
            grp = assign_requests(req, n_groups, trf[2], mean_service_s=mean_service, seed=seed)
            table_arrays = requests_to_groups(req, grp, n_groups, site.start)
        else:
            prof, tokens, policy = trf[1], trf[2], trf[3]
            inv, d_lam = T.inverse_table(prof, site.duration_s)
            inv = jnp.asarray(inv)
            n_max = T.max_requests(prof, site.duration_s, n_groups)
            # rate-driven traffic arguments shared by the summed (grid) and per-GPU (segments) paths
            traffic_kw = {
                "d_lambda": d_lam,
                "n_max": n_max,
                "policy": policy,
                "n_site_groups": n_groups,
                "tokens": tokens,
                "batch_cap": f.batch_cap,
                "horizon": float(site.duration_s),
            }
        for di, d in enumerate(draw_ids):
            p = take_draw(ep, int(d))
            stretch = cap_stretch(p, f.power_cap_w, f.cap_time_exponent)
            kd = jax.random.fold_in(jax.random.fold_in(root, fi), int(d))
            lvl = np.zeros((n_steps, n_rows), np.float64) if lv != D.GPU else None
            var = np.zeros((n_steps, n_rows if lv != D.GPU else 0), np.float64)
            g = min(chunk_groups, n_groups)  # every chunk has g groups (the last one padded): one compile
            pending: list = []
            for c0 in range(0, n_groups, g):
                gsl = slice(c0, min(c0 + g, n_groups))
                n_pad = g - (gsl.stop - gsl.start)
                kc = jax.random.fold_in(kd, c0)
                k_srv, k_em = jax.random.split(kc)
                if trf[0] == "table":
                    arr, pr, ou, bs = (
                        jnp.asarray(np.pad(a[:, gsl], ((0, 0), (0, n_pad)), constant_values=v))
                        for a, v in zip(table_arrays, (np.inf, 1, 1, 1), strict=True)
                    )
                    start, state, cov, _ = serve_vectorised(
                        k_srv,
                        p,
                        arr,
                        pr,
                        ou,
                        bs,
                        stretch,
                        batch_cap=f.batch_cap,
                        horizon=float(site.duration_s),
                    )
                elif lv != D.GPU:  # the fast path: per-request segments, chunks spread over the CPU devices
                    rws = np.pad(rows[gsl], (0, n_pad), constant_values=n_rows)  # padding rows: dropped
                    dev = devices[(c0 // g) % len(devices)]
                    args = jax.device_put(
                        (kc, p, stretch, inv, jnp.asarray(rws)),
                        dev,
                    )
                    pending.append(
                        rate_grid(
                            *args,
                            n_gpu=f.tensor_parallel,
                            n_groups=g,
                            **traffic_kw,
                            n_rows=n_rows,
                            n_steps=n_steps,
                            dt=dt,
                            cap_w=f.power_cap_w,
                            max_gpus=f.tensor_parallel,
                        )
                    )
                    if len(pending) >= len(devices) or gsl.stop == n_groups:
                        for grid in pending:
                            grid = np.asarray(grid, np.float64)
                            lvl += grid[..., 0]
                            var += grid[..., 1]
                            bar.update(1)
                        pending = []
                    continue
                else:
                    start, state, cov, _ = rate_segments(
                        k_srv,
                        p,
                        stretch,
                        inv,
                        n_groups=g,
                        **traffic_kw,
                    )
                if lv == D.GPU:
                    out = gpu_emissions(
                        k_em,
                        p,
                        start,
                        state,
                        cov,
                        n_gpu=f.tensor_parallel,
                        n_steps=n_steps,
                        dt=dt,
                        ar_step_s=ar_step,
                        meter_k=meter_k,
                        cap_w=f.power_cap_w,
                    )
                    j = np.arange(gsl.start, gsl.stop) % f.groups_per_server
                    gpu_rows = (gpu_offset[servers_of_group[gsl]] + j * f.tensor_parallel)[
                        :, None
                    ] + np.arange(f.tensor_parallel)[None, :]
                    out = np.asarray(out)[:, : g - n_pad]
                    finest[di][:, gpu_rows.reshape(-1)] += out.reshape(n_steps, -1)
                else:
                    rws = np.pad(rows[gsl], (0, n_pad), constant_values=n_rows)  # padding: dropped
                    grid = aggregate_levels(
                        k_em,
                        p,
                        start,
                        state,
                        cov,
                        jnp.full((g,), f.tensor_parallel, jnp.int32),
                        jnp.asarray(rws),
                        n_rows=n_rows,
                        n_steps=n_steps,
                        dt=dt,
                        cap_w=f.power_cap_w,
                        max_gpus=f.tensor_parallel,
                    )
                    grid = np.asarray(grid, np.float64)
                    lvl += grid[..., 0]
                    var += grid[..., 1]
                bar.update(1)
            if lv != D.GPU:
                kr = jax.random.fold_in(kd, 2**30)
                resid = row_residual(kr, p, jnp.asarray(var, jnp.float32), dt=dt, ar_step_s=ar_step)
                finest[di] += _meter_np(lvl + np.asarray(resid, np.float64), meter_k)
    bar.close()
    times = pd.DatetimeIndex(site.start + pd.to_timedelta(np.arange(n_steps) * dt, unit="s"))
    interval = np.full(n_steps, dt)
    interval[-1] = site.duration_s - dt * (n_steps - 1)
    attrs = {
        "scenario": site.name,
        "scenario_source": site.source,
        "seed": seed,
        "dt_s": dt,
        "duration_s": site.duration_s,
        "n_gpus": site.n_gpus,
        "n_servers": site.n_servers,
        "configs": ", ".join(f"{f.name}={f.config}" for f in site.fleet),
        "model_ids": ", ".join(f"{k}:{v}" for k, v in model_ids.items()),
        "power_values": "bin means over [time, time + interval)",
    }
    ds = build_dataset(site, finest, lv, times, interval, tdps, attrs)
    return ds.assign_coords({D.DRAW: draw_ids})


def generate_site_zarr(
    params_by_config,
    scenario: Site | str,
    store: str,
    seed: int = 0,
    *,
    draws: int | None = None,
    draws_per_block: int = 1,
    time_chunk: int = 86400,
    progress: bool = True,
    **kwargs,
) -> xr.Dataset:
    """Out-of-core variant of :func:`generate_site`: draw blocks streamed into a chunked Zarr store.

    Each block of ``draws_per_block`` draws is generated (the same values as in one :func:`generate_site`
    call with the same seed), written without bands and appended along ``draw``; the quantile bands are then
    computed with Dask from the store, chunk by chunk of time, and added to it.  Memory holds one block,
    never all draws.  Returns the store opened lazily (Dask).
    """
    site = load_site(scenario) if isinstance(scenario, str) else scenario
    n_draws = int(draws or site.draws)
    path = Path(store)
    with atomic_path(path, is_dir=True) as tmp:
        for b0 in tqdm(range(0, n_draws, draws_per_block), desc="draw blocks", disable=not progress):
            ids = np.arange(b0, min(b0 + draws_per_block, n_draws))
            ds = generate_site(
                params_by_config, site, seed, draws=n_draws, draw_ids=ids, progress=False, **kwargs
            )
            ds = ds.drop_vars([v for v in ds.data_vars if v.endswith(D.BAND_SUFFIX)]).drop_vars(D.QUANTILE)
            ds = ds.chunk({D.DRAW: 1, D.TIME: min(time_chunk, ds.sizes[D.TIME])})
            if b0 == 0:
                ds.to_zarr(str(tmp), mode="w", consolidated=False, zarr_format=3)
            else:
                keep = [v for v in ds.data_vars if D.DRAW in ds[v].dims]
                ds[keep].to_zarr(str(tmp), append_dim=D.DRAW, consolidated=False, zarr_format=3)
        lazy = xr.open_zarr(str(tmp), consolidated=False)
        q = np.asarray(site.quantiles, float)
        bands = {}
        for v in power_vars(lazy):
            da = lazy[v].chunk({D.DRAW: -1})
            band = da.quantile(q, dim=D.DRAW, skipna=False).rename({"quantile": D.QUANTILE})
            band.attrs = {D.UNITS: D.WATT, "long_name": f"quantiles of {v} over posterior draws"}
            bands[v + D.BAND_SUFFIX] = band
        xr.Dataset(bands).chunk({D.TIME: min(time_chunk, lazy.sizes[D.TIME])}).to_zarr(
            str(tmp), mode="a", consolidated=False, zarr_format=3
        )
    return xr.open_zarr(str(path), consolidated=False)


def _meter_np(x: np.ndarray, k: int) -> np.ndarray:
    """Causal moving average over ``k`` steps along axis 0 (float64 twin of ``simulate.meter_kernel``)."""
    if k <= 1:
        return x
    c = np.cumsum(x, axis=0)
    c[k:] = c[k:] - c[:-k].copy()
    return c / np.minimum(np.arange(1, len(x) + 1), k)[:, None]


@partial(
    jax.jit,
    static_argnames=(
        "d_lambda",
        "n_groups",
        "n_max",
        "policy",
        "n_site_groups",
        "tokens",
        "batch_cap",
        "horizon",
    ),
)
def rate_segments(
    key,
    p,
    stretch,
    inv_table,
    *,
    d_lambda,
    n_groups,
    n_max,
    policy,
    n_site_groups,
    tokens,
    batch_cap,
    horizon,
):
    """Time-major segments of ``n_groups`` TP groups under rate-driven traffic (arrivals, tokens, serving)."""
    k_arr, k_tok, k_srv = jax.random.split(key, 3)
    arr = T.group_arrivals(k_arr, inv_table, d_lambda, n_groups, n_max, policy, n_site_groups=n_site_groups)
    pr, ou = tokens.sample_jax(k_tok, (n_max, n_groups))
    return serve_vectorised(
        k_srv, p, arr, pr, ou, jnp.ones_like(pr), stretch, batch_cap=batch_cap, horizon=horizon
    )


def rate_grid(
    key,
    p,
    stretch,
    inv_table,
    rows,
    *,
    n_gpu,
    d_lambda,
    n_groups,
    n_max,
    policy,
    n_site_groups,
    tokens,
    batch_cap,
    horizon,
    n_rows,
    n_steps,
    dt,
    cap_w,
    max_gpus,
):
    """One chunk of groups: arrivals → tokens → serving → levels → grid (n_rows, n_steps, 2).

    Three jitted programs (one fused program is slower on CPU); dispatched asynchronously, so chunks placed on
    different CPU devices run in parallel.
    """
    k_tr, k_srv, k_em = jax.random.split(key, 3)
    arr, pr, ou = _traffic(
        k_tr,
        inv_table,
        d_lambda=d_lambda,
        n_groups=n_groups,
        n_max=n_max,
        policy=policy,
        n_site_groups=n_site_groups,
        tokens=tokens,
    )
    s, f, e, occ = serve_requests(
        k_srv, p, arr, pr, ou, jnp.ones_like(pr), stretch, batch_cap=batch_cap, horizon=horizon
    )
    return request_grid(
        k_em,
        p,
        s,
        f,
        e,
        occ,
        pr,
        ou,
        rows,
        n_gpu=n_gpu,
        n_rows=n_rows,
        n_steps=n_steps,
        dt=dt,
        cap_w=cap_w,
        max_gpus=max_gpus,
    )


@partial(jax.jit, static_argnames=("d_lambda", "n_groups", "n_max", "policy", "n_site_groups", "tokens"))
def _traffic(key, inv_table, *, d_lambda, n_groups, n_max, policy, n_site_groups, tokens):
    k_arr, k_tok = jax.random.split(key)
    arr = T.group_arrivals(k_arr, inv_table, d_lambda, n_groups, n_max, policy, n_site_groups=n_site_groups)
    pr, ou = tokens.sample_jax(k_tok, (n_max, n_groups))
    return arr, pr, ou
