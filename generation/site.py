"""High-level API: a posterior (per-configuration parameter draws) and a site scenario → a site trace.

>>> from wattscape.generation.site import generate_site, example_params_for_site
>>> from wattscape.generation.topology import load_site
>>> site = load_site("one_server")
>>> ds = generate_site(example_params_for_site(site, 20), site, seed=1)   # doctest: +SKIP

Pipeline per server type and posterior draw, in chunks of TP groups: traffic (rate-driven arrivals drawn
per group in JAX, or a request table assigned to groups) → :func:`serving.serve_requests` (per-request
prefill / decode / idle times) → :func:`simulate.request_grid` (group sums scattered onto the finest
requested level) or :func:`simulate.request_gpu_power` (per-GPU output) → the summed residual of each
output element drawn once per draw and server type → float64 sums up to the facility
(``aggregate.build_dataset``).  Chunks run as a few jitted programs each, asynchronously on the host CPU
devices in turn (see :func:`generate_site`).  Memory: a chunk's requests plus the finest level's grid;
per-GPU arrays only when the ``gpu`` level is asked for.

Speed (``benchmarks/generate.py``): the conversion of parameter draws, the traffic tables and the time
coordinate are cached between calls; with one draw the quantile bands are views, not sorts.
"""

from __future__ import annotations

from collections import OrderedDict, deque
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
    EmissionParams,
    cap_stretch,
    emission_params,
    request_gpu_power,
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


#: Recently converted parameter draws (all draws, host numpy), keyed by the values of the dataset.
_EP_CACHE: OrderedDict = OrderedDict()
_EP_DEVICE_CACHE: OrderedDict = OrderedDict()  # all draws' parameters on one device
_DRAW_CACHE: OrderedDict = OrderedDict()  # one draw's parameters on one device
_INV_CACHE: OrderedDict = OrderedDict()
_TIME_CACHE: OrderedDict = OrderedDict()  # time coordinates (immutable pandas indexes)


def _fingerprint(prm: xr.Dataset) -> int:
    """Hash of a parameter dataset's values and attributes (cheap: a few hundred numbers per draw)."""
    parts = [repr(sorted(prm.attrs.items())).encode()]
    for name, var in prm.variables.items():
        parts += [str(name).encode(), np.ascontiguousarray(var.values).tobytes()]
    return hash(b"\0".join(parts))


def _cached(cache: OrderedDict, key, make, size: int = 8):
    """``cache[key]``, made by ``make()`` when missing; the least recently used beyond ``size`` dropped."""
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    val = cache[key] = make()
    if len(cache) > size:
        cache.popitem(last=False)
    return val


def _chunking(n_groups: int, chunk_groups: int) -> tuple[int, int]:
    """(groups per chunk, chunks): at most ``chunk_groups`` per chunk, an even number of equal chunks (when
    more than one) so that two CPU devices finish together."""
    n_chunks = -(-n_groups // max(1, min(chunk_groups, n_groups)))
    if n_chunks > 1:
        n_chunks += n_chunks % 2
    g = -(-n_groups // n_chunks)
    return g, -(-n_groups // g)


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
        taking a :class:`FleetType` and returning them.  Treated as read-only; their conversion to JAX
        arrays is cached between calls (keyed by their values).
    scenario : Site or path / shipped name of a scenario TOML
    seed : int
        Root seed; the same seed gives the same trace.
    draws : int, optional
        Number of posterior draws (default: the scenario's ``draws``).
    levels : tuple of str, optional
        Override the scenario's output levels (``gpu``, ``server``, ``rack``, ``row``, ``facility``).
    chunk_groups : int
        Most TP groups simulated together (memory ∝ chunk × requests per group).  The groups of a server
        type are split into an even number of equal chunks of at most this size.
    progress : bool
        Show a progress bar.
    draw_ids : array of int, optional
        Compute only these of the ``draws`` draws (their values are the same as in a full run: used by
        :func:`generate_site_zarr` to stream draw blocks).

    Returns
    -------
    xr.Dataset
        See ``wattscape.generation.aggregate`` for the variables.

    Notes
    -----
    Each chunk of groups is a few jitted programs (requests → serving times → levels → grid), dispatched
    asynchronously to the devices of JAX's default backend in turn (the host CPU devices,
    ``XLA_FLAGS=--xla_force_host_platform_device_count=N``, or a GPU when JAX has one)
    with a few chunks in flight across chunks, server types and draws; results are summed on the host in
    float64 as they arrive.
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
    prms = [
        params_by_config(f) if callable(params_by_config) else params_by_config[f.config] for f in site.fleet
    ]
    n_jobs = len(draw_ids) * sum(
        _chunking(f.servers * f.groups_per_server, chunk_groups)[1] for f in site.fleet
    )
    bar = tqdm(total=n_jobs, desc=f"generate {site.name}", unit="chunk", disable=not progress)
    pipe = _Pipeline(jax.local_devices(), bar)
    for fi, prm in enumerate(prms):
        _FleetRun(site, fi, prm, seed, n_draws, chunk_groups, lv, n_rows, pipe, finest).run(draw_ids)
    pipe.drain()
    bar.close()
    times = _cached(
        _TIME_CACHE,
        (site.start, n_steps, dt),
        lambda: pd.DatetimeIndex(site.start + pd.to_timedelta(np.arange(n_steps) * dt, unit="s")),
    )
    interval = np.full(n_steps, dt)
    interval[-1] = site.duration_s - dt * (n_steps - 1)
    model_ids = {
        f.config: str(prm.attrs.get("model_id", "")) for f, prm in zip(site.fleet, prms, strict=True)
    }
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
    tdps = [
        float(prm.attrs["tdp_w"]) if "tdp_w" in prm.attrs else _tdp(f.gpu_model)
        for f, prm in zip(site.fleet, prms, strict=True)
    ]
    return build_dataset(site, finest, lv, times, interval, tdps, attrs, draw_ids=draw_ids)


class _Pipeline:
    """Jobs dispatched asynchronously to the devices in turn; their results consumed on the host in order.

    At most ``2 × devices`` jobs are in flight, so every device has one queued while the host consumes.
    """

    def __init__(self, devices, bar):
        self.devices, self.bar = devices, bar
        self.pending: deque = deque()
        self.turn = 0

    def next_device(self) -> int:
        self.turn += 1
        return (self.turn - 1) % len(self.devices)

    def submit(self, result, consume: Callable) -> None:
        self.pending.append((result, consume))
        while len(self.pending) > 2 * len(self.devices):
            self._pop()

    def drain(self) -> None:
        while self.pending:
            self._pop()

    def _pop(self) -> None:
        result, consume = self.pending.popleft()
        consume(result)


class _FleetRun:
    """The chunks of one server type, draw by draw, submitted to a :class:`_Pipeline`."""

    def __init__(self, site, fi, prm, seed, n_draws, chunk_groups, lv, n_rows, pipe, finest):
        f = self.f = site.fleet[fi]
        self.fi, self.lv, self.n_rows, self.seed, self.pipe, self.finest = fi, lv, n_rows, seed, pipe, finest
        self.n_steps, self.dt, self.horizon = site.n_steps, site.dt_s, float(site.duration_s)
        devices = pipe.devices
        self.pos = _draw_positions(prm.sizes[D.DRAW], n_draws, seed + 7919 * fi)
        self.fp = _fingerprint(prm)
        self.ep_host = _cached(
            _EP_CACHE, self.fp, lambda: EmissionParams(*(np.asarray(a) for a in emission_params(prm))), 32
        )
        self.ar_step = float(prm.attrs["ar_step_s"])
        self.meter_k = max(1, round(float(prm.attrs.get("meter_window_s", self.dt)) / self.dt))
        servers_of_group = _group_layout(site, fi)
        n_groups = len(servers_of_group)
        self.g, self.n_chunks = _chunking(n_groups, chunk_groups)
        n_pad = self.g * self.n_chunks - n_groups
        if lv == D.GPU:
            offset = np.concatenate(
                [[0], np.cumsum([site.fleet[k].gpus_per_server for k in site.server_fleet()])]
            )
            j = np.arange(n_groups) % f.groups_per_server
            first = offset[servers_of_group] + j * f.tensor_parallel
            self.gpu_cols = first[:, None] + np.arange(f.tensor_parallel)
        else:
            rows = (
                np.zeros(n_groups, np.int32) if lv == D.FACILITY else site.level_index(lv)[servers_of_group]
            )
            self.rows = np.pad(rows.astype(np.int32), (0, n_pad), constant_values=n_rows)  # padding: dropped
        self.trf = fleet_traffic(site, f, seed + 104729 * fi)
        if self.trf[0] == "table":
            req = self.trf[1]
            mean_service = float(np.mean(req["output_tokens"])) * 0.03 if len(req) else 1.0
            grp = assign_requests(req, n_groups, self.trf[2], mean_service_s=mean_service, seed=seed)
            arrays = requests_to_groups(req, grp, n_groups, site.start)
            self.table = [
                np.pad(a, ((0, 0), (0, n_pad)), constant_values=v)
                for a, v in zip(arrays, (np.inf, 1, 1, 1), strict=True)
            ]
        else:
            prof, tokens, policy = self.trf[1], self.trf[2], self.trf[3]
            key = (prof.rates.tobytes(), prof.step_s, self.horizon, n_groups, policy, tuple(devices))
            self.inv, d_lam, n_max = _cached(
                _INV_CACHE, key, lambda: _rate_tables(prof, self.horizon, n_groups, policy, devices)
            )
            self.traffic_kw = {
                "d_lambda": d_lam,
                "n_groups": self.g,
                "n_max": n_max,
                "policy": policy,
                "n_site_groups": n_groups,
                "tokens": tokens,
            }

    def ids(self, d: int, c0: int) -> np.ndarray:
        """What a chunk's keys and draw derive from (see :func:`_chunk_key`)."""
        seed = self.seed % 2**64
        return np.array([seed % 2**32, seed // 2**32, self.fi, d, c0], np.uint32)

    def run(self, draw_ids) -> None:
        for di, d in enumerate(draw_ids):
            acc = _DrawSum(self, di, int(d)) if self.lv != D.GPU else None
            for ci in range(self.n_chunks):
                self._chunk(di, int(d), ci * self.g, acc)

    def params(self, d: int, k: int) -> EmissionParams:
        """Parameters of draw ``d`` on device ``k``, materialised by their own program (a slice traced inside
        the chunk programs slows XLA's loops there)."""
        i, dev = int(self.pos[d]), self.pipe.devices[k]

        def make():
            ep = _cached(_EP_DEVICE_CACHE, (self.fp, dev), lambda: jax.device_put(self.ep_host, dev), 32)
            return _take_draw(ep, np.int32(i))

        return _cached(_DRAW_CACHE, (self.fp, i, dev), make, 4096)

    def _chunk(self, di: int, d: int, c0: int, acc) -> None:
        f, g, k = self.f, self.g, self.pipe.next_device()
        dev, ep = self.pipe.devices[k], self.params(d, k)
        ids = self.ids(d, c0)  # placed with the committed arguments (on device k)
        if self.trf[0] == "table":
            arr, pr, ou, bs = (jax.device_put(x[:, c0 : c0 + g], dev) for x in self.table)
        else:
            arr, pr, ou = _rate_requests(ids, self.inv[k], **self.traffic_kw)
            bs = None
        s, fin, e, occ = _serve_chunk(
            ids,
            ep,
            arr,
            pr,
            ou,
            bs,
            batch_cap=f.batch_cap,
            horizon=self.horizon,
            cap_w=f.power_cap_w,
            cap_exponent=f.cap_time_exponent,
        )
        common = {"n_steps": self.n_steps, "dt": self.dt, "n_gpu": f.tensor_parallel, "cap_w": f.power_cap_w}
        if self.lv == D.GPU:
            out = _gpu_chunk(
                ids,
                ep,
                s,
                fin,
                e,
                occ,
                pr,
                ou,
                ar_step_s=self.ar_step,
                meter_k=self.meter_k,
                **common,
            )
            self.pipe.submit(out, partial(self._put_gpus, di=di, cols=self.gpu_cols[c0 : c0 + g]))
        else:
            rows = jax.device_put(self.rows[c0 : c0 + g], dev)
            grid = _grid_chunk(ids, ep, s, fin, e, occ, pr, ou, rows, n_rows=self.n_rows, **common)
            self.pipe.submit(grid, partial(acc.add, dev=k))

    def _put_gpus(self, out, *, di: int, cols: np.ndarray) -> None:
        out = np.asarray(out)[:, : len(cols)].reshape(self.n_steps, -1)
        flat = cols.reshape(-1)
        if np.array_equal(flat, np.arange(flat[0], flat[0] + flat.size)):  # contiguous: a slice, no gather
            self.finest[di][:, flat[0] : flat[0] + flat.size] = out
        else:
            self.finest[di][:, flat] = out
        self.pipe.bar.update(1)


class _DrawSum:
    """Float64 sums of one draw's chunk grids; once all are in, its residual (once per row) and the meter."""

    def __init__(self, run: _FleetRun, di: int, d: int):
        self.run, self.di, self.d, self.left = run, di, d, run.n_chunks
        self.lvl = np.zeros((run.n_steps, run.n_rows))
        self.var = np.zeros((run.n_steps, run.n_rows))

    def add(self, grid, *, dev: int) -> None:
        grid = np.asarray(grid)
        self.lvl += grid[..., 0]
        self.var += grid[..., 1]
        self.left -= 1
        self.run.pipe.bar.update(1)
        if self.left == 0:
            r, device = self.run, self.run.pipe.devices[dev]
            resid = _draw_residual(
                r.ids(self.d, 0),
                r.params(self.d, dev),
                jax.device_put(self.var.astype(np.float32), device),
                dt=r.dt,
                ar_step_s=r.ar_step,
            )
            self.var = None
            r.pipe.submit(resid, self.finish)

    def finish(self, resid) -> None:
        self.run.finest[self.di] += _meter_np(self.lvl + np.asarray(resid), self.run.meter_k)
        self.lvl = None


def _rate_tables(prof, horizon: float, n_groups: int, policy: str, devices):
    """(inverse cumulative-intensity table on each device, its step, padding length) of a rate profile."""
    inv, d_lam = T.inverse_table(prof, horizon)
    return (
        [jax.device_put(inv, d) for d in devices],
        d_lam,
        max_requests_per_group(prof, horizon, n_groups, policy),
    )


def max_requests_per_group(prof, horizon: float, n_groups: int, policy: str) -> int:
    """Padding length N of :func:`traffic.group_arrivals` (its arrivals per group stay below N).

    ``random`` splitting gives each group a Poisson stream: ``traffic.max_requests`` (mean + 6 sd).  Round
    robin gives each group every ``n_groups``-th arrival (Erlang spacing of order ``n_groups``), whose count
    over the window has variance ``m / n_groups`` rather than ``m`` (renewal theory: mean spacing ``k``,
    variance ``k``): the same 6 sd are ``sqrt(n_groups)`` times fewer requests, so a day of 1,250 servers
    pads 0.2 % instead of 5 % (work in traffic, serving and emissions alike).
    """
    k = n_groups if policy in ("round_robin", "least_loaded") else 1
    return T.max_requests(prof, horizon, n_groups, sigmas=6.0 / np.sqrt(k))


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


# --- jitted per-chunk programs of generate_site -----------------------------------------------------------
_take_draw = jax.jit(take_draw)


def _chunk_key(ids, part: int):
    """Key of one part (0 traffic, 1 serving, 2 emissions, 3 residual) of a chunk.

    ``ids`` (uint32): the root seed's low and high words, the server type, the draw and the first group
    of the chunk.
    """
    k = jax.random.fold_in(jax.random.key(ids[0]), ids[1])
    for i in (2, 3, 4):
        k = jax.random.fold_in(k, ids[i])
    return jax.random.fold_in(k, part)


@partial(jax.jit, static_argnames=("d_lambda", "n_groups", "n_max", "policy", "n_site_groups", "tokens"))
def _rate_requests(ids, inv_table, *, d_lambda, n_groups, n_max, policy, n_site_groups, tokens):
    """Arrival times and token counts (N, G) of one chunk of groups under rate-driven traffic."""
    return _traffic(
        _chunk_key(ids, 0),
        inv_table,
        d_lambda=d_lambda,
        n_groups=n_groups,
        n_max=n_max,
        policy=policy,
        n_site_groups=n_site_groups,
        tokens=tokens,
    )


@partial(jax.jit, static_argnames=("batch_cap", "horizon", "cap_w", "cap_exponent"))
def _serve_chunk(ids, p, arr, pr, ou, bs, *, batch_cap, horizon, cap_w, cap_exponent):
    """Serving times of one chunk (``serving.serve_requests``) with the parameters ``p`` of one draw."""
    stretch = cap_stretch(p, cap_w, cap_exponent)
    bs = jnp.ones_like(pr) if bs is None else bs
    return serve_requests(
        _chunk_key(ids, 1), p, arr, pr, ou, bs, stretch, batch_cap=batch_cap, horizon=horizon
    )


def _grid_chunk(ids, p, s, f, e, occ, pr, ou, rows, *, n_gpu, n_rows, n_steps, dt, cap_w):
    """Summed levels and residual variances (n_steps, n_rows, 2) of one chunk (:func:`request_grid`, three
    jitted programs)."""
    return request_grid(
        _emission_key(ids),
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
    )


@jax.jit
def _emission_key(ids):
    return _chunk_key(ids, 2)


@partial(jax.jit, static_argnames=("n_gpu", "n_steps", "dt", "ar_step_s", "meter_k", "cap_w"))
def _gpu_chunk(ids, p, s, f, e, occ, pr, ou, *, n_gpu, n_steps, dt, ar_step_s, meter_k, cap_w):
    """Per-GPU power (n_steps, G, n_gpu) of one chunk (:func:`request_gpu_power`)."""
    return request_gpu_power(
        _chunk_key(ids, 2),
        p,
        s,
        f,
        e,
        occ,
        pr,
        ou,
        n_gpu=n_gpu,
        n_steps=n_steps,
        dt=dt,
        ar_step_s=ar_step_s,
        meter_k=meter_k,
        cap_w=cap_w,
    )


@partial(jax.jit, static_argnames=("dt", "ar_step_s"))
def _draw_residual(ids, p, var, *, dt, ar_step_s):
    """Summed residual of every row of one draw (:func:`row_residual`)."""
    return row_residual(_chunk_key(ids, 3), p, var, dt=dt, ar_step_s=ar_step_s)
