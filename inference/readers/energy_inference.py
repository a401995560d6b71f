"""The ``energy-inference`` dataset: per-inference logs, ``job_info.yaml`` and ``runs_index.csv``.

Source: grantwilkins/energy-inference (offline Hugging Face ``generate`` runs on Palmetto and Argonne Swing,
2024), via ``../shared/data/energy-inference``.  No license file; measured figures, cited.

Per-inference logs (``*-<system>-<n>.csv``) hold one row per phase of a job: ``tokenizer`` and ``model load``
(start-up, not inferences) then one ``start-inference-<prompt>-<iteration>`` row per ``generate`` call with
its UNIX start time (UTC), runtime, GPU energy, prompt tokens (``Number of Input Tokens``), the output token
*limit* (``Output Token Limit``, ``max_new_tokens``; the log does not say how many were generated, and
``Total Number of Tokens`` is prompt + limit), the batch size and the system.

Quirks handled (each recorded, see :func:`read_inference_log`)
---------------------------------------------------------------
- headered and headerless files; a variable number of per-GPU energy and memory columns;
- energy in mJ in some logs, µJ in others (unit from the header; for headerless files from the implied power);
- the Mixtral header glues two column names together (``...Used Memory (MB)GPU-2 Total Memory (MB)``);
- energies written by a spreadsheet in scientific notation (``4.43857E+11``, 6 digits): the exact
  ``GPU Energy (J)`` column is used where the log has one;
- a timestamp that lost its leading digit (``713453089.6`` for ``1713453089.6``) is repaired;
- timestamps rounded to whole seconds by a spreadsheet are re-estimated from the previous inference's end
  when the rounded value would overlap a neighbour;
- several campaigns (a new ``tokenizer`` row) in one log: numbered by ``campaign``, the caller keeps those
  inside its trace;
- Palmetto naming (``Llama-2 (7B)``, ``Falcon (7B)``, ``Palmetto Intel+A100``) is normalised.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from wattscape.models import dims as D

from . import IngestError

# --- models and GPUs ---------------------------------------------------------------------------------
#: Canonical LLM name, total and active parameters (billions) and architecture, by normalised key.
LLM_INFO: dict[str, tuple[str, float, float, str]] = {
    "llama-2-7b": ("Llama-2-7b-chat-hf", 7.0, 7.0, D.ARCH_DENSE),
    "llama-2-13b": ("Llama-2-13b-chat-hf", 13.0, 13.0, D.ARCH_DENSE),
    "llama-2-70b": ("Llama-2-70b-chat-hf", 70.0, 70.0, D.ARCH_DENSE),
    "mistral-7b": ("Mistral-7B-v0.1", 7.24, 7.24, D.ARCH_DENSE),
    "falcon-7b": ("falcon-7b", 7.2, 7.2, D.ARCH_DENSE),
    "falcon-40b": ("falcon-40b", 40.0, 40.0, D.ARCH_DENSE),
    "mixtral-8x7b": ("Mixtral-8x7B-v0.1", 46.7, 12.9, D.ARCH_MOE),
}

#: Exact card of each site and GPU memory size (MB as the logs report it).
_SITE_GPUS = {
    ("palmetto", 16384): "V100-PCIe-16GB",
    ("palmetto", 40960): "A100-PCIe-40GB",
    ("argonne", 40960): "A100-SXM4-40GB",
    ("argonne", 81920): "A100-SXM4-80GB",
}
#: The card a system name alone implies (when no log tells the memory size).
_SYSTEM_GPUS = {
    "palmetto-v100": "V100-PCIe-16GB",
    "palmetto-a100": "A100-PCIe-40GB",
    "argonne-swing": "A100-SXM4-40GB",
    "argonne-swing-gpu-large": "A100-SXM4-80GB",
}

STARTUP_PHASES = ("tokenizer", "model load")
INFERENCE_PREFIX = "start-inference"


def llm_key(name: str) -> str:
    """Normalised key of an LLM name: ``"Llama-2 (7B)"``, ``"llama2-7b"`` both give ``"llama-2-7b"``."""
    s = name.strip().lower()
    s = re.sub(r"[()]", "", s)
    s = re.sub(r"\s+", "-", s)
    s = re.sub(r"-(chat-hf|hf|chat|instruct|v0\.\d)$", "", s)
    s = re.sub(r"-(chat-hf|hf|chat|instruct|v0\.\d)$", "", s)
    s = re.sub(r"^llama-?2", "llama-2", s)
    return s


def llm_info(name: str) -> dict[str, object]:
    """Canonical name, ``params_b``, ``active_params_b`` and ``architecture`` of an LLM of this dataset.

    Raises ``KeyError`` naming the known models.
    """
    key = llm_key(name)
    if key not in LLM_INFO:
        raise KeyError(f"unknown LLM {name!r} (key {key!r}); known: {sorted(LLM_INFO)}")
    llm, total, active, arch = LLM_INFO[key]
    return {"llm": llm, "params_b": total, "active_params_b": active, "architecture": arch}


def normalise_system(name: str) -> str:
    """``"Palmetto Intel+A100"`` -> ``"palmetto-a100"``; other names lower-cased with dashes."""
    s = name.strip().lower()
    if s.startswith("palmetto") and " " in s:
        chip = re.search(r"(a100|v100|h100|a40|l40s?)", s)
        return f"palmetto-{chip.group(1)}" if chip else "palmetto"
    return re.sub(r"\s+", "-", s)


def gpu_model_for(system: str, memory_mb: float | None = None) -> str:
    """The exact card of a system, from its site and (when known) the GPU memory the log reports.

    Palmetto's A100s are PCIe (250 W) and its V100s behave as PCIe (250 W); Argonne Swing's A100-40GB are
    SXM4 (400 W) and its "gpu-large" A100-80GB are SXM4.  The memory size wins over the system name (one
    job_info names palmetto-v100 for an A100 run; Argonne's gpu-large runs with 40960 MB are A100-40GB).
    """
    sysname = normalise_system(system)
    site = sysname.split("-")[0]
    if memory_mb is not None and np.isfinite(memory_mb):
        key = (site, round(float(memory_mb)))
        if key in _SITE_GPUS:
            return _SITE_GPUS[key]
    if sysname in _SYSTEM_GPUS:
        return _SYSTEM_GPUS[sysname]
    raise KeyError(f"no GPU known for system {system!r} with {memory_mb} MB")


# --- job_info.yaml -----------------------------------------------------------------------------------
def read_job_info(path: str | os.PathLike) -> dict[str, object]:
    """The ``job`` block of a ``job_info.yaml``: date, start_time and ``details`` flattened.

    Returns keys ``date``, ``start_time``, ``model_name``, ``system_name``, ``num_tokens``, ``batch_size``,
    ``hf_name`` and ``prompts`` (the prompt labels, e.g. ``"ABCDEFGHI"``).
    """
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(errors="replace"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise IngestError(f"invalid YAML: {err}", path, None if mark is None else mark.line + 1) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("job"), dict):
        raise IngestError("no 'job' block", path)
    job = doc["job"]
    details = job.get("details") or {}
    out: dict[str, object] = {"date": str(job.get("date", "")), "start_time": str(job.get("start_time", ""))}
    for key in ("model_name", "system_name", "num_tokens", "batch_size", "hf_name"):
        out[key] = details.get(key)
    out["prompts"] = "".join(sorted(k.split("-", 1)[1] for k in details if str(k).startswith("prompt-")))
    return out


# --- per-inference logs --------------------------------------------------------------------------------
_ENERGY_RE = re.compile(r"^gpu(?:-(\d+))? energy \((uj|mj|j)\)$")
_ENERGY_FACTOR = {"uj": 1e-6, "mj": 1e-3, "j": 1.0}
_COLUMNS = {  # output column -> accepted header names (lower case)
    "timestamp": ("timestamp",),
    "phase": ("phase",),
    "runtime_s": ("runtime (s)",),
    "output_token_limit": ("output token limit", "number of output tokens"),
    "prompt_tokens": ("number of input tokens",),
    "iteration": ("iteration",),
    "model": ("model",),
    "n_gpus": ("number of gpus",),
    "prompt": ("prompt",),
    "total_tokens": ("total number of tokens",),
    "batch_size": ("batch size",),
    "system": ("system",),
    "gpu_memory_mb": ("gpu total memory (mb)", "gpu-0 total memory (mb)"),
}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _rows_with_lines(text: str) -> list[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text))
    out = []
    prev = 0
    for row in reader:
        start = prev + 1
        prev = reader.line_num
        if row and any(f.strip() for f in row):
            out.append((start, row))
    return out


def _headerless_layout(row: list[str]) -> int | None:
    """Number of per-GPU energy columns of a headerless row, or None when the row does not fit."""
    for n in range(1, 17):
        if len(row) > 3 + n + 4 and not _is_number(row[3 + n + 3]) and row[3 + n + 4].strip() == str(n):
            return n
    return None


def read_inference_log(path: str | os.PathLike) -> tuple[pd.DataFrame, list[str]]:
    """Read a per-inference log of ``energy-inference``.

    Parameters
    ----------
    path : path
        The log CSV, with or without a header.

    Returns
    -------
    log : pd.DataFrame
        One row per log record, in file order: ``line`` (1-based line in the file), ``campaign`` (0, 1, ...:
        a new one at each ``tokenizer`` row), ``timestamp`` (UNIX s, UTC), ``phase``, ``kind``
        (``"startup"`` or ``"inference"``), ``prompt_label``, ``runtime_s``, ``gpu_energy_j`` (all GPUs),
        ``gpu_energy_j_<k>`` per GPU, ``output_token_limit``, ``prompt_tokens``, ``iteration``, ``model``,
        ``n_gpus``, ``total_tokens``, ``batch_size``, ``system``, ``gpu_memory_mb``.
    quirks : list of str

    Raises
    ------
    IngestError
        Empty file, no inference row, or a row that cannot be read (naming file and line).
    """
    path = Path(path)
    text = path.read_text(errors="replace")
    rows = _rows_with_lines(text)
    if not rows:
        raise IngestError("empty log", path)
    quirks: list[str] = []
    first_line, first = rows[0]
    records: list[dict[str, object]] = []
    raw_ts: list[str] = []
    if first[0].strip().lower() == "timestamp":
        names = [h.strip() for h in first]
        glued = [h for h in names if re.search(r"\)\S", h)]
        if glued:
            quirks.append(f"header glues column names together: {glued[0]!r}")
        lower = [h.lower() for h in names]
        col = {}
        for out, options in _COLUMNS.items():
            col[out] = next((lower.index(o) for o in options if o in lower), None)
        energy_cols = [(i, _ENERGY_RE.match(h)) for i, h in enumerate(lower)]
        energy_cols = [(i, m) for i, m in energy_cols if m]
        per_gpu = [(i, m) for i, m in energy_cols if m.group(2) != "j" or m.group(1) is not None]
        total_j = next((i for i, m in energy_cols if m.group(2) == "j" and m.group(1) is None), None)
        if not per_gpu and total_j is not None:
            per_gpu = [(total_j, _ENERGY_RE.match("gpu energy (j)"))]
        if not per_gpu or col["timestamp"] is None or col["phase"] is None or col["runtime_s"] is None:
            raise IngestError("header lacks Timestamp/Phase/Runtime/GPU energy columns", path, first_line)
        units = sorted({m.group(2) for _, m in per_gpu})
        n_sci = 0
        for line, row in rows[1:]:
            if len(row) != len(names):
                if (line, row) == rows[-1] and len(row) < len(names):
                    quirks.append(f"last row (line {line}) incomplete; dropped")
                    continue
                raise IngestError(f"{len(row)} fields, header has {len(names)}", path, line)
            rec: dict[str, object] = {"line": line}
            for out, i in col.items():
                rec[out] = row[i].strip() if i is not None else None
            energies = []
            for k, (i, m) in enumerate(per_gpu):
                value = row[i].strip()
                e = float(value) * _ENERGY_FACTOR[m.group(2)]
                if "e" in value.lower():
                    n_sci += 1
                    if total_j is not None and len(per_gpu) == 1:
                        e = float(row[total_j])
                rec[f"gpu_energy_j_{k}"] = e
                energies.append(e)
            rec["gpu_energy_j"] = float(np.sum(energies))
            raw_ts.append(row[col["timestamp"]].strip())
            records.append(rec)
        if n_sci:
            use_j = total_j is not None and len(per_gpu) == 1
            exact = " (exact 'GPU Energy (J)' column used)" if use_j else ""
            quirks.append(f"{n_sci} energy value(s) in spreadsheet scientific notation (6 digits){exact}")
        unit_text = "/".join(u.replace("u", "µ").replace("j", "J").replace("m", "m") for u in units)
        quirks.append(f"energy logged in {unit_text}")
        header_units = units
    else:
        n_cols = None
        for line, row in rows:
            n = _headerless_layout(row)
            if n is None:
                raise IngestError("headerless row does not match the energy-inference layout", path, line)
            n_cols = n if n_cols is None else n_cols
            rec = {
                "line": line,
                "timestamp": row[0].strip(),
                "phase": row[1].strip(),
                "runtime_s": row[2].strip(),
                "output_token_limit": row[3 + n],
                "prompt_tokens": row[4 + n],
                "iteration": row[5 + n],
                "model": row[6 + n],
                "n_gpus": row[7 + n],
                "prompt": row[8 + n],
                "total_tokens": row[9 + n],
                "batch_size": row[10 + n],
                "system": row[11 + n],
                "gpu_memory_mb": row[13 + n] if len(row) > 13 + n else None,
            }
            for k in range(n):
                rec[f"gpu_energy_j_{k}"] = float(row[3 + k])  # raw; unit decided below
            raw_ts.append(row[0].strip())
            records.append(rec)
        quirks.append(f"log has no header; columns read by position ({n_cols} per-GPU energy column(s))")
        header_units = []

    log = pd.DataFrame.from_records(records)
    if log.empty:
        raise IngestError("no records", path)
    for c in ("runtime_s", "output_token_limit", "prompt_tokens", "iteration", "n_gpus", "total_tokens",
              "batch_size", "gpu_memory_mb"):
        log[c] = pd.to_numeric(log[c], errors="coerce") if c in log else np.nan
    for c in ("phase", "model", "system", "prompt"):
        log[c] = log[c].astype("str").str.strip() if c in log else ""
    energy_cols = sorted(c for c in log.columns if c.startswith("gpu_energy_j_"))

    # --- phases and campaigns ---
    phase = log["phase"].str.lower()
    kind = np.where(phase.str.startswith(INFERENCE_PREFIX), "inference",
                    np.where(phase.isin(STARTUP_PHASES), "startup", "other"))
    log["kind"] = kind
    log["prompt_label"] = log["phase"].str.extract(r"^start-inference-(.+)-\d+$", expand=False).fillna("")
    log["campaign"] = np.cumsum(phase.eq("tokenizer").to_numpy()) - int(phase.iloc[0] == "tokenizer")
    log.loc[log["campaign"] < 0, "campaign"] = 0
    n_campaigns = int(log["campaign"].max()) + 1
    if n_campaigns > 1:
        starts = log.loc[phase.eq("tokenizer"), "line"].tolist()
        quirks.append(f"log holds {n_campaigns} campaigns (tokenizer rows at lines {starts})")
    if not (log["kind"] == "inference").any():
        raise IngestError("no inference rows ('start-inference-...')", path)

    # --- energy unit for headerless logs, and a plausibility check for all ---
    inf = log["kind"] == "inference"
    n_gpu_cols = max(len(energy_cols), 1)
    raw_power = log.loc[inf, energy_cols].sum(axis=1) / log.loc[inf, "runtime_s"] / n_gpu_cols
    if not header_units:
        for unit, factor in (("mJ", 1e-3), ("µJ", 1e-6), ("J", 1.0)):
            w = float(np.nanmedian(raw_power * factor))
            if 10.0 <= w <= 1500.0:
                log[energy_cols] = log[energy_cols] * factor
                quirks.append(f"energy unit inferred as {unit} (median {w:.0f} W per GPU)")
                break
        else:
            raise IngestError("cannot tell the energy unit: no unit gives a plausible GPU power", path)
        log["gpu_energy_j"] = log[energy_cols].sum(axis=1)
    else:
        w = float(np.nanmedian(raw_power))
        if not 5.0 <= w <= 2000.0:
            raise IngestError(f"energy unit in the header implies {w:.3g} W per GPU; implausible", path)

    # --- timestamps ---
    ts = pd.to_numeric(pd.Series(raw_ts), errors="coerce").to_numpy(dtype=float, copy=True)
    if np.isnan(ts).any():
        k = int(np.flatnonzero(np.isnan(ts))[0])
        raise IngestError(f"unreadable timestamp {raw_ts[k]!r}", path, int(log["line"].iloc[k]))
    med = float(np.median(ts))
    for k in np.flatnonzero(np.abs(ts - med) > 30 * 86400):
        fixed = float("1" + raw_ts[k]) if not raw_ts[k].startswith("-") else math.nan
        lo = ts[k - 1] if k > 0 else -math.inf
        hi = ts[k + 1] if k + 1 < len(ts) else math.inf
        line = int(log["line"].iloc[k])
        if lo - 1.0 <= fixed <= hi + 1.0:
            quirks.append(f"timestamp {raw_ts[k]} at line {line} lost its leading digit; read as {fixed:.1f}")
            ts[k] = fixed
        else:
            raise IngestError(f"timestamp {raw_ts[k]} is far from its neighbours", path, line)
    whole = [k for k, r in enumerate(raw_ts) if "." not in r and "e" not in r.lower()]
    if whole and len(whole) < len(raw_ts) / 2:
        ends = ts + log["runtime_s"].to_numpy(dtype=float)
        gaps = ts[1:] - ends[:-1]
        small = gaps[(gaps >= 0) & (gaps < 1.0)]
        typical_gap = float(np.median(small)) if len(small) else 0.0
        fixed_lines = []
        for k in whole:
            same = k > 0 and log["campaign"].iloc[k - 1] == log["campaign"].iloc[k]
            overlap_prev = same and ts[k] < ends[k - 1]
            overlap_next = k + 1 < len(ts) and ends[k] > ts[k + 1]
            if (overlap_prev or overlap_next) and k > 0:
                est = ends[k - 1] + typical_gap
                if abs(est - ts[k]) <= 0.5:  # the spreadsheet rounded to the nearest second
                    ts[k] = est
                    fixed_lines.append(int(log["line"].iloc[k]))
        lines = [int(log["line"].iloc[k]) for k in whole]
        quirks.append(
            f"{len(whole)} timestamp(s) rounded to whole seconds (lines {lines}); "
            f"{len(fixed_lines)} re-estimated from the previous end + {typical_gap * 1e3:.0f} ms"
        )
    log["timestamp"] = ts
    log["end"] = ts + log["runtime_s"].to_numpy(dtype=float)

    models = sorted(set(log["model"]))
    systems = sorted(set(log["system"]))
    odd = [m for m in models if "(" in m] + [s for s in systems if " " in s]
    if odd:
        quirks.append(f"Palmetto naming in the log: {odd}")
    return log, quirks


def inference_requests(log: pd.DataFrame, run_id: str) -> pd.DataFrame:
    """The request table (:data:`~wattscape.models.dims.REQUEST_COLUMNS` plus extras) of a log's inferences.

    One row per ``generate`` call: ``start`` (UTC), ``end = start + runtime``, ``prompt_tokens``,
    ``output_tokens`` (the output token *limit*: the logs do not record how many were generated),
    ``batch_size``.  Extras: ``phase``, ``prompt_label``, ``iteration``, ``campaign``, ``runtime_s``,
    ``gpu_energy_j`` (logged, all GPUs) and ``gpu_energy_j_<k>``, ``log_line``.  Start-up rows are left out.
    """
    inf = log[log["kind"] == "inference"].reset_index(drop=True)
    start = pd.to_datetime(np.round(inf["timestamp"].to_numpy() * 1e9).astype("int64"), unit="ns")
    end = pd.to_datetime(np.round(inf["end"].to_numpy() * 1e9).astype("int64"), unit="ns")
    out = pd.DataFrame(
        {
            "run_id": pd.Series([run_id] * len(inf), dtype="str"),
            "request_id": np.arange(len(inf), dtype=np.int64),
            "start": start.astype("datetime64[ns]"),
            "end": end.astype("datetime64[ns]"),
            "prompt_tokens": inf["prompt_tokens"].astype("int64"),
            "output_tokens": inf["output_token_limit"].astype("int64"),
            "batch_size": inf["batch_size"].astype("int64"),
        }
    )
    out["phase"] = inf["phase"].astype("str")
    out["prompt_label"] = inf["prompt_label"].astype("str")
    out["iteration"] = inf["iteration"].astype("int64")
    out["campaign"] = inf["campaign"].astype("int64")
    out["runtime_s"] = inf["runtime_s"].astype("float64")
    out["gpu_energy_j"] = inf["gpu_energy_j"].astype("float64")
    for c in sorted(c for c in inf.columns if c.startswith("gpu_energy_j_")):
        out[c] = inf[c].astype("float64")
    out["log_line"] = inf["line"].astype("int64")
    return out


# --- runs_index.csv -------------------------------------------------------------------------------------
RUNS_INDEX_COLUMNS = (
    "trace_file", "model", "job_info_system_name", "gpu_type_inferred", "gpus_logged", "utc_offset_hours",
    "start_epoch_utc", "matched_stats_file", "notes",
)


def read_runs_index(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``runs_index.csv``: one row per raw trace, paths relative to the file's folder.

    Adds ``trace_path``, ``log_path`` (None where no log was matched) and ``job_info_path``.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise IngestError("runs index missing or empty", path)
    idx = pd.read_csv(path, dtype={"matched_stats_file": "str", "notes": "str"}, keep_default_na=False)
    missing = [c for c in RUNS_INDEX_COLUMNS if c not in idx.columns]
    if missing:
        raise IngestError(f"runs index lacks columns {missing}", path, 1)
    root = path.parent
    idx["trace_path"] = [str(root / p) for p in idx["trace_file"]]
    idx["log_path"] = pd.Series(
        [str(root / p) if p.strip() else None for p in idx["matched_stats_file"]], dtype=object
    )
    idx["job_info_path"] = [str((root / p).parent / "job_info.yaml") for p in idx["trace_file"]]
    return idx


# --- one run: trace + log + job_info ---------------------------------------------------------------------
def _overlap_counts(starts: np.ndarray, ends: np.ndarray, t0: float, t1: float) -> int:
    return int(np.sum((starts < t1) & (ends > t0)))


def infer_utc_offset(local_t0: float, local_t1: float, starts: np.ndarray, ends: np.ndarray) -> float | None:
    """UTC offset (hours) that puts the most logged inferences inside a trace whose clock is local.

    ``local_t0``/``local_t1`` are the trace's first/last sample read as if UTC.  Whole hours from -12 to +14
    are tried first, then quarter hours; None when no offset overlaps any inference or when several whole
    hours fit equally well.
    """
    for step in (1.0, 0.25):
        hours = np.arange(-12.0, 14.0 + step / 2, step)
        counts = np.array(
            [_overlap_counts(starts, ends, local_t0 - h * 3600, local_t1 - h * 3600) for h in hours]
        )
        best = counts.max()
        if best > 0:
            winners = hours[counts == best]
            return float(winners[0]) if len(winners) == 1 else None
    return None


def _utc(seconds_: float) -> pd.Timestamp:
    return pd.Timestamp(round(seconds_ * 1e9), unit="ns")


def read_run(
    trace: str | os.PathLike,
    *,
    log: str | os.PathLike | None = None,
    job_info: str | os.PathLike | None = None,
    utc_offset_hours: float | None = None,
    n_gpus: int | None = None,
    notes: str = "",
    source: str | None = None,
    exclude_first: bool = True,
):
    """Read one ``energy-inference`` run: its nvidia-smi trace, per-inference log and ``job_info.yaml``.

    Parameters
    ----------
    trace : path
        The ``nvidia-smi.csv``.
    log : path, optional
        The matched per-inference log.  Without one the run is kept as power-only (``state_labels="none"``,
        every sample ``excluded``, status says why).
    job_info : path, optional
        Default: ``job_info.yaml`` beside the trace, when present.
    utc_offset_hours : float, optional
        Offset of the trace's local clock.  When omitted it is inferred from the log (whole hours that put
        the logged inferences inside the trace; quirk); without a log it is required.
    n_gpus : int, optional
        GPUs logged in the trace (``runs_index.csv``'s ``gpus_logged``); default: the log's GPU count.
    notes : str
        Notes to carry (``runs_index.csv``'s ``notes``).
    source : str, optional
        Value of the ``source`` attribute (default: the trace path).
    exclude_first : bool
        Label the first inference (warm-up) ``excluded``.

    Returns
    -------
    run : xr.Dataset
        ``power(gpu, time)``, ``state(time)``, ``segment(time)``; attrs
        :data:`~wattscape.models.dims.RUN_ATTRS` plus ``status``, ``utc_offset_hours``, ``system``,
        ``n_inferences``, ``log_energy_ratio`` (logged GPU energy / trace integral over the fully covered
        inferences after the first), ``log_source``.
    requests : pd.DataFrame
        The run's inferences (:func:`inference_requests`), ``request_id`` = ``segment`` id.

    Raises
    ------
    IngestError
        Bad trace or log (see the readers), a log whose clock does not overlap the trace (naming how many
        hours off it is), or a missing UTC offset for a run without a log.
    """
    import xarray as xr
    from wattscape.inference import energy as E
    from wattscape.inference.labelling import label_states

    from .nvidia_smi import read_nvidia_smi

    trace = Path(trace)
    if not trace.is_file():
        raise IngestError("trace file not found", trace)
    if job_info is None and (trace.parent / "job_info.yaml").is_file():
        job_info = trace.parent / "job_info.yaml"
    job = read_job_info(job_info) if job_info is not None else {}
    quirks: list[str] = []
    logdf = None
    if log is not None:
        log = Path(log)
        if not log.is_file():
            raise IngestError("per-inference log not found", log)
        logdf, log_quirks = read_inference_log(log)
        quirks += [f"log: {q}" for q in log_quirks]
    if n_gpus is None and logdf is not None:
        n_gpus = int(logdf["n_gpus"].dropna().mode().iloc[0])

    inf = logdf[logdf["kind"] == "inference"] if logdf is not None else None
    if utc_offset_hours is None:
        if inf is None:
            raise IngestError("no UTC offset for a run without a log: pass --utc-offset", trace)
        local, _ = read_nvidia_smi(trace, utc_offset_hours=0.0, n_gpus=n_gpus)
        lt = E.seconds(local[D.TIME].values)
        utc_offset_hours = infer_utc_offset(lt[0], lt[-1], inf["timestamp"].to_numpy(), inf["end"].to_numpy())
        if utc_offset_hours is None:
            raise IngestError(
                "cannot infer the trace's UTC offset from the log (no or several offsets fit): "
                "pass --utc-offset",
                log,
            )
        quirks.append(f"UTC offset {utc_offset_hours:+g} h inferred from the log")
    ds, trace_quirks = read_nvidia_smi(
        trace, utc_offset_hours=utc_offset_hours, n_gpus=n_gpus, source=source or str(trace)
    )
    quirks = [f"trace: {q}" for q in trace_quirks] + quirks
    t = E.seconds(ds[D.TIME].values)
    t0, t1 = float(t[0]), float(t[-1])

    # --- model and GPU ---
    llm_name = str(job.get("model_name") or (logdf["model"].iloc[0] if logdf is not None else ""))
    if not llm_name:
        raise IngestError("no model name (neither job_info.yaml nor log)", trace)
    info = llm_info(llm_name)
    job_system = str(job.get("system_name") or "")

    requests = None
    startup_end = None
    status = "labelled"
    if inf is not None:
        starts, ends = inf["timestamp"].to_numpy(), inf["end"].to_numpy()
        inside = (starts < t1) & (ends > t0)
        if not inside.any():
            shift = infer_utc_offset(t0 + utc_offset_hours * 3600, t1 + utc_offset_hours * 3600, starts, ends)
            hint = ""
            if shift is not None:
                ahead = utc_offset_hours - shift
                hint = (f"; the log's clock runs {abs(ahead):g} h {'ahead of' if ahead > 0 else 'behind'} "
                        f"the trace (UTC offset {shift:+g} h would fit, {utc_offset_hours:+g} h given)")
            raise IngestError(
                f"no logged inference overlaps the trace ({_utc(t0)} to {_utc(t1)} UTC){hint}",
                log,
                int(inf["line"].iloc[0]),
            )
        campaigns = inf.loc[inside, "campaign"].value_counts()
        keep_campaign = int(campaigns.index[0])
        keep_rows = (logdf["campaign"] == keep_campaign)
        kept_inf = logdf[keep_rows & (logdf["kind"] == "inference")]
        in_trace = (kept_inf["timestamp"] < t1) & (kept_inf["end"] > t0)
        dropped = int((logdf["kind"] == "inference").sum() - in_trace.sum())
        if dropped:
            quirks.append(
                f"{dropped} logged inference(s) outside the trace dropped (campaign {keep_campaign} kept)"
            )
        sel = logdf[keep_rows & ((logdf["kind"] != "inference") | (
            (logdf["timestamp"] < t1) & (logdf["end"] > t0)))]
        load = sel[sel["phase"].str.lower() == "model load"]
        if len(load):
            startup_end = _utc(float(load["end"].iloc[-1]))
        system = normalise_system(str(sel["system"].iloc[0]))
        memory = float(sel["gpu_memory_mb"].iloc[0])
        gpu_model = gpu_model_for(system, memory)
        implied = _SYSTEM_GPUS.get(system)
        if implied != gpu_model:
            quirks.append(f"system {system!r} but {memory:.0f} MB per GPU: {gpu_model}")
        if job_system and normalise_system(job_system) != system:
            quirks.append(f"job_info names {job_system!r} but the log says {system!r}: {gpu_model}")
        log_llm = str(sel["model"].iloc[0])
        if llm_key(log_llm) != llm_key(info["llm"]):
            quirks.append(f"log names model {log_llm!r}, job_info {llm_name!r}")
    else:
        system = normalise_system(job_system)
        gpu_model = gpu_model_for(system)
        status = "power-only: no per-inference log"
        quirks.append(f"GPU per job_info only ({job_system!r}; unverified)")

    start_utc = pd.Timestamp(ds[D.TIME].values[0])
    n = int(ds.sizes[D.GPU])
    run_id = f"{llm_key(info['llm'])}-{gpu_model}-x{n}-{start_utc:%Y%m%d-%H%M%S}"
    if n_gpus is not None and n != n_gpus:
        raise IngestError(f"trace has {n} GPUs but {n_gpus} expected", trace)

    total = E.total_power(ds)
    if inf is not None:
        requests = inference_requests(sel, run_id)
        requests = requests.sort_values("start", kind="stable").reset_index(drop=True)
        requests["request_id"] = np.arange(len(requests), dtype=np.int64)
        state, segment, labels, label_quirks = label_states(
            ds[D.TIME].values, total, requests, startup_end=startup_end, exclude_first=exclude_first
        )
        quirks += label_quirks
        # logged GPU energy vs the trace integral, inferences fully inside the trace (first one left out)
        a = E.seconds(requests["start"].to_numpy())
        b = E.seconds(requests["end"].to_numpy())
        full = (a >= t0) & (b <= t1)
        full[0] = False
        trace_e = E.interval_energy_j(t, total, a[full], b[full])
        ratio = float(requests.loc[full, "gpu_energy_j"].sum() / trace_e.sum()) if full.any() else math.nan
        requests["trace_energy_j"] = np.nan
        requests.loc[full, "trace_energy_j"] = trace_e
    else:
        state = np.full(ds.sizes[D.TIME], D.state_code(D.EXCLUDED), np.int8)
        segment = np.full(ds.sizes[D.TIME], -1, np.int32)
        labels, ratio = "none", math.nan

    ds[D.STATE_VAR] = xr.DataArray(state, dims=(D.TIME,), attrs=D.state_attrs())
    ds[D.SEGMENT_VAR] = xr.DataArray(
        segment,
        dims=(D.TIME,),
        attrs={"long_name": "inference (request_id) covering the sample, -1 for none"},
    )
    if notes:
        quirks.append(f"runs_index notes: {notes}")
    ds.attrs.update(
        run_id=run_id,
        llm=info["llm"],
        params_b=float(info["params_b"]),
        active_params_b=float(info["active_params_b"]),
        architecture=str(info["architecture"]),
        gpu_model=gpu_model,
        n_gpus=n,
        split=D.SPLIT_LAYER if n > 1 else D.SPLIT_NONE,
        tensor_parallel=1,
        state_labels=labels,
        quirks="; ".join(quirks),
        status=status,
        system=system,
        n_inferences=0 if requests is None else len(requests),
        log_energy_ratio=ratio,
        log_source="" if log is None else str(log),
        dataset="energy-inference (grantwilkins/energy-inference)",
    )
    return ds, requests


# --- logs without a trace ---------------------------------------------------------------------------------
#: Columns of the table of log-only inferences (:func:`read_log_only_calls`).
LOG_CALL_COLUMNS = (
    "run_id", "llm", "params_b", "active_params_b", "architecture", "gpu_model", "n_gpus", "split",
    "tensor_parallel", "start", "runtime_s", "prompt_tokens", "output_tokens", "batch_size", "gpu_energy_j",
    "source", "log_line",
)


def candidate_logs(folder: str | os.PathLike) -> list[Path]:
    """Every CSV under ``folder`` that may be a per-inference log: not a trace, the runs index or one of the
    dataset's merged ``all-*`` tables (those repeat the per-run logs)."""
    return sorted(
        p for p in Path(folder).rglob("*.csv")
        if p.name not in ("nvidia-smi.csv", "runs_index.csv") and not p.name.startswith("all-")
    )


def read_log_only_calls(folder: str | os.PathLike) -> tuple[pd.DataFrame, list[str]]:
    """Inferences of the ``energy-inference`` logs that no trace covers: per-call energy without a trace.

    Each log under ``folder`` that ``runs_index.csv`` matches to no trace is read; its inferences become
    evidence of the configuration's busy level (logged GPU energy / runtime, which matches the trace
    integral within 1 % on every traced run) and of its latency.  What is kept:

    - inferences (``start-inference-*`` rows), not start-up rows, and not the first inference of a campaign
      (it carries a 1-6 s warm-up at near-idle power);
    - none that overlaps a trace of ``runs_index.csv`` (those are the traced runs' own inferences, in their
      matched logs or repeated in a longer one);
    - each inference once: the dataset repeats some logs under two folders (the same LLM, card and start to
      the second are one inference).

    One log campaign (a block of inferences after a ``tokenizer`` row) is one run, with the id
    ``<llm>-<card>-x<n>-log-<first start, UTC>``.

    Parameters
    ----------
    folder : path
        The dataset folder (with ``runs_index.csv``).

    Returns
    -------
    calls : pd.DataFrame
        One row per kept inference (:data:`LOG_CALL_COLUMNS`): ``start`` UTC, ``runtime_s``,
        ``gpu_energy_j`` (all GPUs), ``output_tokens`` (the output token *limit*), ``source`` (the log,
        relative to ``folder``), ``log_line``.
    notes : list of str
        What was left out and why (a log that cannot be read is skipped with its reason, not fatal: the
        traced runs do not depend on it).
    """
    folder = Path(folder)
    idx = read_runs_index(folder / "runs_index.csv")
    if "duration_s" not in idx.columns:
        raise IngestError(
            "runs index lacks duration_s: cannot tell which logged inferences its traces cover",
            folder / "runs_index.csv", 1,
        )
    matched = {Path(p).resolve() for p in idx["log_path"] if p}
    t0 = idx["start_epoch_utc"].to_numpy(dtype=float)
    t1 = t0 + pd.to_numeric(idx["duration_s"], errors="coerce").fillna(0.0).to_numpy(dtype=float)
    notes: list[str] = []
    frames = []
    for path in candidate_logs(folder):
        if path.resolve() in matched:
            continue
        rel = str(path.relative_to(folder))
        try:
            log, _ = read_inference_log(path)
        except IngestError as err:  # another layout or a broken row: noted, the traced runs do not need it
            notes.append(f"{rel} skipped: {err}")
            continue
        inf = log[log["kind"] == "inference"].copy()
        first = inf.groupby("campaign")["line"].transform("min") == inf["line"]
        inf = inf[~first]
        a, b = inf["timestamp"].to_numpy(dtype=float), inf["end"].to_numpy(dtype=float)
        traced = ((a[:, None] < t1[None, :]) & (b[:, None] > t0[None, :])).any(axis=1)
        if traced.any():
            notes.append(f"{rel}: {int(traced.sum())} inference(s) inside a trace left out (traced runs)")
        inf = inf[~traced]
        if inf.empty:
            continue
        try:
            system = normalise_system(str(inf["system"].iloc[0]))
            gpu = gpu_model_for(system, float(inf["gpu_memory_mb"].iloc[0]))
            info = llm_info(str(inf["model"].iloc[0]))
        except KeyError as err:  # an LLM or system this dataset reader does not know
            notes.append(f"{rel} skipped: {err.args[0]}")
            continue
        n = int(inf["n_gpus"].mode().iloc[0])
        energy = inf["gpu_energy_j"].to_numpy(dtype=float)
        bad = ~(np.isfinite(energy) & (energy > 0) & (inf["runtime_s"].to_numpy(dtype=float) > 0))
        if bad.any():
            notes.append(f"{rel}: {int(bad.sum())} inference(s) without positive energy or runtime left out")
            inf = inf[~bad]
        frames.append(
            pd.DataFrame(
                {
                    "campaign": inf["campaign"].to_numpy(),
                    "llm": info["llm"],
                    "params_b": float(info["params_b"]),
                    "active_params_b": float(info["active_params_b"]),
                    "architecture": str(info["architecture"]),
                    "gpu_model": gpu,
                    "n_gpus": n,
                    "split": D.SPLIT_LAYER if n > 1 else D.SPLIT_NONE,
                    "tensor_parallel": 1,
                    "timestamp": inf["timestamp"].to_numpy(dtype=float),
                    "runtime_s": inf["runtime_s"].to_numpy(dtype=float),
                    "prompt_tokens": inf["prompt_tokens"].to_numpy(dtype=np.int64),
                    "output_tokens": inf["output_token_limit"].to_numpy(dtype=np.int64),
                    "batch_size": inf["batch_size"].to_numpy(dtype=np.int64),
                    "gpu_energy_j": inf["gpu_energy_j"].to_numpy(dtype=float),
                    "source": rel,
                    "log_line": inf["line"].to_numpy(dtype=np.int64),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=list(LOG_CALL_COLUMNS)), notes
    calls = pd.concat(frames, ignore_index=True)
    second = np.floor(calls["timestamp"].to_numpy()).astype(np.int64)
    dup = pd.DataFrame({"llm": calls["llm"], "gpu": calls["gpu_model"], "s": second}).duplicated()
    if dup.any():
        for src, k in calls.loc[dup, "source"].value_counts(sort=False).items():
            notes.append(f"{src}: {int(k)} inference(s) repeated from another log left out")
        calls = calls[~dup.to_numpy()]
    key = calls["source"] + "#" + calls["campaign"].astype(str)
    first_start = calls.groupby(key)["timestamp"].transform("min")
    calls["run_id"] = [
        f"{llm_key(llm)}-{gpu}-x{n}-log-{_utc(t):%Y%m%d-%H%M%S}"
        for llm, gpu, n, t in zip(calls["llm"], calls["gpu_model"], calls["n_gpus"], first_start, strict=True)
    ]
    calls["start"] = pd.to_datetime(np.round(calls["timestamp"].to_numpy() * 1e9).astype("int64"), unit="ns")
    calls["start"] = calls["start"].astype("datetime64[ns]")
    for col in ("llm", "architecture", "gpu_model", "split", "source", "run_id"):
        calls[col] = calls[col].astype("str")
    calls = calls.sort_values(["run_id", "start"], kind="stable").reset_index(drop=True)
    return calls[list(LOG_CALL_COLUMNS)], notes
