"""The frequentist pipeline in lme4's public stages.

``make_devfun(spec, reml)`` (lme4's ``mkLmerDevfun``) -> ``optimize_lmer``
(``optimizeLmer``) -> ``make_fit`` (``mkMerMod``); :func:`lmer` runs all three.
Each stage takes and returns plain values, so a user can edit between them
(fix a start, swap the optimizer, refit with a new response).
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np

from ..arguments import check_bool, check_int, check_number, check_options, shown
from ..errors import ArgumentError, ConvergenceWarning, DataError, PrecisionWarning, SingularFitWarning
from ..spec import ModelSpec, as_spec
from ..core.blocks import CrossProducts, cross_products
from ..core.factor import factorize, objective
from ..core.gradient import objective_and_gradient
from .optimize import OptSummary, gradient_small, optimize_theta, projected_gradient
from ..core.relcovar import apply_lambda, theta_start
from .result import LmerFit
from ..core.solve import diagonal_blocks, inverse_blocks, solve_modes
from .start import intercepts_only, moment_start
from .threads import single_blas_thread
from ..core.standardize import (column_transforms, is_singular, standardized_spec, theta_from_standardized,
                          theta_to_standardized)


@dataclass(frozen=True, eq=False)
class Devfun:
    """The profiled objective as a function of theta alone.

    Calling it returns the REML criterion (``reml=True``) or the deviance.
    """

    spec: ModelSpec
    cp: CrossProducts
    reml: bool

    def __call__(self, theta) -> float:
        return objective(self.cp, np.asarray(theta, float), self.reml)

    def with_gradient(self, theta):
        """``(objective, gradient)`` at theta."""
        return objective_and_gradient(self.cp, np.asarray(theta, float), self.reml)

    @property
    def lower(self) -> np.ndarray:
        return self.spec.theta_lower

    @property
    def start(self) -> np.ndarray:
        return theta_start([t.p for t in self.spec.terms])


def make_devfun(spec: ModelSpec, reml: bool = True) -> Devfun:
    """Cross-products of [Z X y] for ``spec`` and the objective over theta."""
    reml = check_bool("reml", reml)
    return Devfun(spec=spec, cp=cross_products(spec), reml=reml)


def _positive(name, value):
    return check_number(name, value, 0.0)


# relative disagreement of the criterion in the model's and in standardised columns that is lost precision
PRECISION_RTOL = 1e-9

# trailing blocks (m x m, see .blocks) up to this size are optimised with one BLAS thread (see .threads)
ONE_BLAS_THREAD_UP_TO = 256

_OPTIONS = {"ftol": _positive, "gtol": _positive, "boundary_tol": _positive, "conv_tol": _positive,
            "maxiter": lambda name, value: check_int(name, value, 1)}


def optimize_lmer(devfun: Devfun, start=None, **options) -> OptSummary:
    """Minimise ``devfun`` from ``start``.

    Without ``start``: lme4's identity start, taken on the centred and scaled
    random-effects columns when they differ from the model's own (see
    :mod:`lmmcompare.core.standardize`), and the optimum polished in lme4's theta;
    for random intercepts only, the method-of-moments start of
    :mod:`lmmcompare.freq.start` when its objective is lower.  A given
    ``start`` (lme4's theta) is used as it is.  Models with a small trailing
    block run with one BLAS thread (:mod:`lmmcompare.freq.threads`).
    """
    check_options("the optimizer (lmer's **options)", options, dict(_OPTIONS))
    with single_blas_thread(devfun.cp.m <= ONE_BLAS_THREAD_UP_TO):  # inline: warnings' stacklevels count frames
        if start is None:
            transforms = column_transforms(devfun.spec)
            if transforms is not None:
                return _optimize_standardized(devfun, transforms, **options)
            if intercepts_only(devfun.spec):
                return _optimize_from_moments(devfun, **options)
            start = devfun.start
        try:
            start = np.asarray(start, dtype=float)
        except (TypeError, ValueError):
            raise ArgumentError(f"start must be a sequence of {devfun.lower.size} numbers (theta), "
                                f"got {shown(start)}") from None
        if start.shape != devfun.lower.shape:
            raise ArgumentError(f"start must have {devfun.lower.size} theta values, got shape {start.shape}")
        if not np.all(np.isfinite(start)):
            raise ArgumentError(f"start must hold finite numbers, got {shown(start)}")
        start = np.maximum(start, devfun.lower)
        return optimize_theta(devfun.with_gradient, start, devfun.lower, **options)


def _optimize_from_moments(devfun: Devfun, **options) -> OptSummary:
    """Start at the method-of-moments theta when its objective beats lme4's start (:mod:`.start`)."""
    candidates = [devfun.start, np.maximum(moment_start(devfun.spec), devfun.lower)]
    values = [devfun(theta) for theta in candidates]
    start = candidates[int(np.argmin(values))]
    opt = optimize_theta(devfun.with_gradient, start, devfun.lower, **options)
    log = tuple((theta, float(v)) for theta, v in zip(candidates, values)) + opt.log
    return dataclasses.replace(opt, log=log, n_evals=len(log))


def _optimize_standardized(devfun: Devfun, transforms, **options) -> OptSummary:
    """Optimise on standardised random-effects columns, then polish in lme4's theta (see :mod:`lmmcompare.core.standardize`)."""
    sizes = [t.p for t in devfun.spec.terms]
    inner_spec = standardized_spec(devfun.spec, transforms)
    inner = Devfun(spec=inner_spec, cp=cross_products(inner_spec), reml=devfun.reml)
    with warnings.catch_warnings():  # convergence is judged on the polished result
        warnings.simplefilter("ignore", ConvergenceWarning)
        first = optimize_theta(inner.with_gradient, inner.start, inner.lower, **options)
    start = np.maximum(theta_from_standardized(first.theta, transforms, sizes), devfun.lower)
    what = "REML criterion" if devfun.reml else "deviance"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            polished = optimize_theta(devfun.with_gradient, start, devfun.lower, **options)
        except np.linalg.LinAlgError:
            polished = None
    if polished is None or not polished.objective < 1e300 or not _evaluable(devfun, polished.theta):
        raise DataError(f"the {what} cannot be evaluated in the model's own random-effects columns at the "
                        f"optimum found with them centred and scaled ({first.objective:.6f}): "
                        f"{_far_from_zero(devfun.spec)}")
    log = tuple((theta_from_standardized(th, transforms, sizes), v) for th, v in first.log) + polished.log
    theta_s = theta_to_standardized(polished.theta, transforms, sizes)
    check = inner(theta_s)
    if not polished.converged:
        # The gradient in lme4's theta scales as 1 / (covariate scale): judge convergence where the
        # columns are standardised, as lme4's rule would judge a model fitted on rescaled covariates.
        value, grad = inner.with_gradient(theta_s)
        grad = projected_gradient(theta_s, grad, inner.lower)
        if gradient_small(inner.with_gradient, theta_s, grad, inner.lower, options.get("conv_tol", 0.002)):
            polished = dataclasses.replace(polished, converged=True)
            caught = [w for w in caught if not issubclass(w.category, ConvergenceWarning)]
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    # precision is lost when the model's columns and the standardised ones disagree on the criterion
    # at the same covariance, or when mapping the standardised optimum back lost ground
    tol = PRECISION_RTOL * max(1.0, abs(check))
    if abs(check - polished.objective) > tol or check > first.objective + tol:
        warnings.warn(
            f"the {what} at the optimum is {polished.objective:.6f} in the model's columns but {check:.6f} "
            f"with the random-effects columns centred and scaled (optimum there: {first.objective:.6f}): "
            f"{_far_from_zero(devfun.spec)}", PrecisionWarning, stacklevel=4)
    return dataclasses.replace(
        polished, method="L-BFGS-B on standardised columns, polished", log=log, n_evals=len(log),
        theta_start=theta_from_standardized(inner.start, transforms, sizes), seconds=first.seconds + polished.seconds)


def _evaluable(devfun: Devfun, theta) -> bool:
    """Whether the criterion at ``theta`` is finite (1e300 is optimize_theta's stand-in for inf)."""
    try:
        return bool(devfun(theta) < 1e300)
    except np.linalg.LinAlgError:
        return False


def _far_from_zero(spec) -> str:
    """The advice of a precision warning: which random-slope covariates to centre."""
    names = sorted({c for t in spec.terms for c in t.columns if c != "(Intercept)"})
    return ("precision is lost to covariates far from 0 relative to their spread in random-effects terms "
            f"({', '.join(names) or 'see the terms'}); centre them (x - mean(x)) and refit")


def make_fit(devfun: Devfun, opt: OptSummary, singular_tol: float = 1e-4) -> LmerFit:
    """Build the frozen :class:`~lmmcompare.LmerFit` at the optimum ``opt.theta``."""
    spec, cp, reml = devfun.spec, devfun.cp, devfun.reml
    try:
        f = factorize(cp, opt.theta)
    except np.linalg.LinAlgError:  # rounding decides positive definiteness: precision is gone
        raise DataError(f"the factor at the optimum is not positive definite to working precision: "
                        f"{_far_from_zero(spec)}") from None
    u, beta = solve_modes(f)
    levels = [t.n_levels for t in spec.terms]
    b = apply_lambda(u, f.Ts, levels)
    dof = spec.n - spec.p if reml else spec.n
    sigma = float(np.sqrt(f.r2 / dof))
    qr, p = cp.q_rest, cp.p
    LX = f.L22[qr : qr + p, qr : qr + p]
    LX_inv = np.linalg.inv(LX) if p else np.zeros((0, 0))
    vcov = sigma**2 * (LX_inv.T @ LX_inv)
    cond_blocks = _conditional_blocks(f, sigma)
    singular = is_singular(spec, opt.theta, singular_tol)
    if singular:
        warnings.warn("boundary (singular) fit: see help('isSingular')", SingularFitWarning, stacklevel=3)
    return LmerFit(spec=spec, reml=reml, theta=opt.theta, beta=beta, sigma=sigma, u=u, b=b,
                   objective=float(f.objective(reml)), vcov_beta=vcov, cond_blocks=cond_blocks,
                   singular=singular, opt=opt)


def fit_at_theta(devfun: Devfun, theta) -> LmerFit:
    """The fit at a given theta, without optimising (e.g. lme4's theta, or a profile point)."""
    theta = np.asarray(theta, float).reshape(devfun.lower.shape)
    value = devfun(theta)
    opt = OptSummary(method="fixed", theta_start=theta, lower=devfun.lower, theta=theta, objective=value,
                     n_evals=1, message="theta fixed by the caller", gradient=np.full(theta.shape, np.nan),
                     converged=True, seconds=0.0)
    return make_fit(devfun, opt)


def _conditional_blocks(f, sigma) -> list[np.ndarray]:
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


def lmer(formula, data=None, reml: bool = True, start=None, **options) -> LmerFit:
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
    **options
        Passed to :func:`lmmcompare.freq.optimize.optimize_theta` (``ftol``, ``gtol``, ...).

    Returns
    -------
    LmerFit
    """
    check_bool("reml", reml)
    check_options("lmer", options, dict(_OPTIONS), also=("formula", "data", "reml", "start"))
    spec = as_spec(formula, data)
    devfun = make_devfun(spec, reml)
    return make_fit(devfun, optimize_lmer(devfun, start=start, **options))
