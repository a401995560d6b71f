"""``nvidia-smi`` power logs (CSV) into ``power(gpu, time)``.

Two variants are read:

(a) the ``energy-inference`` style, written by ``nvidia-smi --query-gpu=timestamp,power.draw,... --format=csv
    -lms 100``: a header with units (``power.draw [W]``), units inside values (``24.53 W``, ``0 %``), local
    wall-clock timestamps without a zone, and in multi-GPU runs one row per GPU per frame, in index order,
    with **no** GPU index column;
(b) ``nvidia-smi --query-gpu=timestamp,index,uuid,power.draw,... --format=csv[,nounits]`` with ``index`` and
    ``uuid`` columns (as in the ``power.csv`` and ``client/`` files of grantwilkins/powertrace-sim).

Rules (each a recorded quirk, or an :class:`~wattscape.inference.readers.IngestError` naming file and line)
--------------------------------------------------------------------------------------------------------
- Timestamps are local wall-clock time; ``utc_offset_hours`` (e.g. -5 for US Central daylight time) turns them
  into UTC: ``utc = local - offset``.
- A half-written **last** line is dropped (quirk).  A malformed line elsewhere (garbage, a repeated header) is
  skipped (quirk naming its line number); if more than 10 % of the lines are malformed the file is refused.
- ``[N/A]``, ``[Not Supported]``, ``N/A`` and empty values become NaN and stay NaN (quirk with the count).
- Power in ``mW`` or ``kW`` (unit in the header or in the value) is converted to W (quirk).  Without a unit,
  an implausible magnitude (median above 5,000 W per GPU, or below 2 W) is read as mW or kW (quirk).
- Without an ``index`` column, rows are grouped into frames (one sample time, one row per GPU) by count:
  nvidia-smi writes the GPUs of a frame in index order (a frame may stall mid-way, so time gaps do not mark
  frames reliably).  The frame's time is its first row's time.  A malformed line that starts like a sample
  row (a date) stands for a lost row and keeps its place; its frame is dropped (quirk).  A partial last frame
  after a truncated last line is dropped (quirk).  Otherwise a row count that is not a multiple of the GPU
  count is refused.  The GPU count, when not given, is inferred from the clustering of row times (quirk).
- With an ``index`` column, the k-th row of each GPU forms frame k; GPUs with fewer rows get NaN.
- Timestamps that go backwards are sorted (quirk naming the first such line); frames whose time repeats an
  earlier one are dropped, the first kept (quirk).
- An empty file, or one without ``timestamp`` and ``power.draw`` columns, is refused.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from wattscape.models import dims as D

from . import IngestError

_TS_RE = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?$")
_VALUE_RE = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)$")
_DATE_START = re.compile(r"^\s*\d{4}/\d{2}/\d{2}")
_MISSING = {"", "[n/a]", "n/a", "[not supported]", "not supported", "nan", "[unknown error]", "[gpu is lost]"}
_POWER_FACTORS = {"w": 1.0, "mw": 1e-3, "kw": 1e3}
#: Above this share of malformed lines a file is refused rather than repaired.
MAX_BAD_FRACTION = 0.10


def _lines_text(numbers: list[int], limit: int = 5) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    more = f" and {len(numbers) - limit} more" if len(numbers) > limit else ""
    return f"{shown}{more}"


def _parse_value(text: str) -> tuple[float, str]:
    """Number and unit (lower case, '' when none) of one CSV field; NaN for the missing markers."""
    t = text.strip()
    if t.lower() in _MISSING:
        return math.nan, ""
    m = _VALUE_RE.match(t)
    if m is None:
        raise ValueError(t)
    unit = m.group(2).lower()
    if unit and unit not in _POWER_FACTORS:
        raise ValueError(t)
    return float(m.group(1)), unit


def _find_columns(header: list[str], path: Path) -> tuple[int, int, int | None, int | None, str]:
    names = [h.strip().lower() for h in header]
    ts = next((i for i, n in enumerate(names) if n.startswith("timestamp")), None)
    power = next((i for i, n in enumerate(names) if re.match(r"power\.draw(\s|\[|$)", n)), None)
    if power is None:  # newer drivers: power.draw.average / power.draw.instant
        power = next((i for i, n in enumerate(names) if n.startswith("power.draw")), None)
    if ts is None or power is None:
        raise IngestError(
            f"not an nvidia-smi CSV: the header needs 'timestamp' and 'power.draw' columns, got {header!r}",
            path,
            1,
        )
    index = next((i for i, n in enumerate(names) if n == "index"), None)
    uuid = next((i for i, n in enumerate(names) if n == "uuid"), None)
    m = re.search(r"\[(\w+)\]", names[power])
    unit = m.group(1) if m else ""
    return ts, power, index, uuid, unit


def _frame_starts(t: np.ndarray, n: int) -> tuple[np.ndarray, bool]:
    """Row positions where a new frame starts, and whether time gaps separated the frames cleanly."""
    if n == 1 or len(t) < 2:
        return np.arange(len(t)), True
    d = np.diff(t).astype(np.float64)
    n_bounds = round(len(t) / n) - 1
    if n_bounds <= 0:
        return np.array([0]), True
    q = np.sort(np.maximum(d[d >= 0], 1e5))  # ns; gaps under 0.1 ms count as 0.1 ms
    j0 = len(q) - n_bounds  # first between-frame gap if exactly n_bounds of them
    w = max(2, int(0.03 * n_bounds))
    lo_j, hi_j = max(1, j0 - w), min(len(q) - 1, j0 + w)
    if hi_j < lo_j:
        return np.arange(0, len(t), n), False
    ratios = q[lo_j : hi_j + 1] / q[lo_j - 1 : hi_j]
    k = int(np.argmax(ratios))
    if ratios[k] < 2.0:  # no clear gap between within-frame and between-frame spacing
        return np.arange(0, len(t), n), False
    j = lo_j + k
    threshold = math.sqrt(q[j - 1] * q[j])
    starts = np.concatenate([[0], np.flatnonzero((d >= threshold) | (d < 0)) + 1])
    return starts, True


def infer_gpu_count(t: np.ndarray, max_gpus: int = 16) -> int:
    """Number of GPUs of an index-less multi-GPU log, from the clustering of row times.

    Rows of one frame are milliseconds apart and frames a sample period apart.  For each candidate count
    ``n`` the rows are cut at the largest gaps into frames; ``n`` is accepted when those gaps stand clearly
    apart from the others and at least 98 % of the frames hold ``n`` rows.  Returns 1 when no ``n > 1`` fits.
    """
    for n in range(2, max_gpus + 1):
        if len(t) < 2 * n:
            break
        starts, clean = _frame_starts(t, n)
        if not clean:
            continue
        sizes = np.diff(np.concatenate([starts, [len(t)]]))
        if np.mean(sizes == n) >= 0.98:
            return n
    return 1


def read_nvidia_smi(
    path: str | os.PathLike,
    *,
    utc_offset_hours: float = 0.0,
    n_gpus: int | None = None,
    source: str | None = None,
) -> tuple[xr.Dataset, list[str]]:
    """Read an ``nvidia-smi`` CSV power log.

    Parameters
    ----------
    path : path
        The CSV file.
    utc_offset_hours : float
        Offset of the local clock the timestamps were written in, hours east of UTC (-5 for UTC-5);
        ``utc = local - offset``.  Use 0 when the file is already in UTC.
    n_gpus : int, optional
        GPUs logged in an index-less multi-GPU file (``runs_index.csv`` column ``gpus_logged``).  Inferred
        from the row time clustering when omitted (quirk).  With an ``index`` column it must agree.
    source : str, optional
        Value of the ``source`` attribute (default: the path).

    Returns
    -------
    ds : xr.Dataset
        ``power(gpu, time)`` float32 in W, ``time`` UTC (naive ``datetime64[ns]``, attr ``timezone="UTC"``),
        coordinate ``uuid(gpu)`` where the file has one; attrs ``sample_period_s``, ``n_gpus``,
        ``utc_offset_hours``, ``source`` and ``quirks``.
    quirks : list of str
        What was repaired while reading (also in ``ds.attrs["quirks"]``, joined by ``"; "``).

    Raises
    ------
    IngestError
        Empty file, no header, too many malformed lines, a GPU count that does not match the rows, or no
        power value at all; the message names the file and, where it applies, the line.
    """
    path = Path(path)
    raw = path.read_bytes()
    text = raw.decode("utf-8", errors="replace")
    lines = text.splitlines()
    nonempty = [i for i, line in enumerate(lines) if line.strip()]
    if not nonempty:
        raise IngestError("empty file: no header and no samples", path)
    quirks: list[str] = []
    head_i = nonempty[0]
    header = lines[head_i].split(",")
    ti, pi, ii, ui, header_unit = _find_columns(header, path)
    if header_unit and header_unit not in _POWER_FACTORS:
        raise IngestError(f"unknown power unit [{header_unit}] in the header", path, head_i + 1)
    ncol = len(header)
    last_i = nonempty[-1]

    ts_text: list[str] = []
    power: list[float] = []
    factors: list[float] = []
    gpu_index: list[int] = []
    uuids: list[str] = []
    line_no: list[int] = []
    bad: list[int] = []
    placeholder: list[int] = []
    truncated_line = None
    units_seen: set[str] = set()
    for i in nonempty[1:]:
        parts = lines[i].split(",")
        ok = len(parts) == ncol
        if ok:
            ts = parts[ti].strip()
            ok = _TS_RE.match(ts) is not None
        if ok:
            try:
                value, unit = _parse_value(parts[pi])
                idx = int(parts[ii]) if ii is not None else 0
            except ValueError:
                ok = False
        if not ok:
            if i == last_i:
                truncated_line = i + 1
            else:
                bad.append(i + 1)
                if _DATE_START.match(lines[i]) and ts_text:  # a damaged sample row: keep its place
                    placeholder.append(len(ts_text))
                    ts_text.append(ts_text[-1])
                    power.append(math.nan)
                    factors.append(1.0)
                    gpu_index.append(-1)
                    if ui is not None:
                        uuids.append("")
                    line_no.append(i + 1)
            continue
        unit = unit or header_unit or "w"
        units_seen.add(unit)
        ts_text.append(ts if "." in ts else ts + ".0")
        power.append(value)
        factors.append(_POWER_FACTORS[unit])
        gpu_index.append(idx)
        if ui is not None:
            uuids.append(parts[ui].strip())
        line_no.append(i + 1)

    n_lines = len(nonempty) - 1
    if not ts_text:
        raise IngestError("no sample rows (only a header or malformed lines)", path, head_i + 2)
    if bad and len(bad) > MAX_BAD_FRACTION * n_lines:
        raise IngestError(
            f"{len(bad)} of {n_lines} lines are malformed (first at line {bad[0]}); not an nvidia-smi log",
            path,
            bad[0],
        )
    if truncated_line is not None:
        quirks.append(f"last line {truncated_line} half-written (file copied while logging); dropped")
    if bad:
        quirks.append(f"malformed line(s) {_lines_text(bad)} skipped")

    p = np.asarray(power, dtype=np.float64) * np.asarray(factors)
    for unit in sorted(units_seen - {"w"}):
        quirks.append(f"power logged in {unit.replace('w', 'W')}; converted to W")
    t = pd.to_datetime(pd.Series(ts_text), format="%Y/%m/%d %H:%M:%S.%f")
    t = t - pd.Timedelta(hours=utc_offset_hours)
    t_ns = t.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    lines_arr = np.asarray(line_no)

    # --- GPU layout -----------------------------------------------------------------------------
    idx = np.asarray(gpu_index)
    if ii is not None:
        gpus = np.unique(idx)
        if n_gpus is not None and n_gpus != len(gpus):
            raise IngestError(f"{len(gpus)} GPU indices in the file but {n_gpus} GPUs expected", path)
        n = len(gpus)
    elif n_gpus is None:
        n = infer_gpu_count(t_ns)
        if n > 1:
            quirks.append(f"GPU count {n} inferred from the grouping of row times (no index column)")
        gpus = np.arange(n)
    else:
        n = int(n_gpus)
        if n < 1:
            raise IngestError(f"GPU count must be at least 1, got {n}", path)
        gpus = np.arange(n)
    n_rows = len(p)
    if ii is None:
        # nvidia-smi writes the GPUs of one frame in index order: group rows by count.
        n_full = n_rows // n
        if n_rows % n and truncated_line is None:
            raise IngestError(
                f"{n_rows} sample rows are not a multiple of the {n} GPUs logged "
                "(GPU count wrong or rows lost)",
                path,
            )
        if n_rows % n:
            quirks.append(f"last frame incomplete ({n_rows % n} of {n} rows; truncated file) dropped")
        starts = np.arange(n_full) * n
        pw = p[: n_full * n].reshape(n_full, n).T.copy()
        damaged = np.array([], dtype=int)
        if placeholder:
            ph = np.asarray(placeholder)
            damaged = np.unique(ph[ph < n_full * n] // n)
            quirks.append(
                f"{len(damaged)} frame(s) with a damaged row dropped (line(s) "
                f"{_lines_text([int(lines_arr[k]) for k in ph])})"
            )
        keep = np.ones(n_full, bool)
        keep[damaged] = False
        starts, pw = starts[keep], pw[:, keep]
    else:
        real = idx >= 0
        pos = {g: k for k, g in enumerate(gpus)}
        col = np.array([pos.get(g, -1) for g in idx])
        frame_of_row = pd.Series(col).groupby(col).cumcount().to_numpy()
        n_frames = int(frame_of_row[real].max()) + 1
        pw = np.full((n, n_frames), np.nan)
        pw[col[real], frame_of_row[real]] = p[real]
        first_gpu_rows = np.flatnonzero(real & (col == 0))
        starts = first_gpu_rows[:n_frames]
        if len(starts) < n_frames:
            raise IngestError(f"GPU {gpus[0]} has fewer rows than another GPU", path)
        missing = int(np.isnan(pw).any(axis=0).sum())
        counts = np.bincount(col[real], minlength=n)
        if counts.min() != counts.max():
            quirks.append(f"GPUs logged unequal row counts {counts.tolist()}; missing samples kept as NaN")
        elif missing and placeholder:
            quirks.append(f"{missing} frame(s) hold a damaged row; kept as NaN")
    frame_t = t_ns[starts]
    frame_line = lines_arr[starts]

    # --- order and duplicates ---------------------------------------------------------------------
    back = np.flatnonzero(np.diff(frame_t) < 0)
    if len(back):
        quirks.append(
            f"timestamps go backwards {len(back)} time(s) (first at line {int(frame_line[back[0] + 1])}); "
            "samples sorted by time"
        )
        order = np.argsort(frame_t, kind="stable")
        frame_t, frame_line, pw = frame_t[order], frame_line[order], pw[:, order]
    dupl = np.flatnonzero(np.diff(frame_t) == 0) + 1
    if len(dupl):
        quirks.append(
            f"{len(dupl)} duplicate timestamp(s) (first at line {int(frame_line[dupl[0]])}); "
            "later copies dropped"
        )
        keep = np.ones(len(frame_t), bool)
        keep[dupl] = False
        frame_t, frame_line, pw = frame_t[keep], frame_line[keep], pw[:, keep]

    # --- values -----------------------------------------------------------------------------------
    n_nan = int(np.isnan(pw).sum())
    if n_nan == pw.size:
        raise IngestError("no power value in the file (all missing)", path)
    if n_nan:
        quirks.append(f"{n_nan} power value(s) missing ([N/A]/[Not Supported]/NaN); kept as NaN")
    med = float(np.nanmedian(pw))
    if med > 5000.0:
        pw = pw / 1000.0
        quirks.append(f"power implausibly high (median {med:.0f} per GPU): read as mW, divided by 1000")
    elif 0.0 < med < 2.0:
        pw = pw * 1000.0
        quirks.append(f"power implausibly low (median {med:.3f} per GPU): read as kW, multiplied by 1000")

    times = frame_t.astype("datetime64[ns]")
    period = float(np.median(np.diff(frame_t)) / 1e9) if len(frame_t) > 1 else math.nan
    ds = xr.Dataset(
        {D.POWER: ((D.GPU, D.TIME), pw.astype(np.float32), {D.UNITS: D.WATT, "long_name": "GPU power draw"})},
        coords={D.GPU: np.arange(n, dtype=np.int32), D.TIME: times},
    )
    ds[D.TIME].attrs["timezone"] = "UTC"
    if ii is not None and uuids:
        first = {}
        for g, u in zip(gpu_index, uuids, strict=True):
            first.setdefault(g, u)
        ds = ds.assign_coords(uuid=(D.GPU, [first.get(g, "") for g in gpus]))
    ds.attrs.update(
        sample_period_s=period,
        n_gpus=int(n),
        utc_offset_hours=float(utc_offset_hours),
        source=source if source is not None else str(path),
        quirks="; ".join(quirks),
    )
    return ds, quirks
