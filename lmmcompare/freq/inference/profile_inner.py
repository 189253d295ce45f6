"""The free parameters of a variance profile: correlations that stay positive semi-definite.

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

from ...core.relcovar import lower_index
from ...core.standardize import cholesky_psd


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

    ``s`` holds every term's sds and correlations (theta order) and sigma last.
    Entries of terms with one or two columns, every sd and sigma are free as
    they are (with their box); the correlations of each term of three or more
    columns come from free Cholesky rows (module docstring).
    """

    def __init__(self, sizes: list[int], i: int, lo: np.ndarray, hi: np.ndarray):
        self.i = i
        self.size = int(sum(p * (p + 1) // 2 for p in sizes)) + 1
        self.terms, offset = [], 0
        in_rows = np.zeros(self.size, bool)
        for p in sizes:
            k = p * (p + 1) // 2
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
