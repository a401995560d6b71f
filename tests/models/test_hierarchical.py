"""The hierarchical power model: prior predictive dims, config_params, pooling, save/load, recovery."""

from __future__ import annotations

import json

import numpy as np
import pytest
from wattscape.inference.stats import SUMMARY, fit_data_from_catalog
from wattscape.models import dims as D
from wattscape.models.config import default_model_config, model_config_from
from wattscape.models.hierarchical import PowerModel, ServingConfig, summarise_prediction
from wattscape.models.params import validate_config_params

from tests.inference.synthetic_catalog import MAX_FRAC, TRUTH, SyntheticCatalog

SEEN = ServingConfig(llm="llm-a", params_b=7.0, gpu_model="A100-SXM4-40GB", task="synthetic-bench:chat")


@pytest.fixture(scope="module")
def fit_data():
    return fit_data_from_catalog(SyntheticCatalog(n_inferences=8, seed=3), progress=False)


@pytest.fixture(scope="module")
def fitted(fit_data):
    """A quick approximate (ADVI) fit shared by the tests of this module."""
    model = PowerModel()
    model.fit(fit_data, sampler="fast", draws=300, advi_iterations=4000, random_seed=1, progressbar=False)
    return model


def test_config_overrides_and_unknown_key():
    cfg = model_config_from(
        {"n_components": 2, "ar_atanh": {"dist": "Normal", "kwargs": {"mu": 1, "sigma": 2}, "dims": "state"}}
    )
    assert cfg["n_components"] == 2 and cfg["ar_atanh"].parameters["mu"] == 1
    assert default_model_config()["n_components"] == 1  # defaults untouched
    with pytest.raises(KeyError, match="no_such_prior"):
        model_config_from({"no_such_prior": 1})


def test_prior_predictive_dims(fit_data):
    model = PowerModel()
    prior = model.sample_prior_predictive(fit_data, samples=20)
    pp = prior.prior_predictive
    assert pp["seg_obs"].dims == (D.CHAIN, D.DRAW, D.SEGMENT)
    assert pp["summary_obs"].dims == (D.CHAIN, D.DRAW, SUMMARY)
    assert prior.prior["eta"].dims == (D.CHAIN, D.DRAW, D.CONFIG, D.STATE)
    assert prior.prior["b_llm"].dims == (D.CHAIN, D.DRAW, D.LLM)
    assert prior.prior["b_gpu_idle"].dims == (D.CHAIN, D.DRAW, D.GPU_MODEL)
    # physics prior: idle well below active, both below max_frac x TDP
    eta = prior.prior["eta"].mean((D.CHAIN, D.DRAW, D.CONFIG))
    assert float(eta.sel(state=D.IDLE)) < float(eta.sel(state=D.ACTIVE))


def test_accessors_say_fit_first():
    with pytest.raises(RuntimeError, match=r"call fit\(\) first"):
        _ = PowerModel().posterior


def test_layer_covariate():
    from wattscape.models.hierarchical import _layer_covariate

    got = _layer_covariate(["layer3", "tensor4", "none1", "layer4"], [3, 4, 1, 4])
    np.testing.assert_allclose(got, [np.log2(3), 0.0, 0.0, 2.0])


def test_layer_split_level_is_a_duty_cycle_of_the_single_gpu_level():
    """Known answer: idle 0.1 and busy 0.9 of max_frac·TDP on one GPU give 0.1 + 0.8/4 = 0.3 per GPU under a
    4-GPU layer split; idle and any non-split layout are unchanged; NumPy and PyTensor agree."""
    import pytensor.tensor as pt
    from wattscape.models.hierarchical import layer_split_eta

    logit = lambda f: np.log(f / (1 - f))  # noqa: E731
    eta = np.array([[logit(0.1), logit(0.9)], [logit(0.1), logit(0.9)], [logit(0.2), logit(0.6)]])
    n, busy = np.array([4.0, 1.0, 3.0]), np.array([0.0, 1.0])
    got = layer_split_eta(eta, 0, n, busy)
    want = np.array([[logit(0.1), logit(0.3)], [logit(0.1), logit(0.9)], [logit(0.2), logit(0.2 + 0.4 / 3)]])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(layer_split_eta(pt.as_tensor(eta), 0, n, busy, lib=pt).eval(), want, rtol=1e-9)
    np.testing.assert_allclose(layer_split_eta(eta, None, n, busy)[0, 1], logit(0.9 / 4))  # no idle state


def test_a_layer_split_config_reads_its_level_through_the_duty_cycle(fitted):
    """config_params of a 3-GPU layer split: with ``layer_duty_cycle`` on, its logit levels are those of the
    same posterior draws with it off, mapped by :func:`layer_split_eta`; a tensor split is not touched."""
    import copy

    from wattscape.models.hierarchical import layer_split_eta

    cfg = ServingConfig(llm="llm-a", params_b=40.0, gpu_model="A100-SXM4-40GB", n_gpus=3,
                        split=D.SPLIT_LAYER, tensor_parallel=1, task="synthetic-bench:chat")
    off = copy.copy(fitted)  # shares the posterior
    off.model_config = {**fitted.model_config, "layer_duty_cycle": False}
    on_eta, off_eta = fitted._config_quantities(cfg, 60, 4)["eta"], off._config_quantities(cfg, 60, 4)["eta"]
    idle = list(fitted.states).index(D.IDLE)
    busy = np.array([s != D.IDLE for s in fitted.states], dtype=float)
    np.testing.assert_allclose(on_eta, layer_split_eta(off_eta, idle, np.full(60, 3.0), busy), rtol=1e-12)
    assert (on_eta[:, 1] < off_eta[:, 1]).all() and np.array_equal(on_eta[:, idle], off_eta[:, idle])
    tensor = ServingConfig(llm="llm-a", params_b=40.0, gpu_model="A100-SXM4-40GB", n_gpus=4,
                           task="synthetic-bench:chat")
    np.testing.assert_array_equal(fitted._config_quantities(tensor, 60, 4)["eta"],
                                  off._config_quantities(tensor, 60, 4)["eta"])


def test_config_params_linearisation_and_context_latency(fitted):
    """Levels are linearised at the data's workload (given in attrs); at the model's reference they are
    exactly ``max_frac * TDP * sigmoid(eta)``; the context and prompt-attention latency terms are positive."""
    x0 = fitted.linearisation_workload()
    cp = fitted.config_params(SEEN, n_draws=40, seed=2)
    np.testing.assert_allclose(cp.attrs["covariate_ref"], x0)
    ref = list(fitted.model_config["covariate_ref"])
    at_ref = fitted.config_params(SEEN, n_draws=40, seed=2, covariate_ref=ref)
    assert at_ref.attrs["covariate_ref"] == ref
    q = fitted._config_quantities(SEEN, 40, 2)
    want = MAX_FRAC * 400.0 / (1 + np.exp(-q["eta"][:, 1]))
    np.testing.assert_allclose(at_ref["level_loc"].sel(state=D.ACTIVE, component=0).values, want, rtol=1e-9)
    assert (cp["itl_ctx_s"] > 0).all() and cp["itl_ctx_s"].attrs[D.UNITS] == D.SECOND
    assert (cp["itl_ctx2_s"] > 0).all() and cp["itl_ctx2_s"].attrs[D.UNITS] == D.SECOND
    assert (cp["prefill_attn_s"] > 0).all() and cp["prefill_attn_s"].attrs[D.UNITS] == D.SECOND


def test_config_params_contract(fitted):
    cp = fitted.config_params(SEEN, n_draws=50, seed=0)
    validate_config_params(cp)
    assert list(cp[D.STATE].values) == list(D.STATES_ACTIVE)
    assert cp.sizes[D.DRAW] == 50
    loc = cp["level_loc"].mean(D.DRAW)
    assert float(loc.sel(state=D.IDLE).max()) < float(loc.sel(state=D.ACTIVE).min())
    assert (cp["transition"].sel(state=D.IDLE, state_to=D.ACTIVE) == 1).all()
    assert cp.attrs["tdp_w"] == 400.0 and cp.attrs["seen_config"] == 1
    assert cp.attrs["meter_window_s"] == 0.025  # A100 (GA100): part-time 25 ms averaging
    # unseen card and LLM still follow the contract
    validate_config_params(
        fitted.config_params(
            {"llm": "new-llm", "params_b": 70.0, "gpu_model": "B200-SXM-180GB", "n_gpus": 8}, n_draws=10
        )
    )


def test_residual_scale_gives_the_total_its_fitted_variance(fitted):
    """The fitted residual sd is that of the GPU-mean; ``resid_scale`` (per GPU, GPUs independent) is it
    × √n_gpus, so the total over n GPUs has sd n × the fitted one."""
    cfg = ServingConfig(
        llm="llm-c", params_b=40.0, gpu_model="A100-SXM4-40GB", n_gpus=3, split=D.SPLIT_LAYER,
        task="synthetic-bench:chat",
    )
    q = fitted._config_quantities(cfg, 30, 4)
    cp = fitted.config_params(cfg, n_draws=30, seed=4)
    np.testing.assert_allclose(cp["resid_scale"].values, q["resid_sd"] * 400.0 * np.sqrt(3), rtol=1e-9)


def test_residual_sd_of_a_new_configuration_stops_at_the_physical_bound(fitted):
    """A new configuration draws its residual sd from a log-normal population; a draw in its tail beyond
    max_frac/2 of TDP (the largest sd of power bounded in [0, max_frac·TDP]) is cut there, so the replay
    never gets a residual larger than the card."""
    import copy

    new = ServingConfig(
        llm="never-seen", params_b=7.0, gpu_model="A100-SXM4-40GB", task="synthetic-bench:chat"
    )
    wide = copy.copy(fitted)
    post = fitted.idata.posterior.copy()
    post["resid_group_dev_sigma"] = post["resid_group_dev_sigma"] * 0 + 25.0  # a population with a huge tail
    wide.idata = fitted.idata.copy()
    wide.idata.posterior = post
    q = wide._config_quantities(new, 200, 0)
    bound = 0.5 * float(fitted.model_config["max_frac"])
    active = fitted.states.index(D.ACTIVE)
    assert q["resid_sd"].max() == bound  # some draws are cut ...
    assert q["resid_sd"][:, active].min() < bound  # ... not all
    validate_config_params(wide.config_params(new, n_draws=200, seed=0))


def test_unseen_llm_and_gpu_get_wider_intervals(fitted):
    def width(cfg):
        s = summarise_prediction(fitted.predict_config(cfg, batch=32, n_draws=2000, seed=2))["active_power_w"]
        return (s["q95"] - s["q05"]) / s["q50"]

    seen = width(SEEN)
    new_llm = width(
        ServingConfig(llm="never-seen", params_b=7.0, gpu_model="A100-SXM4-40GB", task="synthetic-bench:chat")
    )
    new_gpu = width(
        ServingConfig(llm="llm-a", params_b=7.0, gpu_model="L40S-48GB", task="synthetic-bench:chat")
    )
    assert new_llm > seen and new_gpu > seen


def test_unseen_pair_of_seen_llm_and_card_draws_its_interaction(fitted):
    """llm-b and A100-PCIe-40GB are both fitted, never together: the pair draws a new ``b_cfg``."""
    post = fitted.posterior
    assert "b_cfg" in post and post["b_cfg"].dims[-1] == D.CONFIG
    assert "llm-b|A100-PCIe-40GB|none1|float16" not in [str(c) for c in post[D.CONFIG].values]

    def busy_logit_sd(gpu):
        cfg = ServingConfig(llm="llm-b", params_b=13.0, gpu_model=gpu, task="synthetic-bench:chat")
        ds = fitted.config_params(cfg, n_draws=2000, seed=4)
        return float(ds["level_logit_loc"].sel(state=D.ACTIVE).isel(component=0).std())

    sigma = float(post["b_cfg_sigma"].mean())
    seen, unseen = busy_logit_sd("A100-SXM4-40GB"), busy_logit_sd("A100-PCIe-40GB")
    assert unseen**2 > seen**2 + 0.5 * sigma**2


def test_save_load_round_trip_and_refusal(fitted, tmp_path):
    path = fitted.save(tmp_path / "post.nc")
    loaded = PowerModel.load(path)
    assert loaded.id == fitted.id
    assert "fit_data" in loaded.idata.groups()
    np.testing.assert_allclose(loaded.posterior["base"].values, fitted.posterior["base"].values)
    a = loaded.config_params(SEEN, n_draws=20, seed=5)["level_loc"].values
    b = fitted.config_params(SEEN, n_draws=20, seed=5)["level_loc"].values
    np.testing.assert_allclose(a, b)
    # a file whose stored id does not match its configuration + this version is refused
    idata = loaded.idata
    idata.attrs["model_id"] = "0123456789abcdef"
    with pytest.raises(ValueError, match="does not match"):
        PowerModel.from_idata(idata)
    cfg = json.loads(fitted.idata.attrs["model_config"])
    cfg["max_frac"] = 1.5  # a different model under the old id
    idata.attrs["model_id"] = fitted.id
    idata.attrs["model_config"] = json.dumps(cfg)
    with pytest.raises(ValueError, match="does not match"):
        PowerModel.from_idata(idata)
    cfg["b_renamed_since"] = cfg.pop("max_frac")  # a variable this version does not know
    idata.attrs["model_config"] = json.dumps(cfg)
    with pytest.raises(ValueError, match=r"another model version.*b_renamed_since"):
        PowerModel.from_idata(idata, source="old.nc")


def test_two_components_build_and_order(fit_data):
    model = PowerModel({"n_components": 2})
    prior = model.sample_prior_predictive(fit_data, samples=10)
    off = prior.prior["component_offset"]
    assert (off.sel(component=0) <= off.sel(component=1)).all()


@pytest.mark.slow
def test_parameter_recovery():
    """NUTS on data simulated with the model's structure recovers its parameters.

    Tolerances: AR coefficient ±0.1, active residual sd ±25 %, workload slope on log2 prompt ±0.08
    (logit per doubling), between-segment sd ±0.06, a configuration's active level ±0.2 (logit),
    per-token latency ±30 %.
    """
    fd = fit_data_from_catalog(SyntheticCatalog(n_inferences=40, seed=11), progress=False)
    model = PowerModel()
    model.fit(fd, sampler="numpyro", draws=500, tune=500, chains=2, random_seed=3, progressbar=False)
    post = model.posterior.mean((D.CHAIN, D.DRAW))
    assert abs(float(post["ar_coef"].sel(state=D.ACTIVE)) - TRUTH["ar"]) < 0.1
    assert abs(float(post["ar_coef"].sel(state=D.IDLE))) < 0.15  # idle noise simulated white
    cid = "llm-a|A100-SXM4-40GB|none1|float16"  # run r0
    sd = np.exp(
        post["log_resid_scale"].sel(state=D.ACTIVE) + post["resid_group_dev"].sel(resid_group="r0|active")
    )
    assert abs(float(sd) / TRUTH["resid_sd"] - 1) < 0.25
    # the 3-GPU run: its GPUs' own swings (sd 0.1) cancel in the mean; the GPU-mean's sd is recovered
    sd3 = np.exp(
        post["log_resid_scale"].sel(state=D.ACTIVE) + post["resid_group_dev"].sel(resid_group="r4|active")
    )
    assert abs(float(sd3) / TRUTH["resid_sd"] - 1) < 0.25
    ar3 = np.tanh(post["ar_atanh"].sel(state=D.ACTIVE) + post["ar_group_dev"].sel(resid_group="r4|active"))
    assert abs(float(ar3) - TRUTH["ar"]) < 0.1
    slope = post["level_slope"].sel(state=D.ACTIVE, covariate="log2_context_tokens")
    assert abs(float(slope) - TRUTH["slope_context"]) < 0.08
    level_sd = np.exp(
        post["log_level_scale"].sel(state=D.ACTIVE) + post["level_group_dev"].sel(level_group="r0|active")
    )
    assert abs(float(level_sd) - TRUTH["level_sd"]) < 0.06
    want = TRUTH["eta_active"] + TRUTH["gpu_active"]["A100-SXM4-40GB"] + TRUTH["llm_active"]["llm-a"]
    assert abs(float(post["eta"].sel(config=cid, state=D.ACTIVE)) - want) < 0.2
    itl = np.exp(float(post["log_itl_cfg"].sel(config=cid)))
    itl_at_32 = itl * (1 + np.exp(float(post["log_itl_per_seq_ratio"])) * 32)
    assert abs(itl_at_32 / (TRUTH["itl"] * 1.32) - 1) < 0.3
    assert MAX_FRAC == model.model_config["max_frac"]


def test_group_deviation_of_a_seen_configuration_without_a_group_is_zero(fitted):
    """Runs fitted without a group of their own in a state sit at the pooled value (deviation 0); only a
    new configuration draws from the population."""
    from wattscape.models.hierarchical import RESID_GROUP

    post, rng = fitted._draws(20, 0)
    labels = [str(v) for v in post["resid_group_dev"][RESID_GROUP].values]
    fd = fitted.fit_data
    cfgs = [str(c) for c in fd[D.CONFIG].values]
    run_cfg = {str(r): cfgs[i] for r, i in zip(fd[D.RUN].values, fd["run_config"].values, strict=True)}
    idle = fitted.states.index(D.IDLE)
    # a configuration whose runs all lack an idle group (r1 in the synthetic catalog)
    cid = next(
        c for c in set(run_cfg.values())
        if not any(f"{r}|{D.IDLE}" in labels for r, rc in run_cfg.items() if rc == c)
    )
    dev = fitted._group_dev(post, "resid_group_dev", RESID_GROUP, cid, rng)
    np.testing.assert_array_equal(dev[:, idle], 0.0)
    new = fitted._group_dev(post, "resid_group_dev", RESID_GROUP, "never|seen|none1|float16", rng)
    assert np.std(new[:, idle]) > 0  # three runs have an idle group: a new configuration draws


def test_a_lone_group_in_a_state_is_pooled_not_grouped(fit_data):
    """Only one run with enough idle lag pairs: its deviation and the pooled idle value would be one
    quantity (the ridge a NUTS chain wandered along to an idle residual sd of 6.6 kW), so idle gets no
    groups; a state where two runs qualify keeps both."""
    ds = fit_data.ds.copy()
    model = PowerModel()
    idle, active = model.states.index(D.IDLE), model.states.index(D.ACTIVE)
    lag_n = np.zeros_like(ds["lag_n"].values)
    lag_n[0, idle] = 500  # only run 0 qualifies in idle
    lag_n[:2, active] = 500  # runs 0 and 1 qualify in active
    ds["lag_n"] = (ds["lag_n"].dims, lag_n)
    groups = model._groups(ds)
    runs = [str(r) for r in ds[D.RUN].values]
    assert groups["resid_labels"] == [f"{runs[0]}|{D.ACTIVE}", f"{runs[1]}|{D.ACTIVE}"]


def test_group_population_sd_is_one_per_state(fitted):
    post = fitted.idata.posterior
    for name in ("resid_group_dev_sigma", "ar_group_dev_sigma", "level_group_dev_sigma"):
        assert post[name].dims[-1] == D.STATE, name
        assert list(post[name][D.STATE].values) == list(fitted.states)


def test_groups_are_sampled_as_values_and_their_deviations_are_deterministic(fitted, monkeypatch):
    """The free variables are the groups' own values (``loc[state] + dev``); the deviations the generators
    read are deterministics equal to value − loc, draw by draw; the layout is part of the model id."""
    import wattscape.models.hierarchical as H

    model = fitted.model
    free = {v.name for v in model.free_RVs}
    det = {v.name for v in model.deterministics}
    post = fitted.idata.posterior
    pairs = [
        ("level_group_dev", "level_group_log_scale", "log_level_scale", "level_group"),
        ("resid_group_dev", "resid_group_log_scale", "log_resid_scale", "resid_group"),
        ("ar_group_dev", "ar_group_atanh", "ar_atanh", "resid_group"),
    ]
    for dev, value, loc, dim in pairs:
        if dev not in post:  # no (run, state) qualified for this kind of group in the synthetic catalog
            continue
        assert value in free and dev in det and dev not in free, dev
        state = [str(label).rsplit("|", 1)[1] for label in post[dim].values]
        want = post[value].values - post[loc].sel(state=state).values
        np.testing.assert_allclose(post[dev].values, want, rtol=1e-5, atol=1e-6)
    assert "resid_group_dev" in post  # the synthetic runs have enough lag pairs: the check above ran
    old_id = fitted.id
    monkeypatch.setattr(H, "PARAMETERISATION", H.PARAMETERISATION - 1)
    assert fitted.id != old_id


def test_card_effects_nest_in_the_gpu_generation(fitted):
    """Every card effect is its generation's effect plus the card's deviation (both fitted)."""
    from wattscape.models.config import CARD_EFFECTS
    from wattscape.models.hardware import gpu_spec

    post = fitted.idata.posterior
    gens = [str(g) for g in post[D.GPU_GENERATION].values]
    assert {"ampere", "volta", "hopper"} <= set(gens)  # A100 ×2, V100, H100 (summaries) in the catalog
    for name in CARD_EFFECTS:
        assert post[f"{name}_gen"].dims[-1] == D.GPU_GENERATION, name
        for card in post[D.GPU_MODEL].values:
            gen = gpu_spec(str(card))["generation"]
            total = post[name].sel({D.GPU_MODEL: card})
            parts = post[f"{name}_gen"].sel({D.GPU_GENERATION: gen}) + post[f"{name}_card"].sel(
                {D.GPU_MODEL: card}
            )
            np.testing.assert_allclose(total.values, parts.values, rtol=1e-9, atol=1e-12, err_msg=name)


def test_a_new_card_keeps_what_its_generation_showed():
    """Known answer on a hand-made posterior: a new card of a fitted generation is that generation's
    effect plus a card deviation; a card of a generation never fitted draws the generation too; a fitted
    card reads its own posterior; a posterior without generations draws from all cards."""
    import xarray as xr

    n = 4000
    post = xr.Dataset(
        {
            "b_gpu": ((D.DRAW, D.GPU_MODEL), np.full((n, 1), -0.7)),
            "b_gpu_gen": ((D.DRAW, D.GPU_GENERATION), np.full((n, 1), 1.5)),
            "b_gpu_card_sigma": ((D.DRAW,), np.full(n, 0.05)),
        },
        coords={D.DRAW: np.arange(n), D.GPU_MODEL: ["A100-SXM4-40GB"], D.GPU_GENERATION: ["ampere"]},
    )
    model, rng = PowerModel(), np.random.default_rng(0)
    np.testing.assert_array_equal(model._card(post, "b_gpu", "A100-SXM4-40GB", "ampere", rng), -0.7)
    sibling = model._card(post, "b_gpu", "A100-SXM4-80GB", "ampere", rng)
    assert abs(sibling.mean() - 1.5) < 0.01 and abs(sibling.std() - 0.05) < 0.005
    stranger = model._card(post, "b_gpu", "H100-SXM5-80GB", "hopper", rng)
    gen_sd = float(model.model_config["b_gpu_gen"].parameters["sigma"])  # fixed: no hyperprior
    assert abs(stranger.mean()) < 0.03 and abs(stranger.std() - np.hypot(gen_sd, 0.05)) < 0.02
    old = post.drop_vars("b_gpu_gen").rename({"b_gpu_card_sigma": "b_gpu_sigma"})
    flat = model._card(old, "b_gpu", "A100-SXM4-80GB", "ampere", rng)
    assert abs(flat.mean()) < 0.01 and abs(flat.std() - 0.05) < 0.005


def test_a_new_llm_keeps_its_attention_layout(fitted):
    """Two LLMs the fit never saw, alike but for their query heads (falcon-7b 71, Llama-2-7B 32, both 32
    layers; same parameter count given here): with the same seed their prompt-attention costs differ by
    exactly 71/32; with ``attention_layout`` off they are equal."""
    import copy

    def attn(model, llm):
        cfg = ServingConfig(llm=llm, params_b=7.0, gpu_model="A100-SXM4-40GB", task="synthetic-bench:chat")
        return model.config_params(cfg, n_draws=50, seed=3)["prefill_attn_s"].values

    np.testing.assert_allclose(attn(fitted, "falcon-7b") / attn(fitted, "Llama-2-7b-chat-hf"), 71 / 32)
    off = copy.copy(fitted)  # shares the posterior
    off.model_config = {**fitted.model_config, "attention_layout": False}
    np.testing.assert_allclose(attn(off, "falcon-7b"), attn(off, "Llama-2-7b-chat-hf"))


def test_layout_decode_effects_nest_in_the_split_kind(fitted):
    """``itl_par`` of every fitted layout is its split kind's effect plus the layout's deviation."""
    post = fitted.idata.posterior
    layouts = [str(p) for p in post[D.PARALLEL].values]
    assert post["itl_par_kind"].dims[-1] == D.PARALLEL_KIND and len(layouts) >= 2
    for lab in layouts:
        kind = lab.rstrip("0123456789")
        parts = post["itl_par_kind"].sel({D.PARALLEL_KIND: kind}) + post["itl_par_layout"].sel(
            {D.PARALLEL: lab}
        )
        np.testing.assert_allclose(post["itl_par"].sel({D.PARALLEL: lab}).values, parts.values, atol=1e-12)


def test_a_new_layout_keeps_what_its_split_kind_showed():
    """Known answer on a hand-made posterior: a new GPU count of a fitted split kind (layer4 beside a
    fitted layer3) is that kind's effect plus a layout deviation of sd ``itl_par_layout_sigma``; a fitted
    layout reads its own posterior; a new kind draws from the kinds' population (the prior's fixed sd);
    a posterior fitted before the nesting draws from all layouts."""
    import xarray as xr

    n = 20_000
    post = xr.Dataset(
        {
            "itl_par": ((D.DRAW, D.PARALLEL), np.tile([-0.1, 0.6], (n, 1))),
            "itl_par_kind": ((D.DRAW, D.PARALLEL_KIND), np.tile([0.5, -0.05], (n, 1))),
            "itl_par_layout_sigma": ((D.DRAW,), np.full(n, 0.1)),
        },
        coords={D.DRAW: np.arange(n), D.PARALLEL: ["none1", "layer3"], D.PARALLEL_KIND: ["layer", "none"]},
    )
    model, rng = PowerModel(), np.random.default_rng(0)

    def effect(p, layout, kind):
        return model._nested(
            p, "itl_par", D.PARALLEL, layout, ("itl_par_kind", D.PARALLEL_KIND, kind), "itl_par_layout", rng
        )

    np.testing.assert_array_equal(effect(post, "layer3", "layer"), 0.6)
    sibling = effect(post, "layer4", "layer")
    assert abs(sibling.mean() - 0.5) < 0.01 and abs(sibling.std() - 0.1) < 0.005
    stranger = effect(post, "tensor4", "tensor")
    kind_sd = float(model.model_config["itl_par_kind"].parameters["sigma"])
    assert abs(stranger.mean()) < 0.02 and abs(stranger.std() - np.hypot(kind_sd, 0.1)) < 0.02
    old = post.drop_vars("itl_par_kind").rename({"itl_par_layout_sigma": "itl_par_sigma"})
    flat = effect(old, "layer4", "layer")
    assert abs(flat.mean()) < 0.01 and abs(flat.std() - 0.1) < 0.005


def test_a_new_llm_keeps_its_context_width(fitted):
    """Two LLMs the fit never saw, alike but for their attention width (Llama-2-70B 80 layers x 64 heads,
    Llama-2-7B 32 x 32, both 128 wide; the same parameter count given here): with the same seed both
    decode context costs differ by exactly 80·64 / (32·32); with ``context_layout`` off they are equal."""
    import copy

    def costs(model, llm):
        cfg = ServingConfig(llm=llm, params_b=7.0, gpu_model="A100-SXM4-40GB", task="synthetic-bench:chat")
        cp = model.config_params(cfg, n_draws=50, seed=3)
        return cp["itl_ctx_s"].values, cp["itl_ctx2_s"].values

    wide, narrow = costs(fitted, "Llama-2-70b-chat-hf"), costs(fitted, "Llama-2-7b-chat-hf")
    for w, v in zip(wide, narrow, strict=True):
        np.testing.assert_allclose(w / v, 80 * 64 / (32 * 32))
    off = copy.copy(fitted)  # shares the posterior
    off.model_config = {**fitted.model_config, "context_layout": False}
    for w, v in zip(costs(off, "Llama-2-70b-chat-hf"), costs(off, "Llama-2-7b-chat-hf"), strict=True):
        np.testing.assert_allclose(w, v)


def test_a_new_card_keeps_its_generations_latency_effects(fitted):
    """A100-SXM4-80GB is not in the fit, its generation (ampere) is: its prompt-token cost is the roofline
    times the pooled efficiency, plus the ampere effect ``prefill_gpu_gen``, plus a card deviation of sd
    ``prefill_gpu_card_sigma`` (all posterior draws in order, so draw ``i`` of the prediction is draw ``i``
    of the posterior)."""
    from wattscape.inference.stats import DEFAULT_PRECISION
    from wattscape.models.hardware import gpu_spec, latency_rooflines

    post = fitted.posterior.stack(sample=(D.CHAIN, D.DRAW))
    assert "A100-SXM4-80GB" not in [str(g) for g in post[D.GPU_MODEL].values]
    cfg = ServingConfig(llm="llm-a", params_b=7.0, gpu_model="A100-SXM4-80GB", task="synthetic-bench:chat")
    ds = fitted.config_params(cfg, n_draws=None, seed=0)
    r = cfg.resolved()
    _, roof_pf = latency_rooflines(
        r.params_b, r.active_params_b, gpu_spec(r.gpu_model), r.precision or DEFAULT_PRECISION, 1, 1
    )
    dev = (
        np.log(ds["prefill_s_per_token"].values)
        - roof_pf
        - post["log_prefill_s_per_token"].values
        - post["prefill_gpu_gen"].sel({D.GPU_GENERATION: "ampere"}).values
    )
    sd = float(np.sqrt(np.mean(post["prefill_gpu_card_sigma"].values ** 2)))
    assert abs(dev.mean()) < 4 * sd / np.sqrt(dev.size)
    assert 0.8 * sd < dev.std() < 1.2 * sd


def _active_loc_sd(model, cfg, seed=5):
    ds = model.config_params(cfg, n_draws=2000, seed=seed)
    return float(ds["level_logit_loc"].sel(state=D.ACTIVE).isel(component=0).std())


def test_a_prediction_is_a_new_run_and_draws_its_run_effect(fitted):
    """``b_run`` (one per fitted run) moves a run's busy level; a prediction draws a new run's from the
    population, so its spread holds ``b_run_sigma``."""
    post = fitted.posterior
    assert post["b_run"].dims[-1] == D.RUN
    assert sorted(str(r) for r in post[D.RUN].values) == sorted(str(r) for r in fitted.fit_data[D.RUN].values)
    with_run = _active_loc_sd(fitted, SEEN)
    sigma = post["b_run_sigma"]
    fitted.idata.posterior["b_run_sigma"] = sigma * 0.0
    try:
        without = _active_loc_sd(fitted, SEEN)
    finally:
        fitted.idata.posterior["b_run_sigma"] = sigma
    assert with_run**2 > without**2 + 0.5 * float(sigma.mean()) ** 2


def test_dwell_sd_of_a_configuration_is_its_runs_own(fitted):
    """The replay's dwell sd of a fitted configuration: the pooled sd times exp(mean of its runs' dwell
    group deviations), as the dwell likelihood gives each run."""
    from wattscape.models.hierarchical import LEVEL_GROUP

    post = fitted.posterior
    assert "dwell_group_dev" in post and post["dwell_group_dev"].dims[-1] == LEVEL_GROUP
    cid = "llm-a|A100-SXM4-40GB|none1|float16"
    seen = ServingConfig(llm="llm-a", params_b=7.0, gpu_model="A100-SXM4-40GB", precision="float16")
    ds = fitted.config_params(seen, n_draws=None, seed=0)
    assert ds.attrs["seen_config"] == 1
    mine = [str(g) for g in post[LEVEL_GROUP].values if g.endswith(f"|{D.ACTIVE}")]
    fd = fitted.fit_data
    cfgs = [str(c) for c in fd[D.CONFIG].values]
    run_cfg = {str(r): cfgs[i] for r, i in zip(fd[D.RUN].values, fd["run_config"].values, strict=True)}
    mine = [g for g in mine if run_cfg[g.rsplit("|", 1)[0]] == cid]
    assert mine
    dev = post["dwell_group_dev"].sel({LEVEL_GROUP: mine}).mean(LEVEL_GROUP)
    want = post["dwell_sigma"].sel(state=D.ACTIVE) * np.exp(dev)
    got = ds["dwell_sigma"].sel(state=D.ACTIVE).values
    np.testing.assert_allclose(np.sort(got), np.sort(want.values.ravel()), rtol=1e-6)


def test_a_new_llm_draws_its_quadratic_context_cost(fitted):
    """``ctx2_llm``: the decode step's cost per squared context token has an LLM effect; an LLM nobody
    measured draws it from the population (same posterior draws: the shared parts cancel)."""
    assert fitted.posterior["ctx2_llm"].dims[-1] == D.LLM

    def log_cost(llm):
        cfg = ServingConfig(llm=llm, params_b=7.0, gpu_model="A100-SXM4-40GB", task="synthetic-bench:chat")
        return np.log(fitted.config_params(cfg, n_draws=2000, seed=6)["itl_ctx2_s"].values)

    sigma = float(fitted.posterior["ctx2_llm_sigma"].mean())
    assert np.var(log_cost("never-seen") - log_cost("llm-a")) > 0.5 * sigma**2


def test_a_new_llm_draws_its_context_cost(fitted):
    """``ctx_llm``: the decode context cost has an LLM effect; an LLM nobody measured draws it."""
    assert fitted.posterior["ctx_llm"].dims[-1] == D.LLM

    def spread(llm):
        cfg = ServingConfig(llm=llm, params_b=7.0, gpu_model="A100-SXM4-40GB", task="synthetic-bench:chat")
        return float(np.log(fitted.config_params(cfg, n_draws=2000, seed=6)["itl_ctx_s"]).std())

    sigma = float(fitted.posterior["ctx_llm_sigma"].mean())
    assert spread("never-seen") ** 2 > spread("llm-a") ** 2 + 0.5 * sigma**2


def test_the_fast_path_fits_every_pooled_effect_centred(fitted, fit_data, tmp_path):
    """Mean-field ADVI fits the effects themselves (``FIT_LAYOUTS``), NUTS the layout of models/config.py;
    the same distribution, so the model id does not change, and a loaded fast fit rebuilds its own layout."""
    from pymc_extras.prior import Prior
    from wattscape.models.hierarchical import centred_config

    config = default_model_config()
    noncentred = [k for k, v in config.items() if isinstance(v, Prior) and not v.centered]
    assert {"b_llm", "b_cfg", "b_run", "itl_llm"} <= set(noncentred)
    centred = centred_config(config)
    assert all(centred[k].centered and centred[k].dims == config[k].dims for k in noncentred)
    assert centred["b_llm"].parameters["sigma"].to_dict() == config["b_llm"].parameters["sigma"].to_dict()
    assert not config["b_llm"].centered  # the input is left alone
    free = {v.name for v in fitted.model.free_RVs}
    assert fitted.idata.attrs["effects_layout"] == "centred"
    assert "b_llm" in free and "b_llm_offset" not in free and "b_llm_offset" not in fitted.posterior
    assert fitted.id == PowerModel().id
    nuts = PowerModel()
    nuts._build(fit_data, "config")
    assert "b_llm_offset" in {v.name for v in nuts.model.free_RVs}
    with pytest.raises(ValueError, match="unknown effects layout 'sideways'"):
        nuts._build(fit_data, "sideways")
    loaded = PowerModel.load(fitted.save(tmp_path / "fast.nc"))
    pp = loaded.sample_posterior_predictive(random_seed=0)
    assert "b_llm_offset" not in {v.name for v in loaded.model.free_RVs} and len(pp.posterior_predictive)
