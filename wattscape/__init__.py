"""wattscape: probabilistic power traces of LLM inference, from one GPU to a datacenter site.

Sub-packages
------------
wattscape.models      what the model is: dims, configuration hierarchy, priors, PyMC model
wattscape.inference   from measurements to posterior: readers, state labelling, statistics, fitting
wattscape.generation  from posterior to traces: traffic, JAX simulators, aggregation, bands
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wattscape")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
