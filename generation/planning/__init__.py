"""Planning analyses over a generated site trace, for datacenter operators and electric utilities.

Every analysis is a function that takes a site trace (``xr.Dataset`` in the form described in
``wattscape.models.dims``, "site traces") and returns xarray / pandas objects with units:

- :func:`oversubscription` / :func:`oversubscription_curve` — how many servers (or racks) fit under a
  power budget at risk ε, beside nameplate (TDP) sizing;
- :func:`modulation_table` — what a per-GPU or facility power cap does to peak, energy and throughput;
- :func:`load_characterisation` — 15-min / 1-h profiles with bands, peak, load factor, ramps,
  load-duration curve, TDP overstatement;
- :mod:`.exports` — CSV (kW, bands), Vessim CSV, OpenDSS loadshape;
- :func:`.report.write_planning` — all of it, with one self-contained HTML report.
"""

from .common import SiteTraceError, check_site_trace
from .load_profile import (
    load_characterisation,
    load_duration_curve,
    load_factor,
    peak_demand,
    profile,
    ramp_rates,
    summary_figures,
    tdp_overstatement,
)
from .modulation import modulation_table
from .oversubscription import oversubscription, oversubscription_curve, peak_curves
from .synthetic import example_site_trace

__all__ = [
    "SiteTraceError",
    "check_site_trace",
    "example_site_trace",
    "load_characterisation",
    "load_duration_curve",
    "load_factor",
    "modulation_table",
    "oversubscription",
    "oversubscription_curve",
    "peak_curves",
    "peak_demand",
    "profile",
    "ramp_rates",
    "summary_figures",
    "tdp_overstatement",
]
