"""Inputs the trace-level figures share: the measured catalog, the fitted posterior, workload replays.

Replay: the package's (:func:`wattscape.inference.evaluate.default_generator`, i.e.
``wattscape.generation.replay.replay_run``); the figures print which one they used.
"""

from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from wattscape.inference import metrics as M
from wattscape.models import dims as D

from ._style import CARDS, REPO, MissingInputError, posterior_file, require

#: Measured data beside the repository (override with ``$WATTSCAPE_SHARED_DATA``).
SHARED_DATA = Path(os.environ.get("WATTSCAPE_SHARED_DATA", REPO.parent / "shared" / "data"))
#: Where the energy-inference catalog is built when ``--catalog`` is not given.
CATALOG_DIR = Path(os.environ.get("WATTSCAPE_CATALOG_DIR", REPO / "catalog")) / "energy-inference"
#: Preferred run length (s) when one run per card is picked: short enough to read, long enough for an ACF.
PREFERRED_DURATION_S = 300.0


def add_trace_args(p: argparse.ArgumentParser) -> None:
    """Options of the figures that replay runs: catalog, posterior, draws, seed."""
    p.add_argument("--catalog", type=Path, help="catalog folder (default: energy-inference, ingested once)")
    p.add_argument(
        "--posterior",
        type=Path,
        help="fitted posterior (default <results>/posterior_full.nc, else the shipped one)",
    )
    p.add_argument(
        "--folds",
        type=Path,
        help="folder of leave-one-run-out fits (`experiments.accuracy --cache DIR`, files <run_id>-*.nc): "
        "a run's own fold fit replaces the full posterior, so its trace is held out",
    )
    p.add_argument("--draws", type=int, default=100, help="posterior-predictive draws per run")
    p.add_argument("--seed", type=int, default=0)


def catalog(path: Path | None):
    """Open the catalog at ``path``, or build/open the energy-inference one (``catalog/energy-inference``)."""
    from wattscape.inference.catalog import MANIFEST, build_catalog, load_catalog

    if path is not None:
        require(Path(path) / MANIFEST, "a catalog written by `wattscape ingest`")
        return load_catalog(path)
    if (CATALOG_DIR / MANIFEST).is_file():
        return load_catalog(CATALOG_DIR)
    src = SHARED_DATA / "energy-inference"
    if not src.is_dir():
        raise MissingInputError(f"missing input folder: {src} (the measured energy-inference runs)")
    return build_catalog([src], CATALOG_DIR, progress=False)


def posterior_path(args: argparse.Namespace) -> Path:
    """The posterior file of ``args`` (checked to exist)."""
    return posterior_file(args.posterior, args.results)


@functools.lru_cache(maxsize=8)
def load_model(path: str):
    """The fitted :class:`~wattscape.models.hierarchical.PowerModel` at ``path`` (cached)."""
    from wattscape.models.hierarchical import PowerModel

    return PowerModel.load(path)


def runs_with_log(cat) -> pd.DataFrame:
    """Index rows of the runs that have a per-inference log."""
    idx = cat.index
    n = pd.to_numeric(idx["n_inferences"], errors="coerce").fillna(0)
    return idx[n.to_numpy() > 0]


def pick_runs(cat) -> dict[str, str]:
    """One run per measured card (those of :data:`CARDS` present): the one whose length is nearest 5 min."""
    idx = runs_with_log(cat)
    out = {}
    for card in CARDS:
        rows = idx[idx["gpu_model"] == card]
        if len(rows):
            dist = (rows["duration_s"].astype(float) - PREFERRED_DURATION_S).abs().to_numpy()
            out[card] = str(rows["run_id"].iloc[int(np.argmin(dist))])
    return out


def run_config(run: xr.Dataset) -> dict:
    """The ``ServingConfig`` fields of a measured run, precision included (as the fit and replay see it)."""
    from wattscape.generation.replay import run_config as replay_run_config

    return replay_run_config(run)


@functools.lru_cache(maxsize=8)
def generator(posterior: str, drive: str = "open"):
    """``(generate(run, requests, n_draws, seed) -> DataArray (draw, time) W, label)`` for a posterior;
    ``drive``: the replay's ``"open"`` (logged start times, PROTOCOL.md) or ``"closed"`` loop."""
    from wattscape.inference import evaluate as E

    model = load_model(posterior)
    return E.default_generator(model, drive=drive), "package replay (wattscape.generation.replay)"


@functools.lru_cache(maxsize=16)
def replayed(catalog_path: str, posterior: str, run_id: str, n_draws: int, seed: int, drive: str = "open"):
    """Measured and replayed 1 s per-GPU series of one run's workload window (``drive``: as
    :func:`generator`).

    Returns
    -------
    (x, y, label)
        ``x``: measured (time,), ``y``: synthetic (draw, time), both ``xr.DataArray`` W per GPU, 1 s means,
        truncated to a common length; ``label`` names the replay used.
    """
    from wattscape.inference import baselines as B
    from wattscape.inference.catalog import load_catalog

    cat = load_catalog(catalog_path)
    run, req = cat.run(run_id), cat.requests(run_id)
    run = B.workload_window(run, req)
    gen, label = generator(posterior, drive)
    y = gen(run, req, n_draws, seed)
    n = int(run.attrs["n_gpus"])
    x = M.prepare_series(run[D.POWER], period_s=1.0, n_gpus=n)
    y = M.prepare_series(y, period_s=1.0, n_gpus=n)
    x, y = M.common_length(x, y)
    return x, y.transpose(D.DRAW, D.TIME), label


def posterior_for(args: argparse.Namespace, run_id: str) -> str:
    """The posterior to replay ``run_id`` with: its fold fit in ``--folds`` if any, else the full one."""
    folds = getattr(args, "folds", None)
    if folds is not None:
        found = sorted(Path(folds).glob(f"{run_id}-*.nc"))
        if found:
            return str(found[0])
    return str(posterior_path(args))


def is_seen(posterior: str, run_id: str) -> bool:
    """Whether the posterior at ``posterior`` was fitted on ``run_id``."""
    from wattscape.inference import evaluate as E

    return run_id in E.fitted_run_ids(load_model(posterior))


def seen_note(posteriors: dict[str, str]) -> str:
    """How the replayed runs relate to their posteriors: held out, in-sample, or a mix (``run → path``)."""
    seen = [rid for rid, path in posteriors.items() if is_seen(path, rid)]
    if not seen:
        return "held-out runs: each posterior never saw its run"
    if len(seen) == len(posteriors):
        return "in-sample: the posterior saw these runs"
    return f"in-sample for {len(seen)} of {len(posteriors)} runs"
