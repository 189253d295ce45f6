"""The correlation matrices of terms with three or more columns, sampled on unconstrained coordinates.

The density that :func:`lkj_cholesky` gives its free coordinates ``y`` must be
the LKJ density of ``Omega(y)`` times the Jacobian of ``y -> Omega``: checked
against ``(eta - 1) log det Omega + log |det d omega / d y|`` (``omega`` the
``p(p-1)/2`` free entries, Jacobian by central differences), which may differ
from ours only by LKJ's normalising constant.
"""
import numpy as np
import pytest


def compiled(p, eta):
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    from lmmcompare.bayesian.covariance import lkj_cholesky

    with pm.Model() as model:
        L = lkj_cholesky("corr", p, eta, pm, pt)
    y = model.rvs_to_values[model["corr"]]
    logp = pytensor.function([y], model.logp(), on_unused_input="ignore")
    factor = pytensor.function([y], model.replace_rvs_by_values([L])[0])
    return logp, factor


@pytest.mark.parametrize("p, eta", [(3, 1.0), (3, 2.0), (4, 2.0), (5, 0.7)])
def test_density_is_lkj_times_the_jacobian(p, eta):
    logp, factor = compiled(p, eta)
    k = p * (p - 1) // 2
    upper = np.triu_indices(p, 1)

    def omega(y):
        L = factor(y)
        return (L @ L.T)[upper]

    rng = np.random.default_rng(p)
    gaps = []
    for _ in range(6):
        y = rng.normal(scale=1.2, size=k)
        L = factor(y)
        Omega = L @ L.T
        np.testing.assert_allclose(np.diag(Omega), 1.0, atol=1e-14)
        assert np.all(np.linalg.eigvalsh(Omega) > 0)
        h = 1e-6
        J = np.column_stack([(omega(y + h * e) - omega(y - h * e)) / (2 * h) for e in np.eye(k)])
        expected = (eta - 1.0) * np.linalg.slogdet(Omega)[1] + np.linalg.slogdet(J)[1]
        gaps.append(float(logp(y)) - expected)
    assert np.ptp(gaps) < 1e-6


def test_every_point_is_a_correlation_matrix_even_far_out():
    """Where PyMC's LKJCorr (a box per entry) returns -inf for a non-positive-definite matrix, this has none."""
    _, factor = compiled(4, 2.0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        L = factor(rng.normal(scale=6.0, size=6))
        assert np.all(np.diag(L) >= 0) and np.allclose(np.sum(L * L, axis=1), 1.0, atol=1e-12)
