"""The blocked profiled objective against brute-force dense Gaussian likelihoods.

For V0 = Z Lambda Lambda' Z' + I (n x n, dense), the profiled deviance is
n log(2 pi s2) + log|V0| + n with s2 = r' V0^-1 r / n at the GLS beta, and the
REML criterion adds log|X' V0^-1 X| and uses n - p (Bates et al. 2015, sec. 3).
"""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from lmmcompare import ModelSpec
from lmmcompare.core.blocks import cross_products
from lmmcompare.core.factor import objective
from lmmcompare.core.gradient import objective_and_gradient
from lmmcompare.core.relcovar import apply_lambda, theta_to_T


def brute_force(spec, theta, reml):
    Ts = theta_to_T(theta, [t.p for t in spec.terms])
    Z = spec.Z.toarray()
    Lam = np.column_stack([apply_lambda(e, Ts, [t.n_levels for t in spec.terms]) for e in np.eye(spec.q)])
    V0 = Z @ Lam @ Lam.T @ Z.T + np.eye(spec.n)
    Vi = np.linalg.inv(V0)
    X, y = spec.X, spec.y
    XtViX = X.T @ Vi @ X
    beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
    r = y - X @ beta
    rss = r @ Vi @ r
    logdet = np.linalg.slogdet(V0)[1]
    if reml:
        nr = spec.n - spec.p
        return nr * np.log(2 * np.pi * rss / nr) + logdet + np.linalg.slogdet(XtViX)[1] + nr
    return spec.n * np.log(2 * np.pi * rss / spec.n) + logdet + spec.n


@st.composite
def designs(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n_g = draw(st.integers(3, 7))
    n_h = draw(st.integers(2, 4))
    n = draw(st.integers(2 * (n_g + n_h) + 6, 40))
    frame = pd.DataFrame({
        "y": rng.normal(size=n) * draw(st.floats(0.5, 20)),
        "x": rng.normal(size=n),
        "w": rng.uniform(-1, 1, size=n),
        "g": np.r_[np.arange(n_g), rng.integers(0, n_g, n - n_g)].astype(str),
        "h": np.r_[np.arange(n_h), rng.integers(0, n_h, n - n_h)].astype(str),
    })
    formula = draw(st.sampled_from([
        "y ~ x + (1 | g)", "y ~ x + (x | g)", "y ~ x + w + (x || g)", "y ~ x + (1 | g) + (1 | h)",
        "y ~ w + (x | g) + (1 | h)", "y ~ 1 + (w | h) + (x | g)", "y ~ x + (1 | g:h) + (1 | g)",
    ]))
    spec = ModelSpec.from_formula(formula, frame)
    theta = np.where(spec.theta_lower == 0, rng.uniform(0.0, 2.0, spec.n_theta), rng.normal(0, 1, spec.n_theta))
    return spec, theta, draw(st.booleans())


@settings(max_examples=60, deadline=None)
@given(designs())
def test_profiled_objective_equals_dense_likelihood(design):
    spec, theta, reml = design
    mine = objective(cross_products(spec), theta, reml)
    np.testing.assert_allclose(mine, brute_force(spec, theta, reml), rtol=1e-9)


@settings(max_examples=30, deadline=None)
@given(designs())
def test_analytic_gradient_equals_central_differences(design):
    spec, theta, reml = design
    theta = np.maximum(theta, 0.05 * (spec.theta_lower == 0))  # stay inside for the differences
    cp = cross_products(spec)
    _, grad = objective_and_gradient(cp, theta, reml)
    h = 1e-5
    numeric = [(objective(cp, theta + h * e, reml) - objective(cp, theta - h * e, reml)) / (2 * h)
               for e in np.eye(theta.size)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-5 * max(1.0, np.max(np.abs(numeric))))


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("later", [[0.3, 0.1, 5e-7], [0.3, 0.0, 0.0], [0.0, 0.0, 0.0]],
                         ids=["near_zero_diagonal", "zero_column", "zero_term"])
def test_gradient_of_a_singular_later_term_is_analytic_and_exact(reml, later):
    """A later term whose T has a (near) zero diagonal: no T^{-1}, no differences (issue 21: they cost
    the maximal design 3,055 factorisations for 110 evaluations).  Checked against symmetric differences;
    the criterion is even in the sign of each column of T, so they are exact to O(h^2) even at 0."""
    import lmmcompare as lc

    data = lc.load_dataset("sleepstudy").assign(g=lambda d: (np.arange(len(d)) % 6).astype(str))
    spec = lc.ModelSpec.from_formula("Reaction ~ Days + (1 | Subject) + (Days | g)", data)
    assert [t.group for t in spec.terms] == ["Subject", "g"]
    theta = np.array([0.8, *later])
    cp = cross_products(spec)
    _, grad = objective_and_gradient(cp, theta, reml)
    h = 1e-7
    numeric = np.array([(objective(cp, theta + h * e, reml) - objective(cp, theta - h * e, reml)) / (2 * h)
                        for e in np.eye(theta.size)])
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6 * max(1.0, np.max(np.abs(numeric))))


@pytest.mark.parametrize("dense_bfgs", [False, True])
def test_optimizer_continues_where_ftol_stops_with_the_gradient_still_large(dense_bfgs):
    """A curved valley (Rosenbrock) beside a direction 10^6 times stiffer, started 1.5 off in it: the first
    steps lower the criterion by 2.25e6, so a reduction below ftol relative to that (2e-4) stops L-BFGS-B in
    the valley with max|grad| = 0.08, far above lme4's 0.002 (the long curved ridge of a maximal crossed
    design).  Both optimizers restart until the gradient is small by lme4's rule and reach the minimum
    (1, 1, 0.5); the dense BFGS, whose matrix learned the stiff direction, is judged by differences."""
    import scipy.optimize

    from lmmcompare.freq.optimize import optimize_theta

    def ridge(x):
        value = 1e6 + 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2 + 1e6 * (x[2] - 0.5) ** 2
        grad = np.array([-400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0]), 200 * (x[1] - x[0] ** 2),
                         2e6 * (x[2] - 0.5)])
        return value, grad

    start, lower = np.array([0.1, 2.0, 2.0]), np.array([0.0, -np.inf, 0.0])
    from_start = ridge(start)[0]   # the optimizers see the criterion less its value at the start
    plain = scipy.optimize.minimize(lambda x: (ridge(x)[0] - from_start, ridge(x)[1]), start, jac=True,
                                    method="L-BFGS-B", bounds=[(0, None), (None, None), (0, None)],
                                    options=dict(ftol=1e-10, gtol=1e-5, maxcor=20))
    assert np.max(np.abs(plain.jac)) > 0.002   # the stop this guards against
    opt = optimize_theta(ridge, start, lower, dense_bfgs=dense_bfgs)
    assert opt.converged
    np.testing.assert_allclose(opt.theta, [1.0, 1.0, 0.5], atol=1e-5)
    assert opt.objective - 1e6 < 1e-9
