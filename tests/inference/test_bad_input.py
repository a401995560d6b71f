"""One test per failure mode of bad input: handled with a recorded quirk, or refused naming file and line."""

from __future__ import annotations

import os

import numpy as np
import pytest
from wattscape.inference.catalog import build_catalog
from wattscape.inference.readers import IngestError
from wattscape.inference.readers.energy_inference import read_inference_log, read_run
from wattscape.inference.readers.nvidia_smi import read_nvidia_smi
from wattscape.models import dims as D

from tests.inference.ei_files import HEADER_A, UTC_OFFSET, simple_run, smi_lines, stamp, write


def _trace(tmp_path, lines, name="nvidia-smi.csv", end="\n"):
    return write(tmp_path / name, lines, end=end)


def test_truncated_row(tmp_path):
    lines = [HEADER_A, *smi_lines([[50.0]] * 5), "2024/04/03 10:00:00.5"]
    ds, quirks = read_nvidia_smi(_trace(tmp_path, lines, end=""))
    assert ds.sizes[D.TIME] == 5
    assert quirks == ["last line 7 half-written (file copied while logging); dropped"]


def test_garbage_line_mid_file(tmp_path):
    lines = [HEADER_A, *smi_lines([[50.0]] * 20)]
    lines.insert(8, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver")
    ds, quirks = read_nvidia_smi(_trace(tmp_path, lines))
    assert ds.sizes[D.TIME] == 20
    assert any("malformed line(s) 9 skipped" in q for q in quirks)


def test_garbage_mostly_refused(tmp_path):
    lines = [HEADER_A, *smi_lines([[50.0]] * 5)] + ["garbage"] * 5
    with pytest.raises(IngestError, match=r"nvidia-smi.csv, line 7: 4 of 10 lines are malformed"):
        read_nvidia_smi(_trace(tmp_path, lines))


def test_damaged_row_in_multi_gpu_file_keeps_alignment(tmp_path):
    lines = [HEADER_A, *smi_lines([[50.0 + k, 60.0 + k] for k in range(6)])]
    lines[5] = lines[5][:18] + "#@!"  # frame 2, GPU 0 damaged
    ds, quirks = read_nvidia_smi(_trace(tmp_path, lines), n_gpus=2)
    assert ds.sizes[D.TIME] == 5
    np.testing.assert_allclose(ds[D.POWER].values[:, 2], [53.0, 63.0])  # frames after it stay aligned
    assert any("damaged row dropped (line(s) 6)" in q for q in quirks)


@pytest.mark.parametrize(
    ("header_unit", "value_unit", "written", "why"),
    [("mW", "", 250_000.0, "power logged in mW"),
     ("W", " kW", 0.25, "power logged in kW"),
     ("W", "", 250_000.0, "read as mW"),
     ("W", "", 0.25, "read as kW")],
)
def test_power_in_mw_or_kw(tmp_path, header_unit, value_unit, written, why):
    header = HEADER_A.replace("[W]", f"[{header_unit}]")
    lines = [header, *smi_lines([[written]] * 4, unit=value_unit)]
    ds, quirks = read_nvidia_smi(_trace(tmp_path, lines))
    np.testing.assert_allclose(ds[D.POWER].values, 250.0, rtol=1e-6)
    assert any(why in q for q in quirks)


def test_nan_values(tmp_path):
    lines = [HEADER_A, *smi_lines([[50.0]] * 4)]
    lines[2] = f"{stamp(0.1)}, [Not Supported], 0 %, 0 %"
    lines[3] = f"{stamp(0.2)}, nan, 0 %, 0 %"
    ds, quirks = read_nvidia_smi(_trace(tmp_path, lines))
    assert np.isnan(ds[D.POWER].values[0, 1:3]).all()
    assert any("2 power value(s) missing" in q for q in quirks)
    all_nan = [HEADER_A] + [f"{stamp(0.1 * k)}, [N/A], 0 %, 0 %" for k in range(3)]
    with pytest.raises(IngestError, match=r"all_nan\.csv: no power value"):
        read_nvidia_smi(_trace(tmp_path, all_nan, name="all_nan.csv"))


def test_duplicate_timestamps(tmp_path):
    lines = [HEADER_A, *smi_lines([[50.0], [60.0], [70.0], [80.0]])]
    lines.insert(3, lines[2].replace("60.00", "61.00"))  # line 4 repeats line 3's time
    ds, quirks = read_nvidia_smi(_trace(tmp_path, lines))
    np.testing.assert_allclose(ds[D.POWER].values[0], [50, 60, 70, 80])
    assert any("1 duplicate timestamp(s) (first at line 4)" in q for q in quirks)


def test_backwards_timestamps(tmp_path):
    lines = [HEADER_A, *smi_lines([[50.0], [60.0], [70.0], [80.0]])]
    lines[3], lines[4] = lines[4], lines[3]
    ds, quirks = read_nvidia_smi(_trace(tmp_path, lines))
    np.testing.assert_allclose(ds[D.POWER].values[0], [50, 60, 70, 80])
    assert np.all(np.diff(ds[D.TIME].values) > np.timedelta64(0))
    assert any("backwards 1 time(s) (first at line 5)" in q for q in quirks)


def test_empty_file(tmp_path):
    with pytest.raises(IngestError, match=r"empty.csv: empty file"):
        read_nvidia_smi(write(tmp_path / "empty.csv", [], end=""))
    with pytest.raises(IngestError, match=r"only.csv, line 2: no sample rows"):
        read_nvidia_smi(write(tmp_path / "only.csv", [HEADER_A]))
    with pytest.raises(IngestError, match=r"log.csv: empty log"):
        read_inference_log(write(tmp_path / "log.csv", [""]))


def test_missing_log(tmp_path):
    run = tmp_path / "run"
    trace, log = simple_run(run)
    log.unlink()
    cat = build_catalog([run], tmp_path / "cat", utc_offset_hours=UTC_OFFSET, progress=False)
    row = cat.index.iloc[0]
    assert row["status"] == "power-only: no per-inference log"
    assert row["state_labels"] == "none"
    with pytest.raises(IngestError, match=r"missing.csv: per-inference log not found"):
        build_catalog([run], tmp_path / "cat2", log=tmp_path / "missing.csv", progress=False)
    with pytest.raises(IngestError, match=r"gone.csv: per-inference log not found"):
        read_run(trace, log=run / "gone.csv", utc_offset_hours=UTC_OFFSET)


def test_gpu_count_does_not_divide_rows(tmp_path):
    lines = [HEADER_A, *smi_lines([[50.0, 60.0, 70.0]] * 4)][:-1]  # 11 complete rows, 3 GPUs
    with pytest.raises(IngestError, match=r"odd.csv: 11 sample rows are not a multiple of the 3 GPUs"):
        read_nvidia_smi(_trace(tmp_path, lines, name="odd.csv"), n_gpus=3)


def test_log_clock_hours_off(tmp_path):
    trace, log = simple_run(tmp_path, log_shift_h=3.0)
    expected = r"argonne-swing-1\.csv, line 4: .*log's clock runs 3 h ahead of the trace"
    with pytest.raises(IngestError, match=expected):
        read_run(trace, log=log, utc_offset_hours=UTC_OFFSET)


def test_error_leaves_no_partial_catalog(tmp_path):
    good = tmp_path / "good"
    simple_run(good)
    bad = tmp_path / "bad"
    simple_run(bad, log_shift_h=3.0)
    out = tmp_path / "cat"
    with pytest.raises(IngestError):
        build_catalog([good, bad], out, utc_offset_hours=UTC_OFFSET, progress=False)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    build_catalog([good], out, utc_offset_hours=UTC_OFFSET, progress=False)
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    with pytest.raises(IngestError):
        build_catalog([good, bad], out, utc_offset_hours=UTC_OFFSET, progress=False)
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(os.listdir(tmp_path)) == ["bad", "cat", "good"]
