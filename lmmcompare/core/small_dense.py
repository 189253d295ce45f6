"""The profiled criterion and its gradient for small models, by dense LAPACK calls.

For a model whose whole system ``[Z X y]'[Z X y]`` is small (``N = q + p + 1``
up to ``DENSE_UP_TO``), the blocked factor of :mod:`.factor` spends its time
in Python and numpy call overhead, not in arithmetic.  Here the same blocks
(:class:`~.blocks.CrossProducts`, so the same shifted response) are held as one
dense ``N x N`` array ``A`` and each evaluation is a few BLAS/LAPACK calls::

    Lt = blockdiag(Lambda, I_{p+1})
    C  = Lt' A Lt + diag(1_q, 0_{p+1}) = L L'                    (one potrf)

``L`` is the factor of :mod:`.factor` with its blocks in the same order, so
``log|L_theta|^2``, ``log|L_X|^2`` and ``r^2 = L_{N,N}^2`` are read off its
diagonal as there.  The gradient is that of :mod:`.gradient` in its defining
form (no ``T^{-1}``, so it holds on the boundary): with ``M = C[:k, :k]``
(``k = q``, or ``q + p`` for REML) and ``E_t = dLambda / dtheta_t``::

    d log|M| / d theta_t = 2 tr(M^{-1} (Lt' A)[:k, :q] E_t)
                         = 2 sum_j P[c_j, r_j],   P = M^{-1} (Lt' A)[:k, :q]   (one potrs)
    d r^2 / d theta_t    = -2 sum_j (Z'e)[r_j] u[c_j]

where ``(r_j, c_j)`` is the position of ``theta_t`` in level ``j``'s block of
``Lambda``, ``s = [u; beta~]`` solves ``L_a' s = l_y`` (one trtrs; ``L_a`` is L
without its y row and column, ``l_y`` the y row) and
``Z'e = A_zy - A_zx beta~ - A_zz Lambda u``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ..spec.parameters import lower_index
from .blocks import CrossProducts
from .factor import LOG_2PI

# largest N = q + p + 1 held dense: about 4 N^3 flops an evaluation, which overtake the blocked
# evaluation's fixed cost (0.3-0.5 ms) near N = 115 for (x | g) designs (measured, one BLAS thread)
DENSE_UP_TO = 110

# largest condition number of a term's Gram matrix for which the dense criterion is used.  With a
# covariate far from 0 for its spread the criterion in the model's columns loses digits, and the two
# factorisations lose different ones: (x | g) with x of mean 1 and sd 1e-3 (condition 4e6) gave
# criteria 4e-4 apart, with mean 1 and sd 1e-2 (4e4) 3.5e-9 apart.  The robustness tests' precision
# warnings were calibrated on the blocked factor, which such designs keep.  sleepstudy: 1e2, Orthodont: 3e3
DENSE_MAX_CONDITION = 1e5

_potrf = scipy.linalg.lapack.dpotrf
_potrs = scipy.linalg.lapack.dpotrs
_trtrs = scipy.linalg.lapack.dtrtrs
_trtri = scipy.linalg.lapack.dtrtri


@dataclass(frozen=True)
class DenseValues:
    """The factor's values at one theta (:meth:`DenseCriterion.values`).

    Attributes
    ----------
    u : ndarray (q,)
        Spherical conditional modes, all terms stacked as in the blocked factor.
    beta_shifted : ndarray (p,)
        Fixed effects of the shifted response (add the blocks' ``beta_offset``).
    r2 : float
        Penalised residual sum of squares.
    L_X : ndarray (p, p)
        The fixed effects' lower factor: ``cov(beta) = sigma^2 (L_X L_X')^{-1}``.
    objective : float
        REML criterion or deviance.
    re_inverse_blocks : list of ndarray (l_i, p_i, p_i)
        Per term, the diagonal blocks of ``(Lambda'Z'Z Lambda + I)^{-1}``.
    """

    u: np.ndarray
    beta_shifted: np.ndarray
    r2: float
    L_X: np.ndarray
    objective: float
    re_inverse_blocks: list


class DenseCriterion:
    """``objective(theta)`` and ``objective_and_gradient(theta)`` of a small model (module docstring).

    Holds only arrays fixed by the design (thread-safe and picklable); every
    evaluation allocates its own few ``N x N`` arrays.

    Parameters
    ----------
    cp : CrossProducts
        The model's blocks (:func:`~.blocks.cross_products`).
    reml : bool
        REML criterion or profiled deviance, lme4's scale.
    """

    def __init__(self, cp: CrossProducts, reml: bool):
        q1 = cp.l1 * cp.p1
        self.q, self.p, self.n = q1 + cp.q_rest, cp.p, cp.n
        self.reml, self.log_weights = bool(reml), cp.log_weights
        self.N = q1 + cp.m
        A = np.zeros((self.N, self.N))
        idx = np.arange(q1).reshape(cp.l1, cp.p1)
        A[idx[:, :, None], idx[:, None, :]] = cp.A11
        A21 = cp.A21.toarray()
        A[q1:, :q1], A[:q1, q1:], A[q1:, q1:] = A21, A21.T, cp.A22
        self.A = A
        rows, cols, labels, pos = [], [], [], 0
        self.terms = list(zip([cp.p1] + cp.rest_sizes, [0] + [q1 + o for o in cp.rest_offsets],
                              [cp.l1] + cp.rest_levels))
        for p, offset, n_levels in self.terms:
            a, b = lower_index(p)
            start = offset + p * np.arange(n_levels)[:, None]
            rows.append((start + a).ravel())
            cols.append((start + b).ravel())
            labels.append(np.tile(pos + np.arange(a.size), n_levels))
            pos += a.size
        self.rows, self.cols, self.labels = np.concatenate(rows), np.concatenate(cols), np.concatenate(labels)
        self.n_theta = pos
        self.template = np.eye(self.N)
        self.flat = self.rows * self.N + self.cols   # Lambda's entries in the flattened N x N array

    @classmethod
    def for_model(cls, cp: CrossProducts, reml: bool) -> "DenseCriterion | None":
        """The dense criterion when the model is small enough (``DENSE_UP_TO``) and its random-effects
        columns well scaled (:func:`term_gram_conditions` up to ``DENSE_MAX_CONDITION``), else None.
        A trailing block stored in blocks (:mod:`.block_pattern`, asked for explicitly at this size)
        keeps the blocked factor."""
        if cp.blocks is not None or cp.l1 * cp.p1 + cp.m > DENSE_UP_TO or max(term_gram_conditions(cp)) > DENSE_MAX_CONDITION:
            return None
        return cls(cp, reml)

    def with_response_row(self, row: np.ndarray) -> "DenseCriterion":
        """The criterion of the same design with the response of :func:`~.blocks.response_row` ``row``."""
        out = object.__new__(DenseCriterion)
        out.__dict__.update(self.__dict__)
        out.A = self.A.copy()
        out.A[-1], out.A[:, -1] = row[: self.N], row[: self.N]
        return out

    def transformed(self, transforms) -> "DenseCriterion":
        """The criterion of the same model with each term's columns ``X_i A_i`` (``transforms``: the ``A_i``):
        ``A -> B' A B`` with ``B = blockdiag(I_{l_i} (x) A_i, I_{p+1})``, the cross-products of the new columns
        (:mod:`.standardize`).  Rounding grows with the condition number of the ``A_i``: for well-scaled
        columns only (``lmmcompare.freq.fit.TRANSFORM_DENSE_UP_TO_CONDITION``)."""
        B = np.eye(self.N)
        for (p, offset, n_levels), A_i in zip(self.terms, transforms):
            idx = offset + np.arange(n_levels * p).reshape(n_levels, p)
            B[idx[:, :, None], idx[:, None, :]] = A_i
        out = object.__new__(DenseCriterion)
        out.__dict__.update(self.__dict__)
        out.A = B.T @ self.A @ B
        return out

    def shifted_estimates(self, theta) -> tuple[np.ndarray, float]:
        """``(beta~, r^2)`` at ``theta``: the fixed effects of the shifted response (add the blocks'
        ``beta_offset``) and the penalised residual sum of squares.  Raises ``LinAlgError`` where L fails."""
        pieces = self._factor(np.asarray(theta, dtype=float))
        if pieces is None:
            raise np.linalg.LinAlgError("the system at theta is not positive definite")
        L = pieces[1]
        s, _ = _trtrs(L[:-1, :-1].T, L[-1, :-1], lower=0, trans=0)
        return s[self.q :], float(L[-1, -1] ** 2)

    def values(self, theta) -> "DenseValues":
        """What a fit reads off the factor at ``theta`` (:class:`DenseValues`); raises ``LinAlgError``
        where L fails.  The solves are those of :mod:`.solve` on the dense L: ``L_a' s = l_y`` and
        the diagonal blocks of ``(L_Z L_Z')^{-1} = (Lambda'Z'Z Lambda + I)^{-1}``, ``L_Z = L[:q, :q]``."""
        theta = np.asarray(theta, dtype=float)
        pieces = self._factor(theta)
        if pieces is None:
            raise np.linalg.LinAlgError("the system at theta is not positive definite")
        L = pieces[1]
        q, p = self.q, self.p
        s, _ = _trtrs(L[:-1, :-1].T, L[-1, :-1], lower=0, trans=0)
        L_Z_inv, _ = _trtri(L[:q, :q].T, lower=0)   # upper (L_Z^{-1})' as a Fortran array
        columns = L_Z_inv.T   # L_Z^{-1}: (L_Z L_Z')^{-1} = (L_Z^{-1})' L_Z^{-1}
        blocks = []
        for size, offset, n_levels in self.terms:
            G = columns[:, offset : offset + n_levels * size].reshape(q, n_levels, size).transpose(1, 0, 2)
            blocks.append(np.matmul(G.transpose(0, 2, 1), G))   # per level n: G_n' G_n (einsum: 3x slower)
        return DenseValues(u=s[:q], beta_shifted=s[q:], r2=float(L[-1, -1] ** 2), L_X=L[q : q + p, q : q + p],
                           objective=self._value(L), re_inverse_blocks=blocks)

    def _factor(self, theta: np.ndarray):
        """``(Lt' A, L)`` with L lower (C order), or None where C is not positive definite."""
        Lt = self.template.copy()
        Lt.reshape(-1)[self.flat] = theta[self.labels]
        LtA = Lt.T @ self.A
        C = LtA @ Lt
        C.reshape(-1)[: self.q * (self.N + 1) : self.N + 1] += 1.0   # + I on the random effects' diagonal
        # C is symmetric: its C-ordered memory is the Fortran array C', whose upper factor is L'
        U, info = _potrf(C.T, lower=0, clean=1, overwrite_a=1)
        if info:
            return None
        return LtA, U.T

    def _value(self, L: np.ndarray) -> float:
        d = np.log(np.diagonal(L))
        r2 = L[-1, -1] ** 2
        if self.reml:
            nr = self.n - self.p
            return 2.0 * d[:-1].sum() + nr * (1.0 + LOG_2PI + np.log(r2 / nr)) - self.log_weights
        return 2.0 * d[: self.q].sum() + self.n * (1.0 + LOG_2PI + np.log(r2 / self.n)) - self.log_weights

    def objective(self, theta) -> float:
        """REML criterion or deviance at ``theta``; ``inf`` where L fails."""
        pieces = self._factor(np.asarray(theta, dtype=float))
        return np.inf if pieces is None else self._value(pieces[1])

    def objective_and_gradient(self, theta):
        """``(objective, gradient)`` at ``theta``; ``(inf, nan)`` where L fails."""
        theta = np.asarray(theta, dtype=float)
        pieces = self._factor(theta)
        if pieces is None:
            return np.inf, np.full(theta.shape, np.nan)
        LtA, L = pieces
        q, p = self.q, self.p
        s, info = _trtrs(L[:-1, :-1].T, L[-1, :-1], lower=0, trans=0)   # L_a' s = l_y
        dlogdet, dr2 = self._theta_slopes(LtA, L, q + p if self.reml else q, s[:q], s[q:])
        r2 = L[-1, -1] ** 2
        dof = self.n - p if self.reml else self.n
        return self._value(L), dlogdet + dof * dr2 / r2

    def _theta_slopes(self, LtA, L, k: int, u, beta_shifted):
        """``(d log|M| / d theta, d r^2 / d theta)`` from the factor (module docstring): ``M = C[:k, :k]``,
        ``r^2``'s slope at the modes ``u`` for ``beta~`` (the estimate's, or a given beta's)."""
        q, p = self.q, self.p
        P, info = _potrs(L[:k, :k].T, LtA[:k, :q], lower=0)   # L[:k, :k].T: Fortran view of M's upper factor
        dlogdet = 2.0 * np.bincount(self.labels, P[self.cols, self.rows], minlength=self.n_theta)
        A = self.A
        zte = A[:q, -1] - A[:q, q : q + p] @ beta_shifted - LtA[:q, :q].T @ u   # (Lambda' A_zz)' u = A_zz b
        dr2 = -2.0 * np.bincount(self.labels, zte[self.rows] * u[self.cols], minlength=self.n_theta)
        return dlogdet, dr2

    def loglik_pieces(self, beta_shifted, theta):
        """The pieces of the marginal log-likelihood at ``(beta, theta)`` (:func:`.likelihood.loglik`), or None
        where L fails: ``(log|L_theta|^2, its theta-gradient, r^2(beta, theta), L_X L_X' (beta~ - beta_hat~),
        d r^2(beta, theta) / d theta)`` with ``beta_shifted = beta~ = beta - beta_offset``.

        ``r^2(beta, theta) = r^2 + |w|^2`` with ``w = L_X' beta~ - l_yX`` (``l_yX = L_X' beta_hat~``, the y row
        in X's columns); its theta-gradient is the envelope form of the module docstring at the conditional
        modes ``u`` for this beta, ``L_uu' u = l_yu - L_Xu' beta~``; ``log|L_theta|^2`` is ML's (``k = q``).
        """
        theta = np.asarray(theta, dtype=float)
        pieces = self._factor(theta)
        if pieces is None:
            return None
        LtA, L = pieces
        q, p = self.q, self.p
        logdet = 2.0 * np.log(np.diagonal(L)[:q]).sum()
        L_X = L[q : q + p, q : q + p]
        w = L_X.T @ beta_shifted - L[-1, q : q + p]
        u, info = _trtrs(L[:q, :q].T, L[-1, :q] - L[q : q + p, :q].T @ beta_shifted, lower=0, trans=0)
        dlogdet, dr2 = self._theta_slopes(LtA, L, q, u, beta_shifted)
        return logdet, dlogdet, float(L[-1, -1] ** 2 + w @ w), L_X @ w, dr2


def term_gram_conditions(cp: CrossProducts) -> list[float]:
    """Condition number of each term's Gram matrix ``sum_j Z_ij' Z_ij`` (its columns' cross-products summed
    over its levels), from the blocks; 1 for a scalar term."""
    out = [float(np.linalg.cond(cp.A11.sum(axis=0))) if cp.p1 > 1 else 1.0]
    for p, offset, n_levels in zip(cp.rest_sizes, cp.rest_offsets, cp.rest_levels):
        if p > 1:
            idx = offset + np.arange(n_levels * p).reshape(n_levels, p)
            out.append(float(np.linalg.cond(cp.A22[idx[:, :, None], idx[:, None, :]].sum(axis=0))))
    return out
