"""Named dims, coordinates, state codes, units and table schemas: the one constants module.

Every array in wattscape carries named dims from this module and every physical quantity a ``units``
attribute.  Import the names, never retype the strings::

    from wattscape.models import dims as D
    ds[D.POWER].dims == (D.GPU, D.TIME)

Data model
----------
Run (``xr.Dataset``, one per measured trace)
    ``power(gpu, time)``  float32, W, per GPU as the meter reported it;
    ``state(time)``       int8 state code (see :data:`STATE_CODES`; CF ``flag_values``/``flag_meanings``);
    ``segment(time)``     int32 id of the inference/request/batch step the sample belongs to, -1 for none;
    ``time``              UTC ``datetime64[ns]`` (naive, UTC by convention, attr ``timezone="UTC"``);
    attrs: :data:`RUN_ATTRS`.
Requests/inferences (``pd.DataFrame``): :data:`REQUEST_COLUMNS`.
Configuration summaries (``pd.DataFrame``): :data:`CONFIG_SUMMARY_COLUMNS`.
"""

from __future__ import annotations

from typing import Final

# --- dims ----------------------------------------------------------------------------------------
TIME: Final = "time"
GPU: Final = "gpu"
SERVER: Final = "server"
RACK: Final = "rack"
ROW: Final = "row"
FACILITY: Final = "facility"
STATE: Final = "state"
COMPONENT: Final = "component"
LLM: Final = "llm"
GPU_MODEL: Final = "gpu_model"
GPU_GENERATION: Final = "gpu_generation"  # architecture of a card (volta, ampere, ...): cards nest in it
PARALLEL: Final = "parallel"
PARALLEL_KIND: Final = "parallel_kind"  # split kind of a layout (SPLITS): layouts nest in it
CONFIG: Final = "config"
RUN: Final = "run"
SEGMENT: Final = "segment"
BIN: Final = "bin"
LAG: Final = "lag"
CHAIN: Final = "chain"
DRAW: Final = "draw"
SAMPLE: Final = "sample"
QUANTILE: Final = "quantile"
SCENARIO: Final = "scenario"
LEVEL: Final = "level"

#: Aggregation levels of a site, smallest first.
TOPOLOGY_LEVELS: Final = (GPU, SERVER, RACK, ROW, FACILITY)

# --- variables -----------------------------------------------------------------------------------
POWER: Final = "power"
STATE_VAR: Final = "state"
SEGMENT_VAR: Final = "segment"
ENERGY: Final = "energy"

# --- states --------------------------------------------------------------------------------------
EXCLUDED: Final = "excluded"  # start-up, model loading, unlogged work: never fitted
IDLE: Final = "idle"
PREFILL: Final = "prefill"
DECODE: Final = "decode"
ACTIVE: Final = "active"  # prefill and decode together, where the data cannot tell them apart

#: Integer code of each state as stored in ``state(time)``.
STATE_CODES: Final[dict[str, int]] = {EXCLUDED: -1, IDLE: 0, PREFILL: 1, DECODE: 2, ACTIVE: 3}
STATE_NAMES: Final[dict[int, str]] = {v: k for k, v in STATE_CODES.items()}
#: The state sets a run can be labelled with (attr ``state_labels`` of a run).
LABELS_PHASES: Final = "idle/prefill/decode"
LABELS_ACTIVE: Final = "idle/active"
STATES_PHASES: Final = (IDLE, PREFILL, DECODE)
STATES_ACTIVE: Final = (IDLE, ACTIVE)
#: A gap between two inferences shorter than this (s) is not an idle stretch: the labelling gives it to
#: the inference before it (the meter averages over its ~100 ms sample period, and power has not dropped
#: when the next call starts), and the replay holds the inference's level over it.
MIN_IDLE_S: Final = 0.5

# --- units ---------------------------------------------------------------------------------------
WATT: Final = "W"
KILOWATT: Final = "kW"
MEGAWATT: Final = "MW"
JOULE: Final = "J"
KWH: Final = "kWh"
SECOND: Final = "s"
UNITS: Final = "units"

# --- GPU splitting --------------------------------------------------------------------------------
SPLIT_NONE: Final = "none"  # one GPU
SPLIT_TENSOR: Final = "tensor"  # tensor parallel: GPUs switch state together
SPLIT_LAYER: Final = "layer"  # layer/pipeline split (HF device_map="auto"): GPUs take turns
SPLIT_EXPERT: Final = "expert"  # expert parallel (MoE)
SPLITS: Final = (SPLIT_NONE, SPLIT_TENSOR, SPLIT_LAYER, SPLIT_EXPERT)

ARCH_DENSE: Final = "dense"
ARCH_MOE: Final = "moe"

#: Attributes every run dataset carries.
RUN_ATTRS: Final = (
    "run_id",  # stable id, unique in a catalog
    "llm",  # model name as the source wrote it, normalised (e.g. "Llama-2-7b-chat-hf")
    "params_b",  # total parameters, billions
    "active_params_b",  # parameters active per token, billions (== params_b for dense)
    "architecture",  # ARCH_DENSE or ARCH_MOE
    "gpu_model",  # exact card, e.g. "A100-SXM4-40GB", "A100-PCIe-40GB", "V100-PCIe-16GB"
    "n_gpus",
    "split",  # one of SPLITS
    "tensor_parallel",  # tensor-parallel degree (1 when not tensor parallel)
    "sample_period_s",  # median sample period of the meter
    "source",  # where it came from (dataset name + relative path)
    "state_labels",  # LABELS_PHASES or LABELS_ACTIVE, or "none" for power-only runs
    "quirks",  # "; "-joined quirks met while reading (empty string when none)
)

#: Columns of a request/inference table (one row per request or per inference call).
REQUEST_COLUMNS: Final = (
    "run_id",  # run it belongs to, or the traffic trace name
    "request_id",  # int, unique within run_id
    "start",  # UTC datetime64[ns]: arrival (traffic) or start of the inference (logs)
    "end",  # UTC datetime64[ns] or NaT when unknown
    "prompt_tokens",  # int
    "output_tokens",  # int (generated, or the limit when only that is known; see attrs)
    "batch_size",  # int, requests served together (1 for traffic traces)
)

#: Columns of a configuration summary table (one row per measured configuration).
CONFIG_SUMMARY_COLUMNS: Final = (
    "source",  # "mlenergy-v3", "llm-inference-bench", ...
    "llm",
    "params_b",
    "active_params_b",
    "architecture",
    "precision",  # "bfloat16", "fp8", ...
    "gpu_model",  # exact card name, as in models/gpu_specs.csv
    "n_gpus",
    "tensor_parallel",
    "batch",  # batch cap (max_num_seqs) or fixed batch size
    "avg_batch_size",  # measured average occupancy where known, else NaN
    "avg_power_w",  # average power of ALL n_gpus GPUs together, W
    "energy_per_token_j",  # J per output token, NaN where unknown
    "task",  # workload name where known
)


def state_code(name: str) -> int:
    """Integer code of a state name; raises ``KeyError`` naming the known states."""
    try:
        return STATE_CODES[name]
    except KeyError:
        raise KeyError(f"unknown state {name!r}; known: {sorted(STATE_CODES)}") from None


def state_attrs() -> dict[str, object]:
    """CF-style attributes for an int8 ``state`` variable."""
    codes = sorted(STATE_NAMES)
    return {
        "flag_values": codes,
        "flag_meanings": " ".join(STATE_NAMES[c] for c in codes),
        "long_name": "operating state",
    }


# --- site traces (output of wattscape.generation, input of planning) ------------------------------
#: Variables of a generated site trace: ``<level>_power`` with dims (draw, time[, level]), W, IT power
#: at the meter of that level (GPU + non-GPU server power); ``facility_power`` includes PUE.
GPU_POWER: Final = "gpu_power"  # (draw, time, gpu)
SERVER_POWER: Final = "server_power"  # (draw, time, server)
RACK_POWER: Final = "rack_power"  # (draw, time, rack)
ROW_POWER: Final = "row_power"  # (draw, time, row)
IT_POWER: Final = "it_power"  # (draw, time): sum over rows, before PUE
FACILITY_POWER: Final = "facility_power"  # (draw, time): it_power x PUE
#: Nameplate (TDP) figure at each level, W: n_gpus x GPU TDP + non-GPU power (x PUE for facility).
NAMEPLATE_SUFFIX: Final = "_nameplate"  # e.g. "rack_nameplate" (rack,), "facility_nameplate" ()
BAND_SUFFIX: Final = "_band"  # e.g. "facility_power_band" (quantile, time)
DEFAULT_QUANTILES: Final = (0.05, 0.5, 0.95)

# --- posterior-predictive configuration parameters (models -> generation contract) -------------
#: Covariates that move a segment's power level (coordinate values of dim ``covariate``): log2 of the batch,
#: of the mean context of an inference (``prompt + output / 2`` tokens: what each decode step attends to, on
#: average; :func:`context_tokens`) and of the output tokens.  The context, not the prompt: measured on
#: falcon-7b / A100-PCIe, an inference at 32 prompt and 512 output tokens draws 233 W, as one at 256 prompt
#: and 32 output tokens does (251 W), where one at 32 and 32 draws 135 W.
COVARIATE: Final = "covariate"
COVARIATES: Final = ("log2_batch", "log2_context_tokens", "log2_output_tokens")


def context_tokens(prompt, output):
    """Mean context of an inference over its decode steps, ``prompt + output / 2`` tokens (numpy or JAX)."""
    return prompt + 0.5 * output


def context_tokens_sq(prompt, output):
    """Mean squared context over the decode steps, ``prompt² + prompt·output + output²/3`` tokens²."""
    return prompt**2 + prompt * output + output**2 / 3.0


STATE_TO: Final = "state_to"
