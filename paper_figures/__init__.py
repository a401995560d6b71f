"""Paper figures: one script per figure, reading ``results/``, writing PNG + PDF to ``results/figures/``.

Run one with ``python -m paper_figures.<name> [--results DIR] [--out DIR]`` or all with
``python -m paper_figures.all``.
"""

#: The figure scripts, in the order ``paper_figures.all`` runs them.
FIGURES = (
    "traces", "acf", "acf_ceiling", "drive", "state_power", "level_shape", "runtime_cells", "forest",
    "baselines", "calibration", "facility",
)
