"""The shortcuts that cut a fit's fixed cost give the numbers of the general code they replace."""
import numpy as np
import pytest
import scipy.sparse as sp

from lmmcompare.core.design_products import dense_to_csr
from lmmcompare.core.standardize import cholesky_psd, thetas_from_standardized
from lmmcompare.freq.optimize import optimize_theta
from lmmcompare.spec.parameters import lower_index


@pytest.mark.parametrize("seed", range(3))
def test_dense_to_csr_is_scipys_csr_of_the_array(seed):
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(7, 11)) * (rng.random((7, 11)) < 0.4)   # zeros, and a row of them
    M[3] = 0.0
    ours, theirs = dense_to_csr(M), sp.csr_matrix(M)
    assert ours.nnz == theirs.nnz == np.count_nonzero(M) and ours.has_sorted_indices
    np.testing.assert_array_equal(ours.indptr, theirs.indptr)
    np.testing.assert_array_equal(ours.indices, theirs.indices)
    np.testing.assert_array_equal(ours.data, theirs.data)


def _mapped_one_by_one(rows, A, p):
    """theta_from_standardized's definition, row by row: the PSD Cholesky factor of A T T' A'."""
    r, c = lower_index(p)
    out = []
    for row in rows:
        T = np.zeros((p, p))
        T[r, c] = row
        out.append(cholesky_psd(A @ T @ T.T @ A.T)[r, c])
    return np.array(out)


@pytest.mark.parametrize("singular", [False, True])
def test_batched_map_from_standardised_theta_matches_the_psd_factor_row_by_row(singular):
    """Every covariance positive definite: LAPACK's batched Cholesky; one singular row: the PSD factor for all."""
    rng = np.random.default_rng(4)
    A = np.array([[2.0, 0.0, 0.0], [-0.7, 0.5, 0.0], [0.3, 0.2, 1.5]])
    rows = rng.normal(size=(9, 6))
    rows[:, [0, 3, 5]] = np.abs(rows[:, [0, 3, 5]]) + 0.2   # the diagonal of T
    if singular:
        rows[4, 3] = 0.0   # a zero column of T: a singular covariance
    mapped = thetas_from_standardized(rows, [A], [3])
    np.testing.assert_allclose(mapped, _mapped_one_by_one(rows, A, 3), rtol=1e-12, atol=1e-14)
    if singular:
        assert mapped[4, 3] == 0.0


def _noisy_bowl(offset, noise):
    """``offset + |x - c|^2 * 50`` with a gradient whose last digits are noise of size ``noise`` (a fixed
    function of x), as a large criterion's computed gradient is."""
    c = np.array([0.3, 0.4])

    def fun_grad(x):
        jitter = noise * np.sin(1e9 * x + np.array([0.0, 1.0]))
        return offset + 50.0 * float((x - c) @ (x - c)), 100.0 * (x - c) + jitter
    return fun_grad, c


def test_a_large_criterion_stops_at_its_gradients_rounding_noise(monkeypatch):
    """A criterion of 2.4e5 whose gradient carries noise of 1e-4: the projected-gradient tolerance is
    max(1e-5, 1e-9 * 2.4e5) = 2.4e-4 capped at 2e-4, so L-BFGS-B stops on the gradient once it is down to
    the noise (3 evaluations), where without the floor it searches on until the ftol test (5), at the same
    minimum to 1e-5; lme4's rule (|g| < 0.002) judges it converged."""
    import lmmcompare.freq.optimize as optimize

    fun_grad, c = _noisy_bowl(2.4e5, 1e-4)
    opt = optimize_theta(fun_grad, np.array([1.0, 1.0]), np.zeros(2))
    assert opt.converged and "PROJECTED GRADIENT" in opt.message and opt.n_evals == 3
    np.testing.assert_allclose(opt.theta, c, atol=1e-5)
    assert np.max(np.abs(opt.gradient)) < 2e-4
    monkeypatch.setattr(optimize, "GRADIENT_ROUNDING", 0.0)
    without = optimize_theta(fun_grad, np.array([1.0, 1.0]), np.zeros(2))
    assert without.n_evals == 5 and "PROJECTED GRADIENT" not in without.message
    np.testing.assert_allclose(without.theta, c, atol=1e-5)
    # the same noise on a small criterion keeps gtol = 1e-5 and still converges there
    small = optimize_theta(*_noisy_bowl(10.0, 1e-6)[:1], np.array([1.0, 1.0]), np.zeros(2))
    assert small.converged and np.max(np.abs(small.gradient)) < 1e-5 + 1e-6
