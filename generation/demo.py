"""The generation part of ``wattscape demo``: the shipped posterior (or example draws) through a small site.

Writes ``DIR/site_trace.nc`` and ``DIR/site_profile.png`` (facility power with its 5–95 % band, 1-min means)
and returns the summary printed by the demo (energy, peak, TDP nameplate).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from wattscape.models import dims as D

DEMO_SCENARIO = "demo_site"


def shipped_posterior() -> Path | None:
    """The posterior shipped under ``wattscape/data/posterior`` (first ``*.nc``), or None."""
    folder = Path(str(resources.files("wattscape") / "data" / "posterior"))
    files = sorted(folder.glob("*.nc")) if folder.is_dir() else []
    return files[0] if files else None


#: Where ``benchmarks/fit.py`` writes the full posterior (git-ignored) under a results folder.
FULL_POSTERIOR = "posterior_full.nc"


def results_posterior(results: str | Path) -> tuple[Path | None, bool]:
    """The posterior to read results with: ``<results>/posterior_full.nc`` when it exists, else the shipped
    one (None if neither); and whether it is the shipped one (a fresh clone has no full posterior)."""
    full = Path(results) / FULL_POSTERIOR
    if full.is_file():
        return full, False
    return shipped_posterior(), True


def plot_profile(ds, path: str | Path, period_s: float = 60.0) -> Path:
    """PNG of the facility profile: median and 5–95 % band over draws, ``period_s`` means, TDP line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wattscape.io import atomic_path

    from .resample import resample

    r = resample(ds[[D.FACILITY_POWER, "interval", "pue"]], period_s, quantiles=(0.05, 0.5, 0.95))
    band = r[D.FACILITY_POWER + D.BAND_SUFFIX] / 1e3
    t = r[D.TIME].values
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.fill_between(
        t, band.isel({D.QUANTILE: 0}), band.isel({D.QUANTILE: 2}), alpha=0.3, label="5–95 % of draws"
    )
    ax.plot(t, band.isel({D.QUANTILE: 1}), lw=1.2, label="median")
    ax.axhline(
        float(ds["facility" + D.NAMEPLATE_SUFFIX]) / 1e3, color="k", ls="--", lw=1, label="TDP nameplate"
    )
    ax.set_ylabel("facility power (kW)")
    ax.set_xlabel("time (UTC)")
    ax.set_title(f"{ds.attrs.get('scenario', '')}: facility power, {period_s:g} s means")
    ax.legend(loc="center left")
    fig.autofmt_xdate()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def site_demo(out: str | Path, *, seed: int = 0, progress: bool = True) -> str:
    """Run the demo site; write the trace and the profile under ``out``; return the printed summary."""
    from wattscape.cli.generate import summary

    from .aggregate import write_trace
    from .site import example_params_for_site, generate_site, posterior_params_for_site
    from .topology import load_site

    out = Path(out)
    site = load_site(DEMO_SCENARIO)
    post = shipped_posterior()
    if post is not None:
        params = posterior_params_for_site(str(post), site, 100, seed)
        source = f"shipped posterior {post.name}"
    else:
        params = example_params_for_site(site, 100, seed)
        source = "example parameter draws (no posterior shipped yet)"
    ds = generate_site(params, site, seed=seed, progress=progress)
    ds.attrs["posterior"] = source
    write_trace(ds, out / "site_trace.nc")
    plot_profile(ds, out / "site_profile.png")
    return (
        f"site {site.name}: {site.n_servers} servers, {site.n_gpus} GPUs, {site.duration_s / 3600:g} h at "
        f"{site.dt_s:g} s, {site.draws} draws of {source}\n{summary(ds)}\n"
        f"wrote {out / 'site_trace.nc'} and {out / 'site_profile.png'}"
    )
