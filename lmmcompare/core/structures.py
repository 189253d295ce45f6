"""From a structured term's few parameters phi to its relative factor T, with derivatives.

The blocked factor needs each term's lower-triangular ``T`` only (theta, lme4's
order, :mod:`.relcovar`); a structure (:mod:`lmmcompare.spec.structures`) is a
map ``phi -> T``, so the objective is ``f(theta(phi))`` and its gradient
``J' d f / d theta`` with ``J = d theta / d phi`` (chain rule).

Closed-form Cholesky factors, valid on the closed range of the correlation
(where ``R`` is singular as well):

* compound symmetry, ``R = (1 - rho) I + rho 11'``: column ``j`` of ``chol(R)`` has
  ``d_j = sqrt((1 - rho)(1 + j rho) / (1 + (j-1) rho))`` on the diagonal and
  ``c_j = rho sqrt(1 - rho) / sqrt((1 + (j-1) rho)(1 + j rho))`` below it
  (``d_0 = 1``, ``c_0 = rho``), from ``sum_{k<j} c_k^2 = j rho^2 / (1 + (j-1) rho)``;
* AR(1), ``R_ij = rho^|i-j|``: ``chol(R)_i0 = rho^i`` and
  ``chol(R)_ij = rho^(i-j) sqrt(1 - rho^2)`` for ``1 <= j <= i``.

``T = S chol(R)`` with ``S = diag(s)`` (cs, diag) or ``s I`` (ar1, hom).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..spec.parameters import lower_index
from ..spec.structures import Structure


def _cs_cholesky(rho: float, p: int) -> tuple[np.ndarray, np.ndarray]:
    """``(L, dL/drho)`` of the compound-symmetry correlation matrix (module docstring)."""
    L, dL = np.zeros((p, p)), np.zeros((p, p))
    for j in range(p):
        a, b = 1.0 + (j - 1) * rho, 1.0 + j * rho       # 1 + (j-1) rho, 1 + j rho
        da, db = j - 1.0, float(j)
        if j == 0:
            d, dd = 1.0, 0.0
            c, dc = rho, 1.0
        elif j == p - 1:     # no entries below the last diagonal (and a b = 0 at rho = -1/(p-1))
            d2 = max((1.0 - rho) * b / a, 0.0)
            d = np.sqrt(d2)
            dd2 = ((-b + (1.0 - rho) * db) * a - (1.0 - rho) * b * da) / (a * a)
            dd, c, dc = (dd2 / (2.0 * d) if d > 0 else -np.inf), 0.0, 0.0
        else:
            d2 = max((1.0 - rho) * b / a, 0.0)
            d = np.sqrt(d2)
            # d(d^2)/drho = [(-b + (1 - rho) db) a - (1 - rho) b da] / a^2
            dd2 = ((-b + (1.0 - rho) * db) * a - (1.0 - rho) * b * da) / (a * a)
            dd = dd2 / (2.0 * d) if d > 0 else -np.inf
            g = max(a * b, 0.0)
            h = np.sqrt(max(1.0 - rho, 0.0) / g)            # sqrt(1 - rho) / sqrt(a b)
            c = rho * h
            # h' = h (-1 / (2 (1 - rho)) - (da b + a db) / (2 a b))
            dh = h * (-0.5 / (1.0 - rho) - 0.5 * (da * b + a * db) / g) if rho < 1.0 else -np.inf
            dc = h + rho * dh
        L[j, j], dL[j, j] = d, dd
        L[j + 1 :, j], dL[j + 1 :, j] = c, dc
    return L, dL


def _ar1_cholesky(rho: float, p: int) -> tuple[np.ndarray, np.ndarray]:
    """``(L, dL/drho)`` of the AR(1) correlation matrix ``rho^|i-j|`` (module docstring)."""
    i, j = np.tril_indices(p)
    lag = (i - j).astype(float)
    root = np.sqrt(max(1.0 - rho * rho, 0.0))
    droot = -rho / root if root > 0 else -np.sign(rho) * np.inf
    power = rho ** lag
    dpower = np.where(lag > 0, lag * rho ** np.maximum(lag - 1, 0), 0.0)
    scale = np.where(j == 0, 1.0, root)
    dscale = np.where(j == 0, 0.0, droot)
    L, dL = np.zeros((p, p)), np.zeros((p, p))
    L[i, j] = power * scale
    dL[i, j] = dpower * scale + power * dscale
    return L, dL


def relative_factor(structure: Structure, phi, p: int, derivatives: bool = False):
    """``T`` of one term from its phi, and with ``derivatives`` also ``dT/dphi`` (k, p, p).

    ``us``: phi is theta (the lower triangle of T, column-major).
    """
    phi = np.asarray(phi, dtype=float)
    k = phi.size
    if structure.unstructured:
        T = np.zeros((p, p))
        rows, cols = lower_index(p)
        T[rows, cols] = phi
        if not derivatives:
            return T
        dT = np.zeros((k, p, p))
        dT[np.arange(k), rows, cols] = 1.0
        return T, dT
    n_sd = structure.n_sds(p)
    s = np.full(p, phi[0]) if n_sd == 1 else phi[:n_sd]
    if structure.has_correlation(p):
        rho = float(phi[n_sd])
        R, dR = (_cs_cholesky if structure.kind == "cs" else _ar1_cholesky)(rho, p)
    else:
        R, dR = np.eye(p), np.zeros((p, p))
    T = s[:, None] * R
    if not derivatives:
        return T
    dT = np.zeros((k, p, p))
    if n_sd == 1:
        dT[0] = R
    else:
        dT[np.arange(p), np.arange(p)] = R          # d T / d s_i: row i of R
    if structure.has_correlation(p):
        dT[n_sd] = s[:, None] * dR
    return T, dT


@dataclass(frozen=True)
class CovarianceMap:
    """phi -> theta for all terms of a spec: ``theta = (lower(T_1), ..., lower(T_k))``.

    Attributes
    ----------
    structures : tuple of Structure
    sizes : tuple of int
        ``p_i`` of each term.
    """

    structures: tuple
    sizes: tuple

    @classmethod
    def from_spec(cls, spec) -> "CovarianceMap":
        return cls(tuple(t.structure for t in spec.terms), tuple(t.p for t in spec.terms))

    @property
    def identity(self) -> bool:
        """Whether phi is theta (every term unstructured)."""
        return all(s.unstructured for s in self.structures)

    @property
    def n_phi(self) -> int:
        return sum(s.n_params(p) for s, p in zip(self.structures, self.sizes))

    @property
    def n_theta(self) -> int:
        return sum(p * (p + 1) // 2 for p in self.sizes)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        parts = [s.bounds(p) for s, p in zip(self.structures, self.sizes)]
        return np.concatenate([lo for lo, _ in parts]), np.concatenate([hi for _, hi in parts])

    def start(self) -> np.ndarray:
        return np.concatenate([s.start(p) for s, p in zip(self.structures, self.sizes)])

    def slices(self) -> list[tuple[slice, slice]]:
        """``(phi slice, theta slice)`` of each term."""
        out, a, b = [], 0, 0
        for s, p in zip(self.structures, self.sizes):
            k, m = s.n_params(p), p * (p + 1) // 2
            out.append((slice(a, a + k), slice(b, b + m)))
            a, b = a + k, b + m
        return out

    def factors(self, phi) -> list[np.ndarray]:
        """The ``T_i`` at ``phi``."""
        return [relative_factor(s, phi[sl], p) for s, p, (sl, _) in zip(self.structures, self.sizes, self.slices())]

    def theta(self, phi) -> np.ndarray:
        """lme4's theta (lower triangles of the ``T_i``) at ``phi``."""
        phi = np.asarray(phi, dtype=float)
        if self.identity:
            return phi
        return np.concatenate([T[lower_index(T.shape[0])] for T in self.factors(phi)])

    def jacobian(self, phi) -> np.ndarray:
        """``d theta / d phi`` (n_theta x n_phi), block-diagonal over the terms."""
        phi = np.asarray(phi, dtype=float)
        J = np.zeros((self.n_theta, self.n_phi))
        for s, p, (a, b) in zip(self.structures, self.sizes, self.slices()):
            _, dT = relative_factor(s, phi[a], p, derivatives=True)
            J[b, a] = dT[(slice(None), *lower_index(p))].T
        return J
