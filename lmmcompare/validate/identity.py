"""REML as a marginal posterior: the bridge between the two engines.

Integrating the fixed effects out of the likelihood under a flat prior,

    -2 log \\int p(y | beta, theta, sigma) d beta
        = log|L_theta|^2 + log|R_X|^2 + (n - p) log(2 pi sigma^2) + r^2(theta) / sigma^2,

which is the restricted (REML) deviance at ``(theta, sigma)``; minimising over
sigma (``sigma^2 = r^2 / (n - p)``) gives lme4's REML criterion
``d_R(theta)`` (Bates et al. 2015, eq. 3.20).  Maximising over beta instead
gives the ML deviance and, with sigma profiled, ``d(theta)`` (eq. 3.16).  So with
flat priors on (beta, theta, sigma), ``d_R(theta)`` is ``-2 log`` of the
marginal posterior density of (theta, sigma) at the sigma of highest density,
up to the constant ``-2 log p(y)``, which we leave out (both sides are then
equal exactly, not just up to a shift).

:func:`reml_posterior_identity` computes the left-hand sides from the Bayesian
engine's marginal likelihood (:func:`lmmcompare.bayesian.marginal.marginal_loglik`,
a PyTensor graph; beta integrated exactly, since the integrand is Gaussian in beta)
and the right-hand sides from the frequentist engine's blocked factor
(:func:`lmmcompare.core.factor.factorize`), so it tests both.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from ..arguments import shown
from ..core.blocks import cross_products
from ..core.factor import LOG_2PI, factorize
from ..core.relcovar import theta_to_T
from ..errors import ArgumentError
from ..freq import lmer
from ..freq.fit import make_devfun
from ..spec import ModelSpec, as_spec


class _PosteriorSide:
    """The Bayesian engine's marginal log-likelihood, compiled once for a spec."""

    def __init__(self, spec: ModelSpec):
        import pytensor
        import pytensor.tensor as pt

        from ..bayesian.marginal import marginal_loglik, response_data

        has_intercept = "(Intercept)" in spec.fixed_names
        slope_index = [j for j, n in enumerate(spec.fixed_names) if n != "(Intercept)"]
        x_means = spec.X[:, slope_index].mean(axis=0) if has_intercept else np.zeros(len(slope_index))
        gamma = pt.vector("gamma")
        sigma = pt.scalar("sigma")
        factors = [pt.matrix(f"L_{i}") for i in range(len(spec.terms))]
        cp = cross_products(spec)
        loglik = marginal_loglik(spec, response_data(spec, slope_index, x_means, cp), gamma, sigma, factors,
                                 slope_index, x_means, cp)
        self._fn = pytensor.function([gamma, sigma, *factors], [loglik, pytensor.grad(loglik, gamma)])
        self.p = len(spec.fixed_names)
        self.sizes = [t.p for t in spec.terms]

    def at(self, theta, sigma: float):
        """``(-2 log integral over beta, -2 log max over beta)`` at (theta, sigma)."""
        Ls = [sigma * T for T in theta_to_T(np.asarray(theta, float), self.sizes)]
        # the loglik is quadratic in gamma, so its gradient is affine: H e_k = g(e_k) - g(0)
        g = self._fn(np.zeros(self.p), sigma, *Ls)[1]
        H = np.column_stack([self._fn(e, sigma, *Ls)[1] - g for e in np.eye(self.p)])
        gamma_hat = np.linalg.solve(-H, g)
        top = float(self._fn(gamma_hat, sigma, *Ls)[0])
        H = 0.5 * (H + H.T)
        logdet = np.linalg.slogdet(-H)[1]
        return -2 * top - self.p * LOG_2PI + logdet, -2 * top

    def profiled(self, theta, which: int, sigma0: float) -> float:
        """Minimum over sigma (found numerically) of ``at(theta, sigma)[which]``."""
        res = minimize_scalar(lambda ls: self.at(theta, float(np.exp(ls)))[which],
                              bracket=(np.log(sigma0) - 0.3, np.log(sigma0) + 0.3), tol=1e-12)
        return float(res.fun)


def _default_thetas(spec: ModelSpec, seed) -> list[np.ndarray]:

    theta_hat = lmer(spec, reml=True).theta
    rng = np.random.default_rng(seed)
    lower = spec.theta_lower
    jitter = theta_hat + 0.3 * rng.standard_normal(theta_hat.size) * (np.abs(theta_hat) + 0.1)
    jitter = np.where(np.isfinite(lower), np.abs(jitter), jitter)
    return [theta_hat, 0.5 * theta_hat + 0.05, 1.5 * theta_hat + 0.05, jitter]


def reml_posterior_identity(spec, data=None, thetas=None, sigma_scales=(0.8, 1.25), seed=0) -> pd.DataFrame:
    """Check numerically that REML is -2 x the log marginal posterior of (theta, sigma).

    Parameters
    ----------
    spec : ModelSpec or str
        The model (a formula needs ``data``).
    data : DataFrame or str, optional
    thetas : sequence of array-like, optional
        Points to check, in lme4's theta order.  Default: the REML estimate,
        half and 1.5 times it, and a random perturbation (``seed``).
    sigma_scales : sequence of float
        At each theta the unprofiled identity is also checked at these
        multiples of the REML sigma of that theta.

    Returns
    -------
    DataFrame
        One row per (theta, sigma, criterion) with ``frequentist`` (from the
        blocked Cholesky factor), ``bayesian`` (from the PyMC model's marginal
        likelihood, beta integrated (REML) or maximised (ML) exactly, sigma
        minimised numerically where profiled), ``difference`` and
        ``relative`` = ``|difference| / |frequentist|``.  The identity holds when
        ``relative`` is at rounding level (1e-10 or less).
    """
    spec = as_spec(spec, data)
    if not all(np.isfinite(s) and s > 0 for s in sigma_scales):
        raise ArgumentError(f"sigma_scales must be positive numbers, got {shown(sigma_scales)}")
    if thetas is None:
        thetas = _default_thetas(spec, seed)
    cp = make_devfun(spec).cp
    posterior = _PosteriorSide(spec)
    n, p = spec.n, len(spec.fixed_names)
    rows = []
    for theta in thetas:
        theta = np.asarray(theta, float)
        if theta.shape != spec.theta_lower.shape or np.any(theta < spec.theta_lower):
            raise ArgumentError(f"each theta must have {spec.theta_lower.size} values within the lower bounds "
                                f"{spec.theta_lower.tolist()}, got {theta.tolist()}")
        F = factorize(cp, theta)
        label = np.array2string(theta, precision=4, separator=", ")
        sigma_reml = np.sqrt(F.r2 / (n - p))
        rows.append((label, "REML criterion (sigma profiled)", np.nan, F.objective(True),
                     posterior.profiled(theta, 0, sigma_reml)))
        rows.append((label, "ML deviance (sigma profiled)", np.nan, F.objective(False),
                     posterior.profiled(theta, 1, np.sqrt(F.r2 / n))))
        for scale in sigma_scales:
            sigma = scale * sigma_reml
            s2 = sigma**2
            restricted = F.logdet_theta + F.logdet_X + (n - p) * (LOG_2PI + np.log(s2)) + F.r2 / s2
            rows.append((label, "REML deviance at sigma", sigma, restricted, posterior.at(theta, sigma)[0]))
    table = pd.DataFrame(rows, columns=["theta", "criterion", "sigma", "frequentist", "bayesian"])
    table["difference"] = table["bayesian"] - table["frequentist"]
    table["relative"] = table["difference"].abs() / table["frequentist"].abs()
    return table
