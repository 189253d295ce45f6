"""Satterthwaite's denominator degrees of freedom (lmerTest); Kenward-Roger is in
:mod:`lmmcompare.freq.inference.kenward_roger`.

Satterthwaite, for a contrast ``l``: ``df = 2 (l'Vl)^2 / (g' A g)`` with
``V = cov(beta)``, ``g_i = l' (dV/dvarpar_i) l`` and ``A = 2 H^{-1}`` the
asymptotic covariance of the variance parameters (H: Hessian of the deviance
in (theta, sigma)).  For a q-row L, lmerTest's approach: rotate to the
eigenvectors of ``L V L'``, take the df ``nu_m`` of each rotated row and
``ddf = 2E / (E - q)`` with ``E = sum nu_m / (nu_m - 2)``.
"""
from __future__ import annotations

import numpy as np

from .varpar import varpar_covariance


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
