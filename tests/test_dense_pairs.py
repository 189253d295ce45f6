"""The dense route for ``A21 W A21'`` (designs where every first-term level meets most later levels).

Forced on the property designs of test_objective_property, it must give the
brute-force dense likelihood; on a maximal crossed design, where it switches
on by itself, the same objective, gradient and marginal log-likelihood as the
sparse pairs matrix K.
"""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings

from lmmcompare import ModelSpec
from lmmcompare.core.blocks import cross_products
from lmmcompare.core.factor import objective
from lmmcompare.core.gradient import objective_and_gradient
from lmmcompare.core.likelihood import loglik
from lmmcompare.core.relcovar import lower_index

from test_objective_property import brute_force, designs


def with_route(cp, dense: bool):
    cp.__dict__["dense_pairs"] = dense   # the cached decision, overridden for the comparison
    return cp


@settings(max_examples=40, deadline=None)
@given(designs())
def test_dense_route_gives_the_dense_likelihood(design):
    spec, theta, reml = design
    cp = with_route(cross_products(spec), True)
    np.testing.assert_allclose(objective(cp, theta, reml), brute_force(spec, theta, reml), rtol=1e-9)


def crossed(subjects=24, items=16, seed=3):
    """Every subject meets every item; three +-0.5 factors varying within both."""
    rng = np.random.default_rng(seed)
    s, i = (a.ravel() for a in np.meshgrid(np.arange(subjects), np.arange(items), indexing="ij"))
    frame = pd.DataFrame({"a": (s + i) % 2 - 0.5, "b": (s // 2 + i) % 2 - 0.5, "subj": s.astype(str),
                          "item": i.astype(str)})
    frame["y"] = 5 + rng.normal(size=s.size) + rng.normal(size=subjects)[s] + rng.normal(size=items)[i]
    return frame


@pytest.fixture(scope="module")
def crossed_spec():
    return ModelSpec.from_formula("y ~ a + b + (1 + a + b | subj) + (1 + a + b | item)", crossed())


def test_maximal_crossed_design_takes_the_dense_route_with_the_same_numbers(crossed_spec):
    spec = crossed_spec
    dense, sparse = cross_products(spec), with_route(cross_products(spec), False)
    assert dense.dense_pairs
    rng = np.random.default_rng(0)
    L1, L2 = (np.tril(rng.normal(scale=0.3, size=(3, 3))) + 0.6 * np.eye(3) for _ in range(2))
    theta = np.concatenate([L1[lower_index(3)], L2[lower_index(3)]])
    check_routes(spec, dense, sparse, theta)
    L2[2, 2] = 0.0   # a singular later term: its gradient blocks come off the trailing product
    check_routes(spec, dense, sparse, np.concatenate([L1[lower_index(3)], L2[lower_index(3)]]))


def check_routes(spec, dense, sparse, theta):
    """Objective, gradient and marginal log-likelihood equal on both routes, and the objective the brute force's."""
    for reml in (True, False):
        value, grad = objective_and_gradient(dense, theta, reml)
        value_k, grad_k = objective_and_gradient(sparse, theta, reml)
        assert value == pytest.approx(value_k, rel=1e-12)
        assert value == pytest.approx(brute_force(spec, theta, reml), rel=1e-10)
        np.testing.assert_allclose(grad, grad_k, rtol=1e-9, atol=1e-9)
    beta, sigma = np.array([5.0, 0.3, -0.1]), 1.2
    a, b = loglik(dense, beta, sigma, theta), loglik(sparse, beta, sigma, theta)
    assert a.value == pytest.approx(b.value, rel=1e-12)
    for name in ("d_beta", "d_theta"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-9)
    assert a.d_sigma == pytest.approx(b.d_sigma, rel=1e-10)


def test_small_and_sparse_designs_keep_the_pairs_matrix():
    """sleepstudy (K has hundreds of entries) and a nested design stay on K, whose digits the references use."""
    sleep = cross_products(ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)", "sleepstudy"))
    pastes = cross_products(ModelSpec.from_formula("strength ~ 1 + (1 | batch/cask)", "Pastes"))
    assert not sleep.dense_pairs and not pastes.dense_pairs
