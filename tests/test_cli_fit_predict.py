"""``wattscape fit`` and ``wattscape predict`` end to end on a synthetic catalog (fast path)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.inference.synthetic_catalog import SyntheticCatalog
from wattscape.cli import main


@pytest.fixture(scope="module")
def posterior(tmp_path_factory):
    import wattscape.inference.catalog as catalog_module

    mp = pytest.MonkeyPatch()
    mp.setattr(catalog_module, "load_catalog", lambda path: SyntheticCatalog(n_inferences=6, seed=4))
    out = tmp_path_factory.mktemp("fit") / "posterior.nc"
    try:
        rc = main(
            [
                "fit",
                "synthetic",
                "--out",
                str(out),
                "--fast",
                "--draws",
                "200",
                "--advi-iterations",
                "2000",
                "--advi-family",
                "meanfield",
                "--holdout",
                "r3",
            ]
        )
    finally:
        mp.undo()
    assert rc == 0
    return out


def test_fit_writes_posterior_and_diagnostics(posterior):
    assert posterior.is_file()
    diag = json.loads(posterior.with_suffix(".diagnostics.json").read_text())
    assert diag["sampler"] == "fast" and diag["n_parameters"] > 10
    from wattscape.models.hierarchical import PowerModel

    model = PowerModel.load(posterior)
    assert "r3" not in model.fit_data["run"].values  # --holdout honoured
    assert model.idata.attrs["advi_family"] == "meanfield"  # --advi-family honoured


def test_fit_family_choices_are_the_samplers():
    from wattscape.inference.fit import ADVI_FAMILIES

    from wattscape.cli.fit import ADVI_FAMILY_CHOICES

    assert ADVI_FAMILY_CHOICES == ADVI_FAMILIES


def test_fit_help_names_the_default_family(capsys):
    from wattscape.inference.fit import ADVI_FAMILY

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    words = {"meanfield": "mean field", "fullrank": "full rank"}[ADVI_FAMILY]
    assert f"(default: the package's, {words})" in " ".join(capsys.readouterr().out.split())


def test_predict_json(posterior, capsys):
    rc = main(
        [
            "predict",
            str(posterior),
            "--llm",
            "never-seen",
            "--params-b",
            "70",
            "--gpu",
            "H100",
            "--n-gpus",
            "4",
            "--batch",
            "64",
            "--json",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    cfg = out["configurations"][0]
    a = cfg["active_power_w"]
    assert set(a) == {"mean", "q05", "q50", "q95"}
    assert 0 < a["q05"] < a["q50"] < a["q95"] < 4 * 700 * 1.05 + 1e-6
    assert cfg["gpu_model"] == "H100-SXM5-80GB" and cfg["n_gpus"] == 4
    assert set(cfg["state_power_w"]) == {"idle", "active"}


def test_predict_configs_table_and_text(posterior, tmp_path, capsys):
    table = pd.DataFrame(
        {
            "llm": ["llm-a", "llm-b"],
            "params_b": [7.0, 13.0],
            "active_params_b": [7.0, 13.0],
            "precision": ["bfloat16", "bfloat16"],
            "gpu_model": ["A100-SXM4-40GB", "B200"],
            "n_gpus": [1, 8],
            "batch": [32, 128],
        }
    )
    path = tmp_path / "configs.csv"
    table.to_csv(path, index=False)
    assert main(["predict", str(posterior), "--configs", str(path)]) == 0
    text = capsys.readouterr().out
    assert "90 % interval" in text and "B200-SXM-180GB" in text and text.count("per-GPU power by state") == 2


def test_predict_needs_a_configuration(posterior, capsys):
    assert main(["predict", str(posterior), "--llm", "x"]) == 1
    assert "--params-b" in capsys.readouterr().err
