"""Prior weights, an offset and sum contrasts in the Bayesian engine (issue 19).

The same spec as the REML fit: the posterior agrees with REML as in tests/test_bayes.py
(median within half a posterior sd, sd within 30% of the se), the marginal and the
noncentred forms agree within 4 Monte Carlo SE, and the stored pointwise
log-likelihood is the normal density with sd ``sigma / sqrt(w_i)`` around
``offset + X beta + Z b``.  The marginal likelihood with weights and offsets is
checked against the dense normal density in tests/test_blocked_marginal.py.
"""
import warnings

import numpy as np
import pytest
import scipy.stats

import lmmcompare as lc
from conftest import unrounded_summary
from lmmcompare.errors import SamplingWarning

FORMULA = "angle ~ recipe * temp + offset(0.1 * temp) + (1 | recipe:replicate)"
SAMPLING = dict(draws=500, tune=500, chains=2, progressbar=False)


def cake_inputs():
    cake = lc.load_dataset("cake")
    weights = 1.0 + (cake["temperature"].cat.codes.to_numpy() % 3) / 2   # 1, 1.5, 2
    return cake, {"weights": weights, "contrasts": {"recipe": "sum"}}


def run(**kw):
    cake, inputs = cake_inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return lc.bayes(FORMULA, cake, **inputs, **SAMPLING, **kw)


@pytest.fixture(scope="module")
def reml():
    cake, inputs = cake_inputs()
    return lc.lmer(FORMULA, cake, **inputs)


@pytest.fixture(scope="module")
def marginal():
    return run(seed=4)


@pytest.fixture(scope="module")
def noncentered():
    return run(seed=5, parameterization="noncentered")


def test_the_posterior_agrees_with_reml(marginal, reml):
    assert list(reml.fixef.index)[:3] == ["(Intercept)", "recipe1", "recipe2"]
    post = marginal.idata.posterior
    for name in reml.spec.fixed_names:
        draws = post[name].values.ravel()
        assert abs(np.median(draws) - reml.fixef[name]) < 0.5 * draws.std(), name
        assert abs(draws.std() / reml.se[name] - 1) < 0.30, name
    sigma = post["sigma"].values.ravel()
    assert abs(np.median(sigma) - reml.sigma) < 0.5 * sigma.std()


def test_marginal_and_noncentered_agree_with_weights_and_offset(marginal, noncentered):
    a, b = unrounded_summary(marginal), unrounded_summary(noncentered)
    for name in a.index:
        bound = 4 * np.hypot(a.loc[name, "mcse_mean"], b.loc[name, "mcse_mean"])
        assert abs(a.loc[name, "mean"] - b.loc[name, "mean"]) < bound, name


def test_pointwise_log_likelihood_has_sd_sigma_over_root_w(marginal):
    spec = marginal.spec
    post = marginal.idata.posterior
    mu = marginal.linear_predictor()[1, 7]
    sd = float(post["sigma"].values[1, 7]) / np.sqrt(spec.weights)
    expected = scipy.stats.norm(mu, sd).logpdf(spec.y)
    np.testing.assert_allclose(marginal.idata.log_likelihood["y"].values[1, 7], expected, rtol=1e-12)
    fixed = spec.X @ np.array([float(post[n].values[1, 7]) for n in spec.fixed_names])
    b = post["r_recipe:replicate"].values[1, 7, :, 0]
    np.testing.assert_allclose(mu, 0.1 * spec.frame["temp"].to_numpy() + fixed + b[spec.terms[0].codes],
                               rtol=1e-12)
