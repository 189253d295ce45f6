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
import warnings

import numpy as np
import pandas as pd
import scipy.optimize
import scipy.stats

from ...arguments import check_level, shown
from ...errors import ArgumentError
from ...spec.parameters import sd_cor_from_cov, sd_cor_matrices
from ...core.factor import LOG_2PI
from ...core.blocks import Workspace
from ...core.gradient import deviance_pieces
from ...core.relcovar import lower_index, T_to_theta
from ..fit import make_devfun, optimize_lmer
from .profile_inner import InnerParameters
from .profile_result import Profile, trace_crossing


class _VarianceScale:
    """Map (sd/cor of every term, sigma) <-> theta, and the unprofiled-in-sigma ML deviance."""

    def __init__(self, fit_ml):
        self.fit = fit_ml
        self.cp = fit_ml.cp
        self.workspace = Workspace(self.cp.m)
        self.sizes = [t.p for t in fit_ml.spec.terms]

    def to_theta(self, s):
        sigma = s[-1]
        if all(p <= 2 for p in self.sizes):
            return self._to_theta_small(s, sigma)
        Ts, pos = [], 0
        for p in self.sizes:
            k = p * (p + 1) // 2
            sd, cor = sd_cor_matrices(s[pos : pos + k], p)
            cov = np.outer(sd, sd) * cor / sigma**2
            if p == 1:
                Ts.append(np.array([[sd[0] / sigma]]))
            else:
                w = np.linalg.eigvalsh(cor)
                if w.min() < -1e-12:
                    return None
                Ts.append(_cholesky_psd(cov))
            pos += k
        return T_to_theta(Ts)

    def _to_theta_small(self, s, sigma):
        """Closed form for terms of one or two columns: T = [[s1, 0], [rho s2, s2 sqrt(1 - rho^2)]] / sigma."""
        out, pos = [], 0
        for p in self.sizes:
            if p == 1:
                out.append(s[pos] / sigma)
                pos += 1
            else:
                s1, rho, s2 = s[pos : pos + 3]
                if abs(rho) > 1:
                    return None
                out += [s1 / sigma, rho * s2 / sigma, s2 * np.sqrt(1.0 - rho * rho) / sigma]
                pos += 3
        return np.array(out)

    def from_fit(self):
        out = []
        for cov in self.fit.term_covariances():
            out.extend(sd_cor_from_cov(cov))
        return np.array(out + [self.fit.sigma])

    def deviance(self, s):
        return self.deviance_and_gradient(s)[0]

    def deviance_and_gradient(self, s):
        """``dd(s)`` and its gradient in s (chain rule through theta(s) and sigma)."""
        s = np.asarray(s, dtype=float)
        bad = np.inf, np.zeros_like(s)
        if s[-1] <= 0:
            return bad
        theta = self.to_theta(s)
        if theta is None:
            return bad
        try:
            f, dlogdet, dr2 = deviance_pieces(self.cp, theta, include_X=False, workspace=self.workspace)
        except np.linalg.LinAlgError:
            return bad
        sigma = s[-1]
        s2 = sigma * sigma
        value = f.logdet_theta + f.r2 / s2 + self.cp.n * (LOG_2PI + np.log(s2))
        dtheta = dlogdet + dr2 / s2
        J = self._theta_jacobian(s, theta)
        grad = dtheta @ J
        grad[-1] += -2 * f.r2 / (s2 * sigma) + 2 * self.cp.n / sigma
        return value, grad

    def _theta_jacobian(self, s, theta, h=1e-7):
        """d theta / d s: closed form for terms of one or two columns, differences otherwise."""
        J = np.zeros((theta.size, s.size))
        sigma = s[-1]
        J[:, -1] = -theta / sigma  # theta = chol(cov) / sigma
        pos = 0
        for p in self.sizes:
            k = p * (p + 1) // 2
            if p == 1:
                J[pos, pos] = 1.0 / sigma
            elif p == 2:
                _, rho, s2 = s[pos : pos + 3]
                root = np.sqrt(max(1.0 - rho * rho, 1e-12))  # finite slope at |rho| = 1 (a singular fit)
                J[pos, pos] = 1.0 / sigma
                J[pos + 1, pos + 1], J[pos + 1, pos + 2] = s2 / sigma, rho / sigma
                J[pos + 2, pos + 1], J[pos + 2, pos + 2] = -s2 * rho / (sigma * root), root / sigma
            elif (exact := _cholesky_jacobian(s[pos : pos + k], p, sigma)) is not None:
                J[pos : pos + k, pos : pos + k] = exact
            else:
                for j in range(pos, pos + k):
                    up = s.copy()
                    up[j] += h
                    th_up = self.to_theta(up)
                    down = s.copy()
                    down[j] -= h
                    th_down = self.to_theta(down)
                    if th_up is not None and th_down is not None:
                        J[pos : pos + k, j] = (th_up - th_down)[pos : pos + k] / (2 * h)
                    elif th_up is not None:
                        J[pos : pos + k, j] = (th_up - theta)[pos : pos + k] / h
                    elif th_down is not None:
                        J[pos : pos + k, j] = (theta - th_down)[pos : pos + k] / h
            pos += k
        return J

    def bounds(self):
        lo, hi = [], []
        for p in self.sizes:
            rows, cols = lower_index(p)
            for i, j in zip(rows, cols):
                lo.append(0.0 if i == j else -1.0)
                hi.append(np.inf if i == j else 1.0)
        return np.array(lo + [0.0]), np.array(hi + [np.inf])


def _cholesky_jacobian(values, p, sigma):
    """d theta / d (sds, correlations) of one term by the derivative of the Cholesky factor.

    With ``Sigma = D C D / sigma^2 = T T'``, a change ``dSigma`` moves ``T`` by
    ``dT = T Phi(T^-1 dSigma T^-T)``, ``Phi`` the lower triangle with half the
    diagonal (Murray 2016, eq. 11).  None when T is (nearly) singular, where the
    caller falls back to differences.
    """
    rows, cols = lower_index(p)
    sd, cor = sd_cor_matrices(values, p)
    try:
        T = np.linalg.cholesky(np.outer(sd, sd) * cor / sigma**2)
    except np.linalg.LinAlgError:
        return None
    d = np.diag(T)
    if d.min() <= 1e-8 * d.max():
        return None
    T_inv = np.linalg.inv(T)
    out = np.empty((rows.size, rows.size))
    for k, (i, j) in enumerate(zip(rows, cols)):
        dS = np.zeros((p, p))
        if i == j:  # d/d sd_i of sd_i sd_m cor_im, row and column i
            dS[i, :] = sd * cor[i, :]
            dS[:, i] += sd * cor[:, i]
        else:
            dS[i, j] = dS[j, i] = sd[i] * sd[j]
        M = T_inv @ (dS / sigma**2) @ T_inv.T
        Phi = np.tril(M) - 0.5 * np.diag(np.diag(M))
        out[:, k] = (T @ Phi)[rows, cols]
    return out


def _cholesky_psd(cov):
    """Lower Cholesky factor allowing a singular (boundary) covariance."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        w, U = np.linalg.eigh(cov)
        B = U * np.sqrt(np.clip(w, 0, None))
        _, R = np.linalg.qr(B.T)
        L = R.T
        return L * np.where(np.diag(L) < 0, -1.0, 1.0)


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
    scale = _VarianceScale(fit_ml)
    s_hat = scale.from_fit()
    base = scale.deviance(s_hat)
    vnames = fit_ml.spec.parameters.variance_labels
    fnames = fit_ml.spec.fixed_names
    names = vnames + fnames
    which = names if which is None else list(which)
    lo, hi = scale.bounds()
    lower = pd.Series(np.r_[lo, np.full(len(fnames), -np.inf)], index=names)
    upper = pd.Series(np.r_[hi, np.full(len(fnames), np.inf)], index=names)
    estimates = pd.Series(np.r_[s_hat, fit_ml.beta], index=names)
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

    The profile is nearly linear near its ends, so a secant step from the two
    bracketing trace points usually lands within 1e-7; Brent's method on the
    narrowed bracket is the safeguard.
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
        x = a - za * (b - a) / (zb - za)
        zx = zeta(x) - target
        if abs(zx) < 1e-7:
            out.append(x)
            continue
        if np.sign(zx) == np.sign(za):
            a = x
        else:
            b = x
        try:
            out.append(scipy.optimize.brentq(lambda t: zeta(t) - target, a, b, xtol=1e-12, rtol=1e-6))
        except ValueError:
            out.append(trace_crossing(trace, target, bound))
    return out


def _variance_zeta(scale, s_hat, i, base, lo, hi):
    """zeta for the variance parameter ``s_i``; the others are minimised over :class:`InnerParameters`."""
    lo = lo.copy()
    lo[-1] = s_hat[-1] * 1e-2  # sigma > 0: a finite floor keeps the line search away from sigma = 0
    inner = InnerParameters(scale.sizes, i, lo, hi)
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
    """zeta for beta_j: move X_j beta_j into the response, drop column j, refit by ML."""
    spec = fit_ml.spec
    keep = tuple(c for k, c in enumerate(spec.keep_fixed) if k != j)
    Xj = spec.X[:, j]
    state = {"theta": fit_ml.theta}

    def zeta(x):
        sub = dataclasses.replace(spec, y=spec.y - Xj * x, keep_fixed=keep)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = optimize_lmer(make_devfun(sub, reml=False), start=state["theta"])
        state["theta"] = opt.theta
        dev = max(opt.objective - base, 0.0)
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
