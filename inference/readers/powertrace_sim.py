"""Run bundles of the seed paper's repository (grantwilkins/powertrace-sim) into the run data model.

Formats as documented in that repository (``profiling/BUNDLE_SCHEMA.md``; read, not copied; the
repository has no license):

``<run>/power.csv``
    ``nvidia-smi --query-gpu=timestamp,index,uuid,power.draw,...`` at 4 Hz; timestamps are local wall-clock
    time; ``manifest.json`` -> ``clock.local_utc_offset_s`` gives the offset (seconds east of UTC).
``<run>/engine.csv``
    vLLM ``/metrics`` scraped at 4 Hz; ``timestamp`` is Unix epoch seconds; gauges
    ``num_requests_running``/``num_requests_waiting``; cumulative counters ``prompt_tokens_total``,
    ``generation_tokens_total`` (differenced between consecutive scrapes).
``<run>/requests.json``
    vLLM ``benchmark_serving.py --save-detailed`` output with the added ``request_timestamps`` (epoch send
    time per request): per-request lists ``input_lens``, ``output_lens``, ``ttfts``, ``itls``.
``<run>/manifest.json``
    model, ``hardware``, ``tp``, server settings, clock offsets and the probe windows (``probe.window``,
    ``probe.levels[*].t_start_epoch/t_end_epoch``).
``client/<model>_tp<N>_p<rate>_d<date>.csv`` + ``client/vllm-<rate>qps-tp<N>-<model>-<date>.json``
    the older layout: an index-less nvidia-smi CSV of the whole node (units inside values) and a vLLM
    benchmark result JSON; read a pair with :func:`read_client_run`.

State labels (attr ``state_labels``, rule in attr ``state_rule``)
    With ``engine.csv``: for each scrape interval, ``prefill`` if prompt tokens were processed in it,
    else ``decode`` if output tokens were generated, else ``idle`` when no request was running or
    waiting, else ``active``; each power sample takes the label of the scrape interval that contains it.
    Without ``engine.csv`` but with request times: ``prefill`` while any request is between its send time
    and its first token, else ``decode`` while any request is generating, else ``idle``.  Otherwise
    ``active`` where requests are in flight.  Samples outside ``manifest.probe.window`` are ``excluded``.
    ``segment(time)`` numbers the maximal runs of one state (``-1`` for excluded samples): with many
    requests in flight, a state run is the unit whose dwell time the semi-Markov model describes.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ...models import dims as D
from ...models.hardware import normalise_gpu_name
from ...models.llm_specs import llm_spec
from . import IngestError

#: Per-request list keys of a vLLM benchmark_serving result (those present must have equal length).
_PER_REQUEST_KEYS = ("input_lens", "output_lens", "ttfts", "itls", "request_timestamps", "errors")
_ENGINE_REQUIRED = ("timestamp", "num_requests_running", "prompt_tokens_total", "generation_tokens_total")


# --------------------------------------------------------------------------------------- JSON files
def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise IngestError("file not found", path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as err:
        raise IngestError(
            f"invalid JSON ({err.msg}, column {err.colno}); truncated file?", path, err.lineno
        ) from None
    if not isinstance(data, dict):
        raise IngestError(f"expected a JSON object, found {type(data).__name__}", path)
    return data


def read_manifest(path: str | os.PathLike) -> dict:
    """Read a run's ``manifest.json`` (a run folder or the file itself).

    Returns
    -------
    dict
        The manifest, with ``utc_offset_s`` added at the top level: ``clock.local_utc_offset_s`` when
        present, else ``None``.

    Raises
    ------
    IngestError
        Missing or truncated file, or no ``model``/``tp`` key (names the file and key).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.json"
    man = _load_json(path)
    for key in ("model", "tp"):
        if key not in man:
            raise IngestError(f"missing key {key!r}", path)
    clock = man.get("clock") or {}
    off = clock.get("local_utc_offset_s")
    man["utc_offset_s"] = None if off is None else float(off)
    return man


def _epoch_to_utc(seconds) -> np.ndarray:
    sec = np.asarray(seconds, dtype=np.float64)
    return pd.to_datetime(sec, unit="s").to_numpy(dtype="datetime64[ns]")


def read_vllm_benchmark(path: str | os.PathLike, *, run_id: str | None = None) -> pd.DataFrame:
    """Per-request table from a vLLM ``benchmark_serving`` result JSON (or a bundle's ``requests.json``).

    Parameters
    ----------
    path : path
        The JSON file.
    run_id : str, optional
        ``run_id`` column (default: the file stem).

    Returns
    -------
    pandas.DataFrame
        :data:`~wattscape.models.dims.REQUEST_COLUMNS` plus ``first_token`` (UTC time of the first token:
        end of prefill), ``ttft_s``, ``e2e_s`` (``ttft + sum(itls)``) and ``error`` (``str``, empty when the
        request succeeded).  ``start`` is the epoch send time (``request_timestamps``) when the file has
        it, else NaT (stock vLLM saves no absolute times; quirk in ``attrs["quirks"]``); ``end`` is
        ``start + e2e_s``.  ``batch_size`` is the number of requests in flight at the request's start
        (itself included), NaN-free where times are known, else 1.  ``attrs``: every scalar of the file
        (``duration``, ``request_rate``, ``model_id``, ...) under ``attrs["summary"]``, plus ``source``.

    Raises
    ------
    IngestError
        Truncated JSON, no ``input_lens``/``output_lens``, per-request lists of different lengths, or
        NaN/negative values (names the file and key).
    """
    path = Path(path)
    data = _load_json(path)
    for key in ("input_lens", "output_lens"):
        if not isinstance(data.get(key), list):
            raise IngestError(f"missing list {key!r} (not a vLLM benchmark_serving result?)", path)
    lists = {k: data[k] for k in _PER_REQUEST_KEYS if isinstance(data.get(k), list)}
    n = len(lists["input_lens"])
    wrong = {k: len(v) for k, v in lists.items() if len(v) != n}
    if wrong:
        raise IngestError(f"per-request lists differ in length: input_lens has {n}, {wrong}", path)
    quirks: list[str] = []

    def numbers(key: str) -> np.ndarray:
        try:
            arr = np.asarray(lists[key], dtype=np.float64)
        except (TypeError, ValueError):
            raise IngestError(f"key {key!r} holds non-numeric values", path) from None
        bad = ~np.isfinite(arr) | (arr < 0)
        if bad.any():
            raise IngestError(
                f"key {key!r}: NaN or negative at request index {np.flatnonzero(bad)[:5].tolist()}", path
            )
        return arr

    prompt = numbers("input_lens").astype(np.int64)
    output = numbers("output_lens").astype(np.int64)
    ttft = numbers("ttfts") if "ttfts" in lists else np.full(n, np.nan)
    if "itls" in lists:
        decode = np.array(
            [float(np.nansum(np.asarray(x, dtype=np.float64))) if x else 0.0 for x in lists["itls"]]
        )
    else:
        decode = np.full(n, np.nan)
    e2e = ttft + decode
    errors = [str(e) if e else "" for e in lists.get("errors", [""] * n)]
    if "request_timestamps" in lists:
        send = numbers("request_timestamps")
        start = _epoch_to_utc(send)
    else:
        start = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
        quirks.append("no request_timestamps (stock vLLM result): request start times unknown (NaT)")
    first_token = start + pd.to_timedelta(ttft, unit="s").to_numpy()
    end = start + pd.to_timedelta(e2e, unit="s").to_numpy()
    ok = np.array([not e for e in errors])
    if (~ok).any():
        quirks.append(f"{int((~ok).sum())} failed request(s) kept with their error text")
    batch = np.ones(n, dtype=np.int64)
    if not np.isnat(start).all() and np.isfinite(e2e).all():
        s = start.astype("datetime64[ns]").astype(np.int64)
        e = end.astype("datetime64[ns]").astype(np.int64)
        order_e = np.sort(e)
        # requests in flight at each start: started at or before it, not yet finished
        batch = (
            np.searchsorted(np.sort(s), s, side="right") - np.searchsorted(order_e, s, side="right")
        ).astype(np.int64)
        batch = np.maximum(batch, 1)
    df = pd.DataFrame(
        {
            "run_id": pd.Series([run_id or path.stem] * n, dtype="str"),
            "request_id": np.arange(n, dtype=np.int64),
            "start": pd.Series(start, dtype="datetime64[ns]"),
            "end": pd.Series(end, dtype="datetime64[ns]"),
            "prompt_tokens": prompt,
            "output_tokens": output,
            "batch_size": batch,
            "first_token": pd.Series(first_token, dtype="datetime64[ns]"),
            "ttft_s": ttft,
            "e2e_s": e2e,
            "error": pd.Series(errors, dtype="str"),
        }
    )
    df.attrs["summary"] = {k: v for k, v in data.items() if not isinstance(v, (list, dict))}
    df.attrs["source"] = str(path)
    df.attrs["quirks"] = quirks
    return df


# --------------------------------------------------------------------------------------- power CSV
def _private_query_gpu_csv(path: Path, utc_offset_hours: float) -> xr.Dataset:
    """Minimal ``--query-gpu`` CSV parser (fallback when the shared nvidia-smi reader is unavailable)."""
    try:
        raw = pd.read_csv(path, skipinitialspace=True, dtype="str", on_bad_lines="skip")
    except pd.errors.EmptyDataError:
        raise IngestError("empty file", path) from None
    cols = {c.split("[")[0].strip(): c for c in raw.columns}
    for need in ("timestamp", "power.draw"):
        if need not in cols:
            raise IngestError(f"missing column {need!r}; found {list(raw.columns)}", path)
    power = pd.to_numeric(raw[cols["power.draw"]].str.replace("W", "", regex=False), errors="coerce")
    times = pd.to_datetime(raw[cols["timestamp"]], format="%Y/%m/%d %H:%M:%S.%f", errors="coerce")
    keep = times.notna()
    times = times[keep] - pd.Timedelta(hours=utc_offset_hours)
    if "index" not in cols:
        raise IngestError("no index column (use the shared nvidia-smi reader for index-less files)", path)
    idx = pd.to_numeric(raw[cols["index"]], errors="coerce")[keep].astype(np.int64)
    frame = pd.DataFrame({"t": times.to_numpy(), "g": idx.to_numpy(), "p": power[keep].to_numpy()})
    frame["k"] = frame.groupby("g").cumcount()
    wide = frame.pivot(index="k", columns="g", values="p")
    t = frame.groupby("k")["t"].first().to_numpy(dtype="datetime64[ns]")
    ds = xr.Dataset(
        {D.POWER: ((D.GPU, D.TIME), wide.to_numpy(dtype=np.float32).T, {D.UNITS: D.WATT})},
        coords={D.GPU: wide.columns.to_numpy(dtype=np.int32), D.TIME: t},
    )
    if "uuid" in cols:
        first = raw.loc[keep].groupby(idx)[cols["uuid"]].first()
        ds = ds.assign_coords(uuid=(D.GPU, [str(first.get(int(g), "")) for g in ds[D.GPU].values]))
    ds.attrs["quirks"] = ""
    return ds


def _read_power_csv(
    path: Path, utc_offset_hours: float, n_gpus: int | None = None
) -> tuple[xr.Dataset, list[str]]:
    """Use the shared nvidia-smi reader (``read_query_gpu_csv`` or ``read_nvidia_smi``) when present."""
    try:
        from . import nvidia_smi
    except ImportError:  # pragma: no cover - the shared reader ships with the package
        nvidia_smi = None
    reader = getattr(nvidia_smi, "read_query_gpu_csv", None) or getattr(nvidia_smi, "read_nvidia_smi", None)
    if reader is not None:
        kwargs = {"utc_offset_hours": utc_offset_hours}
        if n_gpus is not None:
            kwargs["n_gpus"] = n_gpus
        out = reader(path, **kwargs)
        ds, quirks = out if isinstance(out, tuple) else (out, [])
        return ds, list(quirks)
    ds = _private_query_gpu_csv(path, utc_offset_hours)
    return ds, []


# --------------------------------------------------------------------------------------- states
def _label_from_engine(times: np.ndarray, engine: pd.DataFrame) -> np.ndarray:
    """State code per power sample from the scrape interval containing it."""
    t_eng = engine["time"].to_numpy(dtype="datetime64[ns]")
    d_prompt = np.diff(engine["prompt_tokens_total"].to_numpy(dtype=np.float64), prepend=np.nan)
    d_gen = np.diff(engine["generation_tokens_total"].to_numpy(dtype=np.float64), prepend=np.nan)
    running = engine["num_requests_running"].to_numpy(dtype=np.float64)
    waiting = engine.get("num_requests_waiting", pd.Series(0.0, index=engine.index)).to_numpy(
        dtype=np.float64
    )
    busy = (running > 0) | (waiting > 0)
    # interval k is (t_eng[k-1], t_eng[k]]; the gauge at its end tells whether anything was in flight
    code = np.where(
        d_prompt > 0,
        D.STATE_CODES[D.PREFILL],
        np.where(
            d_gen > 0, D.STATE_CODES[D.DECODE], np.where(busy, D.STATE_CODES[D.ACTIVE], D.STATE_CODES[D.IDLE])
        ),
    )
    k = np.searchsorted(t_eng, times, side="left")
    out = np.full(times.shape, D.STATE_CODES[D.EXCLUDED], dtype=np.int8)
    inside = (k >= 1) & (k < len(t_eng))
    out[inside] = code[k[inside]]
    return out


def _label_from_requests(times: np.ndarray, req: pd.DataFrame) -> tuple[np.ndarray, str]:
    t = times.astype("datetime64[ns]").astype(np.int64)

    def in_flight(a: pd.Series, b: pd.Series) -> np.ndarray:
        a_ns = np.sort(a.to_numpy(dtype="datetime64[ns]").astype(np.int64))
        b_ns = np.sort(b.to_numpy(dtype="datetime64[ns]").astype(np.int64))
        return np.searchsorted(a_ns, t, side="right") - np.searchsorted(b_ns, t, side="right")

    valid = req["start"].notna() & req["end"].notna()
    req = req[valid]
    busy = in_flight(req["start"], req["end"]) > 0
    if req["first_token"].notna().all():
        pre = in_flight(req["start"], req["first_token"]) > 0
        code = np.where(
            pre, D.STATE_CODES[D.PREFILL], np.where(busy, D.STATE_CODES[D.DECODE], D.STATE_CODES[D.IDLE])
        )
        return code.astype(np.int8), D.LABELS_PHASES
    code = np.where(busy, D.STATE_CODES[D.ACTIVE], D.STATE_CODES[D.IDLE])
    return code.astype(np.int8), D.LABELS_ACTIVE


def _segments(state: np.ndarray) -> np.ndarray:
    seg = np.full(state.shape, -1, dtype=np.int32)
    if state.size == 0:
        return seg
    change = np.concatenate([[True], state[1:] != state[:-1]])
    ids = np.cumsum(change) - 1
    keep = state != D.STATE_CODES[D.EXCLUDED]
    # renumber kept runs 0..m-1
    kept_ids = ids[keep]
    if kept_ids.size:
        _, dense = np.unique(kept_ids, return_inverse=True)
        seg[keep] = dense.astype(np.int32)
    return seg


def _read_engine(path: Path) -> pd.DataFrame:
    try:
        eng = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise IngestError("empty file", path) from None
    missing = [c for c in _ENGINE_REQUIRED if c not in eng.columns]
    if missing:
        raise IngestError(f"missing column(s) {missing}; found {list(eng.columns)}", path)
    ts = pd.to_numeric(eng["timestamp"], errors="coerce")
    bad = ts.isna()
    if bad.any():
        raise IngestError(f"non-numeric timestamp at line(s) {(np.flatnonzero(bad) + 2)[:5].tolist()}", path)
    eng = eng.assign(time=_epoch_to_utc(ts.to_numpy()))
    if not eng["time"].is_monotonic_increasing:
        eng = eng.sort_values("time", kind="stable").reset_index(drop=True)
    return eng


# --------------------------------------------------------------------------------------- run folder
def _infer_offset_s(power_first_local: np.datetime64, reference_epoch: float) -> float:
    """Offset (s east of UTC) from a local time and the epoch it should match, rounded to 15 min."""
    local_as_utc = pd.Timestamp(power_first_local).value / 1e9
    return float(round((local_as_utc - reference_epoch) / 900.0) * 900.0)


def read_run_dir(path: str | os.PathLike, *, run_id: str | None = None) -> tuple[xr.Dataset, pd.DataFrame]:
    """Read one powertrace-sim run bundle (``power.csv`` + ``manifest.json`` [+ ``engine.csv``,
    ``requests.json``]).

    Parameters
    ----------
    path : path
        The run folder.
    run_id : str, optional
        Default: ``manifest["run_id"]``, else the folder name.

    Returns
    -------
    ds : xr.Dataset
        ``power(gpu, time)`` float32 W of the tensor-parallel GPUs, ``state(time)`` int8, ``segment(time)``
        int32, UTC ``time``; attrs :data:`~wattscape.models.dims.RUN_ATTRS` (``split="tensor"`` when
        ``tp > 1``) plus ``utc_offset_s``, ``max_num_seqs``, ``state_rule``.
    requests : pandas.DataFrame
        From ``requests.json`` (see :func:`read_vllm_benchmark`); empty with the same columns when absent.

    Raises
    ------
    IngestError
        Missing ``power.csv``/``manifest.json``, truncated JSON, bad columns (names file, line or key).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise IngestError("not a run folder", folder)
    man = read_manifest(folder)
    rid = run_id or str(man.get("run_id") or folder.name)
    quirks: list[str] = []
    power_path = folder / "power.csv"
    if not power_path.is_file():
        raise IngestError("missing power.csv", folder)

    offset_s = man["utc_offset_s"]
    if offset_s is None:
        first_line = power_path.read_text(encoding="utf-8", errors="replace").splitlines()[1:2]
        reference = (man.get("clock") or {}).get("reference_epoch_s") or (
            ((man.get("probe") or {}).get("window") or {}).get("start_epoch")
        )
        if not first_line or reference is None:
            raise IngestError(
                "no clock.local_utc_offset_s and no reference epoch to infer it", folder / "manifest.json"
            )
        local = pd.to_datetime(first_line[0].split(",")[0].strip(), format="%Y/%m/%d %H:%M:%S.%f")
        offset_s = _infer_offset_s(local.to_datetime64(), float(reference))
        quirks.append(f"UTC offset inferred from the manifest reference epoch: {offset_s / 3600:+.2f} h")
    power, pquirks = _read_power_csv(power_path, offset_s / 3600.0)
    quirks += pquirks

    tp = int(man["tp"])
    active = (man.get("server") or {}).get("active_gpu_uuids") or (
        ((man.get("instrumentation") or {}).get("power") or {}).get("device_ids")
    )
    if "uuid" in power.coords and active:
        sel = [i for i, u in enumerate(power["uuid"].values) if str(u) in set(active)]
        if len(sel) != len(active):
            quirks.append(f"{len(active) - len(sel)} active GPU uuid(s) of the manifest not in power.csv")
        if len(sel) < power.sizes[D.GPU]:
            quirks.append(f"kept the {len(sel)} serving GPU(s) of {power.sizes[D.GPU]} logged")
        power = power.isel({D.GPU: sel})
    elif power.sizes[D.GPU] > tp:
        quirks.append(f"kept GPUs 0..{tp - 1} of {power.sizes[D.GPU]} logged (no uuids to match)")
        power = power.isel({D.GPU: slice(0, tp)})
    if power.sizes[D.GPU] != tp:
        quirks.append(f"{power.sizes[D.GPU]} GPU(s) logged for tp={tp}")

    req_path = folder / "requests.json"
    requests = read_vllm_benchmark(req_path, run_id=rid) if req_path.is_file() else None
    if requests is not None:
        quirks += requests.attrs.get("quirks", [])
    times = power[D.TIME].to_numpy()
    eng_path = folder / "engine.csv"
    if eng_path.is_file():
        eng_skew = float((man.get("clock") or {}).get("engine_epoch_offset_s") or 0.0)
        engine = _read_engine(eng_path)
        if eng_skew:
            engine["time"] = engine["time"] - pd.Timedelta(seconds=eng_skew)
        state = _label_from_engine(times, engine)
        labels, rule = D.LABELS_PHASES, "engine.csv token counters per scrape interval"
    elif requests is not None and requests["start"].notna().any():
        state, labels = _label_from_requests(times, requests)
        rule = "requests.json send/first-token/end times"
    else:
        state = np.full(times.shape, D.STATE_CODES[D.ACTIVE], dtype=np.int8)
        labels, rule = LABELS_NONE, "no engine.csv and no request times"
        quirks.append("no engine.csv and no request times: states not labelled")
    window = (man.get("probe") or {}).get("window") or {}
    if "start_epoch" in window and "end_epoch" in window:
        lo, hi = _epoch_to_utc([window["start_epoch"], window["end_epoch"]])
        outside = (times < lo) | (times > hi)
        if outside.any():
            quirks.append(f"{int(outside.sum())} sample(s) outside the probe window marked excluded")
        state = np.where(outside, D.STATE_CODES[D.EXCLUDED], state).astype(np.int8)
    ds = xr.Dataset(
        {
            D.POWER: power[D.POWER].astype(np.float32),
            D.STATE_VAR: ((D.TIME,), state.astype(np.int8), D.state_attrs()),
            D.SEGMENT_VAR: ((D.TIME,), _segments(state), {"long_name": "state run id (-1: none)"}),
        }
    )
    ds[D.POWER].attrs[D.UNITS] = D.WATT
    ds[D.TIME].attrs["timezone"] = "UTC"
    ds = ds.assign_coords({D.GPU: np.arange(ds.sizes[D.GPU], dtype=np.int32)})

    model = str(man["model"])
    spec = _llm_attrs(model, man, quirks)
    dt = np.diff(times.astype("datetime64[ns]").astype(np.int64)) / 1e9
    ds.attrs.update(
        {
            "run_id": rid,
            "llm": spec["name"],
            "params_b": spec["params_b"],
            "active_params_b": spec["active_params_b"],
            "architecture": spec["architecture"],
            "gpu_model": _gpu_from_manifest(man, folder / "manifest.json"),
            "n_gpus": int(ds.sizes[D.GPU]),
            "split": D.SPLIT_TENSOR if tp > 1 else D.SPLIT_NONE,
            "tensor_parallel": tp,
            "sample_period_s": float(np.median(dt)) if dt.size else float("nan"),
            "source": f"powertrace-sim/{folder.name}",
            "state_labels": labels,
            "quirks": "; ".join(quirks),
            "utc_offset_s": float(offset_s),
            "max_num_seqs": int((man.get("server") or {}).get("max_num_seqs", -1)),
            "state_rule": rule,
        }
    )
    if requests is None:
        requests = read_vllm_benchmark_empty(rid)
    return ds, requests


def _gpu_from_manifest(man: dict, path: Path) -> str:
    try:
        return normalise_gpu_name(str(man.get("hardware", "")))
    except KeyError as err:
        raise KeyError(f"{path}: hardware: {err.args[0]}") from None


#: ``state_labels`` of a run whose states could not be labelled.
LABELS_NONE = "none"


def read_vllm_benchmark_empty(run_id: str) -> pd.DataFrame:
    """An empty request table with the columns :func:`read_vllm_benchmark` returns."""
    cols = {
        "run_id": pd.Series([], dtype="str"),
        "request_id": pd.Series([], dtype=np.int64),
        "start": pd.Series([], dtype="datetime64[ns]"),
        "end": pd.Series([], dtype="datetime64[ns]"),
        "prompt_tokens": pd.Series([], dtype=np.int64),
        "output_tokens": pd.Series([], dtype=np.int64),
        "batch_size": pd.Series([], dtype=np.int64),
        "first_token": pd.Series([], dtype="datetime64[ns]"),
        "ttft_s": pd.Series([], dtype=np.float64),
        "e2e_s": pd.Series([], dtype=np.float64),
        "error": pd.Series([], dtype="str"),
    }
    df = pd.DataFrame(cols)
    df.attrs.update({"summary": {}, "source": "", "quirks": [], "run_id": run_id})
    return df


def _llm_attrs(model: str, man: dict, quirks: list[str]) -> dict:
    """Parameter counts from the LLM table, else from the manifest's ``arch`` block."""
    try:
        return llm_spec(model)
    except KeyError:
        arch = man.get("arch") or {}
        n_active = arch.get("n_active")
        if n_active is None:
            quirks.append(f"LLM {model!r} not in the LLM table and no arch.n_active: parameter counts NaN")
            return {
                "name": model.split("/")[-1],
                "params_b": math.nan,
                "active_params_b": math.nan,
                "architecture": D.ARCH_DENSE,
            }
        moe = float(arch.get("moe_frac", 0.0) or 0.0) > 0 or int(arch.get("n_experts", 1) or 1) > 1
        active_b = float(n_active) / 1e9
        total = arch.get("n_total")
        if total is None and not moe:
            total = n_active
        if total is None:
            quirks.append(f"LLM {model!r}: total parameters unknown (MoE, manifest gives active only)")
        return {
            "name": model.split("/")[-1],
            "params_b": float(total) / 1e9 if total is not None else math.nan,
            "active_params_b": active_b,
            "architecture": D.ARCH_MOE if moe else D.ARCH_DENSE,
        }


_CLIENT_CSV = re.compile(r"^(?P<model>.+)_tp(?P<tp>\d+)_p(?P<rate>[\d.]+)_d(?P<date>[\d-]+)\.csv$")


def read_client_run(
    power_csv: str | os.PathLike,
    benchmark_json: str | os.PathLike,
    *,
    utc_offset_hours: float | None = None,
    gpu_model: str | None = None,
    run_id: str | None = None,
) -> tuple[xr.Dataset, pd.DataFrame]:
    """Read one run of the repository's older ``client/`` layout (node nvidia-smi CSV + vLLM result JSON).

    Parameters
    ----------
    power_csv, benchmark_json : path
        ``<model>_tp<N>_p<rate>_d<date>.csv`` and the matching ``vllm-<rate>qps-tp<N>-...json``.
    utc_offset_hours : float, optional
        Offset of the CSV's local clock.  When omitted it is inferred (quirk): the JSON's ``date`` is the
        local time the result was saved, compared with the last request's end (epoch), rounded to 15 min.
    gpu_model : str, optional
        Card name (the layout does not record it); default from the folder name (``...-a100`` ->
        A100-SXM4-80GB is NOT assumed: pass it), else ``"unknown"``.
    run_id : str, optional
        Default: the CSV file stem.

    Returns
    -------
    ds, requests
        As :func:`read_run_dir`: the first ``tensor_parallel_size`` GPUs of the node (vLLM uses devices
        ``0..tp-1``), states from the request times, requests from the JSON.
    """
    power_csv, benchmark_json = Path(power_csv), Path(benchmark_json)
    rid = run_id or power_csv.stem
    requests = read_vllm_benchmark(benchmark_json, run_id=rid)
    quirks = list(requests.attrs.get("quirks", []))
    summ = requests.attrs["summary"]
    m = _CLIENT_CSV.match(power_csv.name)
    tp = int(summ.get("tensor_parallel_size") or (m.group("tp") if m else 1))
    if utc_offset_hours is None:
        date = summ.get("date")
        last_end = requests["end"].max()
        if not date or pd.isna(last_end):
            raise IngestError(
                "cannot infer the UTC offset (no 'date' or request times); pass utc_offset_hours",
                benchmark_json,
            )
        saved_local = pd.to_datetime(str(date), format="%Y%m%d-%H%M%S")
        utc_offset_hours = round((saved_local - last_end).total_seconds() / 900.0) * 0.25
        quirks.append(f"UTC offset inferred from the result's save time: {utc_offset_hours:+.2f} h")
    power, pquirks = _read_power_csv(power_csv, utc_offset_hours)
    quirks += pquirks
    if power.sizes[D.GPU] > tp:
        quirks.append(f"kept GPUs 0..{tp - 1} of {power.sizes[D.GPU]} logged")
        power = power.isel({D.GPU: slice(0, tp)})
    times = power[D.TIME].to_numpy()
    state, labels = _label_from_requests(times, requests)
    ds = xr.Dataset(
        {
            D.POWER: power[D.POWER].astype(np.float32),
            D.STATE_VAR: ((D.TIME,), state, D.state_attrs()),
            D.SEGMENT_VAR: ((D.TIME,), _segments(state), {"long_name": "state run id (-1: none)"}),
        }
    )
    ds = ds.assign_coords({D.GPU: np.arange(ds.sizes[D.GPU], dtype=np.int32)})
    ds[D.POWER].attrs[D.UNITS] = D.WATT
    ds[D.TIME].attrs["timezone"] = "UTC"
    model = str(summ.get("model_id") or (m.group("model") if m else "unknown"))
    spec = _llm_attrs(model, {}, quirks)
    dt = np.diff(times.astype("datetime64[ns]").astype(np.int64)) / 1e9
    ds.attrs.update(
        {
            "run_id": rid,
            "llm": spec["name"],
            "params_b": spec["params_b"],
            "active_params_b": spec["active_params_b"],
            "architecture": spec["architecture"],
            "gpu_model": normalise_gpu_name(gpu_model) if gpu_model else "unknown",
            "n_gpus": int(ds.sizes[D.GPU]),
            "split": D.SPLIT_TENSOR if tp > 1 else D.SPLIT_NONE,
            "tensor_parallel": tp,
            "sample_period_s": float(np.median(dt)) if dt.size else float("nan"),
            "source": f"powertrace-sim/client/{power_csv.name}",
            "state_labels": labels,
            "quirks": "; ".join(quirks),
            "utc_offset_s": float(utc_offset_hours) * 3600.0,
            "state_rule": "requests send/first-token/end times",
        }
    )
    return ds, requests


def _csv_time_span(path: Path) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """First and last local timestamps of an nvidia-smi CSV, read from its head and tail only."""
    stamp = re.compile(r"^\s*(\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?)")
    with open(path, "rb") as fh:
        head = fh.read(4096).decode("utf-8", errors="replace").splitlines()
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 4096))
        tail = fh.read().decode("utf-8", errors="replace").splitlines()
    first = next((m.group(1) for m in map(stamp.match, head) if m), None)
    last = next((m.group(1) for m in map(stamp.match, reversed(tail)) if m), None)
    if first is None or last is None:
        return None
    fmt = "%Y/%m/%d %H:%M:%S.%f"
    return pd.to_datetime(first, format=fmt), pd.to_datetime(last, format=fmt)


def pair_client_files(
    folder: str | os.PathLike, *, utc_offset_hours: float | None = None
) -> list[tuple[Path, Path]]:
    """Pair the power CSVs and vLLM result JSONs of a ``client/`` folder by time, not by name.

    File names are not reliable keys (a result JSON is named by the local time it was saved, a CSV by the
    time logging started, and some runs lack one of the two).  Each JSON is paired with the CSV whose time
    span (local time shifted by the offset, inferred per JSON as in :func:`read_client_run` unless given)
    covers the largest part of the JSON's requests, provided it covers at least half of them.

    Returns
    -------
    list of (csv, json)
        Sorted by JSON name; JSONs without a matching CSV are left out.
    """
    folder = Path(folder)
    spans = {p: _csv_time_span(p) for p in sorted(folder.glob("*.csv"))}
    pairs = []
    for js in sorted(folder.glob("*.json")):
        try:
            req = read_vllm_benchmark(js)
        except IngestError:
            continue
        if req["start"].isna().all() or req["end"].isna().all():
            continue
        lo, hi = req["start"].min(), req["end"].max()
        off = utc_offset_hours
        if off is None:
            date = req.attrs["summary"].get("date")
            if not date:
                continue
            saved = pd.to_datetime(str(date), format="%Y%m%d-%H%M%S")
            off = round((saved - hi).total_seconds() / 900.0) * 0.25
        best, best_cover = None, 0.5
        for csv, span in spans.items():
            if span is None:
                continue
            a, b = (t - pd.Timedelta(hours=off) for t in span)
            cover = (min(b, hi) - max(a, lo)).total_seconds() / max((hi - lo).total_seconds(), 1e-9)
            if cover > best_cover:
                best, best_cover = csv, cover
        if best is not None:
            pairs.append((best, js))
    return pairs
