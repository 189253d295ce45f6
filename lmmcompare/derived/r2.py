"""R² and the intraclass correlation of a linear mixed model, at the estimates or per posterior draw.

``kind="nakagawa"`` (the default) is Nakagawa & Schielzeth's (2013) R² with
Johnson's (2014) variance of random-slope terms, as R's
``performance::r2_nakagawa``; from the components ``v_f``, ``v_r``, ``v_e`` of
:mod:`lmmcompare.derived.variances`::

    marginal    = v_f / (v_f + v_r + v_e)
    conditional = (v_f + v_r) / (v_f + v_r + v_e)

and the ICC, as ``performance::icc``::

    adjusted   = v_r / (v_r + v_e)
    unadjusted = v_r / (v_f + v_r + v_e)

``kind="bayes"`` (a BayesFit only) is Gelman, Goodrich, Gabry & Vehtari's
(2019) Bayesian R² as brms' ``bayes_R2``: per draw ``s``, with ``mu_s`` the
expected response of that draw and ``e_s = y - mu_s`` its residuals,
``R²_s = var(mu_s) / (var(mu_s) + var(e_s))`` (the residual-based form; rstanarm
puts ``sigma_s^2`` in place of ``var(e_s)``).  ``conditional`` takes
``mu = offset + X beta + Z b`` (brms' default ``re_formula = NULL``),
``marginal`` ``mu = offset + X beta`` (``re_formula = NA``), as
``performance::r2_bayes`` reports them.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..arguments import check_choice, check_level, check_number
from ..errors import ArgumentError, SingularFitWarning
from ..freq import LmerFit
from .variances import VarianceComponents, bayes_variances, is_singular, lmer_variances

KINDS = ("nakagawa", "bayes")


def _describe(values: dict, level: float) -> pd.DataFrame:
    """One row per quantity: the number itself, or the mean, sd, median and central interval of its draws."""
    level = check_level("level", level)
    if all(np.ndim(v) == 0 for v in values.values()):
        return pd.DataFrame({"estimate": [float(v) for v in values.values()]}, index=list(values))
    lo, hi = (1 - level) / 2, (1 + level) / 2
    rows = {}
    for name, v in values.items():
        draws = np.ravel(v)
        rows[name] = {"mean": draws.mean(), "sd": draws.std(ddof=1), "median": np.median(draws),
                      f"q{100 * lo:g}%": np.quantile(draws, lo), f"q{100 * hi:g}%": np.quantile(draws, hi)}
    return pd.DataFrame.from_dict(rows, orient="index")


def _shown(values: dict) -> str:
    if all(np.ndim(v) == 0 for v in values.values()):
        return ", ".join(f"{k}={float(v):.4g}" for k, v in values.items())
    return ", ".join(f"{k}: median {np.median(v):.4g} of {np.size(v)} draws" for k, v in values.items())


@dataclass(frozen=True)
class R2:
    """Marginal and conditional R² of a mixed model.

    Attributes
    ----------
    marginal, conditional : float or ndarray
        Numbers for an LmerFit, (chain, draw) arrays of posterior draws for a BayesFit.
    kind : str
        ``"nakagawa"`` or ``"bayes"`` (see :func:`lmmcompare.r2`).
    variances : VarianceComponents or None
        The components of ``kind="nakagawa"`` (None for ``"bayes"``).
    """

    marginal: float | np.ndarray
    conditional: float | np.ndarray
    kind: str
    variances: VarianceComponents | None = None

    def describe(self, level: float = 0.95) -> pd.DataFrame:
        """Rows ``marginal`` and ``conditional``: the estimate, or the draws' mean, sd, median and central interval."""
        return _describe({"marginal": self.marginal, "conditional": self.conditional}, level)

    def __repr__(self):
        return f"R2({self.kind}: {_shown({'marginal': self.marginal, 'conditional': self.conditional})})"


@dataclass(frozen=True)
class ICC:
    """Adjusted and unadjusted intraclass correlation (``performance::icc``).

    Attributes
    ----------
    adjusted, unadjusted : float or ndarray
        Numbers for an LmerFit, (chain, draw) arrays of posterior draws for a BayesFit.
    variances : VarianceComponents
    """

    adjusted: float | np.ndarray
    unadjusted: float | np.ndarray
    variances: VarianceComponents

    def describe(self, level: float = 0.95) -> pd.DataFrame:
        """Rows ``adjusted`` and ``unadjusted``: the estimate, or the draws' mean, sd, median and central interval."""
        return _describe({"adjusted": self.adjusted, "unadjusted": self.unadjusted}, level)

    def __repr__(self):
        return f"ICC({_shown({'adjusted': self.adjusted, 'unadjusted': self.unadjusted})})"


def _bayes_fit_class():
    from ..bayesian.result import BayesFit  # loads ArviZ: only when the fit is not an LmerFit

    return BayesFit


def _variances(fit, tolerance: float, what: str) -> VarianceComponents:
    """The fit's components; for a singular LmerFit var_random is NaN and a SingularFitWarning says so."""
    tolerance = check_number("tolerance", tolerance, 0.0, open_low=False)
    if isinstance(fit, LmerFit):
        singular = is_singular(fit, tolerance)
        if singular:
            warnings.warn(
                f"a random-effects variance of this fit is (near) zero (a diagonal element of theta below "
                f"tolerance={tolerance:g}): the random-effects variance is not defined and {what}, as in R's "
                "performance package; drop the zero term, or lower tolerance to compute it anyway",
                SingularFitWarning, stacklevel=3)
        return lmer_variances(fit, singular)
    if isinstance(fit, _bayes_fit_class()):
        return bayes_variances(fit)
    raise ArgumentError(f"fit must be an LmerFit (lc.lmer) or a BayesFit (lc.bayes), got {type(fit).__name__}")


def _gelman_r2(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """``var(mu) / (var(mu) + var(y - mu))`` over the last axis (brms' ``.bayes_R2``)."""
    var_mu = mu.var(axis=-1, ddof=1)
    var_e = (y - mu).var(axis=-1, ddof=1)
    return var_mu / (var_mu + var_e)


def _bayes_r2(fit) -> R2:
    from ..bayesian.postprocess import posterior_beta   # a BayesFit: the Bayesian engine is loaded

    spec = fit.spec
    beta = posterior_beta(fit.idata.posterior, spec)
    mu_fixed = np.einsum("np,cdp->cdn", spec.X, beta) + spec.working_offset
    return R2(_gelman_r2(spec.y, mu_fixed), _gelman_r2(spec.y, fit.linear_predictor()), "bayes")


def r2(fit, kind: str = "nakagawa", tolerance: float = 1e-5) -> R2:
    """Marginal and conditional R² of a mixed model (``performance::r2_nakagawa``, brms' ``bayes_R2``).

    Parameters
    ----------
    fit : LmerFit or BayesFit
    kind : {"nakagawa", "bayes"}
        ``"nakagawa"``: ``marginal = v_f / (v_f + v_r + v_e)`` and
        ``conditional = (v_f + v_r) / (v_f + v_r + v_e)`` with ``v_f = var(X beta)``,
        ``v_r = sum_k tr(Sigma_k X_k'X_k) / n`` (Johnson 2014) and ``v_e = sigma^2``;
        for a BayesFit one value per draw from that draw's ``beta``, ``Sigma_k``, ``sigma``.
        ``"bayes"`` (BayesFit only): Gelman et al.'s (2019) ``var(mu) / (var(mu) + var(y - mu))``
        per draw, ``mu`` with (conditional) or without (marginal) the random effects, as brms.
    tolerance : float
        As performance: an LmerFit with a diagonal element of theta below it is
        singular; its random-effects variance is then undefined, ``conditional``
        is NaN and ``marginal = v_f / (v_f + v_e)`` (with a SingularFitWarning).

    Returns
    -------
    R2
        ``marginal`` and ``conditional``: numbers, or (chain, draw) arrays of
        draws; ``describe()`` summarises them.

    Examples
    --------
    >>> import lmmcompare as lc
    >>> fit = lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    >>> lc.r2(fit)
    R2(nakagawa: marginal=0.2787, conditional=0.7992)
    """
    check_choice("kind", kind, KINDS)
    if kind == "bayes":
        if isinstance(fit, LmerFit) or not isinstance(fit, _bayes_fit_class()):
            raise ArgumentError(f"kind='bayes' (Gelman et al.'s Bayesian R²) needs a BayesFit (lc.bayes), got "
                                f"{type(fit).__name__}; use kind='nakagawa' for an LmerFit")
        return _bayes_r2(fit)
    v = _variances(fit, tolerance, "conditional R² is NaN (marginal R² leaves it out)")
    total = v.var_fixed + np.nan_to_num(v.var_random, nan=0.0) + v.var_residual   # singular: v_f + v_e
    marginal, conditional = v.var_fixed / total, (v.var_fixed + v.var_random) / total
    if isinstance(fit, LmerFit):
        marginal, conditional = float(marginal), float(conditional)
    return R2(marginal, conditional, "nakagawa", v)


def icc(fit, tolerance: float = 1e-5) -> ICC:
    """Adjusted and unadjusted intraclass correlation (``performance::icc``).

    ``adjusted = v_r / (v_r + v_e)`` and ``unadjusted = v_r / (v_f + v_r + v_e)``
    with the components of :func:`lmmcompare.r2`; per posterior draw for a BayesFit.
    Both are NaN for a singular LmerFit (see :func:`lmmcompare.r2`'s ``tolerance``).

    Examples
    --------
    >>> import lmmcompare as lc
    >>> lc.icc(lc.lmer("Reaction ~ Days + (1 | Subject)", "sleepstudy"))
    ICC(adjusted=0.5893, unadjusted=0.4244)
    """
    v = _variances(fit, tolerance, "the ICC is NaN")
    adjusted = v.var_random / (v.var_random + v.var_residual)
    unadjusted = v.var_random / (v.var_fixed + v.var_random + v.var_residual)
    if isinstance(fit, LmerFit):
        adjusted, unadjusted = float(adjusted), float(unadjusted)
    return ICC(adjusted, unadjusted, v)
