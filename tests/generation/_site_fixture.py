"""Small synthetic site traces for the planning tests (the builder lives in the package)."""

from __future__ import annotations

import xarray as xr
from wattscape.generation.planning.synthetic import example_site_trace


def small_site(**kw) -> xr.Dataset:
    """A 6-h, 32-server, 6-draw site at 60 s (with per-server power)."""
    args = dict(n_rows=2, racks_per_row=4, servers_per_rack=4, hours=6.0, period_s=60.0, n_draws=6, seed=1)
    args.update(kw)
    return example_site_trace(**args)
