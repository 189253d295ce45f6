
import numpy as np
import pandas as pd
import pytest
import scipy.stats

import lmmcompare as lc
from lmmcompare.errors import ArgumentError, NewLevelError
from lmmcompare.freq.anova import RefitMLWarning

from conftest import REFERENCE

REF = {c["id"]: c for c in REFERENCE}


@pytest.fixture(scope="module")
def sleep_fit():
    return lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy")


def test_fit_from_spec_equals_fit_from_formula(sleep_fit):
    spec = lc.ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    again = lc.lmer(spec)
    np.testing.assert_allclose(again.theta, sleep_fit.theta, rtol=1e-12)


def test_fitted_plus_residuals_is_the_response(sleep_fit):
    np.testing.assert_allclose(sleep_fit.fitted() + sleep_fit.residuals(), sleep_fit.spec.y, rtol=1e-12)
    # fitted = X beta + per-subject intercept and slope modes, by hand
    data = lc.load_dataset("sleepstudy")
    re = sleep_fit.ranef()["Subject"].loc[data["Subject"].astype(str)].to_numpy()
    by_hand = (sleep_fit.fixef["(Intercept)"] + re[:, 0]) + (sleep_fit.fixef["Days"] + re[:, 1]) * data["Days"]
    np.testing.assert_allclose(sleep_fit.fitted(), by_hand, rtol=1e-12)


def test_predict_newdata_population_and_new_levels(sleep_fit):
    data = lc.load_dataset("sleepstudy")
    np.testing.assert_allclose(sleep_fit.predict(data), sleep_fit.fitted(), rtol=1e-12)
    new = pd.DataFrame({"Days": [0.0, 5.0], "Subject": ["308", "999"]})
    population = sleep_fit.predict(new, re=False)
    np.testing.assert_allclose(population, sleep_fit.fixef["(Intercept)"] + sleep_fit.fixef["Days"] * new["Days"])
    with pytest.raises(NewLevelError, match="'999' of 'Subject' not in the fit; pass allow_new_levels=True"):
        sleep_fit.predict(new)
    both = sleep_fit.predict(new, allow_new_levels=True)
    re308 = sleep_fit.ranef()["Subject"].loc["308"]
    assert both[0] == pytest.approx(population[0] + re308["(Intercept)"])
    assert both[1] == pytest.approx(population[1])


def test_simulate_is_reproducible_and_has_the_model_variance(sleep_fit):
    a = sleep_fit.simulate(2000, seed=1)
    b = sleep_fit.simulate(2000, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert a.shape == (180, 2000) and list(a.columns[:2]) == ["sim_1", "sim_2"]
    # Var(y_i) = sigma^2 + z_i' Sigma z_i; row 9 is Subject 308 at Days = 9
    Sigma = sleep_fit.term_covariances()[0]
    z = np.array([1.0, 9.0])
    var = sleep_fit.sigma**2 + z @ Sigma @ z
    sample_var = a.iloc[9].var()
    # the sample variance of 2000 normal draws has sd var * sqrt(2/1999): allow 4 of them
    assert abs(sample_var - var) < 4 * var * np.sqrt(2 / 1999)
    mean = sleep_fit.fixef["(Intercept)"] + 9 * sleep_fit.fixef["Days"]
    assert abs(a.iloc[9].mean() - mean) < 4 * np.sqrt(var / 2000)


def test_anova_refits_by_ml_and_matches_lme4():
    small = lc.lmer("Reaction ~ Days + (1 | Subject)", "sleepstudy")
    big = lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    with pytest.warns(RefitMLWarning, match="refitting model"):
        table = lc.anova(big, small)
    dev_small, dev_big = REF["sleepstudy_intercept_ml"]["criterion"], REF["sleepstudy_ml"]["criterion"]
    assert list(table.columns) == ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]
    assert list(table["npar"]) == [4, 6]
    np.testing.assert_allclose(table["deviance"], [dev_small, dev_big], rtol=1e-9)
    np.testing.assert_allclose(table["AIC"], [REF["sleepstudy_intercept_ml"]["AIC"], REF["sleepstudy_ml"]["AIC"]], rtol=1e-9)
    assert table["Chisq"].iloc[1] == pytest.approx(dev_small - dev_big, rel=1e-7)
    assert table["Pr(>Chisq)"].iloc[1] == pytest.approx(scipy.stats.chi2.sf(dev_small - dev_big, 2), rel=1e-6)


def test_anova_rejects_different_data_and_single_fit(sleep_fit):
    other = lc.lmer("Yield ~ 1 + (1 | Batch)", "Dyestuff")
    with pytest.raises(ArgumentError, match="same response"):
        lc.anova(sleep_fit, other)
    with pytest.raises(ArgumentError, match="one fit .term F-tests. or two or more fits"):
        lc.anova()


def test_summary_reads_like_lme4(sleep_fit):
    text = sleep_fit.summary()
    assert text.startswith("Linear mixed model fit by REML ['lmerMod']")
    assert "REML criterion at convergence: 1743.6" in text
    assert "Number of obs: 180, groups:  Subject, 18" in text
    assert "(Intercept) 251.4051     6.8246" in text
    assert "Days         10.4673     1.5458   6.771" in text
    assert "Correlation of Fixed Effects:" in text and "Days -0.138" in text
    ml = lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy", reml=False).summary()
    assert "maximum likelihood" in ml and "1763.9" in ml and "-876.0" in ml and "174" in ml
    assert "REML" in repr(sleep_fit) and "n=180" in repr(sleep_fit)


def test_optimizer_record(sleep_fit):
    opt = sleep_fit.opt
    assert opt.converged and opt.n_evals == len(opt.log) > 0 and opt.seconds > 0
    assert min(v for _, v in opt.log) == pytest.approx(sleep_fit.objective, rel=1e-12)
    assert sleep_fit.n_evals == opt.n_evals


def test_orthodont_ml_escapes_the_boundary_saddle():
    """From theta = (1, 0, 1) the ML fit first reaches T22 = 0, a saddle where the gradient
    vanishes; lme4 1.1-31 (checked with R) reaches 427.8059862588 with a convergence warning."""
    fit = lc.lmer("distance ~ age * Sex + (age | Subject)", "Orthodont", reml=False)
    assert fit.objective <= 427.8059862588
    assert fit.objective > 427.80 and fit.theta[2] > 0.05 and fit.converged


def test_singular_fit_warns_and_flags():
    with pytest.warns(lc.errors.SingularFitWarning):
        fit = lc.lmer("Yield ~ 1 + (1 | Batch)", "Dyestuff2")
    assert fit.singular and "boundary (singular) fit" in fit.summary()


def test_keyword_argument_types():
    with pytest.raises(ArgumentError, match="reml must be True or False"):
        lc.lmer("Reaction ~ Days + (1 | Subject)", "sleepstudy", reml="yes")
    with pytest.raises(ArgumentError, match="data is required"):
        lc.lmer("Reaction ~ Days + (1 | Subject)")
    fit = lc.lmer("Reaction ~ Days + (1 | Subject)", "sleepstudy")
    with pytest.raises(ArgumentError, match="nsim must be a positive integer"):
        fit.simulate(0)
    with pytest.raises(ArgumentError, match="newdata must be a pandas DataFrame"):
        fit.predict([1, 2])
    with pytest.raises(ArgumentError, match="start must have 1 theta values"):
        lc.lmer("Reaction ~ Days + (1 | Subject)", "sleepstudy", start=[1.0, 2.0])


def test_start_value_does_not_change_the_optimum():
    a = lc.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin")
    b = lc.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", start=[0.3, 7.0])
    np.testing.assert_allclose(a.objective, b.objective, rtol=1e-10)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-4)


def test_moment_start_is_the_one_way_anova_estimate():
    """Dyestuff (6 batches x 5): sigma_b^2 = (MSB - MSW) / 5, theta = sigma_b / sigma, by pandas."""
    from lmmcompare.freq.start import intercepts_only, moment_start

    data = lc.load_dataset("Dyestuff")
    spec = lc.ModelSpec.from_formula("Yield ~ 1 + (1 | Batch)", data)
    assert intercepts_only(spec)
    resid = data["Yield"] - data["Yield"].mean()
    groups = resid.groupby(data["Batch"], observed=True)
    msb = (groups.size() * groups.mean() ** 2).sum() / 5
    msw = ((resid - groups.transform("mean")) ** 2).sum() / 24
    sigma_b2 = (msb - msw) / 5
    sigma2 = (resid**2).sum() / 29 - sigma_b2
    assert moment_start(spec)[0] == pytest.approx(np.sqrt(sigma_b2 / sigma2), rel=1e-12)
    assert not intercepts_only(lc.ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)", "sleepstudy"))
