"""parameterization="auto": the centred or noncentred form from how much the data say about the levels.

The prior fraction kappa is checked against its closed form for a balanced
one-way model and for invariance under a shift of a slope's covariate; the
centred form is checked to sample the same posterior as the marginal model
(Monte Carlo error), with no divergences on Penicillin, where the noncentred
form diverged (1-4 in 4,000 transitions on seeds 1-4, also at target_accept 0.95).
"""
import warnings

import numpy as np
import pytest
from scipy import stats

import lmmcompare as lc
from conftest import unrounded_summary
from lmmcompare.bayesian.forms import CENTRE_BELOW, SD_LOW_QUANTILE, prior_fractions, term_forms
from lmmcompare.errors import SamplingWarning

PENICILLIN = "diameter ~ 1 + (1 | plate) + (1 | sample)"
SAMPLING = dict(draws=500, tune=500, chains=2, progressbar=False)


def test_prior_fraction_of_a_balanced_one_way_model_is_the_closed_form():
    """(1|g) with n rows per level: the data precision of a level is n / sigma^2 (beta held, as lme4's condVar)."""
    spec = lc.ModelSpec.from_formula("Yield ~ 1 + (1 | Batch)", "Dyestuff")
    fit = lc.lmer(spec)
    s2 = fit.term_covariances()[0][0, 0]
    n = 5
    precision = n / fit.sigma**2
    kappa_fit = 1 / (1 + s2 * precision)
    q = stats.chi2.ppf(SD_LOW_QUANTILE, 5) / 5
    shrink = q - (1 - q) * kappa_fit / (1 - kappa_fit)
    expected = 1 / (1 + shrink * s2 * precision)
    assert prior_fractions(spec, fit) == [pytest.approx(expected, rel=1e-8)]


def test_prior_fraction_is_invariant_to_shifting_a_slope_covariate():
    data = lc.load_dataset("sleepstudy")
    shifted = data.assign(Days=data["Days"] + 100.0)
    a, b = (prior_fractions(spec, lc.lmer(spec))
            for spec in (lc.ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)", frame) for frame in (data, shifted)))
    assert b == [pytest.approx(a[0], rel=1e-5)]


@pytest.mark.parametrize("formula, data, expected", [
    (PENICILLIN, "Penicillin", "centered"),                           # 24 plates x 6, 6 samples x 24: pinned down
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "noncentered"),
    ("distance ~ age + (age | Subject)", "Orthodont", "noncentered"),
    ("strength ~ 1 + (1 | batch/cask)", "Pastes", "noncentered"),    # batch: its sd may well be near 0
    ("Yield ~ 1 + (1 | Batch)", "Dyestuff2", "noncentered"),          # singular fit
])
def test_term_forms(formula, data, expected):
    spec = lc.ModelSpec.from_formula(formula, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lc.lmer(spec)
    fractions = prior_fractions(spec, fit)
    assert term_forms(spec, fit) == [expected] * len(spec.terms)
    assert (max(fractions) < CENTRE_BELOW) == (expected == "centered")


@pytest.fixture(scope="module")
def penicillin_fits():
    """2 x (1000 + 1000): at 2 x (500 + 500) the MCSE of sigma's mean is itself too noisy an estimate
    for a 4-MCSE bound (it came out at 4.01 on one seed; 4 x 1000 draws agree to 2 MCSE)."""
    sampling = {**SAMPLING, "draws": 1000, "tune": 1000}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        auto = lc.bayes(PENICILLIN, "Penicillin", seed=3, parameterization="auto", **sampling)
        marginal = lc.bayes(PENICILLIN, "Penicillin", seed=4, parameterization="marginal", **sampling)
    return auto, marginal


def test_auto_centres_penicillin_and_samples_the_marginal_posterior(penicillin_fits):
    auto, marginal = penicillin_fits
    assert auto.parameterization == "auto" and auto.sampled_as == "auto: centered"
    assert auto.forms == {"(Intercept)|plate": "centered", "(Intercept)|sample": "centered"}
    assert "auto: centered" in repr(auto)
    assert int(auto.idata.sample_stats["diverging"].sum()) == 0
    a = unrounded_summary(auto)
    b = unrounded_summary(marginal)
    for name in a.index:
        bound = 4 * np.hypot(a.loc[name, "mcse_mean"], b.loc[name, "mcse_mean"])
        assert abs(a.loc[name, "mean"] - b.loc[name, "mean"]) < bound, name
    reml = lc.lmer(PENICILLIN, "Penicillin")
    draws = auto.idata.posterior["(Intercept)"].values.ravel()
    assert abs(np.median(draws) - reml.fixef["(Intercept)"]) < 0.5 * draws.std()
    assert abs(draws.std() / reml.se["(Intercept)"] - 1) < 0.30
    # level effects: the centred draws and the marginal's exact conditional draws agree
    for group in ("plate", "sample"):
        ra, rb = auto.ranef()[group], marginal.ranef()[group]
        assert np.all(np.abs(ra - rb) < 0.5 * auto.ranef(sd=True)[group])


def test_centred_correlated_term_samples_the_same_posterior():
    """The centred chain of normals for a p = 2 term on standardised columns is the MvNormal prior."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        centred = lc.bayes("Reaction ~ Days + (Days | Subject)", "sleepstudy", seed=5,
                           parameterization="centered", **SAMPLING)
        marginal = lc.bayes("Reaction ~ Days + (Days | Subject)", "sleepstudy", seed=6,
                            parameterization="marginal", **SAMPLING)
    assert centred.forms == {"(Intercept)+Days|Subject": "centered"}
    a = unrounded_summary(centred)
    b = unrounded_summary(marginal)
    for name in a.index:
        bound = 4 * np.hypot(a.loc[name, "mcse_mean"], b.loc[name, "mcse_mean"])
        assert abs(a.loc[name, "mean"] - b.loc[name, "mean"]) < bound, name


def test_fit_both_optimises_once_and_hands_its_fit_to_auto(monkeypatch):
    """The Bayesian engine fits nothing frequentist: fit_both's REML fit is the one auto (and the default
    marginal model) reads, and an ML comparison still chooses from a REML fit (the same choice as with reml=True)."""
    import functools

    import lmmcompare.bayesian.fit
    import lmmcompare.frontend

    made, handed = [], []
    real_lmer = lmmcompare.frontend.lmer
    monkeypatch.setattr(lmmcompare.frontend, "lmer", lambda spec, reml=True: made.append(reml) or real_lmer(spec, reml=reml))
    sample = functools.wraps(lmmcompare.bayesian.fit.bayes)(lambda spec, **options: handed.append(options))
    monkeypatch.setattr(lmmcompare.bayesian.fit, "bayes", sample)
    monkeypatch.setattr(lmmcompare.frontend, "Comparison", lambda freq, post: freq)
    spec = lc.ModelSpec.from_formula(PENICILLIN, "Penicillin")
    freq = lc.fit_both(spec, parameterization="auto")
    assert made == [True] and handed[0]["reml_fit"] is freq
    ml = lc.fit_both(spec, reml=False, parameterization="auto")
    assert made == [True, False] and handed[1]["reml_fit"] is ml.by_criterion(True) and handed[1]["reml_fit"].reml
    assert handed[1]["reml_fit"].objective == pytest.approx(freq.objective, abs=1e-8)
    assert term_forms(spec, handed[1]["reml_fit"]) == term_forms(spec, freq) == ["centered", "centered"]
    default = lc.fit_both(spec)   # the default, marginal, reads the same REML fit (its signed sds, sd_fold)
    assert made == [True, False, True] and handed[2]["reml_fit"] is default and "parameterization" not in handed[2]
    with pytest.raises(lc.ArgumentError, match="parameterization='auto' chooses the form from the REML fit"):
        lmmcompare.bayesian.model.build_model(spec, lmmcompare.bayesian.default_priors(spec), "auto")


def test_bayes_refuses_unknown_keywords_before_building_anything():
    with pytest.raises(lc.ArgumentError, match=r"unknown keyword argument 'REML' for bayes \(it takes priors, draws"):
        lc.bayes("Reaction ~ Days + (Days | Subject)", "sleepstudy", REML=False)
    with pytest.raises(lc.ArgumentError, match=r"unknown keyword argument 'draw' for bayes; did you mean 'draws'\?"):
        lc.bayes("Reaction ~ Days + (Days | Subject)", "sleepstudy", draw=10)
