"""experiments.all: the commands it runs (quick pass-through, shared cache) and its summary."""

from __future__ import annotations

from experiments import _common as C
from experiments import all as ALL


def test_quick_commands_share_the_cache_and_pass_quick():
    args = ALL.parse_args(["--quick", "--cache", "x/fits", "--out", "o"])
    cmds = dict(ALL.commands(args))
    assert list(cmds) == list(ALL.EXPERIMENTS)
    for name in ("accuracy", "acf_ceiling", "error_split", "generalisation", "calibration", "ablation"):
        a = cmds[name]
        assert "--quick" in a and a[a.index("--cache") + 1] == "x/fits" and a[a.index("--out") + 1] == "o"
    assert cmds["model_checks"][cmds["model_checks"].index("--sampler") + 1] == "fast"
    assert "--out-dir" in cmds["model_checks"] and "--hours" in cmds["planning"]
    for name in ("level_shape", "runtime_cells"):  # in-sample: no fold cache, few draws when quick
        assert "--cache" not in cmds[name] and cmds[name][cmds[name].index("--draws") + 1] == "10"
        assert cmds[name][cmds[name].index("--out") + 1] == "o"
    full = dict(ALL.commands(ALL.parse_args(["--fit", "nuts"])))
    acc = full["accuracy"]
    assert "--quick" not in acc and acc[acc.index("--fit") + 1] == "nuts"
    assert acc[acc.index("--name") + 1] == "accuracy_nuts" and "--name" not in cmds["accuracy"]
    assert full["model_checks"][:2] == ["--sampler", "numpyro"] and "--skip" not in full["model_checks"]
    assert [n for n, _ in ALL.commands(ALL.parse_args(["--skip", "planning", "ablation"]))] == [
        "accuracy", "acf_ceiling", "error_split", "generalisation", "calibration", "model_checks",
        "level_shape", "runtime_cells",
    ]


def test_summary_reports_each_wall_time_and_the_total(tmp_path, monkeypatch):
    ran = []

    def fake_run(name, argv):
        ran.append(name)
        wall = 10.0 if name == "accuracy" else 2.5
        return {"experiment": name, "command": f"experiments.{name}", "exit_status": 0, "wall_s": wall}

    monkeypatch.setattr(ALL, "run_one", fake_run)
    rc = ALL.main(["--quick", "--only", "accuracy", "calibration", "--out", str(tmp_path),
                   "--cache", str(tmp_path / "fits")])
    assert rc == 0 and ran == ["accuracy", "calibration"]
    md = (tmp_path / "experiments_all.md").read_text()
    assert "Command: `python -m experiments.all --quick" in md
    assert "| accuracy | 0 | 10 |" in md and "Total wall time: 12 s" in md
    table = C.read_result(tmp_path / "experiments_all.csv")
    assert list(table["experiment"]) == ["accuracy", "calibration"] and table["wall_s"].sum() == 12.5
    assert (tmp_path / "fits").is_dir()


def test_a_failing_experiment_sets_the_exit_status(tmp_path, monkeypatch):
    monkeypatch.setattr(
        ALL, "run_one",
        lambda name, argv: {"experiment": name, "command": name, "exit_status": 2, "wall_s": 1.0},
    )
    assert ALL.main(["--only", "planning", "--out", str(tmp_path), "--cache", str(tmp_path / "f")]) == 1
    assert "Failed: planning." in (tmp_path / "experiments_all.md").read_text()
