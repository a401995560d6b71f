"""Small hand-written files in the formats of energy-inference and nvidia-smi, for reader tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

HEADER_A = "timestamp, power.draw [W], utilization.gpu [%], utilization.memory [%]"
HEADER_B = "timestamp, index, uuid, power.draw [W], utilization.gpu [%], memory.used [MiB]"
#: Local wall-clock start of the synthetic traces (UTC-4), and the same instant in UTC.
LOCAL0 = pd.Timestamp("2024-04-03 10:00:00")
UTC_OFFSET = -4.0
UTC0 = LOCAL0 - pd.Timedelta(hours=UTC_OFFSET)


def stamp(seconds: float) -> str:
    """nvidia-smi local timestamp text ``seconds`` after :data:`LOCAL0`."""
    t = LOCAL0 + pd.Timedelta(seconds=seconds)
    return t.strftime("%Y/%m/%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def smi_lines(powers: list[list[float]], period: float = 0.1, unit: str = " W") -> list[str]:
    """Energy-inference style rows: one per GPU per frame, no index column (``powers[frame][gpu]``)."""
    lines = []
    for k, frame in enumerate(powers):
        for g, w in enumerate(frame):
            lines.append(f"{stamp(k * period + 0.004 * g)}, {w:.2f}{unit}, 0 %, 0 %")
    return lines


def write(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + end)
    return path


LOG_HEADER = (
    "Timestamp,Phase,Runtime (s),GPU Energy (mJ),Output Token Limit,Number of Input Tokens,Iteration,Model,"
    "Number of GPUs,Prompt,Total Number of Tokens,Batch Size,System,CPU Core,GPU Total Memory (MB),"
    "GPU Used Memory (MB),CPU Energy (J)"
)


def log_row(ts: float, phase: str, runtime: float, energy_mj: float, *, limit: int = 32, prompt: int = 9,
            iteration: int = 0, model: str = "Llama-2-7b-chat-hf", system: str = "argonne-swing",
            memory: float = 40960.0) -> str:
    text = "startup" if phase in ("tokenizer", "model load") else "What is the largest city in France?"
    return (f"{ts},{phase},{runtime},{energy_mj:.0f},{limit},{prompt},{iteration},{model},1,{text},"
            f"{prompt + limit},32,{system},12,{memory},14025.6875,1.0")


def simple_run(folder: Path, *, header: bool = True, log_shift_h: float = 0.0) -> tuple[Path, Path]:
    """A one-GPU run: 60 s trace at 10 Hz (idle 50 W, load 60 W, 3 inferences at 300 W), its log and job_info.

    Timeline (s after LOCAL0): tokenizer 2.0-2.5, model load 2.5-10.0, inferences 12-20, 20.05-28, 35-40.
    """
    powers = []
    for k in range(600):
        s = k * 0.1
        w = 50.0
        if 2.0 <= s < 10.0:
            w = 60.0
        if 12.0 <= s < 20.0 or 20.05 <= s < 28.0 or 35.0 <= s < 40.0:
            w = 300.0
        powers.append([w])
    trace = write(folder / "nvidia-smi.csv", [HEADER_A, *smi_lines(powers)])
    (folder / "job_info.yaml").write_text(
        "job:\n  date: 2024-04-03\n  start_time: 10-00-00\n  details:\n    model_name: Llama-2-7b-chat-hf\n"
        "    system_name: argonne-swing\n    num_tokens: 32\n    batch_size: 32\n    prompt-A: What is it\n"
    )
    u0 = UTC0.timestamp() + log_shift_h * 3600
    rows = [
        log_row(u0 + 2.0, "tokenizer", 0.5, 25_000),
        log_row(u0 + 2.5, "model load", 7.5, 450_000),
        log_row(u0 + 12.0, "start-inference-A-0", 8.0, 2_400_000),
        log_row(u0 + 20.05, "start-inference-A-1", 7.95, 2_385_000, iteration=1),
        log_row(u0 + 35.0, "start-inference-A-2", 5.0, 1_500_000, iteration=2),
    ]
    log = write(folder / "Llama-2-7b-chat-hf-argonne-swing-1.csv", ([LOG_HEADER] if header else []) + rows)
    return trace, log
