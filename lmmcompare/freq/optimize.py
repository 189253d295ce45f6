"""Minimising the profiled objective over theta, and the record of how it went.

The analytic gradient (:mod:`.gradient`) and box constraints ``theta_i >= 0`` on the
diagonal of each ``T_i``.  Up to ``SMALL_K`` (8) parameters the dense BFGS with
bounds of :mod:`.box_bfgs` where asked (``dense_bfgs=True``: models with the dense
criterion of :mod:`lmmcompare.core.small_dense`, ``Devfun.small``): the same stopping
rules as L-BFGS-B, none of scipy's per-evaluation overhead (sleepstudy: 100 refits
0.46 -> 0.39 s), and a polish may start from a given inverse Hessian; otherwise
L-BFGS-B (scipy).  After the optimizer
stops, components within ``boundary_tol`` of zero are set to zero when that
does not increase the objective (lme4's ``check.boundary``), and convergence
is checked as lme4's ``check.conv.grad`` does: the largest of
``min(|g|, |H^{-1/2} g|)`` over the free components must be below ``0.002``.

The optimizers see the objective less its value at the start, ``f(theta) - f(theta_0)``.
Their ``ftol`` is relative, ``(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1)``, and the
profiled deviance of ``a y + b`` is that of ``y`` plus ``2 dof log|a|`` (dof = n, or
n - p under REML): measured from the start, the stopping point no longer depends on the
units of the response (lme4's nloptwrap stops on an absolute ``ftol_abs = 1e-8`` for
the same reason).  The tolerance on the projected gradient is at least the gradient's
rounding noise, ``GRADIENT_ROUNDING |f(theta_0)|`` (at most 0.0002), so that the line search of a
large model does not dither where the gradient is known to no more digits.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize

from ..errors import ConvergenceWarning
from .box_bfgs import SMALL_K, box_bfgs


@dataclass(frozen=True)
class OptSummary:
    """What the optimizer did.

    Attributes
    ----------
    method : str
    theta_start, lower : ndarray
    theta : ndarray
        Final theta (after snapping to the boundary).
    objective : float
        Objective at ``theta``.
    n_evals : int
        Evaluations of the objective (with its gradient).
    message : str
        The optimizer's own stopping message.
    gradient : ndarray
        Gradient at ``theta`` (projected: 0 where a bound is active).
    converged : bool
    seconds : float
        Wall time of the optimisation.
    log : tuple of (theta, objective)
        Every evaluation, in order.
    hess_inv : ndarray or None
        The dense BFGS's inverse Hessian at ``theta`` when its run ended there (a polish
        starts from it), else None.
    """

    method: str
    theta_start: np.ndarray
    lower: np.ndarray
    theta: np.ndarray
    objective: float
    n_evals: int
    message: str
    gradient: np.ndarray
    converged: bool
    seconds: float
    log: tuple = field(repr=False, default=())
    hess_inv: np.ndarray | None = field(repr=False, default=None)

    def __repr__(self):
        return (f"OptSummary({self.method}: {self.n_evals} evaluations, objective {self.objective:.6f}, "
                f"{'converged' if self.converged else 'NOT converged'}, {self.seconds:.3f} s)")


def projected_gradient(theta, grad, lower, tol=0.0, upper=None):
    """Zero the components pushing against an active lower (or upper) bound."""
    g = np.array(grad, dtype=float)
    at_bound = (theta <= lower + tol) & (g > 0)
    if upper is not None:
        at_bound |= (theta >= upper - tol) & (g < 0)
    g[at_bound] = 0.0
    return g


# relative rounding noise of the criterion's gradient, as a fraction of the criterion: the stopping tolerance on
# the projected gradient is at least this times |f(theta_0)|.  InstEval's REML criterion (2.4e5) gave gradients
# of -1.1e-4, -6e-5 and -8e-5 at points 1e-9 apart, and L-BFGS-B's line search dithered in that noise for 6 of
# its 15 evaluations.  The floor is capped at a tenth of lme4's convergence tolerance (|g| < 0.002), which a
# criterion of 2e5 or more reaches; a small model (f < 1e4) keeps gtol
GRADIENT_ROUNDING = 1e-9


def optimize_theta(fun_grad, start, lower, ftol=1e-10, gtol=1e-5, maxiter=2000,
                   boundary_tol=1e-5, conv_tol=0.002, upper=None, below=None, dense_bfgs: bool = False,
                   hess_inv0=None):
    """Minimise ``fun_grad(theta) -> (objective, gradient)`` subject to ``lower <= theta (<= upper)``.

    ``below(i)``: the entries whose sign may flip when entry ``i`` is zero
    (:func:`column_below` for lme4's theta, the default).  ``dense_bfgs``: with at most
    ``SMALL_K`` parameters, :func:`~.box_bfgs.box_bfgs` instead of L-BFGS-B (module docstring);
    ``hess_inv0``: its first inverse Hessian (ignored by L-BFGS-B).

    Returns
    -------
    OptSummary
    """
    log = []
    origin = []   # the first finite objective: the optimizers see f - origin (module docstring)

    def logged(theta):
        value, grad = fun_grad(theta)
        value = float(value)
        log.append((np.array(theta), value))
        if not math.isfinite(value):  # keep the line search going: a large finite value
            return 1e300, np.zeros_like(theta)
        if not origin:
            origin.append(value)
        return value - origin[0], grad

    t0 = time.perf_counter()
    upper = np.full(np.shape(lower), np.inf) if upper is None else np.asarray(upper, float)
    below = below or (lambda i: column_below(lower, i))
    x0 = np.asarray(start, float)
    first = [x0, logged(x0)]   # evaluated here: the criterion's size sets the gradient's rounding floor

    def minimized(theta):   # the optimizer's own first call, at x0, takes the evaluation above
        if first:
            x, pair = first
            first.clear()
            if np.array_equal(theta, x):
                return pair
        return logged(theta)

    floor = min(GRADIENT_ROUNDING * abs(origin[0]), 0.1 * conv_tol) if origin else 0.0
    res_options = dict(lower=np.asarray(lower, float), upper=upper,
                       options=dict(ftol=ftol, gtol=max(gtol, floor), maxiter=maxiter, maxcor=20),
                       dense=dense_bfgs and np.size(lower) <= SMALL_K)
    res = _minimize(minimized, x0, dict(res_options, H0=hess_inv0))
    theta, value, grad = np.array(res.x), float(res.fun), np.array(res.jac)
    # lme4's check.boundary: snap near-zero diagonal elements when not worse
    near = (lower == 0) & (theta > 0) & (theta < boundary_tol)
    if near.any():
        trial = theta.copy()
        trial[near] = 0.0
        trial_value, trial_grad = logged(trial)
        if trial_value <= value:
            theta, value, grad = trial, trial_value, trial_grad
    theta, value, grad = _escape_boundary(logged, theta, value, grad, lower, res_options, below)
    theta, value, grad = _continue_on_a_ridge(logged, theta, value, grad, lower, upper, res, res_options, conv_tol)
    value += origin[0] if origin and value < 1e300 else 0.0
    grad = projected_gradient(theta, grad, lower, upper=upper)
    # a line search that cannot improve at machine precision (ABNORMAL) is judged by the
    # gradient alone, as lme4 judges every optimizer
    converged = res.status != 1 and gradient_small(fun_grad, theta, grad, lower, conv_tol,
                                                   _trusted_hess_inv(res, res_options), upper)
    seconds = time.perf_counter() - t0
    method = "BFGS with bounds" if res_options["dense"] else "L-BFGS-B"
    final_hess_inv = res.hess_inv.todense() if res_options["dense"] and np.array_equal(theta, res.x) else None
    summary = OptSummary(method=method, theta_start=np.asarray(start, float), lower=np.asarray(lower),
                         theta=theta, objective=float(value), n_evals=len(log),
                         message=str(res.message), gradient=grad, converged=converged,
                         seconds=seconds, log=tuple(log), hess_inv=final_hess_inv)
    if not converged:
        warnings.warn(
            f"model failed to converge: optimizer message {res.message!r}, max|grad| = "
            f"{np.max(np.abs(grad)) if grad.size else 0:.3g} (tol = {conv_tol}) at theta = {np.round(theta, 6)}",
            ConvergenceWarning, stacklevel=3)
    return summary


def _minimize(fun_grad, x0, res_options):
    """L-BFGS-B (scipy) with ``res_options`` (lower, upper, options), or where ``res_options["dense"]`` the
    dense BFGS of :mod:`.box_bfgs` with the same stopping rules, without scipy's per-evaluation overhead."""
    lower, upper, options = res_options["lower"], res_options["upper"], res_options["options"]
    if not res_options["dense"]:
        return scipy.optimize.minimize(fun_grad, x0, jac=True, method="L-BFGS-B", options=options,
                                       bounds=scipy.optimize.Bounds(lower, upper))
    return box_bfgs(fun_grad, x0, lower, upper, ftol=options["ftol"], gtol=options["gtol"],
                    maxiter=options["maxiter"], H0=res_options.get("H0"))


def _continue_on_a_ridge(fun_grad, theta, value, grad, lower, upper, res, res_options, conv_tol, restarts=5):
    """Restart the optimizer, its curvature memory cleared and ``ftol`` at 0, while it stopped on ``ftol`` with
    the gradient still large by lme4's rule (:func:`gradient_small`: for L-BFGS-B from its quasi-Newton inverse
    Hessian alone, for the dense BFGS from differences) and each restart lowers the objective.

    On a long curved ridge (a maximal crossed design: 200 subjects x 100 items, 20
    covariance parameters, deviance 58,190) successive steps lower the objective by
    less than ``ftol`` relative while the gradient is still 0.07 (lme4 stops 0.43 lower).
    """
    options = dict(res_options, options=dict(res_options["options"], ftol=0.0))
    for _ in range(restarts):
        g = projected_gradient(theta, grad, lower, upper=upper)
        if res.status == 1 or gradient_small(fun_grad, theta, g, lower, conv_tol, _trusted_hess_inv(res, res_options),
                                             upper, differences=res_options["dense"]):
            break
        res = _minimize(fun_grad, theta, options)
        if not res.fun < value:
            break
        theta, value, grad = np.array(res.x), float(res.fun), np.array(res.jac)
    return theta, value, grad


def _trusted_hess_inv(res, res_options):
    """The optimizer's inverse Hessian where :func:`gradient_small` may judge by it: L-BFGS-B's (its
    differences would cost k evaluations of a large model); for the few parameters of the dense BFGS
    none, so that a gradient above the tolerance is judged by the Hessian from differences (k + 1
    evaluations of a small model).  A BFGS matrix learned across a direction 10^6 times stiffer than a
    curved valley passed a point 0.29 above the valley's minimum, gradient 0.9, as converged."""
    return None if res_options["dense"] else getattr(res, "hess_inv", None)


def column_below(lower, i):
    """Indices of the entries below diagonal element ``i`` in its column of T (theta is column-major)."""
    k = i + 1
    while k < lower.size and lower[k] != 0:
        k += 1
    return np.arange(i + 1, k)


def _escape_boundary(fun_grad, theta, value, grad, lower, res_options, below, steps=(1e-3, 1e-2, 1e-1),
                     rounds=5):
    """Restart from inside when a diagonal theta on its bound is a saddle (lme4's ``restart_edge``).

    The objective depends on a zero diagonal element of T only through its
    square, so the gradient there is 0 even when moving inwards lowers the
    objective; a small step inwards tells, and the optimizer restarts from it.
    With the diagonal element zero, the column below it can change sign
    without changing ``T T'``; the step is tried from both signs, since the
    reflected point may be the one from which the way inwards goes down.
    """
    for _ in range(rounds):
        improved = False
        for i in np.flatnonzero((lower == 0) & (theta <= 0)):
            flips = below(i)
            signs = (1.0, -1.0) if flips.size and np.any(theta[flips] != 0) else (1.0,)
            for h in steps:
                for sign in signs:
                    trial = theta.copy()
                    trial[flips] *= sign
                    trial[i] = h
                    if fun_grad(trial)[0] < value - 1e-10 * max(1.0, abs(value)):
                        res = _minimize(fun_grad, trial, res_options)
                        if res.fun < value:
                            theta, value, grad = np.array(res.x), float(res.fun), np.array(res.jac)
                            improved = True
                        break
                else:
                    continue
                break
            if improved:
                break
        if not improved:
            break
    return theta, value, grad


def gradient_small(fun_grad, theta, grad, lower, tol, hess_inv=None, upper=None, differences: bool = True):
    """lme4's rule: max over free components of min(|g|, |scaled g|) < tol.

    The scaled gradient ``C'g`` with ``C C' = H^{-1}`` is first taken from the
    quasi-Newton inverse Hessian (free); only if that fails is the Hessian
    computed by differences of the analytic gradient (k more evaluations; with
    ``differences=False`` the answer is then False).
    """
    if grad.size == 0 or np.max(np.abs(grad)) < tol:
        return True
    free = ~((theta <= lower) & (grad >= 0))
    if upper is not None:
        free &= ~((theta >= upper) & (grad <= 0))
    if hess_inv is not None:
        try:
            B = np.asarray(hess_inv.todense())[np.ix_(free, free)]
            scaled = np.linalg.cholesky(0.5 * (B + B.T)).T @ grad[free]
            if np.max(np.minimum(np.abs(scaled), np.abs(grad[free]))) < tol:
                return True
        except (np.linalg.LinAlgError, AttributeError):
            pass
    if not differences:
        return False
    hess = _hessian_from_gradient(fun_grad, theta, lower)[np.ix_(free, free)]
    try:
        scaled = np.linalg.solve(np.linalg.cholesky(hess), grad[free])
    except np.linalg.LinAlgError:
        return False
    return bool(np.max(np.minimum(np.abs(scaled), np.abs(grad[free]))) < tol)


def _hessian_from_gradient(fun_grad, theta, lower, h=1e-5):
    """Forward differences of the analytic gradient, symmetrised."""
    k = theta.size
    _, g0 = fun_grad(theta)
    H = np.empty((k, k))
    for i in range(k):
        step = np.zeros(k)
        step[i] = h
        _, gi = fun_grad(theta + step)
        H[:, i] = (gi - g0) / h
    return 0.5 * (H + H.T)
