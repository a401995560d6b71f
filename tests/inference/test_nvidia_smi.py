"""nvidia-smi CSV reader: both variants, on small hand-written files and one real multi-GPU trace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from wattscape.inference.readers.nvidia_smi import infer_gpu_count, read_nvidia_smi
from wattscape.models import dims as D

from tests.inference.ei_files import HEADER_A, HEADER_B, LOCAL0, UTC0, UTC_OFFSET, smi_lines, stamp, write


def test_energy_inference_style_one_gpu(tmp_path):
    lines = [HEADER_A, *smi_lines([[24.53], [30.0], [245.5], [31.25]])]
    lines[3] = f"{stamp(0.2)}, [N/A], 0 %, 0 %"
    ds, quirks = read_nvidia_smi(write(tmp_path / "a.csv", lines), utc_offset_hours=UTC_OFFSET)
    assert ds[D.POWER].dims == (D.GPU, D.TIME)
    assert ds[D.POWER].dtype == np.float32
    assert ds[D.POWER].attrs[D.UNITS] == D.WATT
    assert ds[D.TIME].attrs["timezone"] == "UTC"
    assert pd.Timestamp(ds[D.TIME].values[0]) == UTC0
    np.testing.assert_allclose(ds[D.POWER].values[0], [24.53, 30.0, np.nan, 31.25], rtol=1e-6)
    assert ds.attrs["sample_period_s"] == pytest.approx(0.1, abs=1e-3)
    assert any("1 power value(s) missing" in q for q in quirks)


def test_energy_inference_style_interleaved_gpus(tmp_path):
    frames = [[50 + k, 60 + k, 70 + k] for k in range(10)]
    path = write(tmp_path / "m.csv", [HEADER_A, *smi_lines(frames)])
    ds, quirks = read_nvidia_smi(path, n_gpus=3)
    assert ds.sizes == {D.GPU: 3, D.TIME: 10}
    np.testing.assert_allclose(ds[D.POWER].values[:, 4], [54, 64, 74])
    assert pd.Timestamp(ds[D.TIME].values[1]) == LOCAL0 + pd.Timedelta(seconds=0.1)  # first row of the frame
    assert quirks == []
    inferred, quirks = read_nvidia_smi(path)  # GPU count from the row-time clustering
    assert inferred.sizes[D.GPU] == 3
    assert any("GPU count 3 inferred" in q for q in quirks)


def test_truncated_last_frame_dropped(tmp_path):
    frames = [[50.0, 60.0] for _ in range(5)]
    lines = [HEADER_A, *smi_lines(frames)]
    lines = [*lines[:-1], "2024/04/03 10:00"]  # the last row of the last frame half-written
    ds, quirks = read_nvidia_smi(write(tmp_path / "t.csv", lines, end=""), n_gpus=2)
    assert ds.sizes[D.TIME] == 4
    assert any("half-written" in q and "line 11" in q for q in quirks)
    assert any("last frame incomplete" in q for q in quirks)


@pytest.mark.parametrize("unit", ["", " W"])
def test_query_gpu_with_index_and_uuid(tmp_path, unit):
    lines = [HEADER_B]
    for k in range(4):
        for g in (0, 1):
            lines.append(f"{stamp(0.25 * k)}, {g}, GPU-{g}abc, {100 + 10 * g + k:.2f}{unit}, 95 %, 70000 MiB")
    ds, quirks = read_nvidia_smi(write(tmp_path / "power.csv", lines))
    assert ds.sizes == {D.GPU: 2, D.TIME: 4}
    assert ds["uuid"].values.tolist() == ["GPU-0abc", "GPU-1abc"]
    np.testing.assert_allclose(ds[D.POWER].values[1], [110, 111, 112, 113])
    assert quirks == []


def test_query_gpu_gpu_missing_rows_are_nan(tmp_path):
    lines = [HEADER_B]
    for k in range(3):
        for g in (0, 1):
            if not (k == 2 and g == 1):
                lines.append(f"{stamp(0.25 * k)}, {g}, GPU-{g}, {100 + g:.2f}, 95, 7")
    ds, quirks = read_nvidia_smi(write(tmp_path / "p.csv", lines))
    assert np.isnan(ds[D.POWER].values[1, 2])
    assert any("unequal row counts" in q for q in quirks)


def test_infer_gpu_count_single_gpu():
    t = (np.arange(100) * 0.1e9).astype(np.int64)
    assert infer_gpu_count(t) == 1


@pytest.mark.realdata
def test_real_multi_gpu_trace(shared_data):
    idx = pd.read_csv(shared_data / "energy-inference" / "runs_index.csv")
    row = idx[idx["model"] == "Llama-2-70b-chat-hf"].iloc[0]
    ds, quirks = read_nvidia_smi(shared_data / "energy-inference" / row["trace_file"],
                                 utc_offset_hours=row["utc_offset_hours"], n_gpus=int(row["gpus_logged"]))
    assert ds.sizes[D.GPU] == 4
    # complete frames only: the truncated last row cuts the last frame (runs_index's n_frames counts time
    # clusters, which a frame that stalls mid-way splits in two, so it is not used here)
    assert ds.sizes[D.TIME] == row["n_rows"] // 4
    assert pd.Timestamp(ds[D.TIME].values[0]).timestamp() == pytest.approx(row["start_epoch_utc"], abs=1e-3)
    assert float(ds[D.POWER].max()) == pytest.approx(row["max_power_w"], abs=0.01)
    assert any("half-written" in q for q in quirks)
