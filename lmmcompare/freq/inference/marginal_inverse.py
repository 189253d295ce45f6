"""Products with powers of the inverse marginal covariance ``S = Sigma^{-1}``, never n x n.

``Sigma = sigma^2 (I + U U')`` with ``U = Z Lambda`` (n x q).  With
``C = U'U + I`` (q x q) the Woodbury identity gives, by induction on k
(``(I - U S_k U')(I - U C^{-1} U') = I - U (C^{-1} + S_k C^{-1}) U'``, using
``U'U = C - I``)::

    S^k = sigma^{-2k} (I - U S_k U'),   S_k = C^{-1} + C^{-2} + ... + C^{-k}

so with ``G = U'Z = Lambda'Z'Z``, ``J = C^{-1}G`` and ``N = I - Lambda J`` (q x q)::

    Z'SZ    = (Z'Z - G'J) / sigma^2
    S Z     = Z N / sigma^2,  so  Z'S^2Z = (Z'SZ) N / sigma^2
    S^k X   = (S^{k-1}X - U C^{-1} U'S^{k-1}X) / sigma^2      (n x p, k = 1, 2)
    tr(S^2) = (n - q + tr(C^{-2})) / sigma^4                 (tr(U'U S_2) = q - tr(C^{-2}))

and ``X'S^kX``, ``Z'S^kX`` are products of the n x p blocks ``S^kX``.  Each
product is formed from factors that carry the cancellation once: with ``w`` the
largest eigenvalue of ``U'U``, the relative rounding error is of order
``eps (1 + w)``, as for ``Sigma^{-1}`` itself (``X'X - H'S_2H`` would lose
``(1 + w)^2``).

``C^{-1}`` is block-diagonal over the connected components of the random
effects (two effects are connected when an observation or a level of a term
carries both): one level of a single grouping factor, one top-level group of a
nested design, everything in a crossed one.  Components are inverted one by
one (batched by size) and ``C^{-1}``, ``J`` and ``Z'SZ`` kept sparse, unless
the components fill more than a quarter of a q x q array (crossed designs),
where dense arrays are faster.  Work is ``O(nnz(Z'Z) c + sum_i c_i^3)`` for
components of sizes ``c_i`` (at most ``q^3``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ...errors import ArgumentError
from ...core.relcovar import lambda_matrix
from .residual_levels import ResidualLevels, residual_levels

MAX_DENSE_ENTRIES = 8000**2  # C^{-1} and Z'SZ as dense blocks: 0.5 GB each at this size


@dataclass(frozen=True, eq=False)
class MarginalInverse:
    """``S = Sigma^{-1}`` applied to Z and X.

    Attributes
    ----------
    ZSZ : ndarray or sparse matrix (q, q)
        ``Z'SZ``.
    N : ndarray or sparse matrix (q, q)
        ``I - Lambda C^{-1} Lambda' Z'Z``, so that ``Z'S^2Z = (Z'SZ) N / sigma^2``.
    ZSX, ZS2X : ndarray (q, p)
        ``Z'SX`` and ``Z'S^2X``.
    XSX : list of ndarray (p, p)
        ``X'S^kX`` for k = 1, 2, 3.
    trace_S2 : float
        ``tr(S^2)``.
    sigma : float
    levels : ResidualLevels or None
        With ``sigma_by``, the products for the residual variance of each level
        (:mod:`.residual_levels`).
    """

    ZSZ: object
    N: object
    ZSX: np.ndarray
    ZS2X: np.ndarray
    XSX: list
    trace_S2: float
    sigma: float
    levels: ResidualLevels | None = None

    def ZS2Z_entries(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Entries ``(Z'S^2Z)[rows_i, cols_i] = (Z'SZ)[:, rows_i] . N[:, cols_i] / sigma^2``."""
        return column_dots(self.ZSZ, self.N, rows, cols) / self.sigma**2


# ---- operations on dense or sparse q x q matrices ------------------------------------------
def block(M, rows, cols):
    """``M[rows][:, cols]``."""
    return M[np.ix_(rows, cols)] if isinstance(M, np.ndarray) else M[rows][:, cols]


def inner(X, Y) -> float:
    """``sum(X * Y)``, entrywise."""
    return float(np.sum(X * Y)) if isinstance(X, np.ndarray) else float(X.multiply(Y).sum())


def entries(M, rows, cols) -> np.ndarray:
    """``M[rows_i, cols_i]`` for each i."""
    return M[rows, cols] if isinstance(M, np.ndarray) else np.asarray(M[rows, cols]).ravel()


def column_dots(M1, M2, c1, c2) -> np.ndarray:
    """``M1[:, c1_i] . M2[:, c2_i]`` for each i."""
    if isinstance(M1, np.ndarray):
        return np.einsum("ij,ij->j", M1[:, c1], M2[:, c2])
    return np.asarray(M1[:, c1].multiply(M2[:, c2]).sum(axis=0)).ravel()


# ---- the pieces ----------------------------------------------------------------------------
def components(spec, ZtZ: sp.spmatrix) -> np.ndarray:
    """Component label of each random effect: connected through ``Z'Z`` or a shared term level."""
    levels = sp.block_diag([sp.kron(sp.identity(t.n_levels), np.ones((t.p, t.p))) for t in spec.terms])
    return connected_components(abs(ZtZ) + levels, directed=False)[1]


def _inverse_pd(C: np.ndarray) -> np.ndarray:
    """``C^{-1}`` of a symmetric positive definite C (LAPACK potrf + potri), both triangles."""
    c, info = scipy.linalg.lapack.dpotrf(C, lower=1, clean=1)
    if info:
        raise np.linalg.LinAlgError(f"C = Lambda'Z'Z Lambda + I not positive definite ({info})")
    inv, info = scipy.linalg.lapack.dpotri(c, lower=1)
    if info:
        raise np.linalg.LinAlgError(f"potri failed ({info})")
    return np.tril(inv) + np.tril(inv, -1).T


def blockwise_inverse(C: sp.spmatrix, labels: np.ndarray) -> sp.csr_matrix:
    """``C^{-1}`` for a C with no entry between components: a dense inverse per component,
    batched over the components of each size."""
    q = C.shape[0]
    sizes = np.bincount(labels)
    order = np.argsort(labels, kind="stable")  # effects grouped by component
    start = np.cumsum(sizes) - sizes
    local = np.empty(q, dtype=np.int64)
    local[order] = np.arange(q) - start[labels[order]]
    coo = C.tocoo()
    rows, cols, vals = [], [], []
    for size in np.unique(sizes):
        members = np.flatnonzero(sizes == size)
        slot = np.full(sizes.size, -1)
        slot[members] = np.arange(members.size)
        pick = slot[labels[coo.row]] >= 0
        r, c = coo.row[pick], coo.col[pick]
        blocks = np.zeros((members.size, size, size))
        blocks[slot[labels[r]], local[r], local[c]] = coo.data[pick]
        inv = np.linalg.inv(blocks)
        inv = 0.5 * (inv + np.swapaxes(inv, 1, 2))
        idx = order[start[members][:, None] + np.arange(size)]  # (components, size) effect indices
        rows.append(np.repeat(idx, size, axis=1).ravel())
        cols.append(np.tile(idx, (1, size)).ravel())
        vals.append(inv.ravel())
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(q, q))


def marginal_inverse(spec, theta, sigma: float, dense: bool | None = None) -> MarginalInverse:
    """The products of ``S = Sigma^{-1}`` with Z and X at ``(theta, sigma)`` (module docstring).

    Parameters
    ----------
    spec : ModelSpec
    theta : array_like
        Relative covariance parameters, lme4's order.
    sigma : float
        Residual standard deviation.
    dense : bool, optional
        Hold ``C^{-1}``, ``J`` and ``Z'SZ`` as dense arrays (True) or sparse
        matrices (False); by default dense when the connected components fill
        more than a quarter of a q x q array.

    Raises
    ------
    ArgumentError
        When the connected blocks of the random effects are too large to hold
        dense (more than ``MAX_DENSE_ENTRIES`` entries).
    """
    X = spec.weighted_rows(spec.X)   # with prior weights, V = Z G Z' + sigma^2 W^{-1}: row-scale by W^{1/2}
    n = X.shape[0]
    q = spec.q
    s2 = float(sigma) ** 2
    Z = spec.weighted_rows(spec.Z)
    ZtZ = (Z.T @ Z).tocsr()
    labels = components(spec, ZtZ)
    sizes = np.bincount(labels)
    filled = float(np.sum(sizes.astype(float) ** 2))
    dense = filled > q * q / 4 if dense is None else bool(dense)
    if (q * q if dense else filled) > MAX_DENSE_ENTRIES:
        raise ArgumentError(
            f"Kenward-Roger needs the inverse of a {q} x {q} matrix of the random effects, whose largest "
            f"connected block has {sizes.max()} of them: too large to hold dense; use ddf='satterthwaite'")
    Lam = lambda_matrix(spec, theta)
    U = (Z @ Lam).tocsr()
    G = (Lam.T @ ZtZ).tocsr()                   # U'Z
    C = (G @ Lam + sp.identity(q)).tocsr()
    if dense:
        Cinv = _inverse_pd(C.toarray())
        J = np.asarray(G.T @ Cinv).T            # C^{-1} G
        GtJ = np.asarray(G.T @ J)
        ZSZ = (ZtZ.toarray() - 0.5 * (GtJ + GtJ.T)) / s2
        N = np.eye(q) - np.asarray(Lam @ J)
    else:
        Cinv = blockwise_inverse(C, labels)
        J = (Cinv @ G).tocsc()
        GtJ = G.T @ J
        ZSZ = ((ZtZ - 0.5 * (GtJ + GtJ.T)) / s2).tocsc()
        N = (sp.identity(q) - Lam @ J).tocsc()
    SX = [X]                                    # S^k X, k = 0, 1, 2 (n x p)
    for _ in range(2):
        SX.append((SX[-1] - U @ np.asarray(Cinv @ (U.T @ SX[-1]))) / s2)
    XSX = [X.T @ SX[1], SX[1].T @ SX[1], SX[1].T @ SX[2]]
    return MarginalInverse(
        ZSZ=ZSZ, N=N, ZSX=np.asarray(Z.T @ SX[1]), ZS2X=np.asarray(Z.T @ SX[2]),
        XSX=[0.5 * (M + M.T) for M in XSX], trace_S2=(n - q + inner(Cinv, Cinv)) / s2**2, sigma=float(sigma),
        levels=None if spec.sigma_by is None else residual_levels(spec, Z, U, Cinv, N, SX[1], s2))
