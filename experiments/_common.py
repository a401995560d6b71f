"""Shared helpers of the experiment scripts: where results go, how they are written, the data they use.

Every experiment writes ``results/<name>.csv`` and ``results/<name>.md``, both headed by the exact
command that produced them and the package version (CSV: ``#`` comment lines, read back with
``pd.read_csv(path, comment="#")``), atomically (temporary file + rename).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from wattscape import __version__
from wattscape.io import atomic_path

REPO = Path(__file__).resolve().parents[1]
#: Default results folder (override with ``$WATTSCAPE_RESULTS``).
RESULTS_DIR = Path(os.environ.get("WATTSCAPE_RESULTS", REPO / "results"))
#: Measured data beside the repository (override with ``$WATTSCAPE_SHARED_DATA``).
SHARED_DATA = Path(os.environ.get("WATTSCAPE_SHARED_DATA", REPO.parent / "shared" / "data"))


def results_dir(path: str | os.PathLike | None = None) -> Path:
    """The results folder (created if missing)."""
    out = Path(path) if path is not None else RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    return out


def command_line(module: str, argv: Sequence[str] | None = None) -> str:
    """The exact command, as ``python -m <module> <args>`` (``argv`` default: ``sys.argv[1:]``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["python", "-m", module, *(shlex.quote(a) for a in args)])


def provenance(command: str) -> list[str]:
    """The header lines every result file starts with: the command and the package version."""
    return [f"command: {command}", f"wattscape {__version__}"]


def write_result(
    name: str,
    table: pd.DataFrame,
    markdown: str,
    *,
    command: str,
    out_dir: str | os.PathLike | None = None,
) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.csv`` and ``<name>.md`` atomically, both headed by ``command`` + version.

    Parameters
    ----------
    name : str
        Result name (file stem).
    table : DataFrame
        The full per-item table (CSV).
    markdown : str
        The Markdown body (summary tables, notes).
    command : str
        The exact command that reproduces the result (see :func:`command_line`).
    out_dir : path, optional
        Folder (default :func:`results_dir`).

    Returns
    -------
    (csv_path, md_path)
    """
    out = results_dir(out_dir)
    head = provenance(command)
    csv_path, md_path = out / f"{name}.csv", out / f"{name}.md"
    with atomic_path(csv_path) as tmp:
        with open(tmp, "w", newline="") as fh:
            fh.writelines(f"# {line}\n" for line in head)
            table.to_csv(fh, index=False, float_format="%.6g")
    md = f"# {name}\n\nCommand: `{command}`  \nwattscape {__version__}\n\n{markdown.rstrip()}\n"
    with atomic_path(md_path) as tmp:
        tmp.write_text(md)
    return csv_path, md_path


def read_result(path: str | os.PathLike) -> pd.DataFrame:
    """Read a result CSV written by :func:`write_result` (skipping its header comments)."""
    return pd.read_csv(path, comment="#")


@contextlib.contextmanager
def timed(label: str, log: dict | None = None) -> Iterator[None]:
    """Print (and store in ``log[label]``) the wall time of a block, s."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        dt = time.perf_counter() - t0
        if log is not None:
            log[label] = dt
        print(f"[{label}] {dt:.1f} s", file=sys.stderr)


#: Where experiment scripts build catalogs of raw data folders (git-ignored ``catalog/``).
CATALOG_DIR = Path(os.environ.get("WATTSCAPE_CATALOG_DIR", REPO / "catalog"))


def energy_inference_catalog(path: str | os.PathLike | None = None):
    """The catalog of the energy-inference runs.

    ``path``: a catalog folder (``wattscape ingest`` output, has ``manifest.json``) is opened as is; a raw
    data folder (default: ``energy-inference`` of the shared data) is ingested into
    ``catalog/<folder name>`` first (:func:`wattscape.inference.catalog.build_catalog`, a no-op when the
    sources did not change).
    """
    from wattscape.inference.catalog import MANIFEST, build_catalog, load_catalog

    src = Path(path) if path is not None else SHARED_DATA / "energy-inference"
    if (src / MANIFEST).is_file():
        return load_catalog(src)
    if not src.exists():
        raise FileNotFoundError(f"neither a catalog nor a data folder: {src}")
    return build_catalog([src], CATALOG_DIR / src.name, progress=False)


def runs_with_log(catalog) -> list[str]:
    """Run ids of the catalog that have a non-empty request/inference table (index order)."""
    index = catalog.index
    for col in ("n_inferences", "n_requests"):
        if col in index.columns:
            n = pd.to_numeric(index[col], errors="coerce").fillna(0).to_numpy()
            return [str(r) for r, k in zip(index["run_id"], n, strict=True) if k > 0]
    ids = []
    for rid in index["run_id"]:
        req = catalog.requests(str(rid))
        if req is not None and len(req) > 0:
            ids.append(str(rid))
    return ids
