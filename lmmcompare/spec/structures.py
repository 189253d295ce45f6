"""Covariance structures of random-effects terms: what each one estimates and how its parameters are named.

A term ``S(x | g)`` with ``p`` columns has covariance ``Sigma = sigma^2 T T'`` per
level, ``T`` lower triangular (lme4's relative factor).  The structure ``S``
fixes how few parameters ``phi`` give ``T`` (glmmTMB's and lme4 2.0's names):

* ``us``: ``T`` free (lme4's theta, ``p(p+1)/2`` entries); names ``sd_c|g``, ``cor_c.d|g``;
* ``diag``: ``T = diag(s_1..s_p)``; names ``sd_c|g`` (``hom``: one ``sd|g``);
* ``cs``: ``Sigma = sigma^2 S R(rho) S`` with ``R = (1 - rho) I + rho 11'`` and ``S = diag(s)``;
  names ``sd_c|g`` (``hom``: one ``sd|g``) and ``cor|g``;
* ``ar1``: ``Sigma = sigma^2 s^2 R`` with ``R_ij = rho^|i-j|``; names ``sd|g`` and ``rho|g``.

``s`` are sds relative to the residual sd ``sigma`` (as theta is), ``rho`` lies
in ``[-1/(p-1), 1]`` (cs, where ``R`` is positive semi-definite) or ``[-1, 1]``
(ar1).  The maps ``phi -> T`` and their derivatives are in
:mod:`lmmcompare.core.structures`; this module is what the spec, the parameter
table and both engines read.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

KINDS = ("us", "diag", "cs", "ar1")
US = "us"

# the open interval a correlation is kept in, away from the singular ends where d T / d rho is infinite
RHO_MARGIN = 1e-8


@lru_cache(maxsize=64)
def lower_index(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a p x p lower triangle, column-major (lme4's theta order)."""
    rows = np.array([i for j in range(p) for i in range(j, p)], dtype=int)
    cols = np.array([j for j in range(p) for i in range(j, p)], dtype=int)
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


def sd_cor_matrices(values, p: int) -> tuple[np.ndarray, np.ndarray]:
    """``(sd, cor)`` from a term's lower triangle of sds and correlations: the inverse of :func:`lmmcompare.spec.parameters.sd_cor_from_cov`."""
    rows, cols = lower_index(p)
    sd, cor = np.zeros(p), np.eye(p)
    for v, i, j in zip(values, rows, cols):
        if i == j:
            sd[i] = v
        else:
            cor[i, j] = cor[j, i] = v
    return sd, cor


@dataclass(frozen=True)
class Structure:
    """The covariance structure of one term.

    Attributes
    ----------
    kind : str
        ``"us"``, ``"diag"``, ``"cs"`` or ``"ar1"``.
    hom : bool
        One common variance for all columns (``diag``, ``cs``; ``ar1`` always has one).
    """

    kind: str = US
    hom: bool = False

    @property
    def unstructured(self) -> bool:
        return self.kind == US

    def common_sd(self, p: int) -> bool:
        """Whether the term has one sd for all its columns."""
        return p > 1 and (self.kind == "ar1" or (self.hom and self.kind in ("diag", "cs")))

    def n_sds(self, p: int) -> int:
        return 1 if self.common_sd(p) else p

    def has_correlation(self, p: int) -> bool:
        """Whether one correlation parameter (cs's common correlation, ar1's rho) is estimated."""
        return p > 1 and self.kind in ("cs", "ar1")

    def n_params(self, p: int) -> int:
        """Length of the term's part of phi."""
        if self.kind == US:
            return p * (p + 1) // 2
        return self.n_sds(p) + self.has_correlation(p)

    def bounds(self, p: int) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` of the term's phi (us: theta's bounds, 0 on T's diagonal)."""
        if self.kind == US:
            lower = np.array([0.0 if i == j else -np.inf for j in range(p) for i in range(j, p)])
            return lower, np.full(lower.size, np.inf)
        lower, upper = [0.0] * self.n_sds(p), [np.inf] * self.n_sds(p)
        if self.has_correlation(p):
            low = -1.0 / (p - 1) if self.kind == "cs" else -1.0
            lower.append(low + RHO_MARGIN)
            upper.append(1.0 - RHO_MARGIN)
        return np.array(lower), np.array(upper)

    def start(self, p: int) -> np.ndarray:
        """lme4's start: relative sds 1, correlations 0 (us: the identity T)."""
        if self.kind == US:
            return np.array([1.0 if i == j else 0.0 for j in range(p) for i in range(j, p)])
        return np.concatenate([np.ones(self.n_sds(p)), np.zeros(int(self.has_correlation(p)))])

    def implied_sd_cor(self, values, p: int) -> tuple[np.ndarray, np.ndarray]:
        """``(sd (p,), cor (p, p))`` implied by the term's natural parameters (sds first, then rho).

        For ``us`` the values are the lower triangle of sds and correlations in
        theta's order (:func:`sd_cor_matrices`).
        """
        values = np.asarray(values, dtype=float)
        if self.kind == US:
            return sd_cor_matrices(values, p)
        k = self.n_sds(p)
        sd = np.full(p, values[0]) if k == 1 else values[:k].copy()
        rho = values[k] if self.has_correlation(p) else 0.0
        idx = np.arange(p)
        if self.kind == "ar1":
            cor = rho ** np.abs(idx[:, None] - idx[None, :]).astype(float)
        else:
            cor = np.where(idx[:, None] == idx[None, :], 1.0, rho)
        return sd, cor

    def text(self, expr: str, group: str) -> str:
        """The term as a formula writes it: ``cs(0 + f | g, hom=True)``."""
        inner = f"{expr} | {group}"
        if self.kind == US:
            return f"({inner})"
        return f"{self.kind}({inner}{', hom=True' if self.hom else ''})"
