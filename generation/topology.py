"""A site described in TOML: layout (rows × racks × servers), fleet of server types, traffic, PUE, outputs.

Example (see ``generation/scenarios/*.toml``)::

    [site]
    name = "one-server"
    start = "2026-01-01T00:00:00"     # UTC
    duration_s = 600
    dt_s = 0.25
    levels = ["gpu", "server", "facility"]   # outputs wanted (gpu only for small sites)
    draws = 20
    pue = 1.3                          # or pue_by_hour = [24 values, UTC hour 0..23]
    quantiles = [0.05, 0.5, 0.95]

    [layout]
    rows = 1
    racks_per_row = 1
    servers_per_rack = 1

    [traffic]                          # default traffic of every server type
    kind = "poisson"                   # poisson | diurnal | mmpp | replay
    rate_per_server = 0.5              # mean requests/s per server (or `rate` for the whole type)
    tokens = "azure_conv"              # azure_conv | azure_code | {prompt_median=…, …}
    policy = "round_robin"             # round_robin | least_loaded | random

    [[fleet]]                          # server types, filling servers in rack order
    name = "h100-70b"
    config = "example"                 # key of the parameter draws (posterior configuration)
    llm = "Llama-2-70b-chat-hf"        # what the posterior is asked for (with params_b, gpu_model)
    params_b = 70
    gpu_model = "H100-SXM5-80GB"
    servers = 1                        # omitted on the last type: all remaining servers
    gpus_per_server = 8
    tensor_parallel = 8
    non_gpu_w = 1000.0
    batch_cap = 64
    # power_cap_w = 500.0; cap_time_exponent = 1.0; [fleet.traffic] overrides the site traffic

Errors name the file and the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from wattscape.models import dims as D

SCENARIO_DIR = Path(__file__).parent / "scenarios"
_LEVELS = (D.GPU, D.SERVER, D.RACK, D.ROW, D.FACILITY)


@dataclass
class FleetType:
    """One server type of a site."""

    name: str
    config: str
    servers: int
    gpus_per_server: int = 8
    tensor_parallel: int = 8
    non_gpu_w: float = 0.0
    batch_cap: int = 64
    power_cap_w: float | None = None
    cap_time_exponent: float = 1.0
    traffic: dict = field(default_factory=dict)
    llm: str = "example-70b"
    params_b: float = 70.0
    gpu_model: str = "H100-SXM5-80GB"

    @property
    def groups_per_server(self) -> int:
        return self.gpus_per_server // self.tensor_parallel


@dataclass
class Site:
    """A parsed scenario."""

    name: str
    start: pd.Timestamp
    duration_s: float
    dt_s: float
    rows: int
    racks_per_row: int
    servers_per_rack: int
    fleet: list[FleetType]
    pue: float | np.ndarray = 1.0
    levels: tuple[str, ...] = (D.RACK, D.ROW, D.FACILITY)
    draws: int = 10
    quantiles: tuple[float, ...] = D.DEFAULT_QUANTILES
    source: str = ""

    @property
    def n_servers(self) -> int:
        return self.rows * self.racks_per_row * self.servers_per_rack

    @property
    def n_steps(self) -> int:
        return int(np.ceil(self.duration_s / self.dt_s - 1e-9))

    @property
    def n_gpus(self) -> int:
        return sum(f.servers * f.gpus_per_server for f in self.fleet)

    def server_fleet(self) -> np.ndarray:
        """Fleet-type index of each server (rack order)."""
        return np.repeat(np.arange(len(self.fleet)), [f.servers for f in self.fleet])

    def server_rack(self) -> np.ndarray:
        return np.arange(self.n_servers) // self.servers_per_rack

    def rack_row(self) -> np.ndarray:
        return np.arange(self.rows * self.racks_per_row) // self.racks_per_row

    def level_index(self, level: str) -> np.ndarray:
        """Index at ``level`` of each server."""
        if level == D.SERVER:
            return np.arange(self.n_servers)
        if level == D.RACK:
            return self.server_rack()
        if level == D.ROW:
            return self.rack_row()[self.server_rack()]
        if level == D.FACILITY:
            return np.zeros(self.n_servers, np.int64)
        raise ValueError(f"no server-to-{level} index")

    def level_size(self, level: str) -> int:
        return {
            D.SERVER: self.n_servers,
            D.RACK: self.rows * self.racks_per_row,
            D.ROW: self.rows,
            D.FACILITY: 1,
            D.GPU: self.n_gpus,
        }[level]

    def pue_at(self, times: pd.DatetimeIndex) -> np.ndarray:
        """PUE at each time (constant, or by UTC hour of day)."""
        if np.ndim(self.pue) == 0:
            return np.full(len(times), float(self.pue))
        return np.asarray(self.pue, float)[np.asarray(times.hour)]


def _need(table: dict, key: str, where: str):
    if key not in table:
        raise KeyError(f"{where}: missing key {key!r}")
    return table[key]


def parse_site(text: str, source: str = "<string>") -> Site:
    """Parse a scenario TOML text; errors name ``source`` and the key."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{source}: invalid TOML: {err}") from None
    site = _need(doc, "site", source)
    lay = _need(doc, "layout", source)
    fleet_doc = _need(doc, "fleet", source)
    where = f"{source} [site]"
    rows, racks, spr = (
        int(_need(lay, k, f"{source} [layout]")) for k in ("rows", "racks_per_row", "servers_per_rack")
    )
    n_servers = rows * racks * spr
    default_traffic = doc.get("traffic", {})
    fleet: list[FleetType] = []
    used = 0
    for i, f in enumerate(fleet_doc):
        fw = f"{source} [[fleet]] #{i + 1}"
        count = f.get("servers")
        if count is None:
            if i != len(fleet_doc) - 1:
                raise KeyError(f"{fw}: 'servers' may be omitted only on the last fleet type")
            count = n_servers - used
        count = int(count)
        used += count
        gps, tp = int(f.get("gpus_per_server", 8)), int(f.get("tensor_parallel", f.get("gpus_per_server", 8)))
        if gps % tp:
            raise ValueError(f"{fw}: gpus_per_server={gps} is not a multiple of tensor_parallel={tp}")
        traffic = {**default_traffic, **f.get("traffic", {})}
        fleet.append(
            FleetType(
                name=str(f.get("name", f"type{i}")),
                config=str(_need(f, "config", fw)),
                servers=count,
                gpus_per_server=gps,
                tensor_parallel=tp,
                non_gpu_w=float(f.get("non_gpu_w", 0.0)),
                batch_cap=int(f.get("batch_cap", 64)),
                power_cap_w=f.get("power_cap_w"),
                cap_time_exponent=float(f.get("cap_time_exponent", 1.0)),
                traffic=traffic,
                llm=str(f.get("llm", "example-70b")),
                params_b=float(f.get("params_b", 70.0)),
                gpu_model=str(f.get("gpu_model", "H100-SXM5-80GB")),
            )
        )
    if used != n_servers:
        raise ValueError(f"{source} [[fleet]]: fleet types hold {used} servers, layout has {n_servers}")
    if "pue_by_hour" in site:
        pue = np.asarray(site["pue_by_hour"], float)
        if pue.shape != (24,):
            raise ValueError(f"{where}: pue_by_hour needs 24 values, got {pue.size}")
    else:
        pue = float(site.get("pue", 1.0))
    levels = tuple(site.get("levels", [D.RACK, D.ROW, D.FACILITY]))
    bad = [lv for lv in levels if lv not in _LEVELS]
    if bad:
        raise ValueError(f"{where}: unknown levels {bad}; known: {list(_LEVELS)}")
    return Site(
        name=str(site.get("name", Path(source).stem)),
        start=pd.Timestamp(site.get("start", "2026-01-01T00:00:00")).tz_localize(None),
        duration_s=float(_need(site, "duration_s", where)),
        dt_s=float(_need(site, "dt_s", where)),
        rows=rows,
        racks_per_row=racks,
        servers_per_rack=spr,
        fleet=fleet,
        pue=pue,
        levels=levels,
        draws=int(site.get("draws", 10)),
        quantiles=tuple(float(q) for q in site.get("quantiles", D.DEFAULT_QUANTILES)),
        source=source,
    )


def shipped_scenarios() -> list[str]:
    """Names of the scenarios shipped in ``wattscape/generation/scenarios``."""
    files = resources.files("wattscape.generation").joinpath("scenarios")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".toml"))


def load_site(path_or_name: str | Path) -> Site:
    """Read a scenario from a TOML file, or a shipped one by name (e.g. ``"one_server"``)."""
    p = Path(path_or_name)
    if not p.exists():
        cand = SCENARIO_DIR / f"{path_or_name}.toml"
        if not cand.exists():
            raise FileNotFoundError(f"scenario {path_or_name!r} not found (shipped: {shipped_scenarios()})")
        p = cand
    return parse_site(p.read_text(), str(p))
