"""Likelihood profiles and profile confidence intervals, as lme4's ``profile`` / ``confint``.

Like lme4 (``devfun2`` refits REML fits by ML first), profiles use the ML
deviance.  Variance parameters are profiled on the standard-deviation /
correlation scale with sigma as a free parameter::

    dd(s) = log|L_theta|^2 + r^2(theta) / sigma^2 + n log(2 pi sigma^2)

where ``theta`` is the relative Cholesky factor of the covariances given by
``s``; fixed effect ``beta_j`` is profiled by moving ``X_j beta_j`` into the
response and refitting.  ``zeta(x) = sign(x - x_hat) sqrt(dd_min(x) - dd_hat)``,
and the interval ends are the roots of ``zeta(x) = +-z`` (found by bracketing
and Brent's method on the profile itself, not on an interpolating spline).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import scipy.optimize
import scipy.stats

from ...arguments import check_level, shown
from ...errors import ArgumentError
from ..fit import blas_threads_for
from ..refit import ResponseRefit
from .structured_scale import profile_scale
from .variance_scale import InnerParameters
from .profile_result import Profile, trace_crossing


def profile(fit, which=None, level: float = 0.95, progress=None) -> Profile:
    """Profile the ML deviance for each parameter until ``|zeta|`` passes the ``level`` cutoff,
    and find the interval ends at ``level`` as roots of ``zeta(x) = +-z``.

    Parameters
    ----------
    which : list of str, optional
        Parameter names (``sd_(Intercept)|Subject``, ``sigma``, ``Days`` ...); all by default.
    level : float
        Profiles extend to ``|zeta| = qnorm((1 + level) / 2)`` on each side.
    progress : callable, optional
        Called with (done, total) after each parameter.

    The profile of every parameter is computed once per fit and level (kept in
    ``fit.derived``, so a report's intervals and plots share it); each call
    returns its own copy.
    """
    check_level("level", level)
    if isinstance(which, str):
        which = [which]
    elif which is not None and (not hasattr(which, "__iter__") or not all(isinstance(w, str) for w in which)):
        raise ArgumentError(f"which must be None, a parameter name or a list of parameter names, got {shown(which)}")
    if which is not None:
        return _profile(fit, which, level, progress)
    key = f"profile at level {float(level)!r}"
    if key in fit.derived and progress is not None:
        names = list(fit.derived.get(key, None).traces)
        for k in range(len(names)):
            progress(k + 1, len(names))
    kept = fit.derived.get(key, lambda: _profile(fit, None, level, progress))
    return Profile(traces={k: v.copy() for k, v in kept.traces.items()}, estimates=kept.estimates.copy(),
                   lower=kept.lower.copy(), upper=kept.upper.copy(), level=kept.level,
                   intervals=kept.intervals.copy())


def _profile(fit, which, level, progress) -> Profile:
    fit_ml = fit.by_criterion(reml=False)
    with blas_threads_for(fit_ml.cp):   # one limit for all the refits (each would set and restore it)
        return _profile_ml(fit_ml, which, level, progress)


def _profile_ml(fit_ml, which, level, progress) -> Profile:
    scale = profile_scale(fit_ml)
    s_hat = scale.from_fit()
    vnames = scale.labels      # the scale's order (sigma last); results in the parameter table's
    fnames = fit_ml.spec.fixed_names
    names = fit_ml.spec.parameters.variance_labels + fnames
    which = names if which is None else list(which)
    lo, hi = scale.bounds()
    order = [(vnames + fnames).index(name) for name in names]
    lower = pd.Series(np.r_[lo, np.full(len(fnames), -np.inf)][order], index=names)
    upper = pd.Series(np.r_[hi, np.full(len(fnames), np.inf)][order], index=names)
    estimates = pd.Series(np.r_[s_hat, fit_ml.beta][order], index=names)
    # the ML deviance at the estimate; each fixed effect's refits reach it at beta_hat (fit_ml's own optimum)
    base = scale.deviance(s_hat) if any(name in vnames for name in which) else fit_ml.objective
    z = scipy.stats.norm.ppf(0.5 + level / 2)
    cutoff = z
    traces, ends = {}, {}
    for k, name in enumerate(which):
        if name in vnames:
            i = vnames.index(name)
            zeta = _variance_zeta(scale, s_hat, i, base, lo, hi)
            scale_guess = max(abs(s_hat[i]) * 0.1, 1e-3)
            traces[name] = _trace(zeta, s_hat[i], lo[i], hi[i], cutoff, scale_guess)
            ends[name] = _roots(zeta, traces[name], z, lo[i], hi[i])
        elif name in fnames:
            j = fnames.index(name)
            zeta = _fixed_zeta(fit_ml, j, base)
            se = float(np.sqrt(fit_ml.vcov_beta[j, j]))
            traces[name] = _trace(zeta, fit_ml.beta[j], -np.inf, np.inf, cutoff, se)
            ends[name] = _roots(zeta, traces[name], z, -np.inf, np.inf)
        else:
            raise ArgumentError(f"unknown parameter {name!r}; parameters are {', '.join(names)}")
        if progress is not None:
            progress(k + 1, len(which))
    intervals = pd.DataFrame(ends, index=["lower", "upper"]).T
    return Profile(traces=traces, estimates=estimates[which], lower=lower, upper=upper, level=level,
                   intervals=intervals)


def _roots(zeta, trace, z, lo, hi):
    """Interval ends: roots of zeta(x) = -z and +z inside the trace's brackets.

    The profile is nearly linear near its ends, so secant steps from the two
    bracketing trace points, the bracket narrowed at each, reach
    ``|zeta - target| < 1e-6`` (an end within ``1e-6 se``) in one to three evaluations; Brent's method on
    the narrowed bracket is the safeguard.
    """
    out = []
    for target, bound in ((-z, lo), (z, hi)):
        v, zt = trace["value"].to_numpy(), trace["zeta"].to_numpy()
        idx = np.flatnonzero(zt <= target) if target < 0 else np.flatnonzero(zt >= target)
        if idx.size == 0:
            out.append(bound)
            continue
        i = idx[-1] if target < 0 else idx[0] - 1
        a, b, za, zb = v[i], v[i + 1], zt[i] - target, zt[i + 1] - target
        root = _secant_in_bracket(lambda t: zeta(t) - target, a, b, za, zb)
        if root is None:
            try:
                root = scipy.optimize.brentq(lambda t: zeta(t) - target, a, b, xtol=1e-12, rtol=1e-6)
            except ValueError:
                root = trace_crossing(trace, target, bound)
        out.append(root)
    return out


def _secant_in_bracket(f, a, b, fa, fb, tol=1e-6, steps=4):
    """A root of ``f`` in ``[a, b]`` (``fa``, ``fb`` of opposite signs), or None if ``|f| < tol`` is not reached
    in ``steps`` evaluations.

    Secant steps through the two latest points (the first through the bracket's ends, the next from the end
    nearer the root), each kept inside the bracket, which narrows at every evaluation; a step that would
    leave it is a regula-falsi step on the bracket instead.
    """
    last = (a, fa) if abs(fa) < abs(fb) else (b, fb)
    x = a - fa * (b - a) / (fb - fa)
    for _ in range(steps):
        fx = f(x)
        if abs(fx) < tol:
            return x
        if np.sign(fx) == np.sign(fa):
            a, fa = x, fx
        else:
            b, fb = x, fx
        (x0, f0), last = last, (x, fx)
        step = x - fx * (x - x0) / (fx - f0) if fx != f0 else np.nan
        x = step if min(a, b) < step < max(a, b) else a - fa * (b - a) / (fb - fa)
    return None


def _variance_zeta(scale, s_hat, i, base, lo, hi):
    """zeta for the variance parameter ``s_i``; the others are minimised over :class:`InnerParameters`."""
    lo = lo.copy()
    lo[-1] = s_hat[-1] * 1e-2  # sigma > 0: a finite floor keeps the line search away from sigma = 0
    inner = InnerParameters(scale.blocks, i, lo, hi)
    phi_hat = inner.start(s_hat)
    state = {"points": [(s_hat[i], phi_hat)]}

    def warm_start(x):
        """Linear extrapolation of the inner solution from the two nearest profiled points."""
        pts = sorted(state["points"], key=lambda pt: abs(pt[0] - x))[:2]
        if len(pts) < 2 or pts[0][0] == pts[1][0]:
            return pts[0][1]
        (x0, z0), (x1, z1) = pts
        guess = z0 + (x - x0) * (z1 - z0) / (x1 - x0)
        low = np.array([-np.inf if b[0] is None else b[0] for b in inner.bounds])
        high = np.array([np.inf if b[1] is None else b[1] for b in inner.bounds])
        return np.clip(guess, low, high)

    def zeta(x):
        def f(phi):
            value, grad = scale.deviance_and_gradient(inner.full(phi, x, s_hat))
            return value, inner.gradient(grad, phi, x)

        def solve(start):
            return scipy.optimize.minimize(f, start, jac=True, method="L-BFGS-B", bounds=inner.bounds,
                                           options=dict(ftol=1e-12, gtol=1e-7, maxcor=20))

        best = solve(warm_start(x))
        # a warm start stuck on a bound must not make the profile too steep: retry
        # from the estimate whenever the solution touches a bound
        n_box = inner.direct.size
        box_lo, box_hi = lo[inner.direct], hi[inner.direct]
        on_bound = np.any(np.isclose(best.x[:n_box], box_lo) | np.isclose(best.x[:n_box], box_hi))
        if on_bound or not np.isfinite(best.fun):
            other = solve(inner.start(s_hat))
            if other.fun < best.fun:
                best = other
        state["points"].append((x, best.x))
        dev = max(best.fun - base, 0.0)
        return np.sign(x - s_hat[i]) * np.sqrt(dev)

    return zeta


def _fixed_zeta(fit_ml, j, base):
    """zeta for beta_j: move X_j beta_j into the response, drop column j, refit by ML.

    The design without column j is the same at every point, only the response
    ``y - X_j x`` changes: one :class:`~lmmcompare.freq.refit.ResponseRefit`
    serves them all, each refit started at the fitted phi.
    """
    spec = fit_ml.spec
    keep = tuple(c for k, c in enumerate(spec.keep_fixed) if k != j)
    Xj = spec.X[:, j]
    refit = ResponseRefit(dataclasses.replace(spec, y=spec.y - Xj * fit_ml.beta[j], keep_fixed=keep), reml=False)

    def zeta(x):
        _, value = refit.optimum(spec.y - Xj * x, fit_ml.phi)
        dev = max(value - base, 0.0)
        return np.sign(x - fit_ml.beta[j]) * np.sqrt(dev)

    return zeta


def _trace(zeta, x_hat, lo, hi, cutoff, step0, max_points=40):
    """Walk out from the estimate on both sides until ``|zeta| > cutoff`` or a bound.

    Each step is a secant step aimed 10% beyond the cutoff, so a nearly linear
    profile is bracketed in two or three evaluations per side.
    """
    points = [(x_hat, 0.0)]
    for direction in (-1.0, 1.0):
        bound = lo if direction < 0 else hi
        x_prev, z_prev = x_hat, 0.0
        x = x_hat + direction * step0
        for _ in range(max_points):
            at_bound = False
            if np.isfinite(bound) and direction * (x - bound) >= 0:
                x = bound - direction * 1e-10 * max(1.0, abs(bound))
                at_bound = True
            z = zeta(x)
            points.append((x, z))
            if abs(z) >= cutoff or at_bound:
                break
            slope = abs(z - z_prev) / abs(x - x_prev)
            step = abs(x - x_prev)
            new_step = (1.1 * cutoff - abs(z)) / slope if slope > 0 else 4 * step
            x_prev, z_prev = x, z
            x = x + direction * min(max(new_step, 0.1 * step), 10 * step)
    trace = pd.DataFrame(points, columns=["value", "zeta"]).drop_duplicates("value").sort_values("value")
    return trace.reset_index(drop=True)
