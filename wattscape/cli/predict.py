"""``wattscape predict posterior.nc --llm NAME --params-b X --gpu MODEL --n-gpus N [--batch B]``.

Prints, for seen and unseen configurations alike, per-state per-GPU power quantiles and the mean power of
the configuration's N GPUs serving saturated at batch B (what ML.ENERGY reports), with 90 % intervals.
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

CONFIG_COLUMNS = ("llm", "params_b", "active_params_b", "precision", "gpu_model", "n_gpus", "batch")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``predict``."""
    p = subparsers.add_parser(
        "predict",
        help="predict per-state and saturated power of a serving configuration",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("posterior", help="posterior file written by `wattscape fit`")
    p.add_argument("--llm", help="LLM name (an unseen name draws its effect from the population)")
    p.add_argument("--params-b", type=float, help="total parameters, billions")
    p.add_argument("--active-params-b", type=float, default=None, help="active parameters (MoE), billions")
    p.add_argument("--precision", default="bfloat16", help="weight precision, e.g. bfloat16, fp8")
    p.add_argument("--gpu", help="GPU model, e.g. H100-SXM5-80GB (source spellings are normalised)")
    p.add_argument("--n-gpus", type=int, default=1)
    p.add_argument("--batch", type=float, default=None, help="batch occupancy of saturated serving")
    p.add_argument(
        "--task", default=None, help="benchmark task, e.g. mlenergy-v3:lm-arena-chat (default: new)"
    )
    p.add_argument(
        "--configs", default=None, help=f"CSV with columns {', '.join(CONFIG_COLUMNS)}: predict each row"
    )
    p.add_argument("--draws", type=int, default=1000, help="posterior draws used")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
    return p


def _format(summary: dict) -> str:
    a = summary["active_power_w"]
    lines = [
        f"{summary['llm']} on {summary['n_gpus']} x {summary['gpu_model']} at batch {summary['batch']:g}"
        f" ({'seen' if summary['seen_config'] else 'unseen'} configuration)",
        f"  mean power of {summary['n_gpus']} GPUs, saturated: {a['q50']:.0f} W "
        f"(90 % interval {a['q05']:.0f}-{a['q95']:.0f} W; mean {a['mean']:.0f} W)",
        "  per-GPU power by state (W):  q05    q50    q95",
    ]
    for state, q in summary["state_power_w"].items():
        lines.append(f"    {state:<24s}{q['q05']:6.0f} {q['q50']:6.0f} {q['q95']:6.0f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Predict one configuration or every row of ``--configs``."""
    from wattscape.models.hardware import normalise_gpu_name
    from wattscape.models.hierarchical import PowerModel, ServingConfig, summarise_prediction

    model = PowerModel.load(args.posterior)
    if args.configs:
        table = pd.read_csv(args.configs)
        missing = [c for c in ("llm", "params_b", "gpu_model", "n_gpus") if c not in table]
        if missing:
            raise ValueError(f"{args.configs}: missing columns {missing}; expected {list(CONFIG_COLUMNS)}")
        rows = table.to_dict("records")
    else:
        if not (args.llm and args.params_b and args.gpu):
            raise ValueError("give --llm, --params-b and --gpu (or --configs table.csv)")
        rows = [
            {
                "llm": args.llm,
                "params_b": args.params_b,
                "active_params_b": args.active_params_b,
                "precision": args.precision,
                "gpu_model": args.gpu,
                "n_gpus": args.n_gpus,
                "batch": args.batch,
                "task": args.task,
            }
        ]
    out = []
    for r in rows:
        active = r.get("active_params_b")
        cfg = ServingConfig(
            llm=str(r["llm"]),
            params_b=float(r["params_b"]),
            gpu_model=normalise_gpu_name(str(r["gpu_model"])),
            n_gpus=int(r["n_gpus"]),
            active_params_b=float(active) if pd.notna(active) else None,
            precision=str(r.get("precision") if pd.notna(r.get("precision")) else "bfloat16"),
            task=r.get("task") if isinstance(r.get("task"), str) else None,
        )
        batch = r.get("batch")
        pred = model.predict_config(
            cfg,
            batch=float(batch) if batch is not None and pd.notna(batch) else None,
            n_draws=args.draws,
            seed=args.seed,
        )
        out.append(summarise_prediction(pred))
    if args.json:
        print(json.dumps({"model_id": model.id, "configurations": out}, indent=2))
    else:
        print("\n\n".join(_format(s) for s in out))
    return 0
