"""The marginal model's signed sds (sd = |s|) where the REML fit leaves an sd near zero.

The rule's deviances are checked against the dense normal density, and the folded
model's log density against the log-scale model's at the same sds: the two differ by
the log transform's Jacobian alone, so they sample one posterior.
"""
import numpy as np
import pytest
import scipy.stats

import lmmcompare as lc
from lmmcompare.bayesian.model import build_model
from lmmcompare.bayesian.sd_fold import FOLD_BELOW, folded_terms, softplus_scale, zero_sd_deviances
from lmmcompare.core.relcovar import lambda_matrix
from lmmcompare.errors import SingularFitWarning

ORTHODONT = ("distance ~ age * Sex + (age | Subject)", "Orthodont")
PASTES = ("strength ~ 1 + (1 | batch/cask)", "Pastes")


def dense_loglik(spec, beta, sigma, theta):
    """log N(y | X beta, sigma^2 (I + Z Lambda Lambda' Z')), by a dense covariance."""
    ZL = (spec.Z @ lambda_matrix(spec, theta)).toarray()
    V = sigma**2 * (np.eye(spec.n) + ZL @ ZL.T)
    return scipy.stats.multivariate_normal(spec.X @ beta, V).logpdf(spec.y)


@pytest.mark.parametrize("formula, data", [ORTHODONT, PASTES, ("Yield ~ 1 + (1 | Batch)", "Dyestuff")])
def test_zero_sd_deviances_are_those_of_the_dense_normal_density(formula, data):
    fit = lc.lmer(formula, data)
    spec = fit.spec
    base = dense_loglik(spec, fit.beta, fit.sigma, fit.theta)
    deviances = zero_sd_deviances(spec, fit)
    offset = 0
    for term, d in zip(spec.terms, deviances):
        rows = np.concatenate([np.arange(k, term.p) for k in range(term.p)])   # row of each theta entry
        for k in range(term.p):
            theta = fit.theta.copy()
            theta[offset + np.flatnonzero(rows == k)] = 0.0
            assert d[k] == pytest.approx(2 * (base - dense_loglik(spec, fit.beta, fit.sigma, theta)), rel=1e-8, abs=1e-8)
        offset += rows.size


def test_terms_with_an_sd_near_zero_are_folded():
    """Orthodont's slope sd (deviance 4.7) and Pastes' batch sd (0.6) are below the threshold;
    Dyestuff's batch sd (8.8) and sleepstudy's sds (29, 61) are not.  Dyestuff2's (0: a singular fit)
    is, but a lone random intercept keeps the log scale."""
    cases = {ORTHODONT: ((0,), 4.71), PASTES: ((1,), 0.61), ("Yield ~ 1 + (1 | Batch)", "Dyestuff"): ((), 8.84),
             ("Reaction ~ Days + (Days | Subject)", "sleepstudy"): ((), 28.55)}
    for (formula, data), (expected, smallest) in cases.items():
        fit = lc.lmer(formula, data)
        deviances = zero_sd_deviances(fit.spec, fit)
        assert min(d.min() for d in deviances) == pytest.approx(smallest, abs=0.01)
        assert folded_terms(fit.spec, fit) == expected
        assert all((d.min() < FOLD_BELOW) == (i in expected) for i, d in enumerate(deviances))
    assert folded_terms(fit.spec, None) == ()
    with pytest.warns(SingularFitWarning):
        single = lc.lmer("Yield ~ 1 + (1 | Batch)", "Dyestuff2")
    assert zero_sd_deviances(single.spec, single)[0][0] == pytest.approx(0.0, abs=1e-9)
    assert folded_terms(single.spec, single) == ()


def log_scale_and_other(formula, data, scales):
    """``(fit, plain, other, logp_plain, logp_other)``: the marginal model on the log scale and with the sd
    scales ``scales(fit)`` (build_model's keywords), and their compiled log densities."""
    fit = lc.lmer(formula, data)
    priors = lc.bayesian.default_priors(fit.spec)
    plain = build_model(fit.spec, priors, "marginal").model
    other = build_model(fit.spec, priors, "marginal", **scales(fit)).model
    return fit, plain, other, plain.compile_logp(), other.compile_logp()


@pytest.mark.parametrize("formula, data", [ORTHODONT, PASTES])
def test_folded_log_density_is_the_log_scale_one_less_its_jacobian(formula, data):
    """logp_folded(s) = logp_log(log|s|) - log|s| for every sd sampled signed, at points of either sign."""
    _, plain, signed, logp_plain, logp_signed = log_scale_and_other(
        formula, data, lambda fit: {"folded": folded_terms(fit.spec, fit)})
    rng = np.random.default_rng(1)
    point = plain.initial_point()
    names = [v.name for v in signed.value_vars if v.name.endswith("_signed")]
    assert names
    for _ in range(5):
        base = {k: v + rng.normal(0.0, 0.3, np.shape(v)) for k, v in point.items()}
        other = {k: v for k, v in base.items() if k.removesuffix("_log__") + "_signed" not in names}
        jacobian = 0.0
        for name in names:
            log_sd = base[name.removesuffix("_signed") + "_log__"]
            other[name] = np.exp(log_sd) * rng.choice([-1.0, 1.0])
            jacobian += log_sd
        assert logp_signed(other) == pytest.approx(logp_plain(base) - jacobian, rel=1e-10)


def test_softplus_scale_of_a_lone_random_intercept():
    """c = max(REML sd, sigma_hat / sqrt(rows per level)): Dyestuff's REML sd (42.0), Dyestuff2's 3.72 / sqrt(5)
    (its REML sd is 0); no softplus where the model has more than one random intercept's sd."""
    dyestuff = lc.lmer("Yield ~ 1 + (1 | Batch)", "Dyestuff")
    assert softplus_scale(dyestuff.spec, dyestuff) == pytest.approx(dyestuff.theta[0] * dyestuff.sigma, rel=1e-12)
    assert softplus_scale(dyestuff.spec, dyestuff) == pytest.approx(42.0, abs=0.05)
    with pytest.warns(SingularFitWarning):
        singular = lc.lmer("Yield ~ 1 + (1 | Batch)", "Dyestuff2")
    assert softplus_scale(singular.spec, singular) == pytest.approx(singular.sigma / np.sqrt(5.0), rel=1e-12)
    for formula, data in [ORTHODONT, PASTES]:
        fit = lc.lmer(formula, data)
        assert softplus_scale(fit.spec, fit) is None
    assert softplus_scale(dyestuff.spec, None) is None


def test_softplus_log_density_is_the_log_scale_one_with_its_jacobian():
    """logp_softplus(x) = logp_log(log sd) - log sd + log(c sigmoid(x)), sd = c log(1 + e^x), at points of the
    whole line (Dyestuff, c its REML sd)."""
    fit, plain, _, logp_plain, logp_soft = log_scale_and_other(
        "Yield ~ 1 + (1 | Batch)", "Dyestuff", lambda fit: {"softplus": softplus_scale(fit.spec, fit)})
    c = softplus_scale(fit.spec, fit)
    start = plain.initial_point()
    for x in (-6.0, -1.0, 0.0, 0.7, 3.0):
        sd = c * np.log1p(np.exp(x))
        point = dict(start, sd_0_0_log__=np.log(sd))
        other = {k: v for k, v in point.items() if k != "sd_0_0_log__"}
        other["sd_0_0_x"] = np.float64(x)
        expected = logp_plain(point) - np.log(sd) + np.log(c / (1.0 + np.exp(-x)))
        assert logp_soft(other) == pytest.approx(expected, rel=1e-10)
