"""lme4's third stage, ``mkMerMod``, and :func:`lmer`, which runs all three.

``make_devfun(spec, reml)`` -> ``optimize_lmer`` (both in :mod:`.fit`) ->
``make_fit``: the frozen :class:`~lmmcompare.LmerFit` at the optimum.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..arguments import check_bool, check_options
from ..errors import SingularFitWarning
from ..spec import as_spec
from .estimates import values_at
from .fit import _OPTIONS, Devfun, blas_threads_for, make_devfun, optimize_lmer
from .optimize import OptSummary
from .result import LmerFit


def make_fit(devfun: Devfun, opt: OptSummary, singular_tol: float = 1e-4) -> LmerFit:
    """Build the frozen :class:`~lmmcompare.LmerFit` at the optimum ``opt.theta``.

    The fit keeps ``devfun``'s cross-products and the factor at the optimum.
    """
    fit = LmerFit(**values_at(devfun, opt.theta, singular_tol), opt=opt)
    if fit.singular:
        warnings.warn("boundary (singular) fit: see help('isSingular')", SingularFitWarning, stacklevel=3)
    return fit


def fit_at_theta(devfun: Devfun, theta) -> LmerFit:
    """The fit at a given theta, without optimising (e.g. lme4's theta, or a profile point)."""
    theta = np.asarray(theta, float).reshape(devfun.lower.shape)
    value = devfun(theta)
    opt = OptSummary(method="fixed", theta_start=theta, lower=devfun.lower, theta=theta, objective=value,
                     n_evals=1, message="theta fixed by the caller", gradient=np.full(theta.shape, np.nan),
                     converged=True, seconds=0.0)
    return make_fit(devfun, opt)


def lmer(formula, data=None, reml: bool = True, start=None, weights=None, offset=None, contrasts=None, subset=None,
         na_action: str = "omit", sigma_by=None, **options) -> LmerFit:
    """Fit a linear mixed model by REML or ML, as lme4's ``lmer``.

    Parameters
    ----------
    formula : str or ModelSpec
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``, or a spec.
    data : DataFrame or str, optional
        Data or a shipped dataset name (not needed with a spec).
    reml : bool, default True
        REML criterion (True) or maximum likelihood (False).
    start : array-like, optional
        Starting theta (lme4's order).
    weights, offset, contrasts, subset, na_action
        Prior weights, an offset, factor codings, the rows to use and the
        missing-value rule, as lme4's arguments (:meth:`lmmcompare.ModelSpec.from_formula`).
    sigma_by : str, optional
        A factor column: one residual sd per level (nlme's ``varIdent(~ 1 | f)``,
        glmmTMB's ``dispformula = ~ f``); ``fit.residual_sd`` has them by level.
    **options
        Passed to :func:`lmmcompare.freq.optimize.optimize_theta` (``ftol``, ``gtol``, ...).

    Returns
    -------
    LmerFit
    """
    check_bool("reml", reml)
    check_options("lmer", options, dict(_OPTIONS), also=("formula", "data", "reml", "start"))
    spec = as_spec(formula, data, weights=weights, offset=offset, contrasts=contrasts, subset=subset,
                   na_action=na_action, sigma_by=sigma_by)
    devfun = make_devfun(spec, reml)
    # the fit at the optimum too: its small products gain nothing from BLAS threads (lmmcompare.core.threads)
    with blas_threads_for(devfun.cp):
        return make_fit(devfun, optimize_lmer(devfun, start=start, **options))
