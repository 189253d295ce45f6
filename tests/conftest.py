import json
import pathlib
import warnings

import pytest

DATA = pathlib.Path(__file__).parent / "data"


def load_reference():
    """lme4 1.1-31 / lmerTest / pbkrtest results, copied from shared/reference (see tests/data/README.md)."""
    return json.loads((DATA / "lme4_reference.json").read_text())


REFERENCE = load_reference()
CASE_IDS = [c["id"] for c in REFERENCE]


@pytest.fixture(params=REFERENCE, ids=CASE_IDS)
def case(request):
    return request.param


@pytest.fixture(scope="session")
def fitted_cases():
    """Our fit of every reference case, computed once per session."""
    import lmmcompare as lc

    out = {}
    for c in REFERENCE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[c["id"]] = lc.lmer(c["formula"], c["data"], reml=c["reml"])
    return out


def prior_fit(spec, draws=30):
    """A BayesFit of prior draws of ``spec``'s PyMC model (two chains): the posterior pipeline without NUTS."""
    import arviz as az
    import numpy as np
    import pymc as pm
    import xarray as xr

    import lmmcompare as lc
    from lmmcompare.bayesian.fit import _to_fit
    from lmmcompare.bayesian.model import build_model
    from lmmcompare.errors import SamplingWarning

    built = build_model(spec, lc.bayesian.default_priors(spec), "noncentered", standardized=False)
    chains = [pm.sample_prior_predictive(draws=draws, model=built.model, random_seed=s).prior for s in (1, 2)]
    prior = xr.concat(chains, dim="chain").assign_coords(chain=[0, 1])
    raw = az.InferenceData(posterior=prior,
                           sample_stats=xr.Dataset({"diverging": xr.zeros_like(prior["sigma"], dtype=bool)}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return _to_fit(raw, built, np.random.default_rng(0), 1, "pymc", 0.0, False), prior


def unrounded_summary(fit):
    """Posterior mean, sd and MCSE per parameter, not rounded (ArviZ's summary rounds to 2 decimals,
    which is coarser than the 4-MCSE bounds the agreement tests use)."""
    import arviz as az

    return az.summary(fit.idata, var_names=fit.parameter_names, round_to="none")
