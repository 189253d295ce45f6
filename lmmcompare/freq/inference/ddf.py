"""Denominator degrees of freedom: Satterthwaite (lmerTest) and Kenward-Roger (pbkrtest).

Satterthwaite, for a contrast ``l``: ``df = 2 (l'Vl)^2 / (g' A g)`` with
``V = cov(beta)``, ``g_i = l' (dV/dvarpar_i) l`` and ``A = 2 H^{-1}`` the
asymptotic covariance of the variance parameters (H: Hessian of the deviance
in (theta, sigma)).  For a q-row L, lmerTest's approach: rotate to the
eigenvectors of ``L V L'``, take the df ``nu_m`` of each rotated row and
``ddf = 2E / (E - q)`` with ``E = sum nu_m / (nu_m - 2)``.

Kenward-Roger (Kenward and Roger 1997; pbkrtest's ``vcovAdj`` and
``Lb_ddf``): the covariance of the REML estimate of beta is inflated to
``Phi_A = Phi + 2 Phi U Phi`` using the derivatives ``G_r`` of
``Sigma = sum_r gamma_r G_r`` with respect to the variance components, and
the df are matched from the first two moments of the Wald statistic.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ...errors import ArgumentError
from .varpar import varpar_covariance

KR_MAX_N = 6000


def satterthwaite_df(fit, L) -> float:
    """Satterthwaite df for one contrast or a q-row contrast matrix L (p columns)."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    A, jac = varpar_covariance(fit)
    V = fit.vcov_beta
    if L.shape[0] == 1:
        l = L[0]
        var = l @ V @ l
        g = np.array([l @ J @ l for J in jac])
        return float(2 * var**2 / (g @ A @ g))
    w, P = np.linalg.eigh(L @ V @ L.T)
    PtL = P.T @ L
    nu = []
    for m in range(L.shape[0]):
        g = np.array([PtL[m] @ J @ PtL[m] for J in jac])
        nu.append(2 * w[m] ** 2 / (g @ A @ g))
    nu = np.array(nu)
    q = L.shape[0]
    if np.all(np.abs(np.diff(nu)) < 1e-8):  # lmerTest's get_Fstat_ddf: equal df are returned as they are
        return float(np.mean(nu))
    if np.any(nu <= 2):  # ... and any df <= 2 gives 2
        return 2.0
    E = float(np.sum(nu / (nu - 2)))
    return 2 * E / (E - q)


# ---- Kenward-Roger ------------------------------------------------------------------------
def _sigma_and_derivatives(fit):
    """``Sigma`` (n x n) and the matrices ``G_r``: one per variance/covariance of each
    term (lower triangle of its covariance, column-major) and the identity for sigma^2."""
    spec = fit.spec
    n = spec.n
    G = []
    Sigma = fit.sigma**2 * np.eye(n)
    for term, cov in zip(spec.terms, fit.term_covariances()):
        Z = term.Z
        p = term.p
        for b in range(p):
            for a in range(b, p):
                E = np.zeros((p, p))
                E[a, b] = E[b, a] = 1.0
                ZE = (Z @ sp.kron(sp.identity(term.n_levels), E)).tocsr()
                Gr = (ZE @ Z.T).toarray()
                G.append(Gr)
                Sigma += cov[a, b] * Gr
    G.append(np.eye(n))
    return Sigma, G


def kenward_roger_vcov(fit):
    """``(Phi_A, P, W)``: adjusted covariance of beta and the pieces for the df."""
    cache = fit.__dict__.setdefault("_inference_cache", {})
    if "kr" in cache:
        return cache["kr"]
    if not fit.reml:
        raise ArgumentError("Kenward-Roger needs a REML fit; refit with reml=True")
    if fit.spec.n > KR_MAX_N:
        raise ArgumentError(
            f"Kenward-Roger works with dense n x n matrices; n = {fit.spec.n} is above {KR_MAX_N}: "
            "use ddf='satterthwaite'")
    X = fit.spec.X
    Phi = fit.vcov_beta
    Sigma, G = _sigma_and_derivatives(fit)
    Sinv = np.linalg.inv(Sigma)
    Sinv = 0.5 * (Sinv + Sinv.T)
    TT = Sinv @ X
    H = [Gr @ Sinv for Gr in G]
    O = [Hr @ X for Hr in H]
    k = len(G)
    P = [-(Or.T @ TT) for Or in O]
    P = [0.5 * (Pr + Pr.T) for Pr in P]
    Q = {(r, s): O[r].T @ Sinv @ O[s] for r in range(k) for s in range(r, k)}
    IE2 = np.empty((k, k))
    for r in range(k):
        for s in range(r, k):
            ktrace = np.sum(H[r].T * H[s])
            IE2[r, s] = IE2[s, r] = (ktrace - 2 * np.sum(Phi * Q[(r, s)])
                                     + np.sum((Phi @ P[r]) * (P[s] @ Phi)))
    W = 2 * np.linalg.pinv(IE2) if np.min(np.abs(np.linalg.eigvalsh(IE2))) <= 1e-10 else 2 * np.linalg.inv(IE2)
    U = np.zeros_like(Phi)
    for r in range(k - 1):
        for s in range(r + 1, k):
            U += W[r, s] * (Q[(r, s)] - P[r] @ Phi @ P[s])
    U = U + U.T
    for r in range(k):
        U += W[r, r] * (Q[(r, r)] - P[r] @ Phi @ P[r])
    PhiA = Phi + 2 * Phi @ U @ Phi
    cache["kr"] = (PhiA, P, W)
    return cache["kr"]


def kenward_roger_df(fit, L) -> float:
    """pbkrtest's ``Lb_ddf``: denominator df of the Wald F-test of ``L beta = 0``."""
    return kenward_roger_df_scaling(fit, L)[0]


def kenward_roger_df_scaling(fit, L) -> tuple[float, float]:
    """Denominator df and F scaling of the Kenward-Roger F-test (pbkrtest's ``.KR_adjust``).

    The reported statistic is ``F = scaling * W / q`` with ``W`` the Wald
    statistic in the adjusted covariance: ``scaling = df (1 - A2/q) / (df - 2)``
    (1 when ``|df - 2| < 0.01``; exactly 1 for one row).
    """
    L = np.atleast_2d(np.asarray(L, dtype=float))
    _, P, W = kenward_roger_vcov(fit)
    V0 = fit.vcov_beta
    Theta = L.T @ np.linalg.solve(L @ V0 @ L.T, L)
    ThetaV0 = Theta @ V0
    A1 = A2 = 0.0
    k = len(P)
    for i in range(k):
        ui = ThetaV0 @ P[i] @ V0
        for j in range(i, k):
            e = 1.0 if i == j else 2.0
            uj = ThetaV0 @ P[j] @ V0
            A1 += e * W[i, j] * np.trace(ui) * np.trace(uj)
            A2 += e * W[i, j] * np.sum(ui * uj.T)
    q = L.shape[0]
    B = (A1 + 6 * A2) / (2 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    denom = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / denom, (q - g) / denom, (q + 2 - g) / denom
    v0 = 1 + c1 * B
    v1 = 1 - c2 * B
    v2 = 1 - c3 * B
    v0 = 0.0 if abs(v0) < 1e-10 else v0
    ratio = (1 - A2 / q) / v1 if v1 != 0 else 0.0
    rho = ratio**2 * v0 / v2 / q
    df = float(4 + (q + 2) / (q * rho - 1))
    scaling = 1.0 if abs(df - 2) < 0.01 else df * (1 - A2 / q) / (df - 2)
    return df, float(scaling)
