"""The trailing block stored in blocks (nested designs, issue 21).

Forced onto the block storage, small nested designs give the dense storage's
numbers to rounding (criterion, gradient, beta, b, sigma, log-likelihood,
conditional variances, draws, quadratic forms), Pastes still matches lme4, and
a design with more later-term levels than the dense limit fits and equals a
direct sparse computation of the criterion (scipy's sparse LU on the whole
``[u; beta]`` system).
"""
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg

from lmmcompare import ModelSpec
from lmmcompare.core.blocks import DENSE_LIMIT, Workspace, cross_products, response_row, with_response_row
from lmmcompare.core.factor import factorize, objective
from lmmcompare.core.gradient import objective_and_gradient
from lmmcompare.core.likelihood import conditional_effects, loglik
from lmmcompare.core.relcovar import lower_index
from lmmcompare.core.solve import inverse_quadratic_forms
from lmmcompare.errors import DataError
from lmmcompare.freq import fit_at_theta
from lmmcompare.freq.estimates import values_at
from lmmcompare.freq.fit import Devfun
from lmmcompare.freq.result import _optimized

from conftest import REFERENCE
from test_lmer_reference import compare, rel


def schools(n_schools=30, classes=4, pupils=5, seed=1):
    """Pupils in classes in schools: y = 1 + 0.5 x + school + class + noise."""
    rng = np.random.default_rng(seed)
    school = np.repeat(np.arange(n_schools), classes * pupils)
    cls = np.tile(np.repeat(np.arange(classes), pupils), n_schools)
    x = rng.normal(size=school.size)
    y = (1 + 0.5 * x + rng.normal(size=n_schools)[school] + 0.5 * rng.normal(size=(n_schools, classes))[school, cls]
         + rng.normal(size=school.size))
    return pd.DataFrame({"y": y, "x": x, "school": school.astype(str), "cls": cls.astype(str)})


def regions(seed=5):
    """Classes in regions, teachers that mostly stay in one region: components of sizes 4 and 16."""
    rng = np.random.default_rng(seed)
    cls = rng.integers(0, 60, 600)
    teacher = np.where(cls % 7 == 0, (cls // 3 + 1) % 20, cls // 3)
    x = rng.normal(size=cls.size)
    y = (1 + x + rng.normal(size=60)[cls] + rng.normal(size=10)[cls // 6] + rng.normal(size=20)[teacher]
         + rng.normal(size=cls.size))
    return pd.DataFrame({"y": y, "x": x, "cls": cls.astype(str), "region": (cls // 6).astype(str),
                         "teacher": teacher.astype(str)})


# (formula, data, theta inside, theta with a zero diagonal in a later term's T: the gradient's singular path)
CASES = [
    ("y ~ x + (1 | school/cls)", schools, [0.6, 1.1], [0.6, 0.0]),
    ("y ~ x + (1 | school:cls) + (1 + x | school)", schools, [0.6, 1.1, 0.2, 0.4], [0.6, 1.1, 0.2, 0.0]),
    ("y ~ x + (1 + x | school:cls) + (1 + x | school)", schools, [0.6, 0.1, 0.3, 1.1, 0.2, 0.4],
     [0.6, 0.1, 0.3, 0.0, 0.2, 0.4]),
    ("y ~ x + (1 | cls) + (1 + x | region) + (1 | teacher)", regions, [0.7, 0.8, 0.5, 0.1, 0.3],
     [0.7, 0.0, 0.5, 0.1, 0.3]),
]


def close(a, b, tol=1e-10):
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
    return float(np.max(np.abs(a - b))) / scale <= tol if b.size else True


@pytest.fixture(scope="module", params=range(len(CASES)), ids=[c[0] for c in CASES])
def routes(request):
    formula, data, inside, singular = CASES[request.param]
    spec = ModelSpec.from_formula(formula, data())
    dense, blocks = cross_products(spec, "dense"), cross_products(spec, "blocks")
    assert dense.blocks is None and blocks.blocks is not None
    return spec, dense, blocks, [np.array(inside), np.array(singular)]


def test_blocks_give_the_dense_criterion_gradient_and_estimates(routes):
    spec, dense, blocks, thetas = routes
    for theta in thetas:
        for reml in (True, False):
            value, grad = objective_and_gradient(dense, theta, reml)
            value_b, grad_b = objective_and_gradient(blocks, theta, reml)
            assert abs(value_b - value) <= 1e-10 * abs(value)
            assert close(grad_b, grad)
            est, est_b = (values_at(Devfun(spec=spec, cp=cp, reml=reml), theta) for cp in (dense, blocks))
            for key in ("beta", "b", "u", "sigma", "vcov_beta", "objective"):
                assert close(est_b[key], est[key]), key
            for C, C_b in zip(est["cond_blocks"], est_b["cond_blocks"]):
                assert close(C_b, C)


def test_blocks_give_the_dense_likelihood_draws_and_quadratic_forms(routes):
    spec, dense, blocks, thetas = routes
    theta = thetas[0]
    beta = values_at(Devfun(spec=spec, cp=dense, reml=True), theta)["beta"] + 0.1
    ll, ll_b = loglik(dense, beta, 1.3, theta), loglik(blocks, beta, 1.3, theta)
    assert abs(ll_b.value - ll.value) <= 1e-10 * abs(ll.value)
    for part in ("d_beta", "d_sigma", "d_theta"):
        assert close(getattr(ll_b, part), getattr(ll, part)), part
    draws = [conditional_effects(cp, beta, 1.3, theta, np.random.default_rng(4)) for cp in (dense, blocks)]
    assert close(draws[1], draws[0])
    rng = np.random.default_rng(2)
    k = 9
    codes = rng.integers(-1, dense.l1, k)
    first, rest = rng.normal(size=(k, dense.p1)), rng.normal(size=(k, dense.m - 1))
    f, f_b = factorize(dense, theta), factorize(blocks, theta)
    for include_X in (True, False):
        assert close(inverse_quadratic_forms(f_b, codes, first, rest, include_X),
                     inverse_quadratic_forms(f, codes, first, rest, include_X))


def test_blocks_gradient_matches_central_differences(routes):
    _, _, blocks, thetas = routes
    theta, h = thetas[0], 1e-6
    for reml in (True, False):
        _, grad = objective_and_gradient(blocks, theta, reml)
        steps = np.eye(theta.size) * h
        numeric = [(objective(blocks, theta + e, reml) - objective(blocks, theta - e, reml)) / (2 * h) for e in steps]
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-5)


def test_new_response_on_blocks_equals_blocks_of_that_response():
    """The Bayesian Op swaps y through ``with_response_row``: on blocks it must give the new y's blocks."""
    data = schools()
    spec = ModelSpec.from_formula("y ~ x + (1 | school/cls)", data)
    other = ModelSpec.from_formula("y ~ x + (1 | school/cls)", data.assign(y=data.y[::-1].to_numpy()))
    swapped = with_response_row(cross_products(spec, "blocks"), response_row(cross_products(other, "dense")))
    theta, beta = np.array([0.6, 1.1]), np.array([1.0, 0.4])
    expected, got = loglik(cross_products(other, "dense"), beta, 1.2, theta), loglik(swapped, beta, 1.2, theta)
    assert abs(got.value - expected.value) <= 1e-10 * abs(expected.value)
    assert close(got.d_theta, expected.d_theta)


def test_bayesian_op_on_blocks_gives_the_dense_value_and_gradient():
    import pytensor
    import pytensor.tensor as pt

    from lmmcompare.bayesian.blocked import blocked_loglik

    spec = ModelSpec.from_formula("y ~ x + (1 | school/cls)", schools())
    beta, sigma, L1, L2 = pt.dvector("beta"), pt.dscalar("sigma"), pt.dmatrix("L1"), pt.dmatrix("L2")
    point = (np.array([1.0, 0.4]), 1.2, np.array([[0.7]]), np.array([[1.1]]))
    results = []
    for route in ("dense", "blocks"):
        value = blocked_loglik(cross_products(spec, route), beta, sigma, [L1, L2], [1, 1])
        inputs = [beta, sigma, L1, L2]
        results.append(pytensor.function(inputs, [value, *pytensor.grad(value, inputs)])(*point))
    for dense, blocks in zip(*results):
        assert close(blocks, dense)


def test_pastes_on_blocks_matches_lme4():
    case = next(c for c in REFERENCE if c["id"] == "pastes_reml_nested")
    spec = ModelSpec.from_formula(case["formula"], case["data"])
    devfun = Devfun(spec=spec, cp=cross_products(spec, "blocks"), reml=case["reml"])
    at_lme4 = fit_at_theta(devfun, case["theta"])
    assert rel(at_lme4.objective, case["criterion"]) < 1e-10
    assert rel(at_lme4.loglik, case["logLik"]) < 1e-10
    compare(at_lme4, case, 1e-7, 1e-7, 1e-7, 1e-7)
    fit = _optimized(devfun)
    assert fit.objective <= case["criterion"] * (1 + 1e-10)
    compare(fit, case, 1e-4, 1e-3, 1e-3, 1e-3)
    table = fit.coef_table("satterthwaite")
    np.testing.assert_allclose(table["df"], list(case["satterthwaite_df"].values()), rtol=1e-3)


def sparse_criterion(spec, theta, reml):
    """The profiled criterion by scipy's sparse LU on the whole ``[u; beta]`` system (no blocking)."""
    sizes = [t.p for t in spec.terms]
    blocks, pos = [], 0
    for t, p in zip(spec.terms, sizes):
        T = np.zeros((p, p))
        T[lower_index(p)] = theta[pos : pos + p * (p + 1) // 2]
        pos += p * (p + 1) // 2
        blocks.append(sp.kron(sp.identity(t.n_levels), T))
    ZL = (spec.Z @ sp.block_diag(blocks)).tocsc()
    q, n, p = ZL.shape[1], spec.n, spec.p
    A = (ZL.T @ ZL + sp.identity(q)).tocsc()
    M = sp.bmat([[A, ZL.T @ spec.X], [spec.X.T @ ZL, spec.X.T @ spec.X]], format="csc")

    def lu(S):  # symmetric positive definite: a symmetric fill-reducing order, no pivoting
        return scipy.sparse.linalg.splu(S, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                                        options={"SymmetricMode": True})

    def logdet(factor):
        return float(np.sum(np.log(np.abs(factor.U.diagonal()))))

    factor = lu(M)
    solution = factor.solve(np.concatenate([ZL.T @ spec.y, spec.X.T @ spec.y]))
    u, beta = solution[:q], solution[q:]
    r2 = np.sum((spec.y - spec.X @ beta - ZL @ u) ** 2) + u @ u
    if reml:
        return logdet(factor) + (n - p) * (1 + np.log(2 * np.pi * r2 / (n - p)))
    return logdet(lu(A)) + n * (1 + np.log(2 * np.pi * r2 / n))


@pytest.fixture(scope="module")
def many_schools():
    """8,000 schools x 2 classes x 2 pupils: 8,000 later-term levels, beyond the dense limit."""
    spec = ModelSpec.from_formula("y ~ x + (1 | school/cls)", schools(8_000, 2, 2, seed=3))
    assert spec.terms[1].n_levels > DENSE_LIMIT
    return spec


def test_beyond_the_dense_limit_equals_the_sparse_criterion_without_an_m_by_m_array(many_schools):
    spec = many_schools
    cp = cross_products(spec)
    assert cp.blocks is not None and cp.blocks.sizes == [1]
    theta = np.array([0.7, 0.9])
    workspace = Workspace(cp.m)
    objective_and_gradient(cp, theta, True, workspace)   # the cached pairs matrix and packed A22 built once
    for reml in (True, False):
        tracemalloc.start()
        value, _ = objective_and_gradient(cp, theta, reml, workspace)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < cp.m * cp.m * 8 / 100         # one m x m array: 512 MB
        assert abs(value - sparse_criterion(spec, theta, reml)) <= 1e-10 * abs(value)
    assert "buffers" not in workspace._local.__dict__


def test_beyond_the_dense_limit_fits_to_the_sparse_optimum(many_schools):
    cp = cross_products(many_schools)
    fit = _optimized(Devfun(spec=many_schools, cp=cp, reml=True))
    assert fit.opt.converged and np.all(fit.theta > 0.1)
    assert abs(fit.objective - sparse_criterion(many_schools, fit.theta, True)) <= 1e-10 * abs(fit.objective)
    h = 1e-5   # an interior optimum: the criterion's central differences vanish there
    slope = [(objective(cp, fit.theta + e, True) - objective(cp, fit.theta - e, True)) / (2 * h) for e in np.eye(2) * h]
    assert np.max(np.abs(slope)) < 1e-3


def test_one_large_coupled_block_is_still_refused():
    """Crossed later levels that form one component beyond the dense limit: a typed error naming the term."""
    n = 3 * (DENSE_LIMIT + 500)
    i = np.arange(n)
    frame = pd.DataFrame({"y": np.random.default_rng(0).normal(size=n), "a": (i % (n // 2)).astype(str),
                          "b": ((i + i // (n // 2)) % (DENSE_LIMIT + 500)).astype(str)})
    spec = ModelSpec.from_formula("y ~ 1 + (1 | a) + (1 | b)", frame)
    with pytest.raises(DataError, match="coupled in one block"):
        cross_products(spec)


def test_storage_is_chosen_by_the_components():
    """Nested with m >= 150: blocks; small models and one coupled component (Penicillin's samples): dense."""
    nested = cross_products(ModelSpec.from_formula("y ~ x + (1 | school/cls)", schools(200, 2, 2)))
    assert nested.m == 203 and nested.blocks is not None and nested.largest_dense_block == 4
    for formula, data in [("strength ~ 1 + (1 | batch/cask)", "Pastes"),
                          ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin")]:
        assert cross_products(ModelSpec.from_formula(formula, data)).blocks is None
    crossed = schools(200, 2, 2).assign(item=lambda d: (np.arange(len(d)) % 150).astype(str))
    one_component = cross_products(ModelSpec.from_formula("y ~ x + (1 | school) + (1 | item)", crossed))
    assert one_component.m == 153 and one_component.blocks is None


def test_blocks_give_the_dense_leverages_and_prediction_variances(routes):
    """sigma_by's slopes read every row's leverage, predictions' se every new row's form: both through
    the sparse rows of :func:`~lmmcompare.core.solve.rest_values_of` on blocks."""
    from lmmcompare.core.residual_ratios import row_leverages

    spec, dense, blocks, thetas = routes
    theta = thetas[0]
    f, f_b = factorize(dense, theta), factorize(blocks, theta)
    for include_X in (True, False):
        assert close(row_leverages(spec, f_b, include_X), row_leverages(spec, f, include_X))
    fits = [fit_at_theta(Devfun(spec=spec, cp=cp, reml=True), theta) for cp in (dense, blocks)]
    newdata = (schools() if "school" in spec.formula else regions()).head(40).copy()
    newdata.loc[newdata.index[:5], "cls"] = "new"    # a few rows at a first-term level the fit has not seen
    tables = [fit.predict(newdata, se_fit=True, allow_new_levels=True) for fit in fits]
    assert close(tables[1]["se"], tables[0]["se"]) and close(tables[1]["fit"], tables[0]["fit"])
