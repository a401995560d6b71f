"""Configuration-level summaries into :data:`wattscape.models.dims.CONFIG_SUMMARY_COLUMNS`.

Sources
-------
ML.ENERGY Leaderboard v3 (``index.json`` + ``models/<org>__<model>__<task>.json``)
    One row per entry of each file's ``configurations`` list.  ``avg_power_watts`` is the power of all
    ``num_gpus`` GPUs together (checked: ``energy_per_token_joules x output_throughput_tokens_per_sec``
    equals it to 0.1 %), ``max_num_seqs`` is the batch cap, ``avg_batch_size`` the measured occupancy;
    ``tensor_parallel``/``expert_parallel``/``data_parallel`` come from ``parallelization``, precision from
    ``weight_precision``, parameter counts from the file itself.  Only tasks of the ``llm`` architecture
    of ``index.json`` are kept by default (gpqa, lm-arena-chat, sourcegraph-fim); the multimodal
    ``mllm`` tasks (image-chat, video-chat) are dropped unless ``include_mllm=True``; diffusion models
    have no files here.  GPUs: ``H100`` -> H100-SXM5-80GB, ``B200`` -> B200-SXM-180GB (HGX nodes; per-GPU
    averages reach 976 W, above any PCIe card's TDP).
LLM-Inference-Bench ``power_results.csv``
    ``avg_power`` is in **milliwatts** per device: 222,122 for one A100 at batch 1 is 222 W; read as W it
    would be 555 x the A100's 400 W TDP, read as mW every row lies between 0.5 and 0.95 of the card's TDP.
    The unit is detected (``power_unit="auto"``) and every converted row is checked against the TDP.
    ``Num of Hardware`` is the GPU count (all rows are 1; the power of n devices is taken as n x the
    per-device mean).  ``Input Output Length`` is both the prompt and the output length; ``Throughput``
    counts prompt + output tokens (``batch x 2 x length / Latency``), so energy per output token is
    ``avg_power_w x Latency / (batch x length)``.  Precision is not given: ``"auto"`` (the framework's
    default dtype from the model config).  GPUs: A100 -> A100-SXM4-40GB (ALCF Polaris), H100 ->
    H100-SXM5-80GB, GH200 -> GH200-96GB (see :mod:`wattscape.models.hardware`).
Splitwise ``perf_model.csv`` (bonus)
    Rows with a measured ``average_power`` (A100 only; H100 rows are zero) averaged over repeats;
    ``average_power`` is normalised by the TDP, so ``avg_power_w = average_power x TDP x tensor_parallel``
    (all GPUs assumed equal).  The file gives whole-request averages, not per-phase ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ...models import dims as D
from ...models.hardware import gpu_spec, normalise_gpu_name
from ...models.llm_specs import llm_spec, normalise_llm_name
from . import IngestError

SOURCE_MLENERGY = "mlenergy-v3"
SOURCE_LIB = "llm-inference-bench"
SOURCE_SPLITWISE = "splitwise-perf-model"

_ARCH = {"dense transformer": D.ARCH_DENSE, "dense": D.ARCH_DENSE, "moe": D.ARCH_MOE}
_MLENERGY_KEYS = ("gpu_model", "num_gpus", "max_num_seqs", "avg_power_watts", "energy_per_token_joules")


class SummaryFormatError(IngestError):
    """A configuration summary that cannot be read; the message names the file, line or key."""


def _finish(rows: list[dict], source: str) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    extra = [c for c in df.columns if c not in D.CONFIG_SUMMARY_COLUMNS]
    df = df[list(D.CONFIG_SUMMARY_COLUMNS) + extra]
    for col in ("source", "llm", "architecture", "precision", "gpu_model", "task"):
        df[col] = df[col].astype("str")
    for col in ("n_gpus", "tensor_parallel", "batch"):
        df[col] = df[col].astype(np.int64)
    for col in ("params_b", "active_params_b", "avg_batch_size", "avg_power_w", "energy_per_token_j"):
        df[col] = df[col].astype(np.float64)
    df.attrs["source"] = source
    return df


def _load_json(path: Path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as err:
        raise SummaryFormatError(f"{path}:{err.lineno}: invalid JSON ({err.msg}); truncated file?") from None


def _number(value, where: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise SummaryFormatError(f"{where}: not a number: {value!r}") from None
    if not np.isfinite(out):
        raise SummaryFormatError(f"{where}: not a finite number: {value!r}")
    return out


def read_mlenergy(folder: str | os.PathLike, *, include_mllm: bool = False) -> pd.DataFrame:
    """Read ML.ENERGY Leaderboard v3 configurations, one row per configuration.

    Parameters
    ----------
    folder : path
        Folder with ``index.json`` and ``models/*.json``.
    include_mllm : bool
        Also keep the multimodal (``mllm``) tasks; by default only ``llm`` tasks are kept.

    Returns
    -------
    pandas.DataFrame
        :data:`~wattscape.models.dims.CONFIG_SUMMARY_COLUMNS` plus ``split``, ``expert_parallel``,
        ``data_parallel``, ``energy_per_request_j``, ``output_throughput_tps``, ``median_itl_ms``,
        ``p90_itl_ms``, ``p99_itl_ms``, ``avg_output_len``, ``model_id``, ``file``, ``config_index``
        (position in the file).  ``attrs["dropped"]`` lists the files left out and why;
        ``attrs["repeated_configurations"]`` the entries that share every configuration field (kept: they
        are repeated measurements, e.g. two Qwen3-30B-A3B H100x2 batch-256 entries at 955 and 1093 W).

    Raises
    ------
    SummaryFormatError
        Truncated JSON, a missing key or a non-numeric value (names the file, configuration and key);
        ``KeyError`` for a GPU the table does not know.
    """
    folder = Path(folder)
    index = _load_json(folder / "index.json")
    archs = index.get("architectures")
    if not isinstance(archs, dict) or "llm" not in archs:
        raise SummaryFormatError(f"{folder / 'index.json'}: missing key 'architectures' -> 'llm'")
    keep_tasks = set(archs["llm"]) | (set(archs.get("mllm", [])) if include_mllm else set())
    files = sorted((folder / "models").glob("*.json"))
    if not files:
        raise SummaryFormatError(f"{folder / 'models'}: no model JSON files")
    rows, dropped = [], []
    for path in files:
        data = _load_json(path)
        for key in ("model_id", "task", "configurations", "total_params_billions", "weight_precision"):
            if key not in data:
                raise SummaryFormatError(f"{path}: missing key {key!r}")
        if data["task"] not in keep_tasks:
            dropped.append(f"{path.name} (task {data['task']!r} is not an llm task)")
            continue
        arch_text = str(data.get("architecture", "")).lower()
        if arch_text not in _ARCH:
            dropped.append(f"{path.name} (architecture {data.get('architecture')!r})")
            continue
        params = _number(data["total_params_billions"], f"{path}: total_params_billions")
        active = _number(data.get("activated_params_billions", params), f"{path}: activated_params_billions")
        for i, conf in enumerate(data["configurations"]):
            where = f"{path}: configurations[{i}]"
            missing = [k for k in _MLENERGY_KEYS if k not in conf]
            if missing:
                raise SummaryFormatError(f"{where}: missing key(s) {missing}")
            par = conf.get("parallelization") or {}
            n_gpus = int(_number(conf["num_gpus"], f"{where}.num_gpus"))
            tp = int(par.get("tensor_parallel", 1))
            ep = int(par.get("expert_parallel", 1))
            split = D.SPLIT_NONE if n_gpus == 1 else (D.SPLIT_EXPERT if ep > 1 else D.SPLIT_TENSOR)
            try:
                gpu = normalise_gpu_name(str(conf["gpu_model"]))
            except KeyError as err:
                raise KeyError(f"{where}.gpu_model: {err.args[0]}") from None
            rows.append(
                {
                    "source": SOURCE_MLENERGY,
                    "llm": data["model_id"].split("/")[-1],
                    "params_b": params,
                    "active_params_b": active,
                    "architecture": _ARCH[arch_text],
                    "precision": str(data["weight_precision"]),
                    "gpu_model": gpu,
                    "n_gpus": n_gpus,
                    "tensor_parallel": tp,
                    "batch": int(_number(conf["max_num_seqs"], f"{where}.max_num_seqs")),
                    "avg_batch_size": float(conf.get("avg_batch_size", np.nan)),
                    "avg_power_w": _number(conf["avg_power_watts"], f"{where}.avg_power_watts"),
                    "energy_per_token_j": _number(
                        conf["energy_per_token_joules"], f"{where}.energy_per_token_joules"
                    ),
                    "task": data["task"],
                    "split": split,
                    "expert_parallel": ep,
                    "data_parallel": int(par.get("data_parallel", 1)),
                    "energy_per_request_j": float(conf.get("energy_per_request_joules", np.nan)),
                    "output_throughput_tps": float(conf.get("output_throughput_tokens_per_sec", np.nan)),
                    "median_itl_ms": float(conf.get("median_itl_ms", np.nan)),
                    "p90_itl_ms": float(conf.get("p90_itl_ms", np.nan)),
                    "p99_itl_ms": float(conf.get("p99_itl_ms", np.nan)),
                    "avg_output_len": float(conf.get("avg_output_len", np.nan)),
                    "model_id": data["model_id"],
                    "file": path.name,
                    "config_index": i,
                }
            )
    if not rows:
        raise SummaryFormatError(f"{folder}: no LLM configurations (dropped: {dropped})")
    df = _finish(rows, str(folder))
    for col in ("split", "model_id", "file"):
        df[col] = df[col].astype("str")
    df.attrs["dropped"] = dropped
    key = [
        "model_id",
        "task",
        "gpu_model",
        "n_gpus",
        "tensor_parallel",
        "expert_parallel",
        "data_parallel",
        "batch",
    ]
    repeats = df[df.duplicated(key, keep=False)]
    df.attrs["repeated_configurations"] = [
        f"{r.file}: configurations{list(g.config_index)} share {r.gpu_model} x{r.n_gpus} batch {r.batch}"
        for (_, g) in repeats.groupby(key)
        for r in [g.iloc[0]]
    ]
    return df


_LIB_COLUMNS = (
    "Hardware",
    "Num of Hardware",
    "Framework",
    "Model",
    "Input Output Length",
    "Batch Size",
    "Latency",
    "Throughput",
    "avg_power",
)


def read_llm_inference_bench(path: str | os.PathLike, *, power_unit: str = "auto") -> pd.DataFrame:
    """Read LLM-Inference-Bench ``power_results.csv`` (one row per measured configuration).

    Parameters
    ----------
    path : path
        The CSV file (blank lines are skipped).
    power_unit : {"auto", "mW", "W"}
        Unit of ``avg_power``; ``"auto"`` decides from the ratio to the card's TDP (see module doc).

    Returns
    -------
    pandas.DataFrame
        :data:`~wattscape.models.dims.CONFIG_SUMMARY_COLUMNS` plus ``split``, ``framework``,
        ``input_tokens``, ``output_tokens``, ``latency_s``, ``throughput_tps``, ``line`` (line in the file).

    Raises
    ------
    SummaryFormatError
        Missing column, NaN or non-numeric value, or power implausible for the card (names file and line).
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise SummaryFormatError(f"{path}: empty file") from None
    missing = [c for c in _LIB_COLUMNS if c not in raw.columns]
    if missing:
        raise SummaryFormatError(f"{path}: missing column(s) {missing}; found {list(raw.columns)}")
    if raw.empty:
        raise SummaryFormatError(f"{path}: no rows")
    # file line of each row (header is line 1; blank lines were skipped by the parser)
    with open(path, encoding="utf-8") as fh:
        lines = [i for i, text in enumerate(fh, start=1) if text.strip()][1:]
    if len(lines) != len(raw):
        lines = list(range(2, len(raw) + 2))
    numeric = {}
    for col in ("Num of Hardware", "Input Output Length", "Batch Size", "Latency", "Throughput", "avg_power"):
        values = pd.to_numeric(raw[col], errors="coerce")
        bad = values.isna() | ~np.isfinite(values) | (values <= 0)
        if bad.any():
            where = [lines[i] for i in np.flatnonzero(bad.to_numpy())[:5]]
            raise SummaryFormatError(f"{path}: column {col!r} NaN, non-numeric or <= 0 at line(s) {where}")
        numeric[col] = values.to_numpy(dtype=np.float64)
    gpus = []
    for i, text in enumerate(raw["Hardware"]):
        try:
            gpus.append(normalise_gpu_name(str(text)))
        except KeyError as err:
            raise KeyError(f"{path}:{lines[i]}: Hardware: {err.args[0]}") from None
    n_hw = numeric["Num of Hardware"].astype(np.int64)
    tdp = np.array([gpu_spec(g)["tdp_w"] for g in gpus], dtype=np.float64) * n_hw
    ratio = numeric["avg_power"] * n_hw / tdp
    if power_unit == "auto":
        med = float(np.median(ratio))
        if med > 50:
            power_unit = "mW"
        elif 0.02 <= med <= 1.5:
            power_unit = "W"
        else:
            raise SummaryFormatError(f"{path}: cannot tell the unit of avg_power (median {med:.3g} x TDP)")
    scale = {"mW": 1e-3, "W": 1.0}[power_unit]
    power_w = numeric["avg_power"] * scale * n_hw
    frac = power_w / tdp
    bad = (frac < 0.05) | (frac > 1.3)
    if bad.any():
        where = [lines[i] for i in np.flatnonzero(bad)[:5]]
        got = frac[bad][:5].round(2).tolist()
        raise SummaryFormatError(f"{path}: avg_power in {power_unit} gives {got} x TDP at line(s) {where}")
    rows = []
    for i in range(len(raw)):
        try:
            spec = llm_spec(str(raw["Model"].iloc[i]))
        except KeyError as err:
            raise KeyError(f"{path}:{lines[i]}: Model: {err.args[0]}") from None
        length = int(numeric["Input Output Length"][i])
        batch = int(numeric["Batch Size"][i])
        latency = float(numeric["Latency"][i])
        n = int(n_hw[i])
        rows.append(
            {
                "source": SOURCE_LIB,
                "llm": spec["name"],
                "params_b": spec["params_b"],
                "active_params_b": spec["active_params_b"],
                "architecture": spec["architecture"],
                "precision": "auto",
                "gpu_model": gpus[i],
                "n_gpus": n,
                "tensor_parallel": n,
                "batch": batch,
                "avg_batch_size": float(batch),
                "avg_power_w": float(power_w[i]),
                "energy_per_token_j": float(power_w[i] * latency / (batch * length)),
                "task": f"{raw['Framework'].iloc[i]} in{length}/out{length}",
                "split": D.SPLIT_NONE if n == 1 else D.SPLIT_TENSOR,
                "framework": str(raw["Framework"].iloc[i]),
                "input_tokens": length,
                "output_tokens": length,
                "latency_s": latency,
                "throughput_tps": float(numeric["Throughput"][i]),
                "line": lines[i],
            }
        )
    df = _finish(rows, str(path))
    for col in ("split", "framework"):
        df[col] = df[col].astype("str")
    df.attrs["power_unit_in_file"] = power_unit
    return df


_SPLITWISE_COLUMNS = (
    "model",
    "hardware",
    "prompt_size",
    "batch_size",
    "token_size",
    "average_power",
    "prompt_time",
    "token_time",
    "e2e_time",
    "tensor_parallel",
)


def read_splitwise_perf_model(path: str | os.PathLike) -> pd.DataFrame:
    """Read the Splitwise simulator's ``perf_model.csv`` rows that carry a measured power (bonus source).

    Returns
    -------
    pandas.DataFrame
        :data:`~wattscape.models.dims.CONFIG_SUMMARY_COLUMNS` plus ``split``, ``input_tokens``,
        ``output_tokens``, ``prompt_time_ms``, ``token_time_ms``, ``e2e_time_ms``, ``n_repeats``.
    """
    path = Path(path)
    raw = pd.read_csv(path)
    missing = [c for c in _SPLITWISE_COLUMNS if c not in raw.columns]
    if missing:
        raise SummaryFormatError(f"{path}: missing column(s) {missing}; found {list(raw.columns)}")
    raw = raw[pd.to_numeric(raw["average_power"], errors="coerce") > 0]
    keys = ["model", "hardware", "tensor_parallel", "prompt_size", "batch_size", "token_size"]
    agg = raw.groupby(keys, sort=True).agg(
        average_power=("average_power", "mean"),
        prompt_time=("prompt_time", "mean"),
        token_time=("token_time", "mean"),
        e2e_time=("e2e_time", "mean"),
        n_repeats=("average_power", "size"),
    )
    rows = []
    for key, rec in agg.iterrows():
        model, hw, tp, prompt, batch, tokens = key
        spec = llm_spec(normalise_llm_name(str(model)))
        gpu = normalise_gpu_name(str(hw).replace("-pcap", ""))
        power = float(rec["average_power"]) * gpu_spec(gpu)["tdp_w"] * int(tp)
        e2e_s = float(rec["e2e_time"]) / 1e3
        rows.append(
            {
                "source": SOURCE_SPLITWISE,
                "llm": spec["name"],
                "params_b": spec["params_b"],
                "active_params_b": spec["active_params_b"],
                "architecture": spec["architecture"],
                "precision": "float16",
                "gpu_model": gpu,
                "n_gpus": int(tp),
                "tensor_parallel": int(tp),
                "batch": int(batch),
                "avg_batch_size": float(batch),
                "avg_power_w": power,
                "energy_per_token_j": power * e2e_s / (int(batch) * int(tokens)),
                "task": f"in{int(prompt)}/out{int(tokens)}",
                "split": D.SPLIT_TENSOR if int(tp) > 1 else D.SPLIT_NONE,
                "input_tokens": int(prompt),
                "output_tokens": int(tokens),
                "prompt_time_ms": float(rec["prompt_time"]),
                "token_time_ms": float(rec["token_time"]),
                "e2e_time_ms": float(rec["e2e_time"]),
                "n_repeats": int(rec["n_repeats"]),
            }
        )
    if not rows:
        raise SummaryFormatError(f"{path}: no rows with a measured average_power")
    df = _finish(rows, str(path))
    df["split"] = df["split"].astype("str")
    return df


def read_summaries(path: str | os.PathLike, **kwargs) -> pd.DataFrame:
    """Read any supported configuration summary, dispatching on folder/file content.

    Parameters
    ----------
    path : path
        An ML.ENERGY v3 folder (has ``index.json``), a folder holding ``power_results.csv`` and/or
        ``perf_model.csv``, or one of those CSV files (recognised by their header).
    **kwargs
        Passed to the reader (``include_mllm``, ``power_unit``).

    Returns
    -------
    pandas.DataFrame
        :data:`~wattscape.models.dims.CONFIG_SUMMARY_COLUMNS` (+ reader-specific extras).

    Raises
    ------
    SummaryFormatError
        If nothing recognisable is found; the message names the path and what was looked for.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"configuration summary not found: {path}")
    if path.is_dir():
        if (path / "index.json").is_file():
            return read_mlenergy(path, **kwargs)
        parts = [read_summaries(p, **kwargs) for p in sorted(path.glob("*.csv")) if _csv_kind(p)]
        if not parts:
            raise SummaryFormatError(
                f"{path}: no index.json (ML.ENERGY v3) and no power_results.csv / perf_model.csv-like CSV"
            )
        out = pd.concat(parts, ignore_index=True)
        out.attrs["source"] = str(path)
        return out
    kind = _csv_kind(path)
    if kind == "lib":
        return read_llm_inference_bench(path, **kwargs)
    if kind == "splitwise":
        return read_splitwise_perf_model(path)
    raise SummaryFormatError(
        f"{path}: not a known configuration summary (LLM-Inference-Bench power CSV, "
        f"Splitwise perf_model.csv, or an ML.ENERGY v3 folder)"
    )


def _csv_kind(path: Path) -> str | None:
    if path.suffix.lower() != ".csv":
        return None
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = fh.readline()
    cols = [c.strip() for c in header.strip().split(",")]
    if all(c in cols for c in _LIB_COLUMNS):
        return "lib"
    if all(c in cols for c in _SPLITWISE_COLUMNS):
        return "splitwise"
    return None
