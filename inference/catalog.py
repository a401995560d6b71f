"""The catalog: every ingested run, request table, configuration summary and traffic trace in one folder.

Layout of a catalog folder::

    runs/<run_id>.nc          one run (xr.Dataset, NetCDF via h5netcdf): power(gpu, time), state, segment
    requests.parquet          all inference/request tables of the runs (REQUEST_COLUMNS + extras)
    log_calls.parquet         inferences of per-inference logs that no trace covers (per-call energy and
                              runtime, ``energy_inference.LOG_CALL_COLUMNS``), when a source had some
    index.parquet, index.csv  one row per run (see INDEX_COLUMNS)
    configs.parquet           configuration summaries (CONFIG_SUMMARY_COLUMNS), when a source had some
    traffic/<name>.parquet    request traces (REQUEST_COLUMNS), one per traffic source
    parts/<job>/...           per-source pieces the tables above are concatenated from (lets a re-run reuse
                              the unchanged ones)
    manifest.json             sources, their content fingerprints and outputs

Building is all or nothing: everything is written into a temporary folder beside ``out`` which replaces
``out`` only when every source was read (:func:`wattscape.io.atomic_path`); an error leaves no partial
catalog and an existing one untouched.  Re-running with the same sources and unchanged files does nothing;
a source whose files did not change is copied from the old catalog instead of being read again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm
from wattscape.inference import energy as E
from wattscape.inference.readers import IngestError
from wattscape.models import dims as D

from wattscape.io import atomic_path

CATALOG_FORMAT = 1
MANIFEST = "manifest.json"
#: Columns of the run index (one row per run); then ``frac_<state>`` and ``power_w_<state>`` per state.
INDEX_COLUMNS = (
    "run_id", "llm", "params_b", "active_params_b", "architecture", "gpu_model", "n_gpus", "split",
    "tensor_parallel", "start_utc", "duration_s", "n_samples", "sample_period_s", "state_labels",
    "n_inferences", "energy_j", "log_energy_ratio", "status", "quirks", "source",
)
STATE_ORDER = (D.EXCLUDED, D.IDLE, D.PREFILL, D.DECODE, D.ACTIVE)


# --- sources -------------------------------------------------------------------------------------------
@dataclass
class Job:
    """One unit of ingest work: a run, a summary folder or a traffic trace."""

    kind: str  # "energy-inference", "energy-inference-logs", "powertrace-sim", "summaries", "traffic"
    key: str  # stable, file-system safe id
    inputs: list[Path]  # files whose content decides the output
    params: dict = field(default_factory=dict)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("_") or "source"


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _find_runs_index(trace: Path) -> tuple[Path, pd.Series] | None:
    """``runs_index.csv`` in an ancestor folder that lists this trace, with its row."""
    from wattscape.inference.readers.energy_inference import read_runs_index

    for parent in trace.resolve().parents:
        idx_path = parent / "runs_index.csv"
        if idx_path.is_file():
            idx = read_runs_index(idx_path)
            hit = idx[[Path(p).resolve() == trace.resolve() for p in idx["trace_path"]]]
            if len(hit):
                return idx_path, hit.iloc[0]
    return None


def _energy_inference_jobs(folder: Path) -> list[Job]:
    from wattscape.inference.readers.energy_inference import candidate_logs, read_runs_index

    idx = read_runs_index(folder / "runs_index.csv")
    # the logs no trace is matched to: per-call energy of more runs (read_log_only_calls)
    matched = {Path(p).resolve() for p in idx["log_path"] if p}
    logs = [p for p in candidate_logs(folder) if p.resolve() not in matched]
    inputs = [folder / "runs_index.csv", *logs]
    jobs = [Job("energy-inference-logs", "ei-logs", inputs, {"folder": str(folder)})]
    for row in idx.itertuples():
        trace = Path(row.trace_path)
        log = Path(row.log_path) if row.log_path else None
        job_info = Path(row.job_info_path)
        inputs = [trace] + [p for p in (log, job_info) if p is not None and p.is_file()]
        rel = os.path.relpath(trace, folder)
        jobs.append(
            Job(
                "energy-inference",
                _safe(f"ei-{Path(rel).parent}"),
                inputs,
                {
                    "trace": str(trace),
                    "log": None if log is None else str(log),
                    "utc_offset_hours": float(row.utc_offset_hours),
                    "n_gpus": int(row.gpus_logged),
                    "notes": str(row.notes),
                    "source": f"energy-inference/{rel}",
                },
            )
        )
    return jobs


def _single_run_job(folder: Path, utc_offset_hours: float | None, log: str | None) -> Job:
    trace = folder / "nvidia-smi.csv"
    notes, n_gpus, source = "", None, str(trace)
    found = _find_runs_index(trace)
    if found is not None:
        idx_path, row = found
        if utc_offset_hours is None:
            utc_offset_hours = float(row["utc_offset_hours"])
        if log is None and row["log_path"]:
            log = row["log_path"]
        notes, n_gpus = str(row["notes"]), int(row["gpus_logged"])
        source = f"energy-inference/{os.path.relpath(trace, idx_path.parent)}"
    if log is None:
        others = sorted(p for p in folder.glob("*.csv") if p.name != "nvidia-smi.csv")
        if len(others) == 1:
            log = str(others[0])
        elif len(others) > 1:
            names = [p.name for p in others]
            raise IngestError(f"several candidate logs beside the trace {names}: pass --log", folder)
    elif not Path(log).is_file():
        raise IngestError("per-inference log not found", log)
    candidates = (Path(log) if log else None, folder / "job_info.yaml")
    inputs = [trace] + [p for p in candidates if p is not None and p.is_file()]
    params = {"trace": str(trace), "log": log, "utc_offset_hours": utc_offset_hours, "n_gpus": n_gpus,
              "notes": notes, "source": source}
    return Job("energy-inference", _safe(f"run-{folder.resolve()}")[-120:], inputs, params)


def discover(
    sources: Sequence[str | os.PathLike], *, utc_offset_hours: float | None = None, log: str | None = None
) -> list[Job]:
    """Turn source paths into ingest jobs, by folder content.

    - a folder with ``runs_index.csv``: the ``energy-inference`` dataset, one job per listed trace;
    - a folder with ``nvidia-smi.csv``: one ``energy-inference`` run (its log beside it or ``log``; UTC
      offset from ``utc_offset_hours``, a ``runs_index.csv`` above it, or inferred from the log);
    - a folder with ``power.csv`` and ``manifest.json``: a powertrace-sim run;
    - a folder with ``index.json`` (ML.ENERGY v3), ``power_results.csv`` or ``perf_model.csv``: summaries;
    - a folder or file of request traces (Azure, Mooncake, BurstGPT, Splitwise, Vidur): traffic.

    Raises
    ------
    IngestError
        A source that does not exist or is none of the above.
    """
    from wattscape.inference.readers import traffic

    jobs: list[Job] = []
    for src in sources:
        path = Path(src)
        if not path.exists():
            raise IngestError("source not found", path)
        if path.is_file() and path.name == "nvidia-smi.csv":
            path = path.parent
        if path.is_dir() and (path / "runs_index.csv").is_file():
            jobs += _energy_inference_jobs(path)
        elif path.is_dir() and (path / "nvidia-smi.csv").is_file():
            jobs.append(_single_run_job(path, utc_offset_hours, log))
        elif path.is_dir() and (path / "power.csv").is_file() and (path / "manifest.json").is_file():
            key = _safe(f"ptsim-{path.name}")
            jobs.append(Job("powertrace-sim", key, _files_under(path), {"path": str(path)}))
        elif path.is_dir() and any((path / n).is_file() for n in ("index.json", "power_results.csv",
                                                                     "perf_model.csv")):
            key = _safe(f"summaries-{path.name}")
            jobs.append(Job("summaries", key, _files_under(path), {"path": str(path)}))
        else:
            files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
            traces = []
            for f in files:
                try:
                    traffic.detect_format(f)
                except (ValueError, OSError, UnicodeDecodeError):
                    continue
                traces.append(f)
            if not traces:
                raise IngestError(
                    "not a known source: no runs_index.csv, nvidia-smi.csv, power.csv + manifest.json, "
                    "configuration summary or request trace", path
                )
            name = path.stem.split(".")[0] if path.is_file() else path.name
            params = {"path": str(path), "name": _safe(name)}
            jobs.append(Job("traffic", _safe(f"traffic-{name}"), traces, params))
    keys = [j.key for j in jobs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise IngestError(f"the same source given twice: {dup}")
    return jobs


def fingerprint(job: Job) -> str:
    """Hash of a job's kind, parameters and input file contents."""
    from wattscape import __version__

    h = hashlib.sha256()
    head = [CATALOG_FORMAT, __version__, job.kind, job.params]
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    for p in job.inputs:
        h.update(p.name.encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


# --- per-run summary -----------------------------------------------------------------------------------
def run_summary(ds: xr.Dataset) -> dict[str, object]:
    """The index row of a run: attrs, duration, fraction of time and mean per-GPU power in each state."""
    t = E.seconds(ds[D.TIME].values)
    state = ds[D.STATE_VAR].values if D.STATE_VAR in ds else np.full(len(t), D.state_code(D.EXCLUDED))
    per_gpu = np.nanmean(ds[D.POWER].transpose(D.GPU, D.TIME).values.astype(np.float64), axis=0)
    row: dict[str, object] = {k: ds.attrs.get(k) for k in INDEX_COLUMNS if k in ds.attrs}
    row.update(
        start_utc=pd.Timestamp(ds[D.TIME].values[0]),
        duration_s=float(t[-1] - t[0]) if len(t) else 0.0,
        n_samples=len(t),
        sample_period_s=float(ds.attrs.get("sample_period_s", np.nan)),
        n_gpus=int(ds.sizes[D.GPU]),
        energy_j=E.trace_energy_j(ds),
        n_inferences=int(ds.attrs.get("n_inferences", 0) or 0),
        log_energy_ratio=float(ds.attrs.get("log_energy_ratio", np.nan)),
        status=str(ds.attrs.get("status", "labelled")),
        quirks=str(ds.attrs.get("quirks", "")),
        source=str(ds.attrs.get("source", "")),
    )
    for name in STATE_ORDER:
        sel = state == D.state_code(name)
        row[f"frac_{name}"] = float(sel.mean()) if len(t) else 0.0
        row[f"power_w_{name}"] = float(np.nanmean(per_gpu[sel])) if sel.any() else math.nan
    return row


# --- build -----------------------------------------------------------------------------------------------
def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    df = df.copy()
    df.attrs = {}
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)


def _write_run(ds: xr.Dataset, path: Path) -> None:
    ds = ds.copy()
    for k, v in list(ds.attrs.items()):
        if v is None:
            ds.attrs[k] = ""
        elif isinstance(v, bool | np.bool_):
            ds.attrs[k] = int(v)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path, engine="h5netcdf")


def _run_job(job: Job, tmp: Path) -> dict[str, object]:
    """Read one job and write its pieces under ``tmp``; return what the manifest records."""
    part = tmp / "parts" / job.key
    part.mkdir(parents=True, exist_ok=True)
    outputs: list[str] = []
    info: dict[str, object] = {"kind": job.kind}
    if job.kind in ("energy-inference", "powertrace-sim"):
        if job.kind == "energy-inference":
            from wattscape.inference.readers.energy_inference import read_run

            p = job.params
            ds, req = read_run(p["trace"], log=p["log"], utc_offset_hours=p["utc_offset_hours"],
                               n_gpus=p["n_gpus"], notes=p["notes"], source=p["source"])
        else:
            from wattscape.inference.readers.powertrace_sim import read_run_dir

            ds, req = read_run_dir(job.params["path"])
        run_id = str(ds.attrs["run_id"])
        _write_run(ds, tmp / "runs" / f"{run_id}.nc")
        outputs.append(f"runs/{run_id}.nc")
        _write_parquet(pd.DataFrame([run_summary(ds)]), part / "index.parquet")
        if req is not None and len(req):
            _write_parquet(req, part / "requests.parquet")
        info["run_id"] = run_id
    elif job.kind == "energy-inference-logs":
        from wattscape.inference.readers.energy_inference import read_log_only_calls

        calls, notes = read_log_only_calls(job.params["folder"])
        if len(calls):
            _write_parquet(calls, part / "log_calls.parquet")
        info["n_log_calls"] = len(calls)
        info["notes"] = notes
    elif job.kind == "summaries":
        from wattscape.inference.readers.summaries import read_summaries

        df = read_summaries(job.params["path"])
        _write_parquet(df, part / "configs.parquet")
        info["n_configs"] = len(df)
    elif job.kind == "traffic":
        from wattscape.inference.readers.traffic import read_requests

        df = read_requests(job.params["path"], job.params["name"])
        name = job.params["name"]
        _write_parquet(df, tmp / "traffic" / f"{name}.parquet")
        outputs.append(f"traffic/{name}.parquet")
        info["n_requests"] = len(df)
        info["name"] = name
    else:  # pragma: no cover - discover() makes only the kinds above
        raise ValueError(f"unknown job kind {job.kind!r}")
    outputs += [str(p.relative_to(tmp)) for p in sorted(part.glob("*.parquet"))]
    info["outputs"] = outputs
    return info


def _concat_parts(tmp: Path, name: str) -> pd.DataFrame | None:
    parts = [pd.read_parquet(p) for p in sorted((tmp / "parts").glob(f"*/{name}"))]
    parts = [p for p in parts if len(p)]
    if not parts:
        return None
    return pd.concat(parts, ignore_index=True)


def build_catalog(
    sources: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    utc_offset_hours: float | None = None,
    log: str | os.PathLike | None = None,
    progress: bool = True,
) -> Catalog:
    """Ingest sources into a catalog folder (see the module docstring for its layout).

    Parameters
    ----------
    sources : paths
        Source folders or files (:func:`discover`).
    out : path
        Catalog folder; replaced as a whole when the build succeeds.  An existing folder that is not a
        catalog (no ``manifest.json``) and not empty is refused.
    utc_offset_hours : float, optional
        UTC offset of a single run's trace clock (``--utc-offset``).
    log : path, optional
        Per-inference log of a single run directory (``--log``).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Catalog
        The catalog, with ``.changed`` telling whether anything was (re)written.

    Raises
    ------
    IngestError
        Any source that cannot be read; nothing is written then.
    """
    out = Path(out)
    old_manifest = None
    if out.exists():
        if (out / MANIFEST).is_file():
            old_manifest = json.loads((out / MANIFEST).read_text())
        elif not out.is_dir() or any(out.iterdir()):
            raise IngestError(
                "exists and is not a wattscape catalog (no manifest.json); refusing to replace it", out
            )
    jobs = discover(sources, utc_offset_hours=None if utc_offset_hours is None else float(utc_offset_hours),
                    log=None if log is None else str(log))
    prints = {j.key: fingerprint(j) for j in jobs}
    old_jobs = (old_manifest or {}).get("jobs", {})
    if (
        old_manifest is not None
        and old_manifest.get("format") == CATALOG_FORMAT
        and {k: v.get("fingerprint") for k, v in old_jobs.items()} == prints
        and all((out / o).is_file() for v in old_jobs.values() for o in v.get("outputs", []))
    ):
        cat = load_catalog(out)
        cat.changed = False
        return cat

    manifest: dict[str, object] = {"format": CATALOG_FORMAT, "sources": [str(s) for s in sources], "jobs": {}}
    with atomic_path(out, is_dir=True) as tmp:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; a catalog is an ordinary folder
        for job in tqdm(jobs, desc="ingest", unit="source", disable=not progress, leave=False):
            old = old_jobs.get(job.key)
            if old is not None and old.get("fingerprint") == prints[job.key] and all(
                (out / o).is_file() for o in old.get("outputs", [])
            ):
                for o in old["outputs"]:
                    (tmp / o).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(out / o, tmp / o)
                info = {k: v for k, v in old.items() if k != "fingerprint"}
            else:
                info = _run_job(job, tmp)
            manifest["jobs"][job.key] = {"fingerprint": prints[job.key], **info}

        run_ids = [v["run_id"] for v in manifest["jobs"].values() if "run_id" in v]
        dup = sorted({r for r in run_ids if run_ids.count(r) > 1})
        if dup:
            raise IngestError(f"two sources give the same run id(s) {dup}")
        index = _concat_parts(tmp, "index.parquet")
        if index is None:
            index = pd.DataFrame(columns=list(INDEX_COLUMNS))
        index = index.sort_values("run_id", kind="stable").reset_index(drop=True)
        first = [c for c in INDEX_COLUMNS if c in index.columns]
        per_state = [f"{kind}_{s}" for kind in ("frac", "power_w") for s in STATE_ORDER]
        first += [c for c in per_state if c in index.columns]
        index = index[first + [c for c in index.columns if c not in first]]
        _write_parquet(index, tmp / "index.parquet")
        index.to_csv(tmp / "index.csv", index=False)
        requests = _concat_parts(tmp, "requests.parquet")
        if requests is not None:
            _write_parquet(requests, tmp / "requests.parquet")
        configs = _concat_parts(tmp, "configs.parquet")
        if configs is not None:
            _write_parquet(configs, tmp / "configs.parquet")
        log_calls = _concat_parts(tmp, "log_calls.parquet")
        if log_calls is not None:
            _write_parquet(log_calls, tmp / "log_calls.parquet")
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))
    cat = load_catalog(out)
    cat.changed = True
    return cat


# --- reading -----------------------------------------------------------------------------------------------
class Catalog:
    """A catalog folder: run index, runs, requests, configuration summaries and traffic traces.

    Use :func:`load_catalog`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not (self.path / MANIFEST).is_file():
            raise IngestError("not a wattscape catalog (no manifest.json)", self.path)
        self.manifest = json.loads((self.path / MANIFEST).read_text())
        self.index = pd.read_parquet(self.path / "index.parquet")
        self.changed = False

    def __repr__(self) -> str:
        return f"Catalog({str(self.path)!r}, {len(self.index)} runs)"

    @property
    def run_ids(self) -> list[str]:
        """Run ids, sorted."""
        return [str(r) for r in self.index["run_id"]]

    def run(self, run_id: str) -> xr.Dataset:
        """One run as an ``xr.Dataset`` (loaded into memory, file closed)."""
        path = self.path / "runs" / f"{run_id}.nc"
        if not path.is_file():
            raise KeyError(f"no run {run_id!r} in {self.path}; runs: {self.run_ids}")
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()

    def runs(self) -> Iterator[xr.Dataset]:
        """Every run, in index order."""
        for run_id in self.run_ids:
            yield self.run(run_id)

    def requests(self, run_id: str | None = None) -> pd.DataFrame:
        """Inference/request tables of all runs, or of one."""
        path = self.path / "requests.parquet"
        df = pd.read_parquet(path) if path.is_file() else pd.DataFrame(columns=list(D.REQUEST_COLUMNS))
        if run_id is not None:
            df = df[df["run_id"] == run_id].reset_index(drop=True)
        return df

    def configs(self) -> pd.DataFrame:
        """Configuration summaries (empty with CONFIG_SUMMARY_COLUMNS when none were ingested)."""
        path = self.path / "configs.parquet"
        if not path.is_file():
            return pd.DataFrame(columns=list(D.CONFIG_SUMMARY_COLUMNS))
        return pd.read_parquet(path)

    def log_calls(self) -> pd.DataFrame:
        """Inferences of per-inference logs that no trace covers (``LOG_CALL_COLUMNS``; empty when none
        were ingested): one row per ``generate`` call with its logged GPU energy and runtime."""
        from wattscape.inference.readers.energy_inference import LOG_CALL_COLUMNS

        path = self.path / "log_calls.parquet"
        if not path.is_file():
            return pd.DataFrame(columns=list(LOG_CALL_COLUMNS))
        return pd.read_parquet(path)

    def traffic_names(self) -> list[str]:
        """Names of the ingested traffic traces."""
        return sorted(p.stem for p in (self.path / "traffic").glob("*.parquet"))

    def traffic(self, name: str) -> pd.DataFrame:
        """One request trace by name (see :meth:`traffic_names`)."""
        path = self.path / "traffic" / f"{name}.parquet"
        if not path.is_file():
            raise KeyError(f"no traffic trace {name!r} in {self.path}; have {self.traffic_names()}")
        return pd.read_parquet(path)


def load_catalog(path: str | os.PathLike) -> Catalog:
    """Open a catalog folder written by :func:`build_catalog`."""
    return Catalog(path)
