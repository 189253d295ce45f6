"""A box-constrained BFGS for the few covariance parameters of a small model.

scipy's L-BFGS-B costs about 75 microseconds of Python per evaluation (its
``ScalarFunction`` wrappers, the Fortran driver's reverse communication), as
much as one evaluation of a small model's criterion (sleepstudy: 76 us), and
0.25 ms to set up per call.  With ``k <= SMALL_K`` parameters a dense inverse
Hessian costs nothing, so this is plain BFGS on the free variables:

* direction ``d = -H_FF g_F`` on the free set ``F`` (a variable is held when it
  sits on a bound and the gradient pushes outwards); a unit step of steepest
  descent ``-g / |g|`` on the first iteration and whenever ``d'g >= 0`` (L-BFGS-B's first step);
* a backtracking line search on the projected path ``P(x + t d)`` (Armijo,
  ``f(x_t) <= f(x) + 1e-4 g'(x_t - x)``), steps from quadratic interpolation; where
  the unit step passes and the slope is still steep (Wolfe's curvature condition
  ``g_t'd >= 0.9 g'd`` fails), steps 4, 16, ... while they pass and lower f;
* the inverse update ``H <- (I - rho s y') H (I - rho y s') + rho s s'``,
  ``rho = 1 / y's``, skipped unless ``y's > 0``; the first ``H`` is
  ``(y's / y'y) I`` (Nocedal and Wright 2006, eq. 6.20; the update is their eq. 6.17);
* a given first inverse Hessian ``H0`` (a polish after an optimisation in other
  coordinates: the curvature learned there, mapped) replaces the first steepest-descent step;
* it stops as L-BFGS-B does: the projected gradient's largest entry at most
  ``gtol``, or the relative reduction of ``f`` at most ``ftol``, here only after
  a full (or longer) step (a step shortened by the line search says little about being
  done; on sleepstudy's flat REML criterion it stopped 1e-5 short in theta); status 1 when
  ``maxiter`` iterations are used, 2 when the line search fails (L-BFGS-B's
  ``ABNORMAL``).

The result has the fields scipy's ``minimize`` gives and
optimize.py reads: ``x``, ``fun``, ``jac``, ``status``, ``message``, ``nit``
and ``hess_inv`` (with ``todense()``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# parameters up to which optimize.py uses this BFGS instead of scipy's L-BFGS-B
SMALL_K = 8


@dataclass(frozen=True)
class InverseHessian:
    """The BFGS inverse Hessian, read as L-BFGS-B's ``hess_inv`` is (``todense()``)."""

    matrix: np.ndarray

    def todense(self) -> np.ndarray:
        return self.matrix


@dataclass(frozen=True)
class BoxResult:
    x: np.ndarray
    fun: float
    jac: np.ndarray
    status: int
    message: str
    nit: int
    hess_inv: InverseHessian


# With a few parameters an iteration's arithmetic is negligible and numpy's per-call overhead is what costs:
# ``a.dot(b)`` takes 0.35 us where ``float(a @ b)`` takes 0.85, a largest |entry| over a Python list 0.3 us
# where ``np.abs(a).max()`` takes 1.4 (sleepstudy, Penicillin: 26 -> 15 us an iteration).


def _held(x, g, lower, upper=None):
    """Variables on a bound with the gradient pushing outwards (``upper=None``: no finite upper bound)."""
    held = (x <= lower) & (g > 0)
    return held if upper is None else held | ((x >= upper) & (g < 0))


def _clip(x, lower, upper=None):
    """``np.clip`` by ufuncs (np.clip's Python wrapper costs 5 us, more than the rest of an iteration's
    array work for a few parameters)."""
    x = np.maximum(x, lower)
    return x if upper is None else np.minimum(x, upper)


def _max_abs(v) -> float:
    return max(map(abs, v.tolist()), default=0.0)


def _unit(v):
    return v / math.sqrt(v.dot(v))


def _extrapolate(fun_grad, x, f, g, d, slope, x_new, f_new, g_new, lower, upper, curvature=0.9, expansions=10):
    """Longer steps along ``d`` while a unit step leaves the slope steep (``g_t'd < 0.9 g'd``, the curvature
    condition of Wolfe's fails) and each longer step passes Armijo's test and lowers f: ``(x, f, g, t)`` of the
    last accepted step.  Without it a first inverse Hessian scaled by a stiff direction makes every step
    short, and the ``ftol`` test stops the run far from the minimum (a Rosenbrock valley beside a direction
    10^6 times stiffer stopped 0.29 above its minimum)."""
    t = 1.0
    for _ in range(expansions):
        if g_new.dot(d) >= curvature * slope:
            break
        t_try = 4.0 * t
        x_try = _clip(x + t_try * d, lower, upper)
        if x_try.tolist() == x_new.tolist():   # held by the bounds: no longer step exists
            break
        f_try, g_try = fun_grad(x_try)
        f_try = float(f_try)
        if not (f_try < f_new and f_try <= f + 1e-4 * g.dot(x_try - x)):
            break
        x_new, f_new, g_new, t = x_try, f_try, np.asarray(g_try, dtype=float), t_try
    return x_new, f_new, g_new, t


def box_bfgs(fun_grad, x0, lower, upper, ftol: float = 1e-10, gtol: float = 1e-5, maxiter: int = 2000,
             max_backtracks: int = 30, H0: np.ndarray | None = None) -> BoxResult:
    """Minimise ``fun_grad(x) -> (f, g)`` subject to ``lower <= x <= upper`` (module docstring);
    ``H0``: a first inverse Hessian (symmetric positive definite), else steepest descent first."""
    upper = upper if np.isfinite(upper).any() else None
    x = _clip(np.asarray(x0, dtype=float), lower, upper)
    f, g = fun_grad(x)
    f, g = float(f), np.asarray(g, dtype=float)
    k = x.size
    H = None if H0 is None else np.array(H0, dtype=float)
    status, message, it = 1, "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT", 0
    for it in range(1, maxiter + 1):
        held = _held(x, g, lower, upper)
        pg = g.copy()
        pg[held] = 0.0
        if not k or _max_abs(pg) <= gtol:
            status, message = 0, "CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL"
            break
        d = -_unit(pg) if H is None else -H.dot(pg)
        d[held] = 0.0
        slope = g.dot(d)
        if slope >= 0:   # not a descent direction: forget the curvature
            H = None
            d = -_unit(pg)
            slope = g.dot(d)
        t, accepted = 1.0, False
        for _ in range(max_backtracks):
            x_new = _clip(x + t * d, lower, upper)
            if x_new.tolist() == x.tolist():   # the step is below x's rounding: no lower point along d
                break
            f_new, g_new = fun_grad(x_new)
            f_new = float(f_new)
            if f_new <= f + 1e-4 * g.dot(x_new - x):
                accepted = True
                break
            # minimiser of the quadratic through f, the slope and f_new, kept in [0.1 t, 0.5 t]
            denominator = 2.0 * (f_new - f - slope * t)
            t_quad = -slope * t * t / denominator if denominator > 0 and math.isfinite(f_new) else 0.5 * t
            t = min(max(t_quad, 0.1 * t), 0.5 * t)
        if not accepted:
            status, message = 2, "ABNORMAL: the line search found no lower point"
            break
        g_new = np.asarray(g_new, dtype=float)
        if t == 1.0:
            x_new, f_new, g_new, t = _extrapolate(fun_grad, x, f, g, d, slope, x_new, f_new, g_new, lower, upper)
        s, y = x_new - x, g_new - g
        reduction = f - f_new
        x, f, g = x_new, f_new, g_new
        if reduction <= ftol * max(abs(f), abs(f + reduction), 1.0) and t >= 1.0:
            status, message = 0, "CONVERGENCE: REL_REDUCTION_OF_F <= FACTR*EPSMCH"
            break
        sy, yy = s.dot(y), y.dot(y)
        if sy > 1e-12 * math.sqrt(s.dot(s) * yy):
            if H is None:
                H = np.eye(k) * (sy / yy)
            rho = 1.0 / sy
            Hy = H.dot(y)
            # (I - rho s y') H (I - rho y s') + rho s s', expanded
            sHy = s[:, None] * Hy
            H = H - rho * (sHy + sHy.T) + (rho * rho * y.dot(Hy) + rho) * (s[:, None] * s)
    hess_inv = InverseHessian(np.eye(k) if H is None else H)
    return BoxResult(x=x, fun=f, jac=g, status=status, message=message, nit=it, hess_inv=hess_inv)
