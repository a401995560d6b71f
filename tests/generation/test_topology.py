"""Site scenarios in TOML (wattscape.generation.topology)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from wattscape.generation.topology import load_site, parse_site, shipped_scenarios
from wattscape.models import dims as D


def test_shipped_scenarios_parse():
    names = shipped_scenarios()
    assert {"one_server", "azure_day_1000", "mixed_fleet"} <= set(names)
    one = load_site("one_server")
    assert one.n_gpus == 8 and one.dt_s == 0.25 and one.n_steps == 2400 and D.GPU in one.levels
    day = load_site("azure_day_1000")
    assert day.n_servers == 1000 and day.n_steps == 86400 and np.ndim(day.pue) == 1
    mixed = load_site("mixed_fleet")
    assert len({f.gpu_model for f in mixed.fleet}) == 2 and len({f.llm for f in mixed.fleet}) == 2
    assert mixed.fleet[1].traffic["rate_per_server"] == 1.0 and mixed.fleet[1].traffic["kind"] == "diurnal"
    assert (mixed.server_fleet() == np.repeat([0, 1], 32)).all()
    assert mixed.level_index(D.ROW).max() == 1


def test_errors_name_the_key():
    base = load_site("one_server")
    text = Path(base.source).read_text()
    with pytest.raises(KeyError, match="duration_s"):
        parse_site(text.replace("duration_s = 600", ""), "x.toml")
    with pytest.raises(ValueError, match="tensor_parallel"):
        parse_site(text.replace("tensor_parallel = 8", "tensor_parallel = 3"), "x.toml")
    with pytest.raises(ValueError, match=r"x\.toml"):
        parse_site(text.replace("[layout]", "[layout"), "x.toml")
    with pytest.raises(ValueError, match="layout has 1"):
        parse_site(text.replace('name = "h100-70b-tp8"', 'name = "a"\nservers = 2'), "x.toml")
