"""The log-likelihood at any (beta, sigma, theta), b integrated out, from the blocked factor.

The profiled criteria of :mod:`.factor` optimise beta and sigma away; the
Bayesian engine needs the likelihood itself at every point.  With ``L`` the
blocked factor at ``theta`` (``beta_hat``, ``r^2`` its penalised least-squares
solution and minimum, ``L_X`` its fixed-effects block), Bates et al. (2015,
eqs. 3.14-3.15)::

    r^2(beta, theta) = r^2 + |L_X' (beta - beta_hat)|^2
    -2 log p(y | beta, sigma, theta) = n log(2 pi sigma^2) + log|L_theta|^2
                                       + r^2(beta, theta) / sigma^2

Its gradient reuses the frequentist one (:mod:`.gradient`): ``d log|L_theta|^2``
as for the ML deviance and ``d r^2(beta, theta)`` by the envelope theorem at the
conditional modes for this ``beta``.  Nothing here grows with n, so it is the
marginal likelihood of models with crossed or many random effects, where a dense
``q x q`` one is out of reach (InstEval: q = 4114).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .blocks import CrossProducts
from .factor import LOG_2PI, factorize
from .gradient import logdet_gradient, rss_gradient
from .relcovar import apply_lambda
from .solve import L21_transpose_times, solve_modes


@dataclass(frozen=True)
class LogLikelihood:
    """``log p(y | beta, sigma, theta)`` and its partial derivatives."""

    value: float
    d_beta: np.ndarray
    d_sigma: float
    d_theta: np.ndarray


def _rss_at(f, beta: np.ndarray) -> tuple[float, np.ndarray]:
    """``(r^2(beta, theta), L_X L_X' (beta - beta_hat))``."""
    cp = f.cp
    p = cp.p
    if p == 0:
        return f.r2, np.zeros(0)
    shifted = beta - cp.beta_offset
    corner = f.corner
    LX = corner[:p, :p]
    # L_X' beta_hat = l_yX, the y row of the factor in the X columns, so no solve for beta_hat
    w = LX.T @ shifted - corner[-1, :p]
    return f.r2 + float(w @ w), LX @ w


def loglik(cp: CrossProducts, beta, sigma: float, theta, gradient: bool = True, factor=None,
           dense=None) -> LogLikelihood:
    """The marginal log-likelihood of the LMM at ``(beta, sigma, theta)`` (module docstring).

    Parameters
    ----------
    cp : CrossProducts
        Blocks of ``[Z X y]'[Z X y]`` (:func:`.blocks.cross_products`).
    beta : array_like (p,)
        Fixed effects, in the spec's column order.
    sigma : float
        Residual standard deviation.
    theta : array_like
        Relative covariance parameters, lme4's order.
    gradient : bool
        Also compute the partial derivatives (``nan`` otherwise).
    factor : BlockedFactor, optional
        ``L(theta)`` when the caller has it (not factored again).
    dense : DenseCriterion, optional
        The same model held dense (:class:`.small_dense.DenseCriterion`, for small models): the
        value and partials then come from its few LAPACK calls (Pastes: 0.78 -> 0.1 ms).

    Returns
    -------
    LogLikelihood
        ``value = -inf`` where ``L(theta)`` is not positive definite.

    Notes
    -----
    Scratch arrays are allocated per call, never shared, so threads may call
    this on one ``cp`` at once.
    """
    beta = np.asarray(beta, dtype=float)
    theta = np.asarray(theta, dtype=float)
    if dense is not None and factor is None:   # the small model's pieces (DenseCriterion.loglik_pieces)
        pieces = dense.loglik_pieces(beta - cp.beta_offset, theta)
        if pieces is None:
            return _failed(beta, theta)
        logdet, dlogdet, r2, grad_r2_beta, dr2 = pieces
        return _assembled(cp, beta, sigma, theta, logdet, r2, grad_r2_beta, (dlogdet, dr2) if gradient else None)
    try:
        f = factorize(cp, theta) if factor is None else factor
    except np.linalg.LinAlgError:
        return _failed(beta, theta)
    r2, grad_r2_beta = _rss_at(f, beta)
    slopes = None
    if gradient:
        u, _ = solve_modes(f, beta)
        slopes = logdet_gradient(f, include_X=False, workspaces=False), rss_gradient(f, u, beta)
    return _assembled(cp, beta, sigma, theta, f.logdet_theta, r2, grad_r2_beta, slopes)


def _failed(beta: np.ndarray, theta: np.ndarray) -> LogLikelihood:
    """Where ``L(theta)`` is not positive definite: ``-inf`` and ``nan`` partials."""
    return LogLikelihood(-np.inf, np.full(beta.shape, np.nan), np.nan, np.full(theta.shape, np.nan))


def _assembled(cp: CrossProducts, beta, sigma: float, theta, logdet: float, r2: float, grad_r2_beta,
               slopes) -> LogLikelihood:
    """The :class:`LogLikelihood` from ``log|L_theta|^2``, ``r^2(beta, theta)``, ``L_X L_X' (beta - beta_hat)``
    and ``slopes = (d log|L_theta|^2 / d theta, d r^2 / d theta)`` (module docstring's formula); with
    ``slopes`` None the partials are ``nan``."""
    s2 = sigma * sigma
    value = -0.5 * (cp.n * (LOG_2PI + np.log(s2)) + logdet + r2 / s2 - cp.log_weights)
    if slopes is None:
        return LogLikelihood(value, np.full(beta.shape, np.nan), np.nan, np.full(theta.shape, np.nan))
    dlogdet, dr2 = slopes
    return LogLikelihood(value=value, d_beta=-grad_r2_beta / s2, d_sigma=-cp.n / sigma + r2 / (s2 * sigma),
                         d_theta=-0.5 * (dlogdet + dr2 / s2))


def conditional_effects(cp: CrossProducts, beta, sigma: float, theta, rng: np.random.Generator,
                        factor=None) -> np.ndarray:
    """One draw of ``b | y, beta, sigma, theta`` (all terms stacked, the spec's layout).

    ``u ~ N(u(beta), sigma^2 (L_theta L_theta')^{-1})`` with ``u(beta)`` the conditional
    modes (:func:`.solve.solve_modes`) and ``b = Lambda u``; the noise is
    ``sigma L_theta'^{-1} z``, solved block by block like the modes.  ``factor`` is
    ``L(theta)`` when the caller has it (not factored again).
    """
    f = factorize(cp, np.asarray(theta, dtype=float)) if factor is None else factor
    u, _ = solve_modes(f, np.asarray(beta, dtype=float))
    qr = cp.q_rest
    z = rng.standard_normal(cp.l1 * cp.p1 + qr)
    x_rest = f.solve_re(z[cp.l1 * cp.p1 :], trans=True)
    rhs = z[: cp.l1 * cp.p1] - L21_transpose_times(f, np.concatenate([x_rest, np.zeros(cp.m - qr)]))
    if cp.p1 == 1:
        x_first = rhs / f.L11.ravel()
    else:
        x_first = np.linalg.solve(np.swapaxes(f.L11, 1, 2), rhs.reshape(cp.l1, cp.p1, 1)).ravel()
    u = u + sigma * np.concatenate([x_first, x_rest])
    return apply_lambda(u, f.Ts, [cp.l1] + cp.rest_levels)
