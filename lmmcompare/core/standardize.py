"""Optimising theta on standardised random-effects columns (location and scale invariance).

The profiled objective depends on each term's covariance ``Sigma_i`` only, so
replacing the term's columns ``X_i`` by ``X_i A_i`` (``A_i`` invertible) and
``Sigma_i`` by ``A_i^{-1} Sigma_i A_i^{-T}`` leaves it unchanged.  With
``A_i = R_i^{-1}``, ``R_i'R_i = X_i'X_i / n``, the columns become orthonormal
(for ``(x | g)``: the intercept and ``x`` centred and scaled), so the optimizer
starts from lme4's identity start on a well-conditioned problem whatever the
location and scale of the covariates: ``x -> c x + d`` gives the same fit, and
an ``x`` far from 0 no longer leads L-BFGS-B into a false optimum on the
boundary.  The optimum is mapped back to lme4's parameterisation (the
lower-triangular ``T_i`` with ``T_i T_i' = A_i T~_i T~_i' A_i'``) and polished
there, where the convergence check is made.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import scipy.linalg

from ..spec.parameters import lower_index
from .relcovar import T_to_theta, theta_to_T

_MAX_CONDITION = 1e12
_IDENTITY_TOL = 1e-12   # is_identity: largest entry of |A - I|
_PIVOT_TOL = 1e-12      # cholesky_psd: a pivot below this times its S_jj is a zero column
_geqrf, _trtri = scipy.linalg.lapack.dgeqrf, scipy.linalg.lapack.dtrtri


def is_identity(A) -> bool:
    """Whether a standardising ``A`` is absent or the identity (to 1e-12)."""
    return A is None or float(np.abs(A - np.eye(A.shape[0])).max(initial=0.0)) <= _IDENTITY_TOL


def column_transforms(spec) -> list[np.ndarray] | None:
    """``A_i`` for every term, or None when every ``A_i`` is the identity (or one is ill-defined)."""
    out, trivial = [], True
    for t in spec.terms:
        X = t.design.matrix
        if t.p == 1:   # a scalar column: R = its root mean square (an intercept's is 1 exactly)
            x = X[:, 0]
            rms = math.sqrt(x.dot(x) / x.size)
            if rms == 0.0:
                return None
            out.append(np.array([[1.0 / rms]]))
            trivial = trivial and abs(1.0 / rms - 1.0) <= _IDENTITY_TOL   # is_identity of the 1 x 1 A
            continue
        if X.shape[0] < t.p:
            return None
        # R'R = X'X / n without forming X'X (LAPACK's QR and triangular inverse called directly: numpy's and
        # scipy's wrappers cost 25 us of a small model's 3 ms fit)
        qr, _, _, _ = _geqrf(X / np.sqrt(X.shape[0]))
        R = np.triu(qr[: t.p, : t.p])
        R *= np.where(np.diag(R) < 0, -1.0, 1.0)[:, None]
        d = np.abs(np.diag(R))
        if d.min() <= d.max() / _MAX_CONDITION:  # (numerically) collinear columns: keep them as they are
            return None
        A, _ = _trtri(R, lower=0)
        trivial = trivial and is_identity(A)
        out.append(A)
    return None if trivial else out


def standardized_spec(spec, transforms):
    """The spec with each term's columns ``X_i A_i`` (same response, X and grouping)."""
    terms = tuple(dataclasses.replace(t, design=dataclasses.replace(t.design, matrix=t.design.matrix @ A))
                  for t, A in zip(spec.terms, transforms))
    return dataclasses.replace(spec, terms=terms)


def cholesky_psd(S: np.ndarray, tol: float = _PIVOT_TOL) -> np.ndarray:
    """Lower-triangular ``L`` with non-negative diagonal and ``L L' = S`` for a PSD ``S``.

    A pivot below ``tol`` times its own diagonal element ``S_jj`` is a zero
    column (lme4's representation of a singular covariance: a zero diagonal
    theta).  The test is relative to ``S_jj`` and not to the largest diagonal,
    so that it is invariant to the scale of each column: a covariate measured
    in units 1e7 times too large must not make the intercept's variance look
    like zero.
    """
    p = S.shape[0]
    L = np.zeros((p, p))
    for j in range(p):
        d = S[j, j] - L[j, :j] @ L[j, :j]
        if d > tol * S[j, j]:
            L[j, j] = np.sqrt(d)
            L[j + 1 :, j] = (S[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
    return L


def theta_from_standardized(theta_s: np.ndarray, transforms, sizes) -> np.ndarray:
    """lme4's theta for the covariances that ``theta_s`` gives the standardised columns."""
    Ts = theta_to_T(np.asarray(theta_s, float), sizes)
    return T_to_theta([cholesky_psd(A @ T @ T.T @ A.T) for A, T in zip(transforms, Ts)])


def thetas_from_standardized(thetas_s: np.ndarray, transforms, sizes) -> np.ndarray:
    """:func:`theta_from_standardized` of each row of ``thetas_s`` (k x n_theta), batched over the rows
    (an optimizer's log: 13 rows on sleepstudy in 40 us instead of 340 us)."""
    thetas_s = np.asarray(thetas_s, float)
    out, pos = [], 0
    for A, p in zip(transforms, sizes):
        rows, cols = lower_index(p)
        T = np.zeros((thetas_s.shape[0], p, p))
        T[:, rows, cols] = thetas_s[:, pos : pos + rows.size]
        AT = A @ T
        S = AT @ np.swapaxes(AT, 1, 2)
        L = _positive_definite_cholesky(S)
        if L is None:
            L = _batched_cholesky_psd(S)
        out.append(L[:, rows, cols])
        pos += rows.size
    return np.concatenate(out, axis=1) if out else np.zeros((thetas_s.shape[0], 0))


def _positive_definite_cholesky(S: np.ndarray) -> np.ndarray | None:
    """LAPACK's Cholesky factors of a batch ``S`` where each is positive definite with every pivot above
    :func:`cholesky_psd`'s tolerance (the same factors, to rounding, at a third of the cost), else None."""
    try:
        L = np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        return None
    pivots = np.diagonal(L, axis1=1, axis2=2)
    return L if np.all(pivots**2 > _PIVOT_TOL * np.diagonal(S, axis1=1, axis2=2)) else None


def _batched_cholesky_psd(S: np.ndarray) -> np.ndarray:
    """:func:`cholesky_psd` of each matrix of the batch ``S``, one column for all of them at once."""
    p = S.shape[1]
    L = np.zeros_like(S)
    for j in range(p):
        d = S[:, j, j] - np.einsum("ka,ka->k", L[:, j, :j], L[:, j, :j])
        keep = d > _PIVOT_TOL * S[:, j, j]
        root = np.sqrt(np.where(keep, d, 1.0))
        below = S[:, j + 1 :, j] - np.einsum("kia,ka->ki", L[:, j + 1 :, :j], L[:, j, :j])
        L[:, j, j] = np.where(keep, root, 0.0)
        L[:, j + 1 :, j] = np.where(keep[:, None], below / root[:, None], 0.0)
    return L


def theta_to_standardized(theta: np.ndarray, transforms, sizes) -> np.ndarray:
    """Inverse of :func:`theta_from_standardized`."""
    Ts = theta_to_T(np.asarray(theta, float), sizes)
    out = []
    for A, T in zip(transforms, Ts):
        B = np.linalg.inv(A)
        out.append(cholesky_psd(B @ T @ T.T @ B.T))
    return T_to_theta(out)


def is_singular(spec, theta: np.ndarray, tol: float = 1e-4) -> bool:
    """lme4's ``isSingular`` (a diagonal theta below ``tol``), made invariant to covariate scale.

    lme4 tests ``theta_jj < tol`` in the model's own columns, so a slope
    covariate in units 1e6 times too large (theta_jj ~ 1e-7 for the same
    fitted variance) is called singular.  Here the test must also hold for
    the standardised columns ``X_i A_i`` (see :func:`column_transforms`),
    whose covariance has the same rank: a covariance that is really (near)
    rank deficient is flagged in both, and a flag that only the units of a
    covariate raise is not.
    """
    lower = spec.theta_lower
    if not np.any(theta[lower == 0] < tol):
        return False
    transforms = column_transforms(spec)
    if transforms is None:
        return True
    standardized = theta_to_standardized(theta, transforms, [t.p for t in spec.terms])
    return bool(np.any(standardized[lower == 0] < tol))
