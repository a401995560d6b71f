"""From posterior to traces: traffic, serving, JAX simulators, aggregation topology, resampling, bands."""
