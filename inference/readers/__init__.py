"""Readers, one module per format family, each returning the data model of ``wattscape.models.dims``."""
