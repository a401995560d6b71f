"""Request traces (traffic) into one request-table schema (:data:`wattscape.models.dims.REQUEST_COLUMNS`).

Formats (detected from the header / first record, or forced with ``fmt``):

``azure``
    Azure LLM inference trace 2023 and 2024 and the Splitwise traces: CSV ``TIMESTAMP,ContextTokens,
    GeneratedTokens``; ``TIMESTAMP`` is an absolute wall-clock time, taken as UTC (the dataset gives no
    zone).  ``splitwise`` is accepted as an alias.
``mooncake``
    Mooncake (FAST'25) JSONL, one object per line with ``timestamp`` (ms since the start of the trace),
    ``input_length``, ``output_length`` (``hash_ids`` ignored).
``burstgpt``
    BurstGPT CSV ``Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type``; ``Timestamp``
    in seconds since the start of the trace.  ``Model`` and ``Log Type`` are kept as extra columns
    ``model`` and ``log_type``; failed requests (0 response tokens) are kept.
``vidur``
    Vidur processed traces: CSV ``arrived_at,num_prefill_tokens,num_decode_tokens`` (``arrived_at`` in
    seconds since the start).  Length-only Vidur traces without ``arrived_at`` give ``start = NaT``.

Relative times are placed on a fixed, documented epoch, :data:`TRACE_EPOCH` (1970-01-01T00:00:00 UTC,
overridable with ``epoch=``), so that ``start - TRACE_EPOCH`` is the offset into the trace.  Every table
has ``end = NaT`` (traffic traces give arrivals only) and ``batch_size = 1``.  ``attrs`` record the
source file(s), the format and the time origin (``"absolute"`` or ``"relative"``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ...models import dims as D
from . import IngestError

#: Epoch for traces whose times are relative to their own start (documented choice, see module doc).
TRACE_EPOCH = pd.Timestamp("1970-01-01T00:00:00")

FORMATS = ("azure", "mooncake", "burstgpt", "vidur")
_ALIASES = {"splitwise": "azure", "azure2023": "azure", "azure2024": "azure"}

#: Columns that identify each CSV format (all must be present).
_CSV_SIGNATURES = {
    "azure": ("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
    "burstgpt": ("Timestamp", "Request tokens", "Response tokens"),
    "vidur": ("num_prefill_tokens", "num_decode_tokens"),
}
_MOONCAKE_KEYS = ("timestamp", "input_length", "output_length")


class TraceFormatError(IngestError):
    """A request trace that cannot be read; the message names the file (and line where known)."""


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.strip():
                return line.strip()
    raise TraceFormatError(f"{path}: empty file")


def detect_format(path: str | os.PathLike) -> str:
    """Format of one request-trace file, from its header or first JSON record.

    Raises
    ------
    TraceFormatError
        If the file is empty or matches no known format; the message names the file and what it saw.
    """
    path = Path(path)
    first = _first_line(path)
    if first.startswith("{"):
        try:
            keys = set(json.loads(first))
        except json.JSONDecodeError as err:
            raise TraceFormatError(f"{path}:1: first line is not valid JSON ({err.msg})") from None
        if all(k in keys for k in _MOONCAKE_KEYS):
            return "mooncake"
        raise TraceFormatError(f"{path}: JSON records with keys {sorted(keys)} match no known trace format")
    header = [h.strip().strip('"') for h in first.split(",")]
    for fmt, cols in _CSV_SIGNATURES.items():
        if all(c in header for c in cols):
            return fmt
    raise TraceFormatError(
        f"{path}: header {header} matches no known trace format; known: "
        + "; ".join(f"{f}: {list(c)}" for f, c in _CSV_SIGNATURES.items())
        + f"; mooncake JSONL keys {list(_MOONCAKE_KEYS)}"
    )


def _require(df: pd.DataFrame, cols: tuple[str, ...], path: Path) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise TraceFormatError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")


def _tokens(values: pd.Series, what: str, path: Path, line_offset: int) -> np.ndarray:
    """Non-negative integer token counts; NaN, text or negatives are refused with their line numbers."""
    num = pd.to_numeric(values, errors="coerce")
    bad = num.isna() | (num < 0) | (num != np.round(num))
    if bad.any():
        lines = (np.flatnonzero(bad.to_numpy()) + line_offset)[:5].tolist()
        examples = values[bad].head(3).tolist()
        raise TraceFormatError(
            f"{path}: invalid {what} (NaN, negative or not an integer) at line(s) {lines}: {examples}"
        )
    return num.to_numpy(dtype=np.int64)


def _seconds(values: pd.Series, what: str, path: Path, line_offset: int, scale: float) -> np.ndarray:
    num = pd.to_numeric(values, errors="coerce")
    bad = num.isna() | ~np.isfinite(num)
    if bad.any():
        lines = (np.flatnonzero(bad.to_numpy()) + line_offset)[:5].tolist()
        raise TraceFormatError(f"{path}: invalid {what} at line(s) {lines}: {values[bad].head(3).tolist()}")
    return num.to_numpy(dtype=np.float64) * scale


def _table(run_id: str, start, prompt, output, extra: dict | None = None) -> pd.DataFrame:
    n = len(prompt)
    df = pd.DataFrame(
        {
            "run_id": pd.Series([run_id] * n, dtype="str"),
            "request_id": np.arange(n, dtype=np.int64),
            "start": pd.Series(start, dtype="datetime64[ns]"),
            "end": pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]"),
            "prompt_tokens": np.asarray(prompt, dtype=np.int64),
            "output_tokens": np.asarray(output, dtype=np.int64),
            "batch_size": np.ones(n, dtype=np.int64),
        }
    )
    assert tuple(df.columns) == D.REQUEST_COLUMNS
    for key, val in (extra or {}).items():
        df[key] = val
    return df


def _relative(seconds: np.ndarray, epoch: pd.Timestamp) -> np.ndarray:
    return (epoch + pd.to_timedelta(seconds, unit="s")).to_numpy(dtype="datetime64[ns]")


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, skipinitialspace=True)
    except pd.errors.ParserError as err:
        raise TraceFormatError(f"{path}: malformed CSV ({err})") from None
    except pd.errors.EmptyDataError:
        raise TraceFormatError(f"{path}: empty file") from None


def _read_azure(path: Path, run_id: str, epoch: pd.Timestamp) -> pd.DataFrame:
    raw = _read_csv(path)
    _require(raw, _CSV_SIGNATURES["azure"], path)
    start = pd.to_datetime(raw["TIMESTAMP"], errors="coerce", format="ISO8601")
    if start.isna().any():
        lines = (np.flatnonzero(start.isna().to_numpy()) + 2)[:5].tolist()
        raise TraceFormatError(f"{path}: unparseable TIMESTAMP at line(s) {lines}")
    if getattr(start.dt, "tz", None) is not None:
        start = start.dt.tz_convert("UTC").dt.tz_localize(None)
    df = _table(
        run_id,
        start.to_numpy(dtype="datetime64[ns]"),
        _tokens(raw["ContextTokens"], "ContextTokens", path, 2),
        _tokens(raw["GeneratedTokens"], "GeneratedTokens", path, 2),
    )
    df.attrs["time_origin"] = "absolute"
    return df


def _read_burstgpt(path: Path, run_id: str, epoch: pd.Timestamp) -> pd.DataFrame:
    raw = _read_csv(path)
    raw.columns = [c.strip() for c in raw.columns]
    _require(raw, _CSV_SIGNATURES["burstgpt"], path)
    extra = {}
    if "Model" in raw:
        extra["model"] = raw["Model"].astype("str").to_numpy()
    if "Log Type" in raw:
        extra["log_type"] = raw["Log Type"].astype("str").to_numpy()
    df = _table(
        run_id,
        _relative(_seconds(raw["Timestamp"], "Timestamp", path, 2, 1.0), epoch),
        _tokens(raw["Request tokens"], "Request tokens", path, 2),
        _tokens(raw["Response tokens"], "Response tokens", path, 2),
        extra,
    )
    for col in ("model", "log_type"):
        if col in df:
            df[col] = df[col].astype("str")
    df.attrs["time_origin"] = "relative"
    return df


def _read_vidur(path: Path, run_id: str, epoch: pd.Timestamp) -> pd.DataFrame:
    raw = _read_csv(path)
    _require(raw, _CSV_SIGNATURES["vidur"], path)
    if "arrived_at" in raw:
        start = _relative(_seconds(raw["arrived_at"], "arrived_at", path, 2, 1.0), epoch)
        origin = "relative"
    else:
        start = np.full(len(raw), np.datetime64("NaT"), dtype="datetime64[ns]")
        origin = "none (lengths only)"
    df = _table(
        run_id,
        start,
        _tokens(raw["num_prefill_tokens"], "num_prefill_tokens", path, 2),
        _tokens(raw["num_decode_tokens"], "num_decode_tokens", path, 2),
    )
    df.attrs["time_origin"] = origin
    return df


def _read_mooncake(path: Path, run_id: str, epoch: pd.Timestamp) -> pd.DataFrame:
    ts, inp, out = [], [], []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                msg = f"{path}:{lineno}: invalid JSON ({err.msg}); truncated line?"
                raise TraceFormatError(msg) from None
            missing = [k for k in _MOONCAKE_KEYS if k not in rec]
            if missing:
                raise TraceFormatError(f"{path}:{lineno}: missing key(s) {missing}")
            ts.append(rec["timestamp"])
            inp.append(rec["input_length"])
            out.append(rec["output_length"])
    if not ts:
        raise TraceFormatError(f"{path}: no records")
    df = _table(
        run_id,
        _relative(_seconds(pd.Series(ts), "timestamp", path, 1, 1e-3), epoch),
        _tokens(pd.Series(inp), "input_length", path, 1),
        _tokens(pd.Series(out), "output_length", path, 1),
    )
    df.attrs["time_origin"] = "relative"
    return df


_READERS = {
    "azure": _read_azure,
    "mooncake": _read_mooncake,
    "burstgpt": _read_burstgpt,
    "vidur": _read_vidur,
}


def _read_one(path: Path, name: str | None, fmt: str | None, epoch: pd.Timestamp) -> pd.DataFrame:
    fmt = _ALIASES.get(fmt, fmt) if fmt else detect_format(path)
    if fmt not in _READERS:
        raise ValueError(f"unknown trace format {fmt!r}; known: {list(FORMATS)} (+ aliases {list(_ALIASES)})")
    run_id = name or path.name.split(".")[0]
    df = _READERS[fmt](path, run_id, epoch)
    relative = df.attrs["time_origin"] == "relative"
    df.attrs.update({"source": str(path), "format": fmt, "epoch": str(epoch) if relative else ""})
    return df


def read_requests(
    path: str | os.PathLike,
    name: str | None = None,
    fmt: str | None = None,
    *,
    epoch: pd.Timestamp | str = TRACE_EPOCH,
) -> pd.DataFrame:
    """Read a request trace (file or folder) into the request-table schema.

    Parameters
    ----------
    path : path
        One trace file, or a folder: every file in it (not recursive, sorted by name) whose format is
        recognised is read and the tables are concatenated; other files are skipped and listed in
        ``attrs["skipped"]``.
    name : str, optional
        ``run_id`` of the trace (default: the file name up to its first dot).  For a folder, used as a
        prefix: ``"<name>/<file stem>"``.
    fmt : {"azure", "splitwise", "mooncake", "burstgpt", "vidur"}, optional
        Force a format instead of detecting it from the header / first record.
    epoch : Timestamp or str
        Origin for traces with relative times (default :data:`TRACE_EPOCH`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`~wattscape.models.dims.REQUEST_COLUMNS` (``run_id`` as ``str`` dtype, ``start``
        UTC ``datetime64[ns]``, ``end`` NaT, token counts ``int64``, ``batch_size`` 1) plus format-specific
        extras; ``attrs``: ``source``, ``format``, ``time_origin``, ``epoch``.

    Raises
    ------
    TraceFormatError
        Unknown format, missing columns, NaN/negative/non-integer tokens, bad timestamps or truncated JSON:
        the message names the file and line.
    FileNotFoundError
        If ``path`` does not exist.
    """
    path = Path(path)
    epoch = pd.Timestamp(epoch)
    if not path.exists():
        raise FileNotFoundError(f"request trace not found: {path}")
    if path.is_file():
        return _read_one(path, name, fmt, epoch)
    tables, skipped = [], []
    for child in sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            this_fmt = _ALIASES.get(fmt, fmt) if fmt else detect_format(child)
        except TraceFormatError:
            skipped.append(child.name)
            continue
        stem = child.name.split(".")[0]
        tables.append(_read_one(child, f"{name}/{stem}" if name else stem, this_fmt, epoch))
    if not tables:
        raise TraceFormatError(f"{path}: no recognised request-trace files (skipped: {skipped})")
    out = pd.concat(tables, ignore_index=True)
    out.attrs = {
        "source": str(path),
        "format": ",".join(sorted({t.attrs["format"] for t in tables})),
        "time_origin": ",".join(sorted({t.attrs["time_origin"] for t in tables})),
        "epoch": str(epoch),
        "skipped": skipped,
    }
    return out
