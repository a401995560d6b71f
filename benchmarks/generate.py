"""Benchmark of posterior-predictive generation: GPU-samples/s and peak RSS, beside a naive simulator.

Cases (example parameter draws, ``models.params.example_config_params``, H100 TDP 700 W):

(a) one 8-GPU server (TP8) at 100 ms for 1 h, one draw, **per-GPU output**;
(b) 10,000 GPUs (1,250 servers × 8, TP8) × 24 h at 1 s, one draw, **facility output**, Azure-shaped diurnal
    traffic at a mean of ``--rate`` requests/s per server (default 0.15, the shipped ``azure_day_1000``);
(c) 100 draws × 1,000 GPUs (125 servers, TP8) × 1 h at 1 s, facility output, same traffic;
(d) 100 draws × 10,000 GPUs × 1 h at 1 s, facility output, same traffic (for an accelerator; not by default).

GPU-samples = draws × GPUs × time steps; rate = GPU-samples ÷ wall time of ``generate_site`` (end to end:
traffic, serving, emissions, aggregation, bands) after a warm-up call that compiles; the best of three
seeds is reported (``wall_s``, with their median in ``wall_median_s``, the CPU time of the same process in
``cpu_s`` and the 1-minute load average when the timed calls began in ``load_1min``).  Each case runs in its
own subprocess so that its peak RSS is its own.  The naive baseline (``simulate.naive_markov_scan``: a
``lax.scan`` over time steps with per-step Markov switching and ``jax.random`` draws) runs in the same
subprocess on a slice of the case (its rate does not depend on the size) and the speed-up is the ratio of
rates.  CPU time is reported beside wall time: the machine may be shared.  For the per-GPU case (a) the jitted
engine alone (traffic → segments → per-GPU power array, median of 30 calls, no xarray packaging) is also
timed: ``engine_gpu_samples_per_s`` (the three jitted programs ``generate_site`` runs per chunk).

Usage::

    python benchmarks/generate.py [--cases a b c] [--rate 0.15] [--devices 2] [--platform cpu|cuda]

``--platform cuda`` runs the same cases on the first NVIDIA GPU (JAX with CUDA, one device); each row names
the device (``device_kind``), so CPU and GPU figures from one run sit side by side.

Writes ``results/benchmarks_generate.csv`` and ``.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "a": dict(
        desc="1 server × 8 GPUs, 100 ms, 1 h, per-GPU",
        servers=1,
        hours=1.0,
        dt=0.1,
        draws=1,
        levels=("gpu", "facility"),
        naive=(8, 36000),
    ),
    "b": dict(
        desc="10,000 GPUs × 24 h, 1 s, 1 draw, facility",
        servers=1250,
        hours=24.0,
        dt=1.0,
        draws=1,
        levels=("facility",),
        naive=(1000, 3600),
    ),
    "c": dict(
        desc="100 draws × 1,000 GPUs × 1 h, 1 s, facility",
        servers=125,
        hours=1.0,
        dt=1.0,
        draws=100,
        levels=("facility",),
        naive=(1000, 3600),
    ),
}
CASES["d"] = {**CASES["c"], "desc": "100 draws × 10,000 GPUs × 1 h, 1 s, facility", "servers": 1250}
DEFAULT_CASES = ["a", "b", "c"]


def _site(case: dict, rate: float):
    from wattscape.generation.topology import parse_site

    servers = case["servers"]
    spr = min(servers, 10)
    text = f"""
[site]
name = "bench"
start = "2026-01-01T00:00:00"
duration_s = {case["hours"] * 3600}
dt_s = {case["dt"]}
levels = {list(case["levels"])!r}
draws = {case["draws"]}
pue = 1.3
[layout]
rows = 1
racks_per_row = {servers // spr}
servers_per_rack = {spr}
[traffic]
kind = "diurnal"
rate_per_server = {rate}
tokens = "azure_conv"
policy = "round_robin"
[[fleet]]
name = "h100-70b-tp8"
config = "bench"
gpus_per_server = 8
tensor_parallel = 8
non_gpu_w = 1000.0
batch_cap = 64
""".replace("'", '"')
    return parse_site(text, "bench.toml")


def _engine_rate(prm, site, rate: float) -> float:
    """GPU-samples/s of the jitted per-GPU engine alone (traffic → serving → per-GPU power array, the three
    programs ``generate_site`` runs per chunk, on one device), median of 30 calls, no xarray packaging."""
    import jax
    import jax.numpy as jnp
    from wattscape.generation import traffic as T
    from wattscape.generation.simulate import emission_params, take_draw
    from wattscape.generation.site import _gpu_chunk, _rate_requests, _serve_chunk

    p = take_draw(emission_params(prm), 0)
    prof = T.diurnal_profile(rate * site.n_servers)
    inv, dl = T.inverse_table(prof, site.duration_s)
    inv = jnp.asarray(inv)
    n_groups = site.n_servers
    n_max = T.max_requests(prof, site.duration_s, n_groups)

    def engine(i):
        ids = np.array([i, 0, 0, 0, 0], np.uint32)
        arr, pr, ou = _rate_requests(
            ids,
            inv,
            d_lambda=dl,
            n_groups=n_groups,
            n_max=n_max,
            policy="round_robin",
            n_site_groups=n_groups,
            tokens=T.AZURE_CONV_TOKENS,
        )
        s, f, e, occ = _serve_chunk(
            ids, p, arr, pr, ou, None, batch_cap=64, horizon=site.duration_s, cap_w=None, cap_exponent=1.0
        )
        return _gpu_chunk(
            ids,
            p,
            s,
            f,
            e,
            occ,
            pr,
            ou,
            n_gpu=8,
            n_steps=site.n_steps,
            dt=site.dt_s,
            ar_step_s=0.1,
            meter_k=1,
            cap_w=None,
        )

    jax.block_until_ready(engine(0))
    walls = []
    for i in range(30):
        t = time.perf_counter()
        jax.block_until_ready(engine(i + 1))
        walls.append(time.perf_counter() - t)
    return site.n_servers * 8 * site.n_steps / float(np.median(walls))


def run_case(name: str, rate: float, chunk: int | None = None) -> dict:
    """Run one case in this process; returns its measurements."""
    import resource

    import jax
    from wattscape.generation.simulate import emission_params, naive_markov_scan, take_draw
    from wattscape.generation.site import example_params_for_site, generate_site

    case = CASES[name]
    site = _site(case, rate)
    params = example_params_for_site(site, max(100, case["draws"]))
    chunk = chunk or (250 if site.n_servers >= 1000 else 128)
    t = time.perf_counter()
    generate_site(params, site, seed=0, progress=False, chunk_groups=chunk)  # compiles
    compile_s = time.perf_counter() - t
    walls, cpus = [], []
    load_start = os.getloadavg()[0]
    for seed in (1, 2, 3):
        t, c = time.perf_counter(), time.process_time()
        ds = generate_site(params, site, seed=seed, progress=False, chunk_groups=chunk)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    samples = case["draws"] * site.n_gpus * site.n_steps
    wall, cpu = min(walls), min(cpus)
    engine = _engine_rate(params["bench"], site, rate) if "gpu" in case["levels"] else float("nan")
    # naive per-step simulator on a slice of the same case
    p = take_draw(emission_params(params["bench"]), 0)
    n_g, n_t = case["naive"]
    dwell = jax.numpy.array([1 / (rate / 1) if rate else 60.0, 0.15, 4.0])
    trans = jax.numpy.array([[0, 1, 0], [0, 0, 1], [0.6, 0.4, 0]], jax.numpy.float32)
    key = jax.random.key(0)
    naive_markov_scan(key, p, dwell, trans, n_gpus=n_g, n_steps=n_t, dt=case["dt"]).block_until_ready()
    t = time.perf_counter()
    naive_markov_scan(
        jax.random.key(1), p, dwell, trans, n_gpus=n_g, n_steps=n_t, dt=case["dt"]
    ).block_until_ready()
    naive_rate = n_g * n_t / (time.perf_counter() - t)
    return {
        "case": name,
        "description": case["desc"],
        "gpu_samples": samples,
        "wall_s": wall,
        "wall_median_s": float(np.median(walls)),
        "cpu_s": cpu,
        "compile_s": compile_s - wall,
        "engine_gpu_samples_per_s": engine,
        "engine_speedup_vs_naive": engine / naive_rate,
        "gpu_samples_per_s": samples / wall,
        "gpu_samples_per_cpu_s": samples / cpu,
        "naive_gpu_samples_per_s": naive_rate,
        "speedup_vs_naive": samples / wall / naive_rate,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "requests_per_server_s": rate,
        "devices": len(jax.devices()),
        "device_kind": jax.devices()[0].device_kind,
        "chunk_groups": chunk,
        "facility_mean_kw": float(ds["facility_power"].mean()) / 1e3,
        "load_1min": load_start,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=DEFAULT_CASES, choices=list(CASES))
    ap.add_argument("--rate", type=float, default=0.15, help="mean requests/s per 8-GPU server")
    ap.add_argument("--devices", type=int, default=2, help="host CPU devices chunks are spread over")
    ap.add_argument("--platform", default="cpu", choices=["cpu", "cuda"], help="JAX platform to run on")
    ap.add_argument(
        "--chunk", type=int, default=None, help="groups per chunk (default 128; 250 from 1,000 servers)"
    )
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one case, print JSON
    ap.add_argument("--out", default=str(ROOT / "results" / "benchmarks_generate"))
    args = ap.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(run_case(args.one, args.rate, args.chunk)))
        return 0
    rows = []
    for name in args.cases:
        env = {**os.environ, "JAX_PLATFORMS": args.platform}
        if args.platform == "cpu":
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices}"
        proc = subprocess.run(
            [sys.executable, __file__, "--one", name, "--rate", str(args.rate)]
            + (["--chunk", str(args.chunk)] if args.chunk else []),
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not line:
            print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"case {name} failed")
        rows.append(json.loads(line[0][7:]))
        print(f"case {name}: {rows[-1]['gpu_samples_per_s']:.3g} GPU-samples/s", flush=True)
    df = pd.DataFrame(rows)
    load = os.getloadavg()
    note = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} at the end (shared machine: timings are noisy)"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out.with_suffix(".csv"), index=False)
    fmt = df.copy()
    for c in (
        "gpu_samples",
        "gpu_samples_per_s",
        "gpu_samples_per_cpu_s",
        "naive_gpu_samples_per_s",
        "engine_gpu_samples_per_s",
    ):
        fmt[c] = fmt[c].map(lambda v: f"{v:.3g}")
    for c in (
        "wall_s",
        "wall_median_s",
        "load_1min",
        "cpu_s",
        "compile_s",
        "peak_rss_gb",
        "speedup_vs_naive",
        "engine_speedup_vs_naive",
        "facility_mean_kw",
    ):
        fmt[c] = fmt[c].map(lambda v: f"{v:.3g}")
    cmd = "python benchmarks/generate.py " + " ".join(argv if argv is not None else sys.argv[1:])
    table = "\n".join(
        ["| " + " | ".join(fmt.columns) + " |", "|" + "---|" * len(fmt.columns)]
        + ["| " + " | ".join(str(v) for v in r) + " |" for r in fmt.itertuples(index=False)]
    )
    md = f"# Generation benchmark\n\nCommand: `{cmd}`  \nMachine: {note}\n\n{table}\n"
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
