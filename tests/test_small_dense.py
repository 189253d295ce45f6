"""The dense criterion of small models (lmmcompare.core.small_dense) against the blocked one.

Both read the same cross-products, so the criterion and its analytic gradient
must agree to rounding (1e-10 relative) at any theta: inside, on the boundary
(a zero diagonal, a zero column, a zero term) and with prior weights and an offset.
"""
import numpy as np
import pytest

import lmmcompare as lc
from lmmcompare import ModelSpec
from lmmcompare.core import small_dense
from lmmcompare.core.blocks import cross_products
from lmmcompare.core.factor import objective
from lmmcompare.core.gradient import objective_and_gradient
from lmmcompare.core.small_dense import DenseCriterion
from lmmcompare.freq import make_devfun, optimize_lmer


def _data():
    data = lc.load_dataset("sleepstudy")
    rng = np.random.default_rng(3)
    return data.assign(w=1.0 + data["Days"] % 3, off=rng.normal(size=len(data)),
                       g=(np.arange(len(data)) % 6).astype(str), x=rng.normal(size=len(data)),
                       h=(data["Subject"].astype(int) % 3).astype(str))


FORMULAS = {
    "p1": "Reaction ~ Days + (1 | Subject)",
    "p2": "Reaction ~ Days + (Days | Subject)",
    "uncorrelated": "Reaction ~ Days + (Days || Subject)",
    "crossed": "Reaction ~ Days + x + (Days | Subject) + (1 | g)",
    "later_p2": "Reaction ~ Days + (1 | Subject) + (x | g)",
    "nested": "Reaction ~ 1 + (1 | h/Subject)",
}


def _thetas(spec, rng):
    lower = spec.theta_lower
    inside = np.where(lower == 0, rng.uniform(0.2, 2.0, lower.size), rng.normal(0, 0.5, lower.size))
    zero_diagonal = np.where(lower == 0, 0.0, inside)
    zero_first = inside.copy()
    zero_first[0] = 0.0
    return {"inside": inside, "start": np.where(lower == 0, 1.0, 0.0), "zero_diagonal": zero_diagonal, "zero_first": zero_first}


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("inputs", ["plain", "weights_offset"])
@pytest.mark.parametrize("name", list(FORMULAS))
def test_dense_criterion_equals_blocked(name, inputs, reml):
    extra = dict(weights="w", offset="off") if inputs == "weights_offset" else {}
    spec = ModelSpec.from_formula(FORMULAS[name], _data(), **extra)
    cp = cross_products(spec)
    dense = DenseCriterion(cp, reml)
    rng = np.random.default_rng(7)
    for where, theta in _thetas(spec, rng).items():
        value, grad = objective_and_gradient(cp, theta, reml)
        d_value, d_grad = dense.objective_and_gradient(theta)
        assert abs(d_value - value) <= 1e-10 * abs(value), where
        assert abs(dense.objective(theta) - value) <= 1e-10 * abs(value), where
        assert abs(objective(cp, theta, reml) - value) <= 1e-12 * abs(value)
        np.testing.assert_allclose(d_grad, grad, rtol=1e-10, atol=1e-10 * max(1.0, np.max(np.abs(grad))),
                                   err_msg=where)


@pytest.mark.parametrize("inputs", ["plain", "weights_offset"])
@pytest.mark.parametrize("name", list(FORMULAS))
def test_dense_marginal_likelihood_equals_blocked(name, inputs):
    """The Bayesian kernel's log p(y | beta, sigma, theta) and its partials from the dense criterion equal the
    blocked factor's to rounding, at every theta of the criterion test and a beta away from the estimate."""
    from lmmcompare.core.likelihood import loglik

    extra = dict(weights="w", offset="off") if inputs == "weights_offset" else {}
    spec = ModelSpec.from_formula(FORMULAS[name], _data(), **extra)
    cp = cross_products(spec)
    dense = DenseCriterion(cp, reml=False)
    rng = np.random.default_rng(11)
    beta = cp.beta_offset + rng.normal(0, 5, cp.p)
    for where, theta in _thetas(spec, rng).items():
        blocked, fast = loglik(cp, beta, 31.0, theta), loglik(cp, beta, 31.0, theta, dense=dense)
        assert abs(fast.value - blocked.value) <= 1e-10 * abs(blocked.value), where
        assert fast.d_sigma == pytest.approx(blocked.d_sigma, rel=1e-9, abs=1e-9), where
        for part in ("d_beta", "d_theta"):
            a, b = getattr(fast, part), getattr(blocked, part)
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * max(1.0, np.max(np.abs(b))), err_msg=where)


def test_blocked_op_holds_the_dense_criterion_of_a_small_model_and_swaps_its_response():
    """Pastes' Op evaluates through the dense criterion; a new response row rebuilds it, so the value is the
    blocked factor's for that response."""
    from lmmcompare.bayesian.blocked import BlockedLogLik
    from lmmcompare.core.blocks import response_row
    from lmmcompare.core.likelihood import loglik

    spec = ModelSpec.from_formula("strength ~ 1 + (1 | batch/cask)", "Pastes")
    cp = cross_products(spec)
    op = BlockedLogLik(cp)
    assert op.products(response_row(cp))[1] is not None
    other = cross_products(spec.with_response(spec.y[::-1].copy()))
    swapped_cp, swapped_dense = op.products(response_row(other))
    theta, beta = np.array([0.9, 2.5]), np.array([60.0])
    expected = loglik(other, beta, 0.8, theta)
    got = loglik(swapped_cp, beta, 0.8, theta, dense=swapped_dense)
    assert got.value == pytest.approx(expected.value, rel=1e-12)
    np.testing.assert_allclose(got.d_theta, expected.d_theta, rtol=1e-9)


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("name", ["p1", "p2", "crossed", "nested"])
def test_optimum_with_and_without_the_dense_criterion(name, reml, monkeypatch):
    spec = ModelSpec.from_formula(FORMULAS[name], _data(), weights="w")
    dense = optimize_lmer(make_devfun(spec, reml))
    assert make_devfun(spec, reml).dense is not None
    monkeypatch.setattr(small_dense, "DENSE_UP_TO", 0)
    devfun = make_devfun(spec, reml)
    assert devfun.dense is None
    blocked = optimize_lmer(devfun)
    assert abs(dense.objective - blocked.objective) <= 1e-10 * abs(blocked.objective)
    np.testing.assert_allclose(dense.theta, blocked.theta, rtol=1e-5, atol=1e-6)
