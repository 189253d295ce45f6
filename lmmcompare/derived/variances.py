"""The variance components behind R² and the ICC (insight's ``get_variance`` for a Gaussian LMM).

For a fit with fixed-effects matrix ``X`` (n x p), fixed effects ``beta``,
random-effects terms ``k`` with model columns ``X_k`` (n x p_k) and covariance
``Sigma_k``, and residual standard deviation ``sigma``:

- ``var_fixed = var(X beta)``, the sample variance of the fixed part of the
  linear predictor with the ``n - 1`` denominator (R's ``var``; an offset is
  not part of it);
- ``var_random = sum_k mean_i (z_ik' Sigma_k z_ik) = sum_k tr(Sigma_k X_k'X_k) / n``,
  Johnson's (2014) mean variance of a term with random slopes (``z_ik`` is
  row ``i`` of ``X_k``; ``tr(Sigma_k)`` reduces to ``sigma_k^2`` for an
  intercept);
- ``var_residual = sigma^2``, also with prior weights (as insight: the
  variance of an observation of weight 1); with ``sigma_by`` the mean over the
  rows of their residual variance, ``mean_i (sigma delta_{f(i)})^2`` (the
  average observation-level variance of Nakagawa & Schielzeth's R²).

An :class:`~lmmcompare.LmerFit` gives numbers; a
:class:`~lmmcompare.BayesFit` gives one value per posterior draw, from that
draw's ``beta``, ``Sigma_k`` and ``sigma``, arrays of shape (chain, draw).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..freq import LmerFit
from ..freq.variance_components import residual_ratios
from ..spec import ModelSpec
from ..spec.residual_groups import level_scales


@dataclass(frozen=True)
class VarianceComponents:
    """The three variances of Nakagawa & Schielzeth's R² (insight's ``get_variance``).

    Attributes
    ----------
    var_fixed : float or ndarray
        ``var(X beta)`` (``n - 1`` denominator).
    var_random : float or ndarray
        ``sum_k tr(Sigma_k X_k'X_k) / n``; NaN for a singular fit (as insight).
    var_residual : float or ndarray
        ``sigma^2``.

    Floats for an LmerFit, (chain, draw) arrays for a BayesFit.
    """

    var_fixed: float | np.ndarray
    var_random: float | np.ndarray
    var_residual: float | np.ndarray


def fixed_covariance(spec: ModelSpec) -> np.ndarray:
    """``C = (X - 1 xbar')'(X - 1 xbar') / (n - 1)``, so that ``var(X beta) = beta' C beta``."""
    X = spec.X
    centred = X - X.mean(axis=0)
    return centred.T @ centred / (spec.n - 1)


def term_moments(spec: ModelSpec) -> list[np.ndarray]:
    """``X_k'X_k / n`` for each random-effects term: ``mean_i z_ik' Sigma z_ik = tr(Sigma X_k'X_k / n)``."""
    return [t.design.matrix.T @ t.design.matrix / spec.n for t in spec.terms]


def is_singular(fit: LmerFit, tolerance: float) -> bool:
    """insight's test for lme4 fits: a diagonal element of theta (lower bound 0) below ``tolerance``."""
    diagonal = np.concatenate([t.theta_lower for t in fit.spec.terms]) == 0
    return bool(np.any(np.abs(fit.theta[diagonal]) < tolerance))


def lmer_variances(fit: LmerFit, singular: bool) -> VarianceComponents:
    """The components of an LmerFit at its estimates; ``var_random`` is NaN when ``singular``."""
    spec = fit.spec
    var_fixed = float(np.var(spec.X @ fit.beta, ddof=1)) if spec.n > 1 else 0.0
    var_random = np.nan if singular else float(sum(
        np.sum(S * M) for S, M in zip(fit.term_covariances(), term_moments(spec))))
    return VarianceComponents(var_fixed, var_random, float(fit.sigma**2 * mean_square_scale(spec, residual_ratios(fit))))


def mean_square_scale(spec: ModelSpec, ratios) -> float | np.ndarray:
    """``mean_i delta_{f(i)}^2`` of ``sigma_by`` (1 without it); ``ratios`` (..., K - 1) for draws."""
    if spec.sigma_by is None:
        return 1.0
    share = np.bincount(spec.sigma_by.codes, minlength=spec.sigma_by.n_levels) / spec.n
    return np.sum(share * level_scales(ratios) ** 2, axis=-1)


def bayes_variances(fit) -> VarianceComponents:
    """The components per posterior draw of a BayesFit, each a (chain, draw) array."""
    from ..bayesian.postprocess import posterior_beta, term_covariance_draws   # handed a BayesFit: loaded
    from ..bayesian.residual import ratio_draws

    spec, post = fit.spec, fit.idata.posterior
    beta = posterior_beta(post, spec)
    var_fixed = np.einsum("cdi,ij,cdj->cd", beta, fixed_covariance(spec), beta)
    var_random = sum(np.einsum("cdij,ij->cd", S, M)
                     for S, M in zip(term_covariance_draws(post, spec), term_moments(spec)))
    scale = mean_square_scale(spec, ratio_draws(post, spec))
    return VarianceComponents(var_fixed, var_random, post["sigma"].values ** 2 * scale)
