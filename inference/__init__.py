"""From measurements to posterior: readers, state labelling, sufficient statistics, fitting, diagnostics."""
