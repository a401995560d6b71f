"""A non-editable wheel holds the three code folders under ``wattscape.*`` and the demo data, and imports."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
           str(REPO)]
    subprocess.run(cmd, check=True, cwd=out, capture_output=True, text=True, timeout=300)
    wheels = list(out.glob("wattscape-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for need in (
        "wattscape/models/dims.py",
        "wattscape/inference/readers/nvidia_smi.py",
        "wattscape/inference/catalog.py",
        "wattscape/generation/__init__.py",
        "wattscape/cli/ingest.py",
        "wattscape/data/demo/README.md",
        "wattscape/data/demo/energy-inference/runs_index.csv",
        "wattscape/data/demo/energy-inference/stats/falcon-7b-argonne-swing-gpu-large-1.csv",
        "wattscape/data/demo/energy-inference/plots/parameter-scale-input-test/raw_stats/mixtral-8x7b/"
        "2024-04-04/10-54-15/nvidia-smi.csv",
    ):
        assert need in names, need
    assert not any(n.startswith(("models/", "inference/", "generation/")) for n in names)


def test_wheel_imports_without_the_repository(wheel, tmp_path):
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    code = (
        "import sys, wattscape, wattscape.models.dims, wattscape.inference, wattscape.generation\n"
        "import wattscape.inference.catalog\n"
        "from wattscape.cli.demo import demo_data\n"
        f"assert wattscape.__file__.startswith({str(unpacked)!r}), wattscape.__file__\n"
        f"assert {str(REPO)!r} not in [p.rstrip('/') for p in sys.path], sys.path\n"
        "for m in (wattscape.models.dims, wattscape.inference, wattscape.generation):\n"
        f"    assert m.__file__.startswith({str(unpacked)!r}), m.__file__\n"
        "assert (demo_data() / 'runs_index.csv').is_file()\n"
        "from wattscape.cli import main\n"
        "assert main(['demo', '--out', 'demo-out', '--quiet']) == 0\n"
        "print(wattscape.models.dims.POWER)\n"
    )
    # -S: no site processing, so the editable install's path hooks (.pth) of this venv are not loaded;
    # the venv's site-packages is added plainly for the dependencies (numpy, pandas, ...).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(unpacked), sysconfig.get_paths()["purelib"]])
    res = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("power")
    assert "Mixtral-8x7B-v0.1" in res.stdout  # the demo ran from the wheel's own data
    assert (tmp_path / "demo-out" / "catalog" / "index.parquet").is_file()
