"""``wattscape generate`` end to end on a tiny site (example parameter draws)."""

from __future__ import annotations

import numpy as np
import xarray as xr
from wattscape.models import dims as D

from wattscape.cli import main

from .test_site import SITE


def test_cli_generate_writes_trace(tmp_path, capsys):
    toml = tmp_path / "tiny.toml"
    toml.write_text(
        SITE.format(duration=300, dt=1.0, levels='["rack", "facility"]', draws=3, pue="pue = 1.25")
    )
    out = tmp_path / "trace.nc"
    assert (
        main(["generate", "example", "--scenario", str(toml), "--out", str(out), "--seed", "4", "--quiet"])
        == 0
    )
    text = capsys.readouterr().out
    assert "facility energy" in text and "TDP nameplate" in text
    ds = xr.open_dataset(out)
    assert ds.sizes[D.DRAW] == 3 and ds.attrs["seed"] == 4 and ds.attrs["posterior"] == "example"
    np.testing.assert_allclose(ds[D.FACILITY_POWER].values, ds[D.IT_POWER].values * 1.25)
    ds.close()
    assert main(["generate", "missing.nc", "--scenario", str(toml), "--out", str(out), "--quiet"]) == 1
    assert "not found" in capsys.readouterr().err


def test_cli_rejects_unknown_scenario(tmp_path, capsys):
    assert main(["generate", "example", "--scenario", "no_such_site", "--out", str(tmp_path / "x.nc")]) == 1
    assert "shipped" in capsys.readouterr().err
