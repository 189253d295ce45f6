"""The dense BFGS with bounds of small models (lmmcompare.freq.box_bfgs) against known minima."""
import numpy as np
import pytest
import scipy.optimize

from lmmcompare.freq.box_bfgs import box_bfgs


def rosenbrock(x):
    value = 100.0 * (x[1] - x[0] ** 2) ** 2 + (1.0 - x[0]) ** 2
    grad = np.array([-400.0 * x[0] * (x[1] - x[0] ** 2) - 2.0 * (1.0 - x[0]), 200.0 * (x[1] - x[0] ** 2)])
    return value, grad


def test_unconstrained_rosenbrock_reaches_its_minimum():
    res = box_bfgs(rosenbrock, [-1.2, 1.0], np.full(2, -np.inf), np.full(2, np.inf), ftol=0.0, gtol=1e-8)
    assert res.status == 0
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(res.jac, rosenbrock(res.x)[1])


def test_a_bound_that_cuts_the_valley_holds_the_minimum_on_it():
    """x0 <= 0.5: the minimum is at x0 = 0.5, x1 = 0.25 (the valley floor x1 = x0^2 there)."""
    res = box_bfgs(rosenbrock, [-1.2, 1.0], np.array([-np.inf, -np.inf]), np.array([0.5, np.inf]), ftol=0.0,
                   gtol=1e-8)
    np.testing.assert_allclose(res.x, [0.5, 0.25], atol=1e-7)
    assert res.jac[0] < 0   # the gradient pushes against the bound


@pytest.mark.parametrize("seed", range(5))
def test_bounded_quadratic_matches_the_active_set_solution(seed):
    """min 0.5 (x - c)' A (x - c) on x >= 0 (A positive definite, c with negative entries): the same point as
    scipy's L-BFGS-B at tight tolerances, and its KKT conditions hold."""
    rng = np.random.default_rng(seed)
    k = 6
    M = rng.normal(size=(k, k))
    A = M @ M.T + k * np.eye(k)
    c = rng.normal(size=k)

    def f(x):
        r = x - c
        return 0.5 * r @ A @ r, A @ r

    lower, upper = np.zeros(k), np.full(k, np.inf)
    res = box_bfgs(f, np.ones(k), lower, upper, ftol=0.0, gtol=1e-10)
    ref = scipy.optimize.minimize(f, np.ones(k), jac=True, method="L-BFGS-B", bounds=[(0, None)] * k,
                                  options=dict(ftol=0.0, gtol=1e-12, maxcor=20))
    np.testing.assert_allclose(res.x, ref.x, atol=1e-8)
    # KKT: zero gradient on the free variables to what a line search on f can see (f ~ 10 resolves
    # differences of 2e-15, i.e. gradients of about sqrt(2e-15 * ||A||) ~ 1e-6), outward on the bound
    at_bound = res.x <= 0
    assert np.all(res.jac[at_bound] > 0) and np.all(np.abs(res.jac[~at_bound]) < 1e-6)
    np.testing.assert_allclose(res.hess_inv.todense(), res.hess_inv.todense().T)


def test_it_reports_an_iteration_limit_and_a_failed_line_search():
    res = box_bfgs(rosenbrock, [-1.2, 1.0], np.full(2, -np.inf), np.full(2, np.inf), maxiter=3)
    assert res.status == 1 and res.nit == 3

    def nowhere_lower(x):   # a kink at the start: every step goes up
        return float(np.sum(np.abs(x - 1.0))) + 1e-3 * float(np.sum(x)), np.full(x.size, 1.0)

    res = box_bfgs(nowhere_lower, np.ones(2), np.full(2, -np.inf), np.full(2, np.inf))
    assert res.status == 2 and "ABNORMAL" in res.message
    np.testing.assert_array_equal(res.x, np.ones(2))
