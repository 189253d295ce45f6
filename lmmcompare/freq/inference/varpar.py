"""The deviance and cov(beta) as functions of the variance parameters.

lmerTest's parameterisation for lme4's models: ``varpar = (theta, sigma)`` and,
with ``r^2(theta)`` the penalised residual sum of squares,

    dev(theta, sigma) = log|L_theta|^2 + r^2 / sigma^2 + n log(2 pi sigma^2) - sum_i log w_i
                        [REML: + log|L_X|^2 - p log(2 pi sigma^2)]

which equals the profiled criterion at ``sigma^2 = r^2 / n`` (or ``/(n - p)``).
``cov(beta)(theta, sigma) = sigma^2 (L_X L_X')^{-1}``.

A model with a structured term or ``sigma_by`` has fewer (or other) free
parameters than theta: ``varpar = (phi, sigma)`` with phi the optimizer's
vector (:class:`~lmmcompare.freq.fit.Devfun`: the structured terms' relative sds
and correlations, then ``log delta_k`` of the residual sd ratios).  The same
formula holds with ``theta = theta(phi)`` and the cross-products (and
``w_i = a_i / delta_{f(i)}^2``) of the rows weighted at ``delta``
(``Devfun.at``).  Satterthwaite's df is invariant to the parameterisation
(at the optimum ``A = 2 H^{-1}`` and the gradient of cov(beta) transform by the
same jacobian), so only *which* parameters are free matters.
"""
from __future__ import annotations

import numpy as np

from ...core.factor import LOG_2PI, factorize
from ..fit import Devfun
from . import numderiv


def objective_of(fit) -> Devfun | None:
    """The fit's objective over phi, whose cross-products at each phi :func:`deviance_varpar` and
    :func:`vcov_varpar_beta` read (pass one to many calls: it keeps the last few weighted ones);
    None for lme4's models, which use the fit's own."""
    return None if fit.spec.phi_is_theta else Devfun(spec=fit.spec, cp=fit.cp, reml=fit.reml)


def _blocks(fit, phi, devfun):
    """``(cp, theta)`` at ``phi``: the fit's own when phi is theta."""
    if fit.spec.phi_is_theta:
        return fit.cp, np.asarray(phi, dtype=float)
    _, cp, theta = (objective_of(fit) if devfun is None else devfun).at(phi)
    return cp, theta


def fitted_varpar(fit) -> np.ndarray:
    """``(phi, sigma)`` at the fit (phi is theta for lme4's models)."""
    return np.append(fit.phi, fit.sigma)


def deviance_varpar(fit, varpar, devfun: Devfun | None = None) -> float:
    """``-2 log L`` (REML fits: the restricted likelihood) at ``varpar = (phi, sigma)``, beta profiled."""
    varpar = np.asarray(varpar, dtype=float)
    sigma = varpar[-1]
    try:
        cp, theta = _blocks(fit, varpar[:-1], devfun)
        f = factorize(cp, theta)
    except np.linalg.LinAlgError:
        return np.inf
    s2 = sigma * sigma
    dev = f.logdet_theta + f.r2 / s2 + cp.n * (LOG_2PI + np.log(s2)) - cp.log_weights
    if fit.reml:
        dev += f.logdet_X - cp.p * (LOG_2PI + np.log(s2))
    return dev


def vcov_varpar_beta(fit, varpar, devfun: Devfun | None = None) -> np.ndarray:
    """``cov(beta)`` at ``varpar`` (flattened p x p)."""
    varpar = np.asarray(varpar, dtype=float)
    cp, theta = _blocks(fit, varpar[:-1], devfun)
    f = factorize(cp, theta)
    p = cp.p
    LX_inv = np.linalg.inv(f.corner[:p, :p])
    return (varpar[-1] ** 2 * (LX_inv.T @ LX_inv)).ravel()


def varpar_covariance(fit):
    """``(A, jac)``: asymptotic covariance of varpar, ``2 H^{-1}`` (lmerTest), and the
    derivatives of cov(beta) with respect to each varpar, a list of p x p matrices.
    Computed once per fit (kept in ``fit.derived``)."""
    return fit.derived.get("varpar covariance", lambda: _varpar_covariance(fit))


def _varpar_covariance(fit):
    varpar, devfun = fitted_varpar(fit), objective_of(fit)
    H = numderiv.hessian(lambda v: deviance_varpar(fit, v, devfun), varpar)
    w, U = np.linalg.eigh(H)
    keep = w > 1e-8 * max(np.max(np.abs(w)), 1.0)
    A = 2.0 * (U[:, keep] / w[keep]) @ U[:, keep].T  # pseudo-inverse when singular
    J = numderiv.jacobian(lambda v: vcov_varpar_beta(fit, v, devfun), varpar)
    p = fit.spec.p
    return A, [J[:, i].reshape(p, p) for i in range(J.shape[1])]
