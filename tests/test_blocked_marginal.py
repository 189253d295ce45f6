"""The blocked marginal likelihood (frequentist factor, PyTensor Op) against brute force.

``core.likelihood.loglik`` is checked against the dense multivariate normal
log-density with ``V = sigma^2 (Z Lambda Lambda' Z' + I)`` and its gradient
against central differences of that density; the conditional draws of b
against the dense Cholesky of ``Lambda'Z'Z Lambda + I`` with the same normal
numbers; the PyTensor Op against the dense PyTensor marginal of
``bayesian.model.marginal_loglik``, value and gradient.
"""
import numpy as np
import pytest
import scipy.linalg
import scipy.stats

import lmmcompare as lc
from lmmcompare.core.blocks import cross_products
from lmmcompare.core.likelihood import conditional_effects, loglik
from lmmcompare.core.relcovar import theta_to_T

CASES = [
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin"),
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),
    ("strength ~ 1 + (1 | batch/cask)", "Pastes"),
    ("distance ~ age * Sex + (age | Subject) + (1 | age)", "Orthodont"),
]


def _dense_parts(spec, theta):
    Ts = theta_to_T(theta, [t.p for t in spec.terms])
    Lam = scipy.linalg.block_diag(*[np.kron(np.eye(t.n_levels), T) for t, T in zip(spec.terms, Ts)])
    return Lam, spec.Z.toarray()


def _dense_loglik(spec, beta, sigma, theta):
    Lam, Z = _dense_parts(spec, theta)
    V = sigma**2 * (Z @ Lam @ Lam.T @ Z.T + np.eye(spec.n))
    return scipy.stats.multivariate_normal(spec.X @ beta, V).logpdf(spec.y)


def _point(spec, seed):
    """A point away from the optimum: REML estimates perturbed by a few se."""
    rng = np.random.default_rng(seed)
    fit = lc.lmer(spec)
    theta = np.maximum(fit.theta, 0.05) * rng.uniform(0.7, 1.3, fit.theta.size)
    beta = fit.fixef.to_numpy() + rng.normal(0, 2, spec.p) * fit.se.to_numpy()
    return beta, fit.sigma * rng.uniform(0.8, 1.2), theta


@pytest.mark.filterwarnings("ignore::lmmcompare.errors.SingularFitWarning")
@pytest.mark.parametrize("formula, data", CASES)
def test_loglik_and_gradient_match_the_dense_normal_density(formula, data):
    spec = lc.ModelSpec.from_formula(formula, data)
    beta, sigma, theta = _point(spec, seed=len(formula))
    ll = loglik(cross_products(spec), beta, sigma, theta)
    ref = _dense_loglik(spec, beta, sigma, theta)
    assert abs(ll.value - ref) < 1e-10 * abs(ref)
    h = 1e-5

    def diff(f, x):
        return np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(x.size)])

    num_theta = diff(lambda t: _dense_loglik(spec, beta, sigma, t), theta)
    num_beta = diff(lambda b: _dense_loglik(spec, b, sigma, theta), beta)
    num_sigma = diff(lambda s: _dense_loglik(spec, beta, s[0], theta), np.array([sigma]))[0]
    scale = 1.0 + np.abs(num_theta).max()
    np.testing.assert_allclose(ll.d_theta, num_theta, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(ll.d_beta, num_beta, rtol=1e-6, atol=1e-6)
    assert abs(ll.d_sigma - num_sigma) < 1e-6 * (1 + abs(num_sigma))


@pytest.mark.filterwarnings("ignore::lmmcompare.errors.SingularFitWarning")
@pytest.mark.parametrize("formula, data", CASES)
def test_conditional_draws_are_the_dense_gaussian_conditional(formula, data):
    """Same normal numbers, dense factor of M = Lambda'Z'Z Lambda + I: the Cholesky factor is unique."""
    spec = lc.ModelSpec.from_formula(formula, data)
    beta, sigma, theta = _point(spec, seed=7)
    Lam, Z = _dense_parts(spec, theta)
    M = Lam.T @ Z.T @ Z @ Lam + np.eye(spec.q)
    mean_u = np.linalg.solve(M, Lam.T @ Z.T @ (spec.y - spec.X @ beta))
    z = np.random.default_rng(11).standard_normal(spec.q)
    expected = Lam @ (mean_u + sigma * np.linalg.solve(np.linalg.cholesky(M).T, z))
    drawn = conditional_effects(cross_products(spec), beta, sigma, theta, np.random.default_rng(11))
    np.testing.assert_allclose(drawn, expected, rtol=1e-9, atol=1e-10 * np.abs(expected).max())


@pytest.mark.parametrize("formula, data", CASES[:2])
def test_op_equals_the_dense_pytensor_marginal(formula, data):
    """Value and gradient of the model's marginal log-likelihood, blocked Op vs dense graph."""
    import pytensor
    import pytensor.tensor as pt

    from lmmcompare.bayesian.blocked import blocked_loglik
    from lmmcompare.bayesian.model import marginal_data, marginal_loglik

    spec = lc.ModelSpec.from_formula(formula, data)
    beta0, sigma0, theta0 = _point(spec, seed=3)
    Ts = theta_to_T(theta0, [t.p for t in spec.terms])
    beta, sigma = pt.dvector("beta"), pt.dscalar("sigma")
    factor_vars = [pt.dmatrix(f"L{i}") for i in range(len(spec.terms))]
    blocked = blocked_loglik(cross_products(spec), beta, sigma, factor_vars, [t.p for t in spec.terms])
    # the dense form takes (alpha, slopes on centred columns): with no slopes here gamma = beta
    slope_index = [j for j, n in enumerate(spec.fixed_names) if n != "(Intercept)"]
    x_means = spec.X[:, slope_index].mean(axis=0)
    gamma = pt.concatenate([beta[:1] + pt.dot(x_means, beta[1:]), beta[1:]])
    dense = marginal_loglik(spec, marginal_data(spec, slope_index, x_means), gamma, sigma, factor_vars)
    inputs = [beta, sigma, *factor_vars]
    values = [beta0, sigma0, *[sigma0 * T for T in Ts]]
    for expr in (blocked, dense):
        grads = pytensor.grad(expr, inputs)
        out = pytensor.function(inputs, [expr, *grads])(*values)
        if expr is blocked:
            expected = out
        else:
            assert abs(out[0] - expected[0]) < 1e-10 * abs(out[0])
            for g_dense, g_blocked in zip(out[1:], expected[1:]):
                # theta holds the lower triangles: the dense graph's upper-triangle partials are not parameters
                lower = np.tril if np.ndim(g_dense) == 2 else np.asarray
                np.testing.assert_allclose(lower(g_blocked), lower(g_dense), rtol=1e-6, atol=1e-8)
