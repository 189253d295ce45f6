"""The scale a variance profile moves on, and its free parameters: correlations that stay PSD.

:class:`VarianceScale` maps (the sds and correlations of every term, sigma) to
theta and evaluates the ML deviance with sigma as a free parameter, with its
gradient by the chain rule; :class:`InnerParameters` says which of those the
profile of one parameter minimises over, and how.

Profiling one variance parameter ``s_i`` minimises the ML deviance over all the
others.  For a term of one or two columns the others live in a box (sds >= 0,
a correlation in [-1, 1]), but the correlations of a term of three or more
columns do not: the set of valid 3 x 3 correlation matrices is not the cube
[-1, 1]^3, so an optimizer moving correlations inside the cube leaves the
positive semi-definite set, meets an infinite deviance, and stops short of the
inner optimum (the profile is then too low and the interval too narrow).

For such a term the correlation matrix is written through its Cholesky rows::

    C = U U',  u_m = v_m / |v_m|,  v_m in R^(m+1),  u_0 = e_0,

which reaches every correlation matrix and no invalid one, with ``v_m``
unconstrained.  When the profiled parameter is the correlation ``rho_kl`` of
the term, the columns are first permuted so that ``k, l`` come first; then
``u_1 = (rho, sqrt(1 - rho^2))`` is fixed by the profiled value and the other
rows stay free.  The sds (>= 0) and sigma keep their box.  The chain rule
``dC_ab / dv_a = (u_b - C_ab u_a) / |v_a|`` gives the gradient in ``v`` from
the gradient in ``s``.
"""
from __future__ import annotations

import numpy as np

from ...core.blocks import Workspace
from ...core.factor import LOG_2PI
from ...core.gradient import deviance_pieces
from ...core.relcovar import T_to_theta, lower_index
from ...core.standardize import cholesky_psd
from ...spec.parameters import sd_cor_from_cov, sd_cor_matrices


class _TermRows:
    """One term of three or more columns: its correlations from free Cholesky rows."""

    def __init__(self, p: int, offset: int, fixed: tuple[int, int] | None):
        self.p, self.offset, self.fixed = p, offset, fixed
        rows, cols = lower_index(p)
        self.sd_at = {i: offset + k for k, (i, j) in enumerate(zip(rows, cols)) if i == j}
        self.cor_at = {(i, j): offset + k for k, (i, j) in enumerate(zip(rows, cols)) if i != j}
        # order: the profiled pair first (if any), then the other columns in their order
        first = list(fixed) if fixed is not None else []
        self.order = first + [c for c in range(p) if c not in first]
        self.first_free = 2 if fixed is not None else 1  # rows 0 (and 1) are set, not free
        self.sizes = [m + 1 for m in range(self.first_free, p)]

    @property
    def n_free(self) -> int:
        return sum(self.sizes)

    def rows_from(self, phi: np.ndarray, rho: float | None) -> tuple[np.ndarray, np.ndarray]:
        """Unit rows ``U`` (p x p, permuted order) and the norms of the free ``v_m``."""
        U = np.zeros((self.p, self.p))
        U[0, 0] = 1.0
        if rho is not None:
            U[1, :2] = rho, np.sqrt(max(1.0 - rho * rho, 0.0))
        norms, pos = np.ones(self.p), 0
        for m, size in zip(range(self.first_free, self.p), self.sizes):
            v = phi[pos : pos + size]
            norms[m] = np.sqrt(v @ v)
            U[m, :size] = v / norms[m]
            pos += size
        return U, norms

    def start(self, s: np.ndarray) -> np.ndarray:
        """Free rows that reproduce the correlations held in ``s`` (rows below the fixed ones)."""
        C = np.eye(self.p)
        for (i, j), at in self.cor_at.items():
            C[i, j] = C[j, i] = 0.0 if np.isnan(s[at]) else s[at]
        C = C[np.ix_(self.order, self.order)]
        L = cholesky_psd(C + 1e-10 * np.eye(self.p))  # a singular C would leave a zero row
        return np.concatenate([L[m, : m + 1] for m in range(self.first_free, self.p)])

    def write(self, s: np.ndarray, phi: np.ndarray, rho: float | None) -> None:
        """Put the correlations of ``U U'`` into ``s`` (original column order)."""
        U, _ = self.rows_from(phi, rho)
        C = U @ U.T
        back = np.argsort(self.order)
        C = C[np.ix_(back, back)]
        for (i, j), at in self.cor_at.items():
            s[at] = C[i, j]

    def chain(self, grad_s: np.ndarray, phi: np.ndarray, rho: float | None) -> np.ndarray:
        """Gradient in the free rows from the gradient in the correlations."""
        U, norms = self.rows_from(phi, rho)
        # gradient with respect to C_ab (a != b, permuted order), symmetric
        G = np.zeros((self.p, self.p))
        order = self.order
        for (i, j), at in self.cor_at.items():
            a, b = order.index(i), order.index(j)
            G[a, b] = G[b, a] = grad_s[at]
        out, pos = np.zeros(self.n_free), 0
        for m, size in zip(range(self.first_free, self.p), self.sizes):
            # s holds each correlation once, so d/du_m is sum_{b != m} G_mb u_b
            g_u = np.zeros(self.p)
            for b in range(self.p):
                if b != m:
                    g_u += G[m, b] * U[b]
            # project out the radial direction: d u / d v = (I - u u') / |v|
            g_v = (g_u - (g_u @ U[m]) * U[m]) / norms[m]
            out[pos : pos + size] = g_v[:size]
            pos += size
        return out


class InnerParameters:
    """Map the free parameters of one profile (all but ``s_i``) to the full vector ``s``.

    ``s`` holds every term's sds and correlations (theta order) and sigma last
    (``blocks``: the unstructured terms' sizes ``p``; ``(k,)`` for other entries, in a box).
    Entries of terms with one or two columns, every sd and sigma are free as
    they are (with their box); the correlations of each term of three or more
    columns come from free Cholesky rows (module docstring).
    """

    def __init__(self, blocks: list, i: int, lo: np.ndarray, hi: np.ndarray):
        self.i = i
        # blocks: p for an unstructured term (p(p+1)/2 entries), (k,) for k entries in a box
        counts = [b[0] if isinstance(b, tuple) else b * (b + 1) // 2 for b in blocks]
        self.size = int(sum(counts)) + 1
        self.terms, offset = [], 0
        in_rows = np.zeros(self.size, bool)
        for b, k in zip(blocks, counts):
            p = 0 if isinstance(b, tuple) else b
            if p >= 3:
                rows, cols = lower_index(p)
                fixed = next(((r, c) for kk, (r, c) in enumerate(zip(rows, cols)) if offset + kk == i and r != c),
                             None)
                term = _TermRows(p, offset, fixed)
                self.terms.append(term)
                in_rows[list(term.cor_at.values())] = True
            offset += k
        self.direct = np.flatnonzero(~in_rows & (np.arange(self.size) != i))
        self.profiles_a_correlation = bool(in_rows[i])
        self.bounds = [(lo[j], None if np.isinf(hi[j]) else hi[j]) for j in self.direct]
        self.bounds += [(None, None)] * sum(t.n_free for t in self.terms)

    @staticmethod
    def _rho(term, x):
        return x if term.fixed is not None else None

    def start(self, s: np.ndarray) -> np.ndarray:
        """Free parameters that reproduce ``s`` (except where the profiled value fixes a row)."""
        return np.concatenate([s[self.direct]] + [t.start(s) for t in self.terms])

    def full(self, phi: np.ndarray, x: float, template: np.ndarray) -> np.ndarray:
        """``s`` with ``s_i = x`` and every other entry from ``phi``."""
        s = template.copy()
        s[self.i] = x
        s[self.direct] = phi[: self.direct.size]
        pos = self.direct.size
        for t in self.terms:
            t.write(s, phi[pos : pos + t.n_free], self._rho(t, x))
            pos += t.n_free
        return s

    def gradient(self, grad_s: np.ndarray, phi: np.ndarray, x: float) -> np.ndarray:
        """Gradient in ``phi`` from the gradient in ``s``."""
        parts, pos = [grad_s[self.direct]], self.direct.size
        for t in self.terms:
            parts.append(t.chain(grad_s, phi[pos : pos + t.n_free], self._rho(t, x)))
            pos += t.n_free
        return np.concatenate(parts)


class VarianceScale:
    """Map (sd/cor of every term, sigma) <-> theta, and the unprofiled-in-sigma ML deviance."""

    def __init__(self, fit_ml):
        self.fit = fit_ml
        self.cp = fit_ml.cp
        self.workspace = Workspace(self.cp.m)
        self.sizes = [t.p for t in fit_ml.spec.terms]
        self.blocks = list(self.sizes)                        # the layout of s (InnerParameters)
        self.labels = fit_ml.spec.parameters.variance_labels  # s's entries, sigma last

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
        value = f.logdet_theta + f.r2 / s2 + self.cp.n * (LOG_2PI + np.log(s2)) - self.cp.log_weights
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
