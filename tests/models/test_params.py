"""The configuration-parameter contract refuses what a generator cannot replay."""

import numpy as np
import pytest
from wattscape.models import dims as D
from wattscape.models.params import example_config_params, validate_config_params


def test_example_parameters_follow_the_contract():
    validate_config_params(example_config_params(n_draws=8))


def test_non_finite_draw_is_refused_naming_the_variable():
    prm = example_config_params(n_draws=8)
    prm["ar_coef"][3, 0] = np.nan
    with pytest.raises(ValueError, match=r"'ar_coef' has 1 non-finite"):
        validate_config_params(prm)


def test_residual_beyond_the_nameplate_is_refused():
    prm = example_config_params(n_draws=8, states=D.STATES_ACTIVE, tdp_w=300.0, n_gpus=1, tensor_parallel=1)
    prm["resid_scale"][0, 0] = 6600.0  # the stuck chain's idle residual sd of a 300 W card
    with pytest.raises(ValueError, match=r"'resid_scale' reaches 6600 W, above .* nameplate 300 W"):
        validate_config_params(prm)


def test_missing_variable_is_named():
    prm = example_config_params(n_draws=4).drop_vars("transition")
    with pytest.raises(ValueError, match="missing variable 'transition'"):
        validate_config_params(prm)
