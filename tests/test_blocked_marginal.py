"""The blocked marginal likelihood (frequentist factor, PyTensor Op) against brute force.

``core.likelihood.loglik`` is checked against the dense multivariate normal
log-density with ``V = sigma^2 (Z Lambda Lambda' Z' + I)`` and its gradient
against central differences of that density; the conditional draws of b
against the dense Cholesky of ``Lambda'Z'Z Lambda + I`` with the same normal
numbers; the model's marginal log-likelihood (``bayesian.marginal.marginal_loglik``,
either kernel, the blocked Op or the closed form) against the same dense density,
value and gradient, also after its response is swapped as a refit swaps it.
"""
import numpy as np
import pytest
import scipy.linalg
import scipy.stats

import lmmcompare as lc
from lmmcompare.core.blocks import cross_products
from lmmcompare.core.likelihood import conditional_effects, loglik
from lmmcompare.core.relcovar import lower_index, theta_to_T

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
    """``log N(y; offset + X beta, sigma^2 (Z Lambda Lambda' Z' + W^{-1}))``, W the prior weights."""
    Lam, Z = _dense_parts(spec, theta)
    residual = np.eye(spec.n) if spec.weights is None else np.diag(1.0 / spec.weights)
    V = sigma**2 * (Z @ Lam @ Lam.T @ Z.T + residual)
    return scipy.stats.multivariate_normal(spec.working_offset + spec.X @ beta, V).logpdf(spec.y)


def _spec(formula, data, inputs=False):
    """The spec; with ``inputs``, prior weights in (0.5, 2) and an offset, functions of the row number."""
    if not inputs:
        return lc.ModelSpec.from_formula(formula, data)
    n = len(lc.load_dataset(data))
    rows = np.arange(n)
    return lc.ModelSpec.from_formula(formula, data, weights=0.5 + 0.75 * (rows % 3), offset=3.0 * np.cos(rows))


def _point(spec, seed):
    """A point away from the optimum: REML estimates perturbed by a few se."""
    rng = np.random.default_rng(seed)
    fit = lc.lmer(spec)
    theta = np.maximum(fit.theta, 0.05) * rng.uniform(0.7, 1.3, fit.theta.size)
    beta = fit.fixef.to_numpy() + rng.normal(0, 2, spec.p) * fit.se.to_numpy()
    return beta, fit.sigma * rng.uniform(0.8, 1.2), theta


@pytest.mark.filterwarnings("ignore::lmmcompare.errors.SingularFitWarning")
@pytest.mark.parametrize("inputs", [False, True], ids=["plain", "weights_offset"])
@pytest.mark.parametrize("formula, data", CASES)
def test_loglik_and_gradient_match_the_dense_normal_density(formula, data, inputs):
    spec = _spec(formula, data, inputs)
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
@pytest.mark.parametrize("inputs", [False, True], ids=["plain", "weights_offset"])
@pytest.mark.parametrize("formula, data", CASES)
def test_conditional_draws_are_the_dense_gaussian_conditional(formula, data, inputs):
    """Same normal numbers, dense factor of M = Lambda'Z'WZ Lambda + I: the Cholesky factor is unique."""
    spec = _spec(formula, data, inputs)
    beta, sigma, theta = _point(spec, seed=7)
    Lam, Z = _dense_parts(spec, theta)
    root = np.ones(spec.n) if spec.weights is None else np.sqrt(spec.weights)
    Z = root[:, None] * Z
    M = Lam.T @ Z.T @ Z @ Lam + np.eye(spec.q)
    mean_u = np.linalg.solve(M, Lam.T @ Z.T @ (root * (spec.y - spec.working_offset - spec.X @ beta)))
    z = np.random.default_rng(11).standard_normal(spec.q)
    expected = Lam @ (mean_u + sigma * np.linalg.solve(np.linalg.cholesky(M).T, z))
    drawn = conditional_effects(cross_products(spec), beta, sigma, theta, np.random.default_rng(11))
    np.testing.assert_allclose(drawn, expected, rtol=1e-9, atol=1e-10 * np.abs(expected).max())


MODEL_CASES = CASES + [("Yield ~ 1 + (1 | Batch)", "Dyestuff"),   # sleepstudy, Dyestuff: the closed form
                       ("diameter ~ 0 + (1 | plate) + (1 | sample)", "Penicillin"),   # no fixed effects
                       ("Reaction ~ 0 + Days + (Days | Subject) + (1 | Days)", "sleepstudy"),
                       ("Reaction ~ 0 + (Days | Subject)", "sleepstudy")]   # the closed form, no fixed effects


def _graph(spec, shared):
    """The model's marginal log-likelihood and its gradient, compiled over (coef, sigma, L_i)."""
    import pytensor
    import pytensor.tensor as pt

    from lmmcompare.bayesian.marginal import marginal_loglik, response_data

    names = spec.fixed_names
    slope_index = [j for j, n in enumerate(names) if n != "(Intercept)"]
    has_intercept = "(Intercept)" in names
    x_means = spec.X[:, slope_index].mean(axis=0) if has_intercept else np.zeros(len(slope_index))
    response = {k: pytensor.shared(v) if shared else v for k, v in response_data(spec, slope_index, x_means).items()}
    coef, sigma = pt.dvector("coef"), pt.dscalar("sigma")
    factors = [pt.dmatrix(f"L{i}") for i in range(len(spec.terms))]
    expr = marginal_loglik(spec, response, coef, sigma, factors, slope_index, x_means)
    inputs = [coef, sigma, *factors]
    # with no fixed effects coef is empty and unused
    fn = pytensor.function(inputs, [expr, *pytensor.grad(expr, inputs, disconnected_inputs="ignore")],
                           on_unused_input="ignore")
    # coef = (alpha, slopes) on the centred slopes: alpha = beta_(Intercept) + x_means' slopes
    to_coef = np.eye(spec.p)[slope_index]
    if has_intercept:
        alpha = np.eye(spec.p)[names.index("(Intercept)")]
        alpha[slope_index] = x_means
        to_coef = np.vstack([alpha, to_coef])
    return fn, response, to_coef


@pytest.mark.filterwarnings("ignore::lmmcompare.errors.SingularFitWarning")
@pytest.mark.parametrize("inputs", [False, True], ids=["plain", "weights_offset"])
@pytest.mark.parametrize("formula, data", MODEL_CASES)
def test_model_marginal_loglik_is_the_dense_normal_density(formula, data, inputs):
    """Both kernels behind ``marginal_loglik``: value to 1e-10, gradient against central differences."""
    from lmmcompare.bayesian.marginal import kernel

    spec = _spec(formula, data, inputs)
    assert kernel(spec) == ("closed_form" if len(spec.terms) == 1 and spec.terms[0].p <= 2 else "blocked")
    fn, _, to_coef = _graph(spec, shared=False)
    beta, sigma, theta = _point(spec, seed=3)
    sizes = [t.p for t in spec.terms]
    Ls = [sigma * T for T in theta_to_T(theta, sizes)]
    value, g_coef, g_sigma, *g_L = fn(to_coef @ beta, sigma, *Ls)
    ref = _dense_loglik(spec, beta, sigma, theta)
    assert abs(value - ref) < 1e-10 * abs(ref)

    def dense(coef, s, factors):   # the dense density as a function of the model's own parameters
        th = np.concatenate([L[lower_index(L.shape[0])] for L in factors]) / s   # lme4's column-major order
        return _dense_loglik(spec, np.linalg.solve(to_coef, coef), s, th)

    h, coef = 1e-5, to_coef @ beta
    for k in range(coef.size):
        e = h * np.eye(coef.size)[k]
        num = (dense(coef + e, sigma, Ls) - dense(coef - e, sigma, Ls)) / (2 * h)
        assert abs(g_coef[k] - num) < 1e-6 * (1 + abs(num))
    num = (dense(coef, sigma + h, Ls) - dense(coef, sigma - h, Ls)) / (2 * h)
    assert abs(g_sigma - num) < 1e-6 * (1 + abs(num))
    for i, L in enumerate(Ls):
        for a, b in zip(*np.tril_indices(L.shape[0])):
            E = np.zeros_like(L)
            E[a, b] = h
            up, down = list(Ls), list(Ls)
            up[i], down[i] = L + E, L - E
            num = (dense(coef, sigma, up) - dense(coef, sigma, down)) / (2 * h)
            assert abs(g_L[i][a, b] - num) < 1e-5 * (1 + abs(num))


@pytest.mark.filterwarnings("ignore::lmmcompare.errors.SingularFitWarning")
@pytest.mark.parametrize("formula, data", [CASES[0], CASES[3], CASES[1]])
def test_swapped_response_gives_the_dense_density_of_the_new_response(formula, data):
    """A refit swaps only the y-inputs of the compiled likelihood (crossed designs through the Op)."""
    from lmmcompare.bayesian.marginal import response_data

    spec = lc.ModelSpec.from_formula(formula, data)
    fn, response, to_coef = _graph(spec, shared=True)
    beta, sigma, theta = _point(spec, seed=5)
    Ls = [sigma * T for T in theta_to_T(theta, [t.p for t in spec.terms])]
    rng = np.random.default_rng(1)
    for y in (spec.y[rng.permutation(spec.n)] + 3.0, spec.y):   # a new response, then back to the first
        new = spec.with_response(y)
        slope_index = [j for j, n in enumerate(spec.fixed_names) if n != "(Intercept)"]
        for name, value in response_data(new, slope_index, spec.X[:, slope_index].mean(axis=0)).items():
            response[name].set_value(value)
        got = fn(to_coef @ beta, sigma, *Ls)[0]
        ref = _dense_loglik(new, beta, sigma, theta)
        assert abs(got - ref) < 1e-10 * abs(ref)
