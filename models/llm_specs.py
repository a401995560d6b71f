"""Parameter counts and architecture of the LLMs in the measured data, and their name normalisation.

The table (``llm_specs.csv`` beside this module) covers the LLMs of energy-inference, LLM-Inference-Bench
and the Splitwise performance model.  ML.ENERGY v3 ships its own parameter counts in its JSON files, and
its reader uses those.  Counts are in billions, from the model papers or model cards (see ``source``).

Names are matched after "squashing": the organisation prefix (``meta-llama/``) is dropped, letters are
lower-cased and everything but letters, digits and dots is removed, so ``"meta-llama/Llama-2-7b-chat-hf"``,
``"Llama-2-7b-chat-hf"`` and ``"llama-2-7b-chat-hf"`` are one model.  Short forms without the
chat/base suffix (``"llama2-7b"``, ``"Llama-2 (7B)"``, Splitwise's ``"llama2-70b"``) map to the
``-chat-hf`` checkpoints: those are what the time-series data here (energy-inference) ran; parameter
counts are the same either way.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pandas as pd

from . import dims as D

SPECS_CSV = Path(__file__).with_name("llm_specs.csv")


def _squash(text: str) -> str:
    text = text.strip().split("/")[-1].lower()
    return re.sub(r"[^a-z0-9.]", "", text)


@functools.cache
def _table() -> pd.DataFrame:
    df = pd.read_csv(SPECS_CSV, keep_default_na=False)
    bad = ~df["architecture"].isin([D.ARCH_DENSE, D.ARCH_MOE])
    if bad.any():
        raise ValueError(f"{SPECS_CSV}: architecture must be dense or moe, rows {list(df.index[bad] + 2)}")
    return df.set_index("name", drop=False)


@functools.cache
def _aliases() -> dict[str, str]:
    out: dict[str, str] = {}
    for name, aliases in zip(_table()["name"], _table()["aliases"], strict=True):
        for key in [name, *[a for a in str(aliases).split("|") if a]]:
            squashed = _squash(key)
            if out.get(squashed, name) != name:
                raise ValueError(f"{SPECS_CSV}: alias {key!r} names both {out[squashed]} and {name}")
            out[squashed] = name
    return out


def llm_table() -> pd.DataFrame:
    """The LLM specification table (a copy; index = canonical ``name``)."""
    return _table().copy()


def normalise_llm_name(text: str) -> str:
    """Canonical name of an LLM from a source's spelling.

    Parameters
    ----------
    text : str
        E.g. ``"meta-llama/Llama-2-7b-hf"``, ``"Llama-2 (7B)"``, ``"llama2-70b"``, ``"mistral7b"``.

    Returns
    -------
    str
        The canonical name (a ``name`` of the table).

    Raises
    ------
    KeyError
        If the name is not known; the message lists the known models.
    """
    if not isinstance(text, str) or not text.strip():
        raise KeyError(f"empty LLM name {text!r}")
    try:
        return _aliases()[_squash(text)]
    except KeyError:
        raise KeyError(f"unknown LLM {text!r}; known: {', '.join(_table().index)}") from None


def llm_spec(name: str) -> dict:
    """Parameter counts and architecture of an LLM.

    Parameters
    ----------
    name : str
        Any spelling accepted by :func:`normalise_llm_name`.

    Returns
    -------
    dict
        ``name`` (canonical), ``params_b`` (total parameters, billions), ``active_params_b`` (active per
        token, billions; equal to ``params_b`` for dense models), ``architecture`` (``"dense"`` or
        ``"moe"``), ``n_layers``, ``n_heads`` and ``head_dim`` (transformer layers, attention query heads
        and the width of one head, from the checkpoint's ``config.json``; NaN where the table has none) and
        ``source``.

    Raises
    ------
    KeyError
        If the model is not known.
    """
    row = _table().loc[normalise_llm_name(name)]
    return {
        "name": str(row["name"]),
        "params_b": float(row["params_b"]),
        "active_params_b": float(row["active_params_b"]),
        "architecture": str(row["architecture"]),
        "n_layers": float(row["n_layers"]) if str(row["n_layers"]).strip() else float("nan"),
        "n_heads": float(row["n_heads"]) if str(row["n_heads"]).strip() else float("nan"),
        "head_dim": float(row["head_dim"]) if str(row["head_dim"]).strip() else float("nan"),
        "source": str(row["source"]),
    }
