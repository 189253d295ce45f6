"""Kenward-Roger for covariance structures nonlinear in their parameters (cs and ar1 over 3+ columns).

Kenward and Roger (1997) with the second-derivative term ``R`` that pbkrtest drops (it
is zero for lme4's linear models): no R package computes it for these structures, so
the reference is the formula itself, written out here with dense n x n matrices and
derivatives of ``V(psi)`` by differences, at the REML estimates (SAS's CSH and AR(1)
parameterisation: the variances and the correlation, then ``sigma^2``).
"""
import numpy as np
import pytest

import lmmcompare as lc
from lmmcompare.freq.inference.kenward_roger import KenwardRoger, kenward_roger_fit


def small(n_subjects):
    data = lc.load_dataset("RepeatedMeasures")
    keep = data["subj"].cat.categories[:n_subjects]
    out = data[data["subj"].isin(keep) & data["occ"].isin(["t1", "t2", "t3", "t4"])].copy()
    out["subj"] = out["subj"].cat.remove_unused_categories()
    out["occ"] = out["occ"].cat.remove_unused_categories()
    return out


def term_cov(kind, psi, p):
    idx = np.arange(p)
    if kind == "ar1":
        v, rho = psi
        return v * rho ** np.abs(idx[:, None] - idx[None, :]).astype(float)
    v, rho = np.asarray(psi[:p]), psi[p]
    return np.sqrt(np.outer(v, v)) * np.where(idx[:, None] == idx[None, :], 1.0, rho)


def brute_force_kr(fit, kind):
    """pbkrtest's vcovAdj formulas plus -R/4, with V(psi) = Z blockdiag(Sigma(psi)) Z' + sigma^2 I."""
    spec = fit.spec
    term = spec.terms[0]
    cov = fit.term_covariances()[0]
    p = term.p
    psi0 = (np.array([cov[0, 0], cov[1, 0] / cov[0, 0]]) if kind == "ar1"
            else np.append(np.diag(cov), cov[1, 0] / np.sqrt(cov[0, 0] * cov[1, 1])))
    psi0 = np.append(psi0, fit.sigma**2)
    Z, X = spec.Z.toarray(), spec.X
    n_lev = term.n_levels

    def V(psi):
        return Z @ np.kron(np.eye(n_lev), term_cov(kind, psi[:-1], p)) @ Z.T + psi[-1] * np.eye(spec.n)

    k = psi0.size
    h1, h2 = 1e-6, 1e-4
    E = np.eye(k)
    dV = [(V(psi0 + h1 * E[i]) - V(psi0 - h1 * E[i])) / (2 * h1) for i in range(k)]
    d2V = [[(V(psi0 + h2 * (E[i] + E[j])) - V(psi0 + h2 * (E[i] - E[j])) - V(psi0 - h2 * (E[i] - E[j]))
             + V(psi0 - h2 * (E[i] + E[j]))) / (4 * h2 * h2) for j in range(k)] for i in range(k)]
    S = np.linalg.inv(V(psi0))
    Phi = np.linalg.inv(X.T @ S @ X)
    SX = S @ X
    P = np.array([-SX.T @ d @ SX for d in dV])
    Q = np.array([[SX.T @ a @ S @ b @ SX for b in dV] for a in dV])
    R = np.array([[SX.T @ d2V[i][j] @ SX for j in range(k)] for i in range(k)])
    info = np.array([[np.trace(S @ dV[i] @ S @ dV[j]) - 2 * np.trace(Phi @ Q[i, j])
                      + np.trace(Phi @ P[i] @ Phi @ P[j]) for j in range(k)] for i in range(k)])
    W = 2 * np.linalg.inv(info)
    U = sum(W[i, j] * (Q[i, j] - P[i] @ Phi @ P[j] - 0.25 * R[i, j]) for i in range(k) for j in range(k))
    return KenwardRoger(vcov=Phi, vcov_adjusted=Phi + 2 * Phi @ U @ Phi, P=P, W=W)


@pytest.mark.parametrize("kind, formula", [("cs", "y ~ time + cs(0 + occ | subj)"),
                                           ("ar1", "y ~ time + ar1(0 + occ | subj)")])
def test_kenward_roger_of_a_nonlinear_structure_is_the_dense_formula(kind, formula):
    fit = lc.lmer(formula, small(10))
    ours, dense = kenward_roger_fit(fit), brute_force_kr(fit, kind)
    np.testing.assert_allclose(ours.vcov, dense.vcov, rtol=1e-9)
    np.testing.assert_allclose(ours.vcov_adjusted, dense.vcov_adjusted, rtol=1e-6)
    for L in (np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]]), np.eye(2)):
        assert ours.df(L) == pytest.approx(dense.df(L), rel=1e-6)
    # the second-derivative term matters: without it the adjusted covariance differs
    assert not np.allclose(ours.vcov_adjusted, ours.vcov, rtol=1e-4)


def test_kenward_roger_df_in_the_fixed_effects_table_of_an_ar1_model():
    fit = lc.lmer("y ~ time + ar1(0 + occ | subj)", small(10))
    table = fit.coef_table(ddf="kenward-roger")
    kr = kenward_roger_fit(fit)
    assert table["df"]["time"] == pytest.approx(kr.df(np.array([[0.0, 1.0]])), rel=1e-10)
    assert table["se"]["time"] == pytest.approx(np.sqrt(kr.vcov_adjusted[1, 1]), rel=1e-10)
