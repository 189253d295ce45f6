"""The blocked Cholesky factor L(theta) and the profiled objective.

With ``Lambda = Lambda(theta)`` the penalised least-squares system for
``[u; beta]`` has the Cholesky factor (lower, blocks in the order first term,
later terms, X, y)::

    L L' = [Lambda'Z'Z Lambda + I   Lambda'Z'X   Lambda'Z'y]
           [X'Z Lambda              X'X          X'y       ]
           [y'Z Lambda              y'X          y'y       ]

Because y is the last column, the penalised residual sum of squares is the
square of L's last diagonal element, ``r^2`` (Bates et al. 2015, eq. 3.12ff).
The first block is block-diagonal, ``L11_j = chol(T1' A11_j T1 + I)``; the
trailing block is dense, ``L22 L22' = Lr'(A22 - A21 D D' A21')Lr + I_r`` with
``D_j = T1 L11_j^{-T}`` and ``Lr`` the factor of the later terms (identity on
the X, y rows).  The profiled deviance (ML) and REML criterion are::

    d(theta)    = log|L_theta|^2 + n (1 + log(2 pi r^2 / n))
    d_R(theta)  = log|L_theta|^2 + log|L_X|^2 + (n - p)(1 + log(2 pi r^2 / (n - p)))

(eqs. 3.16 and 3.20 of Bates et al. 2015 on lme4's scale).

When the cross-products store the trailing block in blocks (nested designs,
:mod:`.block_pattern`), ``L22`` is replaced by a :class:`~.trailing.BlockTrailing`
(block-diagonal random effects bordered by the X and y rows); readers use
:attr:`BlockedFactor.corner`, :attr:`BlockedFactor.border` and
:meth:`BlockedFactor.solve_re`, which mean the same on both storages.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from .blocks import CrossProducts, Workspace, csc_matvec
from .relcovar import scale_rows_cols, theta_to_T
from .trailing import BlockTrailing, factor_blocks

LOG_2PI = np.log(2 * np.pi)


@dataclass(frozen=True, eq=False)
class BlockedFactor:
    """L(theta) in blocks.

    Attributes
    ----------
    Ts : list of ndarray
        ``T_i`` of every term (first term first).
    L11 : ndarray (l1, p1, p1)
        Lower Cholesky factors of the first term's diagonal blocks.
    D1 : ndarray (l1, p1, p1)
        ``T1 L11_j^{-T}``, so that ``L21 = Lr' A21 blockdiag(D1)``.
    M1_inv : ndarray (l1, p1, p1)
        ``(L11_j L11_j')^{-1}``.
    L22 : ndarray (m, m) or None
        Dense lower factor of the trailing block [later terms, X, y] (None with ``blocks``).
    blocks : BlockTrailing or None
        The trailing factor in blocks, when the cross-products are stored so.
    """

    theta: np.ndarray
    Ts: list
    L11: np.ndarray
    D1: np.ndarray
    M1_inv: np.ndarray
    L22: np.ndarray | None
    cp: CrossProducts
    blocks: BlockTrailing | None = None

    @property
    def q_rest(self) -> int:
        """Random effects of the later terms (rows of the trailing block before X and y)."""
        return self.cp.q_rest

    @property
    def corner(self) -> np.ndarray:
        """``(p + 1, p + 1)``: the factor's rows and columns of X and y (``L_X`` and the y row)."""
        return self.L22[self.q_rest :, self.q_rest :] if self.blocks is None else self.blocks.corner

    @property
    def border(self) -> np.ndarray:
        """``(p + 1, q_rest)``: the factor's X and y rows in the later terms' columns."""
        return self.L22[self.q_rest :, : self.q_rest] if self.blocks is None else self.blocks.border

    def solve_re(self, v: np.ndarray, trans: bool = False) -> np.ndarray:
        """``L_RR^{-1} v`` (``L_RR^{-T} v`` with ``trans``), ``L_RR`` the later terms' diagonal block."""
        if self.blocks is not None:
            return self.blocks.solve_re(v, trans)
        qr = self.q_rest
        return scipy.linalg.solve_triangular(self.L22[:qr, :qr], v, lower=True, trans="T" if trans else "N",
                                             check_finite=False)

    @property
    def r2(self) -> float:
        """Penalised residual sum of squares."""
        return float(self.corner[-1, -1] ** 2)

    @property
    def logdet_theta(self) -> float:
        """``log |Lambda'Z'Z Lambda + I|``."""
        d1 = np.diagonal(self.L11, axis1=1, axis2=2)
        if self.blocks is not None:
            return 2.0 * np.log(d1).sum() + self.blocks.logdet
        d2 = np.diag(self.L22)[: self.q_rest]
        return 2.0 * (np.log(d1).sum() + np.log(d2).sum())

    @property
    def logdet_X(self) -> float:
        """``log |L_X|^2``, the REML correction."""
        dx = np.diag(self.corner)[: self.cp.p]
        return 2.0 * np.log(dx).sum()

    def objective(self, reml: bool) -> float:
        """REML criterion ``d_R(theta)`` (``reml=True``) or profiled deviance ``d(theta)``, lme4's scale."""
        n, p = self.cp.n, self.cp.p
        r2 = self.r2
        if reml:
            nr = n - p
            return self.logdet_theta + self.logdet_X + nr * (1.0 + LOG_2PI + np.log(r2 / nr)) - self.cp.log_weights
        return self.logdet_theta + n * (1.0 + LOG_2PI + np.log(r2 / n)) - self.cp.log_weights


def first_block(cp: CrossProducts, T1: np.ndarray):
    """Per level j of the first term: ``L11_j = chol(T1' A11_j T1 + I)``, ``D_j = T1 L11_j^{-T}``,
    ``M_j^{-1} = (L11_j L11_j')^{-1}`` and ``W_j = D_j D_j' = T1 M_j^{-1} T1'``."""
    if cp.p1 == 1:
        lam = T1[0, 0]
        L11 = np.sqrt(lam * lam * cp.A11 + 1.0)
        Minv = 1.0 / (L11 * L11)
        D = lam / L11
        return L11, D, Minv, D * D
    L11 = np.linalg.cholesky(T1.T @ cp.A11 @ T1 + np.eye(cp.p1))
    L11_inv = np.linalg.inv(L11)
    L11_inv_t = np.swapaxes(L11_inv, 1, 2)
    D = T1 @ L11_inv_t
    return L11, D, L11_inv_t @ L11_inv, D @ np.swapaxes(D, 1, 2)


def _trailing_matrix(cp: CrossProducts, Wj: np.ndarray, Dj: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``tril(A22) - K vec(W)`` as an m x m array, into ``out`` when given.

    With :attr:`~.blocks.CrossProducts.dense_pairs`, the whole symmetric
    ``A22 - B B'`` with ``B = A21 blockdiag(D_j)`` (``W_j = D_j D_j'``) instead:
    BLAS fills both triangles at no extra cost, and the callers then skip the
    passes that cut and mirror a triangle.
    """
    if cp.dense_pairs:
        B = (cp.A21_blocks @ Dj).transpose(1, 0, 2).reshape(cp.m, -1)
        M = np.matmul(B, B.T, out=out)
        np.subtract(cp.A22, M, out=M)
        return M
    if out is None:
        M = (cp.K @ Wj.ravel()).reshape(cp.m, cp.m)
        np.subtract(cp.A22 * cp.lower_mask, M, out=M)
        return M
    np.multiply(cp.A22, cp.lower_mask, out=out)
    K = cp.K
    # y += K x in place, avoiding a fresh 8 m^2-byte array per evaluation
    csc_matvec(K.shape[0], K.shape[1], K.indptr, K.indices, K.data, -Wj.ravel(), out.reshape(-1))
    return out


def schur_cross_products(f: BlockedFactor) -> np.ndarray:
    """``B = A22 - A21 blockdiag(W_j) A21'`` (symmetric, m x m): the trailing cross-products with the
    first term eliminated, before the later terms' ``Lambda_r`` scaling (what :func:`factorize` factors
    as ``Lambda_r' B Lambda_r + I``).  Dense storage only (with blocks the factor keeps ``B`` on its pattern)."""
    Wj = f.D1 @ np.swapaxes(f.D1, 1, 2)
    B = _trailing_matrix(f.cp, Wj, f.D1, None)
    return B if f.cp.dense_pairs else B + np.tril(B, -1).T


def factorize(cp: CrossProducts, theta: np.ndarray, workspace: np.ndarray | None = None) -> BlockedFactor:
    """Compute L(theta).  Raises ``numpy.linalg.LinAlgError`` if not positive definite.

    With ``workspace`` (an ``m x m`` float array) the trailing factor is built in
    it: the returned factor is then only valid until the workspace is reused.
    Cross-products stored in blocks ignore it (:mod:`.trailing`).
    """
    theta = np.asarray(theta, dtype=float)
    Ts = theta_to_T(theta, [cp.p1] + cp.rest_sizes)
    L11, D1, M1_inv, Wj = first_block(cp, Ts[0])
    if cp.blocks is not None:
        S = cp.A22_packed - cp.K @ Wj.ravel()
        return BlockedFactor(theta=theta, Ts=Ts, L11=L11, D1=D1, M1_inv=M1_inv, L22=None, cp=cp,
                             blocks=factor_blocks(cp.blocks, S, Ts[1:]))
    M = _trailing_matrix(cp, Wj, D1, workspace)   # lower triangle; whole with dense pairs
    if any(p > 1 for p in cp.rest_sizes):
        # a non-diagonal T_i mixes both triangles of its diagonal blocks: symmetrise, scale
        if not cp.dense_pairs:
            M += np.tril(M, -1).T
        M = scale_rows_cols(M, Ts[1:], cp.rest_offsets, cp.rest_levels)
    elif cp.rest_sizes:
        M = scale_rows_cols(M, Ts[1:], cp.rest_offsets, cp.rest_levels)
    if cp.q_rest:
        idx = np.arange(cp.q_rest)
        M[idx, idx] += 1.0
    # M is C-ordered with its lower triangle filled: M.T is the Fortran view of the
    # same memory with the upper triangle filled, so potrf factors it in place; clean
    # zeroes the other triangle, which holds the mirror image where it was not cut.
    U, info = scipy.linalg.lapack.dpotrf(M.T, lower=0, clean=1, overwrite_a=1)
    if info:
        raise np.linalg.LinAlgError(f"trailing block not positive definite (minor {info})")
    L22 = U.T
    return BlockedFactor(theta=theta, Ts=Ts, L11=L11, D1=D1, M1_inv=M1_inv, L22=L22, cp=cp)


def objective(cp: CrossProducts, theta: np.ndarray, reml: bool, workspace: Workspace | None = None) -> float:
    """Profiled deviance (ML) or REML criterion at ``theta``; ``inf`` where L fails.

    ``workspace`` lends the scratch array (fresh arrays without it).
    """
    try:
        return factorize(cp, theta, scratch(cp, workspace, 0)).objective(reml)
    except np.linalg.LinAlgError:
        return np.inf


def scratch(cp: CrossProducts, workspace: Workspace | None, slot: int) -> np.ndarray | None:
    """The workspace's ``m x m`` buffer ``slot`` for dense storage; None without a workspace or with blocks
    (whose factor must never allocate ``m x m``)."""
    return None if workspace is None or cp.blocks is not None else workspace.buffer(slot)
