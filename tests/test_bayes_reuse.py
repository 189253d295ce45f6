"""One compiled model per design, reused across calls (lmmcompare.bayesian.reuse; issue 18).

A second call with the same design, priors and parameterisation reuses the first call's
PyMC model and compiled log density: it compiles nothing, and with the same seed it
gives the same draws.  With a new response and the same priors, the reused model is
fitted to the new response: its draws equal those of a model built afresh for it.
"""
import warnings

import numpy as np
import pymc as pm
import pytest

import lmmcompare as lc
from lmmcompare.bayesian import reuse

SLEEP = "Reaction ~ Days + (Days | Subject)"
SMALL = dict(draws=100, tune=100, chains=2, progressbar=False, log_likelihood=False)


def sample(data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lc.bayes(SLEEP, data, **{**SMALL, **kw})


@pytest.fixture
def compiles(monkeypatch):
    """Counts the log-density compilations PyMC makes."""
    counter = {"n": 0}
    original = pm.Model.logp_dlogp_function

    def counting(self, *args, **kwargs):
        counter["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pm.Model, "logp_dlogp_function", counting)
    reuse.clear()
    yield counter
    reuse.clear()


@pytest.mark.parametrize("parameterization", ["marginal", "noncentered"])
def test_a_second_call_compiles_nothing_and_gives_the_same_draws(compiles, parameterization):
    first = sample("sleepstudy", seed=3, parameterization=parameterization)
    after_first = compiles["n"]
    second = sample("sleepstudy", seed=3, parameterization=parameterization)
    assert after_first >= 1 and compiles["n"] == after_first
    for name in first.parameter_names:
        np.testing.assert_array_equal(first.idata.posterior[name].values, second.idata.posterior[name].values)


def test_a_reused_model_is_fitted_to_the_new_response(compiles):
    data = lc.load_dataset("sleepstudy")
    first = sample(data, seed=5)
    shifted = data.assign(Reaction=data["Reaction"] * 1.1 + 7.0)
    reused = sample(shifted, seed=5, priors=first.priors)      # same design and priors: the model is reused
    assert len(reuse._BUILT) == 1
    reuse.clear()
    fresh = sample(shifted, seed=5, priors=first.priors)
    for name in first.parameter_names:
        np.testing.assert_allclose(reused.idata.posterior[name].values, fresh.idata.posterior[name].values,
                                   rtol=1e-10)
    assert not np.allclose(reused.idata.posterior["(Intercept)"].values, first.idata.posterior["(Intercept)"].values)


def test_the_cache_keeps_the_last_designs(compiles):
    data = lc.load_dataset("sleepstudy")
    for k in range(reuse.CACHE_SIZE + 1):
        spec = lc.ModelSpec.from_formula(SLEEP, data.assign(Days=data["Days"] + k))
        reuse.built_model(spec, lc.bayesian.default_priors(spec), "marginal")
    assert len(reuse._BUILT) == reuse.CACHE_SIZE


def test_a_lone_random_intercept_reuses_its_model_with_the_new_responses_softplus_scale(compiles):
    """The softplus sd's c (the REML sd) is model data like the response: a new response with the same priors
    compiles nothing, and its draws equal those of a model built afresh for it (its own c)."""
    def run(data, **kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return lc.bayes("Yield ~ 1 + (1 | Batch)", data, **{**SMALL, "seed": 7, **kw})

    data = lc.load_dataset("Dyestuff")
    first = run(data)
    assert len(reuse._BUILT) == 1 and next(iter(reuse._BUILT.values())).softplus is not None
    after_first = compiles["n"]
    shifted = data.assign(Yield=data["Yield"] + 60.0 * (data["Batch"] == "A"))   # another REML sd, another c
    reused = run(shifted, priors=first.priors)
    assert compiles["n"] == after_first and len(reuse._BUILT) == 1
    reuse.clear()
    fresh = run(shifted, priors=first.priors)
    for name in first.parameter_names:
        np.testing.assert_allclose(reused.idata.posterior[name].values, fresh.idata.posterior[name].values,
                                   rtol=1e-10)
