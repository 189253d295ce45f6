"""Refits of one design to new responses (lmmcompare.freq.refit, the bootstrap's path).

The response's row of the cross-products equals that of the blocks built from
scratch for the new response (1e-10), and a refit reaches the optimum that a
fit from scratch reaches from the same start: the same criterion (1e-9
relative, either may be lower by the optimiser's tolerance) and estimates to
the optimiser's tolerance; on the blocked path (no dense criterion) the
optimisation is the same one, so the estimates agree to 1e-8.
"""
import warnings

import numpy as np
import pytest

import lmmcompare as lc
from lmmcompare import ModelSpec
from lmmcompare.core import small_dense
from lmmcompare.errors import SingularFitWarning
from lmmcompare.core.blocks import ResponseRows, cross_products, response_row
from lmmcompare.core.factor import factorize
from lmmcompare.core.solve import solve_modes
from lmmcompare.freq import make_devfun, optimize_lmer
from lmmcompare.freq.refit import ResponseRefit


def _spec(formula, inputs):
    data = lc.load_dataset("sleepstudy")
    rng = np.random.default_rng(5)
    data = data.assign(w=1.0 + data["Days"] % 3, off=rng.normal(size=len(data)),
                       g=(np.arange(len(data)) % 6).astype(str))
    extra = dict(weights="w", offset="off") if inputs == "weights_offset" else {}
    return ModelSpec.from_formula(formula, data, **extra)


def _new_response(spec, seed):
    rng = np.random.default_rng(seed)
    return 1.7 * spec.y + 40.0 + rng.normal(0.0, 20.0, spec.n)


def _from_scratch(spec, reml, start):
    devfun = make_devfun(spec, reml)
    opt = optimize_lmer(devfun, start=start)
    f = factorize(devfun.cp, opt.theta)
    _, beta = solve_modes(f)
    return opt.theta, beta, np.sqrt(f.r2 / (spec.n - spec.p if reml else spec.n)), opt.objective, devfun


FORMULAS = ["Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject) + (1 | g)"]


@pytest.mark.parametrize("inputs", ["plain", "weights_offset"])
@pytest.mark.parametrize("formula", FORMULAS)
def test_response_row_equals_the_blocks_of_the_new_response(formula, inputs):
    spec = _spec(formula, inputs)
    y = _new_response(spec, 1)
    expected = response_row(cross_products(spec.with_response(y)))
    np.testing.assert_allclose(ResponseRows(spec)(y), expected, rtol=1e-10,
                               atol=1e-10 * np.max(np.abs(expected)))


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("inputs", ["plain", "weights_offset"])
@pytest.mark.parametrize("formula", FORMULAS)
def test_dense_refit_reaches_the_optimum_of_a_fit_from_scratch(formula, inputs, reml):
    spec = _spec(formula, inputs)
    start = optimize_lmer(make_devfun(spec, reml)).theta
    refit = ResponseRefit(spec, reml)
    assert refit.devfun.dense is not None
    for seed in range(3):
        y = _new_response(spec, seed)
        theta, beta, sigma, value, devfun = _from_scratch(spec.with_response(y), reml, start)
        phi, theta_r, beta_r, sigma_r = refit.estimates(y, start)
        assert np.array_equal(phi, theta_r)
        assert abs(devfun(theta_r) - value) <= 1e-9 * abs(value)
        # optimum(): the same phi, and the criterion there (what a profile of a fixed effect reads)
        phi_o, value_o = refit.optimum(y, start)
        assert np.array_equal(phi_o, phi)
        assert value_o == pytest.approx(devfun(phi), rel=1e-12)
        np.testing.assert_allclose(theta_r, theta, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(beta_r, beta, rtol=1e-6)
        np.testing.assert_allclose(sigma_r, sigma, rtol=1e-6)
        # the estimates at the refit's theta are the blocked factor's
        f = factorize(devfun.cp, theta_r)
        np.testing.assert_allclose(beta_r, solve_modes(f)[1], rtol=1e-10)
        np.testing.assert_allclose(sigma_r, np.sqrt(f.r2 / (spec.n - spec.p if reml else spec.n)), rtol=1e-10)


@pytest.mark.parametrize("formula", FORMULAS)
def test_blocked_refit_is_the_fit_from_scratch(formula, monkeypatch):
    monkeypatch.setattr(small_dense, "DENSE_UP_TO", 0)
    spec = _spec(formula, "weights_offset")
    start = optimize_lmer(make_devfun(spec, True)).theta
    refit = ResponseRefit(spec, True)
    assert refit.devfun.dense is None
    y = _new_response(spec, 9)
    theta, beta, sigma, _, _ = _from_scratch(spec.with_response(y), True, start)
    phi, theta_r, beta_r, sigma_r = refit.estimates(y, start)
    np.testing.assert_allclose(theta_r, theta, rtol=1e-8, atol=1e-10)
    phi_o, value_o = refit.optimum(y, start)
    assert np.array_equal(phi_o, phi)
    assert value_o == pytest.approx(make_devfun(spec.with_response(y), True)(phi), rel=1e-12)
    np.testing.assert_allclose(beta_r, beta, rtol=1e-8)
    np.testing.assert_allclose(sigma_r, sigma, rtol=1e-8)


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("inputs", ["plain", "weights_offset"])
@pytest.mark.parametrize("formula", FORMULAS)
def test_lmerfit_refit_is_lmer_on_the_new_response(formula, inputs, reml):
    """lme4's refit(object, newresp): the fit of the same model to a new response, as lmer from scratch."""
    spec = _spec(formula, inputs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SingularFitWarning)
        fit = lc.lmer(spec, reml=reml)
        y = _new_response(spec, 4)
        new = fit.refit(y)
        scratch = lc.lmer(spec.with_response(y), reml=reml)
        again = fit.refit(spec.y)
    # lme4's singular-fit warning, as lmer gives it, and pointing at the caller
    assert [w.filename for w in caught if "singular" in str(w.message)] == [__file__] * (4 * fit.singular)
    assert new.reml == reml and np.array_equal(new.spec.y, y)
    assert new.objective == pytest.approx(scratch.objective, rel=1e-9)
    np.testing.assert_allclose(new.theta, scratch.theta, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(new.beta, scratch.beta, rtol=1e-5)
    np.testing.assert_allclose(new.sigma, scratch.sigma, rtol=1e-5)
    np.testing.assert_allclose(new.vcov_beta, scratch.vcov_beta, rtol=1e-3)
    assert new.opt.converged and new.opt.theta_start.tolist() == fit.phi.tolist()
    # the fit itself is untouched, and a second refit to its own response gives it back
    assert again.objective == pytest.approx(fit.objective, rel=1e-10)
    np.testing.assert_allclose(again.beta, fit.beta, rtol=1e-7)


@pytest.mark.parametrize("bad, what", [(np.ones(5), "shape"), ("abc", "numbers"),
                                       (np.r_[np.nan, np.ones(179)], "missing")])
def test_refit_rejects_a_response_that_does_not_fit_the_model_frame(bad, what):
    fit = lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    with pytest.raises(lc.DataError, match="newresp") as err:
        fit.refit(bad)
    assert what in str(err.value)


def test_a_refit_that_does_not_converge_says_so(monkeypatch):
    """With one iteration allowed the refit cannot converge: LmerFit.refit warns, as lmer would, at the caller."""
    import lmmcompare.freq.optimize as optimize

    fit = lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    y = _new_response(fit.spec, 2)
    original = optimize.optimize_theta

    def one_iteration(*args, **kwargs):
        return original(*args, **dict(kwargs, maxiter=1))

    monkeypatch.setattr("lmmcompare.freq.refit.optimize_theta", one_iteration)
    with pytest.warns(lc.errors.ConvergenceWarning, match="refit failed to converge") as caught:
        new = fit.refit(y)
    assert not new.opt.converged
    assert any(w.filename == __file__ for w in caught)
