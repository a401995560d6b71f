"""One script per paper table / study; each writes ``results/<name>.csv`` and ``.md`` with its command."""

import os

# Parallel NUTS chains (numpyro) and generation chunks need more than one XLA CPU device; the flag only
# takes effect before JAX is first imported, which is why it is set here, before any experiment module.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    _flag = f"--xla_force_host_platform_device_count={max(1, min(2, os.cpu_count() or 1))}"
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_flag}".strip()
