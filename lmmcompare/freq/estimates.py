"""The values of a fit at a given theta, from the fit's own cross-products.

With ``L(theta)`` the blocked factor (:mod:`lmmcompare.core.factor`): the modes
``u`` and ``beta`` by triangular solves, ``b = Lambda u``, ``sigma^2 = r^2 / n``
(ML) or ``r^2 / (n - p)`` (REML), ``cov(beta) = sigma^2 (L_X L_X')^{-1}`` and the
conditional covariances of b.  Plain values, which ``LmerFit`` is made of.  A small
model reads them off the dense factor of :mod:`lmmcompare.core.small_dense` instead,
the same quantities by the same solves on one ``N x N`` array.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

from ..core.factor import factorize, scratch
from ..core.relcovar import apply_lambda, theta_to_T
from ..core.solve import diagonal_blocks, inverse_blocks, solve_modes
from ..core.standardize import is_singular
from ..errors import DataError
from .fit import Devfun, far_from_zero

_trtri = scipy.linalg.lapack.dtrtri


def values_at(devfun: Devfun, theta: np.ndarray, singular_tol: float = 1e-4) -> dict:
    """The fields of an ``LmerFit`` (all but ``opt``) at ``theta`` (phi, :class:`~.fit.Devfun`) for
    ``devfun``'s spec and criterion; with ``sigma_by`` the fit's spec and cross-products are those
    weighted by the estimated residual sd ratios.

    A small model's values come from its dense factor (:meth:`~lmmcompare.core.small_dense.DenseCriterion.values`),
    others' from the blocked factor; the fit builds the blocked factor when it needs it (``LmerFit.factor``).
    Raises :class:`~lmmcompare.errors.DataError` when rounding makes ``L(theta)``
    indefinite.
    """
    phi = np.asarray(theta, dtype=float)
    spec, cp, theta = devfun.at(phi)
    reml = devfun.reml
    dof = spec.n - spec.p if reml else spec.n
    try:
        if devfun.dense is not None:   # a small model: the same values from its dense factor (0.3 ms, not 1)
            values = devfun.dense.values(theta)
            u, beta, r2, LX = values.u, values.beta_shifted + cp.beta_offset, values.r2, values.L_X
            objective, Ts = values.objective, theta_to_T(theta, [t.p for t in spec.terms])
            sigma = float(np.sqrt(r2 / dof))
            cond_blocks = [sigma**2 * _sandwich(T, C)
                           for T, C in zip(Ts, values.re_inverse_blocks)]
        else:
            # in the devfun's scratch arrays: the fit keeps none of the factor (LmerFit.factor builds its own)
            f = factorize(cp, theta, scratch(cp, devfun.workspace, 0))
            u, beta = solve_modes(f)
            r2, LX, objective, Ts = f.r2, f.corner[: cp.p, : cp.p].copy(), f.objective(reml), f.Ts
            sigma = float(np.sqrt(r2 / dof))
            cond_blocks = conditional_blocks(f, sigma, (scratch(cp, devfun.workspace, 1),
                                                        scratch(cp, devfun.workspace, 2)))
    except np.linalg.LinAlgError:  # rounding decides positive definiteness: precision is gone
        raise DataError(f"the factor at the optimum is not positive definite to working precision: "
                        f"{far_from_zero(spec)}") from None
    b = apply_lambda(u, Ts, [t.n_levels for t in spec.terms])
    LX_inv = _trtri(LX, lower=1)[0] if cp.p else np.zeros((0, 0))   # L_X is lower triangular
    return dict(spec=spec, reml=reml, theta=theta, phi=phi, beta=beta, sigma=sigma, u=u, b=b,
                objective=float(objective), vcov_beta=sigma**2 * (LX_inv.T @ LX_inv),
                cond_blocks=cond_blocks, singular=_singular(devfun, spec, theta, singular_tol), cp=cp)


def conditional_blocks(f, sigma, workspace=None) -> list[np.ndarray]:
    """Per term, ``(l_i, p_i, p_i)`` conditional covariances of b given y (lme4's condVar).

    ``sigma^2 T_i C_j T_i'`` where ``C_j`` are the diagonal blocks of
    ``(Lambda'Z'Z Lambda + I)^{-1}``; the uncertainty of beta is ignored, as in lme4.
    """
    cp = f.cp
    first, H, _ = inverse_blocks(f, include_X=False, workspace=workspace)
    out = [sigma**2 * _sandwich(f.Ts[0], first)]
    for T, off, n_lev in zip(f.Ts[1:], cp.rest_offsets, cp.rest_levels):
        C = diagonal_blocks(H, off, n_lev, T.shape[0])
        out.append(sigma**2 * _sandwich(T, C))
    return out


def _sandwich(T: np.ndarray, C: np.ndarray) -> np.ndarray:
    """``T C_j T'`` for each block ``C_j`` of ``C`` (``l x p x p``), by matmul (a three-operand einsum is 3x slower)."""
    return np.matmul(np.matmul(T, C), T.T)


def _singular(devfun, spec, theta, tol) -> bool:
    """lme4's ``isSingular``; with structured terms on theta itself (a zero diagonal of some ``T_i``)."""
    if devfun.covariance.identity:
        return is_singular(spec, theta, tol)
    return bool(np.any(theta[spec.theta_lower == 0] < tol))
