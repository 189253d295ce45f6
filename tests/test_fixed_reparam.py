"""The intercept of a random-intercept marginal model, sampled as z around its conditional mean.

The conditional mean and precision are checked against generalised least squares with a
dense covariance, and the model's log density against the one that samples alpha itself:
they differ by the Jacobian alone, so both sample one posterior.
"""
import numpy as np
import pytest

import lmmcompare as lc
import lmmcompare.bayesian.model as model_module
from lmmcompare.bayesian.fixed_reparam import design_sums, intercept_draws, intercept_moments, reparameterized
from lmmcompare.bayesian.marginal import sampled_design, response_data
from lmmcompare.bayesian.model import build_model
from lmmcompare.core.blocks import cross_products

CAKE = "angle ~ recipe * temp + offset(0.1 * temp) + (1 | recipe:replicate)"


@pytest.fixture(scope="module")
def cake_spec():
    cake = lc.load_dataset("cake")
    weights = 1.0 + (np.arange(len(cake)) % 3) / 2.0
    return lc.ModelSpec.from_formula(CAKE, cake, weights=weights)


def test_only_one_random_intercept_with_an_intercept_is_reparameterised(cake_spec):
    assert reparameterized(cake_spec)
    assert reparameterized(lc.ModelSpec.from_formula("Yield ~ 1 + (1 | Batch)", "Dyestuff"))
    for formula, data in [("Reaction ~ Days + (Days | Subject)", "sleepstudy"),
                          ("Reaction ~ 0 + Days + (1 | Subject)", "sleepstudy"),
                          ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin")]:
        assert not reparameterized(lc.ModelSpec.from_formula(formula, data))


def test_conditional_mean_and_precision_are_generalised_least_squares(cake_spec):
    """alpha_hat = (b_0 - P_0s beta_s) / P_00 with P = D'V0^{-1}D, b = D'V0^{-1}y, V0 = I + lambda^2 ZZ'
    (the rows scaled by the prior weights, the offset taken off y), for several lambda and slopes."""
    spec = cake_spec
    slope_index = [j for j, n in enumerate(spec.fixed_names) if n != "(Intercept)"]
    x_means = spec.X[:, slope_index].mean(axis=0)
    D = sampled_design(spec, slope_index, x_means)
    Z = spec.weighted_rows(spec.Z).toarray()
    y = spec.working_response
    response = response_data(spec, slope_index, x_means)
    a = cross_products(spec).A11[:, 0, 0]
    DtD, ZtD, a_model = design_sums(spec, slope_index, x_means)   # the model's own sums, without the blocks
    np.testing.assert_array_equal(a_model, a)
    np.testing.assert_array_equal(DtD, D.T @ D)
    rng = np.random.default_rng(3)
    lams = np.array([0.05, 0.7, 3.0])
    slopes = rng.normal(0.0, 2.0, (lams.size, len(slope_index)))
    alpha_hat, precision = intercept_moments(D.T @ D, Z.T @ D, a, response["Dty"], response["Zty"],
                                             lams[:, None], slopes, np)
    for k, lam in enumerate(lams):
        V0_inv = np.linalg.inv(np.eye(spec.n) + lam**2 * Z @ Z.T)
        P, b = D.T @ V0_inv @ D, D.T @ V0_inv @ y
        assert precision[k] == pytest.approx(P[0, 0], rel=1e-10)
        assert alpha_hat[k] == pytest.approx((b[0] - P[0, 1:] @ slopes[k]) / P[0, 0], rel=1e-10)


def test_log_density_is_the_alpha_models_plus_the_jacobian(cake_spec, monkeypatch):
    """logp_z(z, rest) = logp_alpha(alpha(z), rest) + log(sigma / sqrt(P_00)), alpha(z) by intercept_draws."""
    spec = cake_spec
    priors = lc.bayesian.default_priors(spec)
    with_z = build_model(spec, priors, "marginal")
    assert with_z.intercept_z
    monkeypatch.setattr(model_module, "reparameterized", lambda spec: False)
    plain = build_model(spec, priors, "marginal")
    assert not plain.intercept_z
    logp_z, logp_alpha = with_z.model.compile_logp(), plain.model.compile_logp()
    rng = np.random.default_rng(5)
    start = with_z.model.initial_point()
    sd_name = spec.parameters.sds(0)[0].pymc_name
    slope_names = [r.pymc_name for r in spec.parameters.fixed if r.label != "(Intercept)"]
    for _ in range(4):
        point = {k: v + rng.normal(0.0, 0.5, np.shape(v)) for k, v in start.items()}
        sigma, sd = np.exp(point["sigma_log__"]), np.exp(point[sd_name + "_log__"])
        slopes = np.array([point[n] for n in slope_names])
        alpha = intercept_draws(spec, np.array([point["alpha_z"]]), np.array([sigma]), np.array([[[sd]]]),
                                slopes[None, :], with_z.slope_index, with_z.x_means)[0]
        a = cross_products(spec).A11[:, 0, 0]
        D = sampled_design(spec, with_z.slope_index, with_z.x_means)
        response = response_data(spec, with_z.slope_index, with_z.x_means)
        _, precision = intercept_moments(D.T @ D, np.asarray(spec.weighted_rows(spec.Z).T @ D), a,
                                         response["Dty"], response["Zty"], np.array([[sd / sigma]]),
                                         slopes[None, :], np)
        other = {k: v for k, v in point.items() if k != "alpha_z"}
        other["alpha"] = alpha
        expected = logp_alpha(other) + np.log(sigma) - 0.5 * np.log(precision[0])
        assert logp_z(point) == pytest.approx(expected, rel=1e-10)
