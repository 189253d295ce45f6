"""Kenward-Roger's pieces for a residual variance per level of ``sigma_by``, with no n x n matrix.

With ``sigma_by`` the rows are scaled by ``W^{1/2}``, ``w_i = a_i / delta_{f(i)}^2``
(``lmmcompare.core.residual_ratios``), so the scaled marginal covariance is
``Sigma = U U' sigma^2 + sigma^2 I`` as without it (:mod:`.marginal_inverse`), and its
residual part is linear in the level variances ``gamma_k = sigma_k^2 = sigma^2 delta_k^2``::

    sigma^2 I = sum_k gamma_k E_k,   E_k = c_k D_k,   c_k = 1 / delta_k^2,

``D_k`` the diagonal indicator of level k's rows (KR is unchanged by the fixed row
scaling).  With ``S = Sigma^{-1}`` and ``S v = (v - U C^{-1} U'v) / sigma^2``, rows
``R_k`` of level k, ``SX`` and ``SZ = Z N / sigma^2`` (n x p, n x q)::

    P_k          = -c_k SX[R_k]' SX[R_k]
    Q_{k,l}      = c_k c_l SX[R_k]' (S D_l SX)[R_k]
    Z'S E_k S X  = c_k SZ[R_k]' SX[R_k],   Z'S E_k S Z = c_k SZ[R_k]' SZ[R_k]
    tr(S E_k S E_l) = c_k c_l ||S[R_k, R_l]||_F^2
                    = c_k c_l (d_kl (n_k - 2 tr(C^{-1} M_k)) + tr(C^{-1} M_k C^{-1} M_l)) / sigma^4,

``M_k = U[R_k]' U[R_k]`` (from ``S[R_k, R_l] = (d_kl I - U_k C^{-1} U_l') / sigma^2``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ...spec.residual_groups import row_scales


@dataclass(frozen=True, eq=False)
class ResidualLevels:
    """The products of Kenward-Roger's formulas for the components ``gamma_k`` (module docstring).

    Attributes
    ----------
    ZSEX : list of ndarray (q, p)
        ``Z'S E_k S X`` per level.
    ZSEZ : list of ndarray or sparse matrix (q, q)
        ``Z'S E_k S Z`` per level.
    P : ndarray (K, p, p)
    Q : ndarray (K, K, p, p)
    trace : ndarray (K, K)
        ``tr(S E_k S E_l)``.
    """

    ZSEX: list
    ZSEZ: list
    P: np.ndarray
    Q: np.ndarray
    trace: np.ndarray


def _dense(M):
    return M.toarray() if sp.issparse(M) else np.asarray(M)


def residual_levels(spec, Z, U, Cinv, N, SX, s2: float) -> ResidualLevels:
    """The pieces of the module docstring at the scaled ``Z``, ``U = Z Lambda``, ``C^{-1}``, ``N`` and ``SX``."""
    factor = spec.sigma_by
    ratios = spec.residual_ratios if spec.residual_ratios is not None else np.ones(factor.n_levels - 1)
    delta = row_scales(factor, ratios)
    levels = [np.flatnonzero(factor.codes == k) for k in range(factor.n_levels)]
    c = [1.0 / delta[rows[0]] ** 2 for rows in levels]
    SZ = (Z @ N) / s2
    SZ = SZ.tocsr() if sp.issparse(SZ) else np.asarray(SZ)

    def apply_S(V):
        return (V - U @ np.asarray(Cinv @ (U.T @ V))) / s2

    K, p = len(levels), SX.shape[1]
    P, Q, trace = np.empty((K, p, p)), np.empty((K, K, p, p)), np.empty((K, K))
    ZSEX, ZSEZ, CM = [], [], []
    for k, rows in enumerate(levels):
        SZk = SZ[rows]
        ZSEX.append(c[k] * np.asarray(SZk.T @ SX[rows]))
        ZSEZ.append(c[k] * (SZk.T @ SZk))
        P[k] = -c[k] * SX[rows].T @ SX[rows]
        Uk = U[rows]
        CM.append(_dense(Cinv @ (Uk.T @ Uk)))
    for l, rows_l in enumerate(levels):
        D_SX = np.zeros_like(SX)
        D_SX[rows_l] = SX[rows_l]
        S_D_SX = apply_S(D_SX)
        for k, rows_k in enumerate(levels):
            Q[k, l] = c[k] * c[l] * SX[rows_k].T @ S_D_SX[rows_k]
            t = np.sum(CM[k] * CM[l].T)
            if k == l:
                t += rows_k.size - 2 * np.trace(CM[k])
            trace[k, l] = c[k] * c[l] * t / s2**2
    return ResidualLevels(ZSEX=ZSEX, ZSEZ=ZSEZ, P=P, Q=Q, trace=0.5 * (trace + trace.T))
