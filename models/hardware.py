"""GPU specification table and the mapping of source spellings onto exact card names.

The table (``gpu_specs.csv`` beside this module) has one row per exact card: PCIe and SXM variants of one
chip are different cards (their TDP differs by up to 350 W, and so do their measured levels).  Figures are
vendor datasheet values; ``bf16_dense_tflops`` is dense (no sparsity) bf16 tensor throughput, fp16 where
the chip has no bf16 (V100).  ``idle_w_typical`` is filled only where a measured or published idle
figure exists (see ``source``).

Defaults of :func:`normalise_gpu_name` when a source names only the chip (documented choices):

- ``V100`` -> V100-PCIe-16GB: energy-inference's Palmetto V100s behave as PCIe (250 W).
- ``A100`` (no memory, no form) -> A100-SXM4-40GB: LLM-Inference-Bench ran on ALCF Polaris (A100 SXM4
  40GB); its A100 averages reach 377 W, above the 250/300 W PCIe TDPs.  energy-inference's
  "A100-40GB" covers two cards: pass ``form_factor="pcie"`` for Palmetto.
- ``A100 80GB`` / ``a100-80gb`` -> A100-SXM4-80GB: Splitwise (Azure ND A100 v4), Argonne "gpu-large".
- ``H100`` / ``h100-80gb`` -> H100-SXM5-80GB: ML.ENERGY v3 (8-GPU HGX nodes, TP up to 8) and
  LLM-Inference-Bench (averages up to 595 W, above the 350 W PCIe TDP).  ``H100 80GB HBM3`` is the
  nvidia-smi name of the SXM5 card (the PCIe card reports ``H100 PCIe``).
- ``H200`` -> H200-SXM-141GB (``NVL`` in the text selects H200-NVL-141GB).
- ``B200`` -> B200-SXM-180GB (ML.ENERGY v3, HGX B200).
- ``GH200`` -> GH200-96GB (LLM-Inference-Bench, ALCF GH200 with 96GB HBM3).

``memory_gb`` and ``form_factor`` (``"pcie"``/``"sxm"``/``"nvl"``), passed explicitly or found in the text,
override these defaults; a combination that matches no card raises ``KeyError``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pandas as pd

SPECS_CSV = Path(__file__).with_name("gpu_specs.csv")

#: Columns of the GPU specification table, in order.
SPEC_COLUMNS = (
    "name",
    "vendor",
    "generation",
    "form_factor",
    "memory_gb",
    "tdp_w",
    "mem_bw_gbs",
    "bf16_dense_tflops",
    "idle_w_typical",
    "source",
)

# family -> {(form factor, memory_gb): card}
_FAMILIES: dict[str, dict[tuple[str, int], str]] = {
    "v100": {
        ("pcie", 16): "V100-PCIe-16GB",
        ("sxm", 16): "V100-SXM2-16GB",
        ("sxm", 32): "V100-SXM2-32GB",
    },
    "a100": {
        ("pcie", 40): "A100-PCIe-40GB",
        ("sxm", 40): "A100-SXM4-40GB",
        ("pcie", 80): "A100-PCIe-80GB",
        ("sxm", 80): "A100-SXM4-80GB",
    },
    "h100": {
        ("pcie", 80): "H100-PCIe-80GB",
        ("sxm", 80): "H100-SXM5-80GB",
        ("nvl", 94): "H100-NVL-94GB",
    },
    "h200": {("sxm", 141): "H200-SXM-141GB", ("nvl", 141): "H200-NVL-141GB"},
    "gh200": {("module", 96): "GH200-96GB"},
    "b200": {("sxm", 180): "B200-SXM-180GB"},
    "l40s": {("pcie", 48): "L40S-48GB"},
    "rtx4090": {("pcie", 24): "RTX4090-24GB"},
    "mi250": {("module", 128): "MI250-128GB"},
    "mi300x": {("module", 192): "MI300X-192GB"},
    "gaudi2": {("module", 96): "Gaudi2-96GB"},
    "max1550": {("module", 128): "Max1550-128GB"},
}
#: Default (form factor, memory) per family when the source does not say (see module docstring).
_DEFAULT_FORM = {"v100": "pcie", "a100": "sxm", "h100": "sxm", "h200": "sxm"}
_DEFAULT_MEMORY = {"v100": 16, "a100": 40, "h100": 80, "h200": 141}

# Order matters: longer family names first (gh200 before h200, mi300x before ...).
_FAMILY_PATTERNS = (
    ("gh200", re.compile(r"gh200|grace\s*hopper")),
    ("h200", re.compile(r"h200")),
    ("h100", re.compile(r"h100")),
    ("a100", re.compile(r"a100")),
    ("v100", re.compile(r"v100")),
    ("b200", re.compile(r"b200")),
    ("l40s", re.compile(r"l40s")),
    ("rtx4090", re.compile(r"4090")),
    ("mi300x", re.compile(r"mi300x?")),
    ("mi250", re.compile(r"mi250x?")),
    ("gaudi2", re.compile(r"gaudi\s*2")),
    ("max1550", re.compile(r"max\s*1550|\bpvc\b|ponte\s*vecchio")),
)


@functools.cache
def _table() -> pd.DataFrame:
    df = pd.read_csv(SPECS_CSV)
    missing = [c for c in SPEC_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{SPECS_CSV}: missing columns {missing}")
    if df["name"].duplicated().any():
        raise ValueError(f"{SPECS_CSV}: duplicate card names {sorted(df['name'][df['name'].duplicated()])}")
    return df.set_index("name", drop=False)


def gpu_table() -> pd.DataFrame:
    """The GPU specification table, one row per exact card (a copy; index = ``name``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SPEC_COLUMNS`: memory in GB, TDP in W, memory bandwidth in GB/s, dense bf16
        (fp16 for V100) tensor TFLOP/s, typical idle power in W (NaN when unknown), and the source.
    """
    return _table().copy()


def known_gpus() -> list[str]:
    """Canonical names of all cards in the table."""
    return list(_table().index)


def gpu_spec(name: str) -> dict:
    """Specification of one card by its canonical name.

    Parameters
    ----------
    name : str
        Exact card name as in the table (e.g. ``"A100-SXM4-40GB"``); use :func:`normalise_gpu_name`
        first for source spellings.

    Returns
    -------
    dict
        One table row as a dict (keys :data:`SPEC_COLUMNS`).

    Raises
    ------
    KeyError
        If the card is not in the table; the message lists the known cards.
    """
    table = _table()
    if name not in table.index:
        raise KeyError(f"unknown GPU {name!r}; known cards: {', '.join(table.index)}")
    row = table.loc[name]
    return {c: (row[c].item() if hasattr(row[c], "item") else row[c]) for c in SPEC_COLUMNS}


def normalise_gpu_name(text: str, *, memory_gb: float | None = None, form_factor: str | None = None) -> str:
    """Map a source's spelling of a GPU onto the canonical card name of the table.

    Parameters
    ----------
    text : str
        As the source wrote it: ``"H100"``, ``"Nvidia A100 GPU"``, ``"a100-80gb"``,
        ``"NVIDIA A100-SXM4-40GB"``, ``"H100 80GB HBM3"``, ``"Tesla V100-PCIE-16GB"``, ``"B200"``, or a
        canonical name (returned unchanged).
    memory_gb : float, optional
        Memory size when the source gives it separately; overrides one found in ``text``.
    form_factor : {"pcie", "sxm", "nvl", "module"}, optional
        Form factor when the source gives it separately; overrides one found in ``text``.

    Returns
    -------
    str
        Canonical card name (see the module docstring for the defaults used when ``text`` names only the
        chip).

    Raises
    ------
    KeyError
        If no card matches; the message names ``text`` and the known cards.
    """
    if not isinstance(text, str) or not text.strip():
        raise KeyError(f"empty GPU name {text!r}; known cards: {', '.join(known_gpus())}")
    if text in _table().index and memory_gb is None and form_factor is None:
        return text
    low = text.strip().lower()
    family = next((fam for fam, pat in _FAMILY_PATTERNS if pat.search(low)), None)
    if family is None:
        raise KeyError(f"unknown GPU {text!r}; known cards: {', '.join(known_gpus())}")
    cards = _FAMILIES[family]

    form = form_factor.lower() if form_factor else None
    if form is None:
        if re.search(r"\bnvl\b|nvl\d*", low):
            form = "nvl"
        elif "pcie" in low or "pci-e" in low:
            form = "pcie"
        elif "sxm" in low or ("hbm3" in low and family == "h100"):
            form = "sxm"
    if form in ("sxm2", "sxm4", "sxm5"):
        form = "sxm"

    mem = memory_gb
    if mem is None:
        found = re.search(r"(\d{2,3})\s*g(?:i)?b", low)
        if found:
            mem = int(found.group(1))
    forms = {f for f, _ in cards}
    mems = {m for _, m in cards}
    if form is None:
        form = _DEFAULT_FORM.get(family) if len(forms) > 1 else next(iter(forms))
        if form == "sxm" and family == "h100" and mem in (94, 96):
            form = "nvl"
    if mem is None:
        candidates = [m for f, m in cards if f == form]
        mem = _DEFAULT_MEMORY.get(family) if len(candidates) > 1 else (candidates[0] if candidates else None)
    key = (form, round(float(mem))) if mem is not None else None
    if key is not None and key[1] == 96 and family == "h100" and form == "nvl":
        key = ("nvl", 94)  # some tools report the NVL card's 94 GB as 96
    if key not in cards:
        raise KeyError(
            f"no card matches GPU {text!r} (family {family}, form factor {form!r}, memory {mem!r} GB); "
            f"cards of this family: {sorted(cards.values())}; known forms {sorted(forms)}, "
            f"memories {sorted(mems)}"
        )
    return cards[key]


def bytes_per_param(precision: str | None) -> float:
    """Bytes of one weight at a precision name (``float16``/``bfloat16`` 2, ``fp8``/``int8`` 1, ``float32``
    4, ``int4`` 0.5; anything else 2)."""
    text = str(precision or "").lower()
    if "fp8" in text or "int8" in text:
        return 1.0
    if "int4" in text or "awq" in text or "gptq" in text:
        return 0.5
    if "32" in text:
        return 4.0
    return 2.0


#: Attention score elements per active parameter of Llama-2-7B (32 layers × 32 heads / 6.74 B): the
#: reference of :func:`attention_score_ratio`.
ATTENTION_REF = 32 * 32 / 6.74


def attention_score_ratio(llm: str, active_params_b: float) -> float:
    """Log attention-score elements per active parameter of an LLM, relative to Llama-2-7B; 0 if unknown.

    Eager attention over a prompt of ``n`` tokens materialises ``n_layers · n_heads · n²`` scores per
    sequence: what a prompt² cost scales with, while the prompt-token roofline scales with the active
    parameters (``2 · active`` FLOP per token).  The log ratio ``log(n_layers · n_heads / active_b) −
    log(ATTENTION_REF)`` shifts that roofline for the attention term, so an LLM held out of the fit keeps
    what its layout implies (falcon-7b: 71 query heads, 2.2 × Llama-2-7B's scores at the same size).

    Parameters
    ----------
    llm : str
        Any name :func:`wattscape.models.llm_specs.llm_spec` knows; another LLM (or one without layer and
        head counts) gets 0, the reference.
    active_params_b : float
        Active parameters per token, billions.
    """
    return _log_size_per_param(llm, ("n_layers", "n_heads"), active_params_b, ATTENTION_REF)


#: Attention width per weight of Llama-2-7B (32 layers × 32 heads × 128 / 6.74 B): the reference of
#: :func:`context_traffic_ratio`.
CONTEXT_REF = 32 * 32 * 128 / 6.74


def context_traffic_ratio(llm: str, params_b: float) -> float:
    """Log attention width per weight of an LLM, relative to Llama-2-7B; 0 if unknown.

    A decode step reads every weight once (the decode roofline, :func:`latency_rooflines`) and, for each
    sequence, the keys and values of every context token in every layer: ``n_layers · n_heads · head_dim``
    elements per context token once HF's eager attention has repeated grouped key/value heads up to the
    query heads.  So the step's cost per context token, relative to the weight read, scales with
    ``n_layers · n_heads · head_dim / params`` (total parameters: a MoE step reads all experts); the log
    ratio ``log(n_layers · n_heads · head_dim / params_b) − log(CONTEXT_REF)`` shifts the decode roofline
    for the context terms, so an LLM held out of the fit keeps what its width implies (Mixtral-8x7B:
    1/6.9 of Llama-2-7B's context traffic per weight byte, Llama-2-70B 1/2.0).

    Parameters
    ----------
    llm : str
        Any name :func:`wattscape.models.llm_specs.llm_spec` knows; another LLM (or one without layer, head
        and head-width counts) gets 0, the reference.
    params_b : float
        Total parameters, billions.
    """
    return _log_size_per_param(llm, ("n_layers", "n_heads", "head_dim"), params_b, CONTEXT_REF)


def _log_size_per_param(llm: str, fields: tuple[str, ...], params_b: float, ref: float) -> float:
    """``log(Π llm_spec(llm)[f] / params_b) − log(ref)``; 0 for an unknown LLM, a missing field or
    non-positive ``params_b`` (the shared body of :func:`attention_score_ratio` and
    :func:`context_traffic_ratio`)."""
    from .llm_specs import llm_spec

    try:
        spec = llm_spec(llm)
    except KeyError:
        return 0.0
    size = float(np.prod([spec[f] for f in fields]))
    if not (np.isfinite(size) and np.isfinite(params_b) and params_b > 0):
        return 0.0
    return float(np.log(size / params_b) - np.log(ref))


def latency_rooflines(
    params_b: float,
    active_params_b: float,
    spec: dict,
    precision: str | None,
    n_gpus: int,
    tensor_parallel: int,
) -> tuple[float, float]:
    """Log rooflines of a configuration's decode step and per-token prefill time, log s.

    * decode step (batch 1) ``= weight bytes / (memory bandwidth · TP)``: every step reads all weights
      (all experts of a MoE: at the batches served, nearly every expert is hit);
    * prefill per prompt token ``= 2 · active parameters FLOP / (dense FLOP/s · TP)``.

    Only tensor parallelism divides the work: the GPUs of a layer (pipeline) split take turns on one
    request.  The model learns the efficiency factor of each against these rooflines.

    Parameters
    ----------
    params_b, active_params_b : float
        Parameters and active parameters per token, billions (``active`` NaN or ≤ 0: dense).
    spec : dict
        Card specification (:func:`gpu_spec`: ``mem_bw_gbs``, ``bf16_dense_tflops``).
    precision : str
        Weight precision name.
    n_gpus, tensor_parallel : int
        GPUs of the configuration and its tensor-parallel degree.

    Returns
    -------
    (log_decode_step_s, log_prefill_s_per_token)
    """
    active = active_params_b if np.isfinite(active_params_b) and active_params_b > 0 else params_b
    tp = max(int(tensor_parallel or 1), 1)
    weight_bytes = float(params_b) * 1e9 * bytes_per_param(precision)
    decode = weight_bytes / (float(spec["mem_bw_gbs"]) * 1e9 * tp)
    prefill = 2.0 * float(active) * 1e9 / (float(spec["bf16_dense_tflops"]) * 1e12 * tp)
    return float(np.log(decode)), float(np.log(prefill))
