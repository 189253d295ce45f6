"""The values of a fit at a given theta, from the fit's own cross-products.

With ``L(theta)`` the blocked factor (:mod:`lmmcompare.core.factor`): the modes
``u`` and ``beta`` by triangular solves, ``b = Lambda u``, ``sigma^2 = r^2 / n``
(ML) or ``r^2 / (n - p)`` (REML), ``cov(beta) = sigma^2 (L_X L_X')^{-1}`` and the
conditional covariances of b.  Plain values, which ``LmerFit`` is made of.
"""
from __future__ import annotations

import numpy as np

from ..core.factor import factorize
from ..core.relcovar import apply_lambda
from ..core.solve import diagonal_blocks, inverse_blocks, solve_modes
from ..core.standardize import is_singular
from ..errors import DataError
from .fit import Devfun, far_from_zero


def values_at(devfun: Devfun, theta: np.ndarray, singular_tol: float = 1e-4) -> dict:
    """The fields of an ``LmerFit`` (all but ``opt``) at ``theta`` (phi, :class:`~.fit.Devfun`) for
    ``devfun``'s spec and criterion; with ``sigma_by`` the fit's spec and cross-products are those
    weighted by the estimated residual sd ratios.

    The factor is built in fresh arrays (no workspace), so the fit may keep it.
    Raises :class:`~lmmcompare.errors.DataError` when rounding makes ``L(theta)``
    indefinite.
    """
    phi = np.asarray(theta, dtype=float)
    spec, cp, theta = devfun.at(phi)
    reml = devfun.reml
    try:
        f = factorize(cp, theta)
    except np.linalg.LinAlgError:  # rounding decides positive definiteness: precision is gone
        raise DataError(f"the factor at the optimum is not positive definite to working precision: "
                        f"{far_from_zero(spec)}") from None
    u, beta = solve_modes(f)
    b = apply_lambda(u, f.Ts, [t.n_levels for t in spec.terms])
    dof = spec.n - spec.p if reml else spec.n
    sigma = float(np.sqrt(f.r2 / dof))
    p = cp.p
    LX = f.corner[:p, :p]
    LX_inv = np.linalg.inv(LX) if p else np.zeros((0, 0))
    return dict(spec=spec, reml=reml, theta=theta, phi=phi, beta=beta, sigma=sigma, u=u, b=b,
                objective=float(f.objective(reml)), vcov_beta=sigma**2 * (LX_inv.T @ LX_inv),
                cond_blocks=conditional_blocks(f, sigma), singular=_singular(devfun, spec, theta, singular_tol),
                cp=cp, factor=f)


def conditional_blocks(f, sigma) -> list[np.ndarray]:
    """Per term, ``(l_i, p_i, p_i)`` conditional covariances of b given y (lme4's condVar).

    ``sigma^2 T_i C_j T_i'`` where ``C_j`` are the diagonal blocks of
    ``(Lambda'Z'Z Lambda + I)^{-1}``; the uncertainty of beta is ignored, as in lme4.
    """
    cp = f.cp
    first, H, _ = inverse_blocks(f, include_X=False)
    out = [sigma**2 * np.einsum("ab,jbc,dc->jad", f.Ts[0], first, f.Ts[0])]
    for T, off, n_lev in zip(f.Ts[1:], cp.rest_offsets, cp.rest_levels):
        C = diagonal_blocks(H, off, n_lev, T.shape[0])
        out.append(sigma**2 * np.einsum("ab,jbc,dc->jad", T, C, T))
    return out


def _singular(devfun, spec, theta, tol) -> bool:
    """lme4's ``isSingular``; with structured terms on theta itself (a zero diagonal of some ``T_i``)."""
    if devfun.covariance.identity:
        return is_singular(spec, theta, tol)
    return bool(np.any(theta[spec.theta_lower == 0] < tol))
