"""The trailing factor in blocks: block-diagonal random effects bordered by dense X and y rows.

With the packed Schur complement ``S`` of :mod:`.block_pattern` (components ``c``,
border ``S_XR``, corner ``S_XX``) and ``Lambda_c`` the later terms' relative
covariance factor on a component, the trailing system
``M = Lambda~' S Lambda~ + I_R`` (``Lambda~`` the identity on the X, y rows) factors as::

    L_c    = chol(Lambda_c' S_c Lambda_c + I)                (per component, batched by size)
    L_XR,c = S_XR,c Lambda_c L_c^{-T}                        ((p+1) x s_c)
    L_XX   = chol(S_XX - L_XR L_XR')                         ((p+1) x (p+1))

The inverse of the random-effects system ``(L L')^{-1}`` is needed only on the
pattern (the gradient's pairs and the diagonal blocks of each level).  Without
X it is block-diagonal, ``H_c = L_c^{-T} L_c^{-1}``.  With X (REML's system
``[[L_RR, 0], [L_XR, L_X]]``), ``E = L_X^{-1}`` and ``C = -E L_XR L_RR^{-1}``::

    H_RR = L_RR^{-T} L_RR^{-1} + C'C,   H_XR = E'C,   H_XX = E'E

``C'C`` is dense but only its blocks on the components are read.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from .block_pattern import BlockPattern


def _cholesky(M: np.ndarray) -> np.ndarray:
    """Batched lower Cholesky factors; ``LinAlgError`` where one is not positive definite."""
    if M.shape[-1] == 1:
        if not np.all(M > 0):
            raise np.linalg.LinAlgError("trailing block not positive definite")
        return np.sqrt(M)
    return np.linalg.cholesky(M)


def _solve(L: np.ndarray, B: np.ndarray, trans: bool) -> np.ndarray:
    """``L^{-1} B`` (or ``L^{-T} B``) per component: ``L`` (n, s, s), ``B`` (n, s, k)."""
    if L.shape[-1] == 1:
        return B / L
    return np.linalg.solve(np.swapaxes(L, 1, 2) if trans else L, B)


@dataclass(frozen=True, eq=False)
class BlockTrailing:
    """The trailing factor of a :class:`~.block_pattern.BlockPattern` (module docstring).

    Attributes
    ----------
    pattern : BlockPattern
    L : list of ndarray (n_g, s, s)
        Lower factors of the components, group by group.
    border : ndarray (p + 1, r)
        ``L_XR``; its last row is the y row.
    corner : ndarray (p + 1, p + 1)
        ``L_XX`` with the y row last (``corner[-1, -1]^2 = r^2``).
    S, S_border : list of ndarray, ndarray
        The unscaled Schur complement on the components and on the border (the gradient's singular path).
    lambdas : list of ndarray (n_g, s, s)
        ``Lambda_c`` of each component.
    """

    pattern: BlockPattern
    L: list
    border: np.ndarray
    corner: np.ndarray
    S: list
    S_border: np.ndarray
    lambdas: list

    @property
    def logdet(self) -> float:
        """``log |L_RR|^2``."""
        return 2.0 * sum(np.log(np.diagonal(L, axis1=1, axis2=2)).sum() for L in self.L)

    def solve_re(self, v: np.ndarray, trans: bool = False) -> np.ndarray:
        """``L_RR^{-1} v`` (``L_RR^{-T} v`` with ``trans``) for ``v`` of r rows (a vector or a matrix)."""
        matrix = v.ndim == 2
        out = np.empty_like(v, dtype=float)
        for rows, L in zip(self.pattern.rows, self.L):
            part = v[rows] if matrix else v[rows][:, :, None]
            solved = _solve(L, part, trans)
            out[rows] = solved if matrix else solved[:, :, 0]
        return out

    def _block_diagonal(self, blocks: list) -> sp.csr_matrix:
        """The ``r x r`` sparse matrix with the given ``(n_g, s, s)`` blocks on the components."""
        rows = [np.broadcast_to(R[:, :, None], B.shape).ravel() for R, B in zip(self.pattern.rows, blocks)]
        cols = [np.broadcast_to(R[:, None, :], B.shape).ravel() for R, B in zip(self.pattern.rows, blocks)]
        values = np.concatenate([B.ravel() for B in blocks])
        r = self.pattern.r
        return sp.csr_matrix((values, (np.concatenate(rows), np.concatenate(cols))), shape=(r, r))

    @cached_property
    def lambda_t(self) -> sp.csr_matrix:
        """``Lambda_r'`` as a sparse ``r x r`` matrix."""
        return self._block_diagonal(self.lambdas).T.tocsr()

    @cached_property
    def inverse_re(self) -> sp.csr_matrix:
        """``L_RR^{-1}`` as a sparse ``r x r`` matrix (block-diagonal like ``L_RR``)."""
        return self._block_diagonal([1.0 / L if L.shape[-1] == 1 else np.linalg.inv(L) for L in self.L])

    def forward_norms(self, A21E: sp.spmatrix, rest_values: np.ndarray, upto: int) -> np.ndarray:
        """``|La^{-1} v~_i|^2`` over the first ``upto`` trailing rows, ``v~_i = v_i - Lambda~' A21 E_i`` (the
        trailing part of :func:`~.solve.inverse_quadratic_forms`), with the random-effects rows kept sparse::

            w_R = L_RR^{-1} v~_R,    w_X = L_X^{-1} (v~_X - L_XR w_R)

        ``A21E`` is ``A21 E`` (m x k, sparse), ``rest_values`` the ``(k, m - 1)`` values of the ``v_i``
        (sparse, or dense and made sparse here).
        """
        r = self.pattern.r
        A21E, rest = sp.csr_matrix(A21E), sp.csr_matrix(rest_values)
        V_re = rest[:, :r].T - self.lambda_t @ A21E[:r]
        W_re = self.inverse_re @ V_re
        norms = np.asarray(W_re.multiply(W_re).sum(axis=0)).ravel()
        if upto == r:
            return norms
        k = upto - r
        V_x = rest[:, r:upto].toarray().T - A21E[r:upto].toarray() - np.asarray(W_re.T @ self.border[:k].T).T
        w_x = scipy.linalg.solve_triangular(self.corner[:k, :k], V_x, lower=True, check_finite=False)
        return norms + np.einsum("ik,ik->k", w_x, w_x)

    def inverse(self, include_X: bool, p: int) -> "PackedInverse":
        """``(La La')^{-1}`` on the pattern (module docstring)."""
        inv = [1.0 / L if L.shape[-1] == 1 else np.linalg.inv(L) for L in self.L]
        H = [np.swapaxes(A, 1, 2) @ A for A in inv]
        if not (include_X and p):
            return PackedInverse(self.pattern, np.concatenate([h.ravel() for h in H]), None, None)
        E = scipy.linalg.solve_triangular(self.corner[:p, :p], np.eye(p), lower=True, check_finite=False)
        C = -(self.solve_re(np.ascontiguousarray(self.border[:p].T), trans=True) @ E.T).T    # p x r
        for g, rows in enumerate(self.pattern.rows):
            Cg = C[:, rows].transpose(1, 0, 2)                  # (n, p, s)
            H[g] = H[g] + np.swapaxes(Cg, 1, 2) @ Cg
        return PackedInverse(self.pattern, np.concatenate([h.ravel() for h in H]), E.T @ C, E.T @ E)


@dataclass(frozen=True, eq=False)
class PackedInverse:
    """``H = (La La')^{-1}`` on the pattern: the components' full blocks (packed), ``H_XR`` and ``H_XX``
    (None without the X rows)."""

    pattern: BlockPattern
    re: np.ndarray
    XR: np.ndarray | None
    XX: np.ndarray | None

    def block_view(self, g: int) -> np.ndarray:
        pat = self.pattern
        s = pat.sizes[g]
        return self.re[pat.offsets[g] : pat.offsets[g + 1]].reshape(-1, s, s)

    def diagonal_blocks(self, offset: int, n_levels: int, p: int) -> np.ndarray:
        """The ``(n_levels, p, p)`` diagonal blocks of one term's levels."""
        return _level_blocks(self.pattern, self.re, offset, n_levels, p)


def _level_blocks(pattern: BlockPattern, packed: np.ndarray, offset: int, n_levels: int, p: int) -> np.ndarray:
    """Gather the ``p x p`` blocks of each level of one term from a packed full-block vector."""
    a = offset + np.arange(n_levels * p).reshape(n_levels, p)
    return packed[pattern.re_index(a[:, :, None], a[:, None, :])]


def factor_blocks(pattern: BlockPattern, S: np.ndarray, Ts: list) -> BlockTrailing:
    """Factor ``Lambda~' S Lambda~ + I_R`` from the packed lower triangle ``S`` (module docstring);
    ``Ts`` the later terms' ``T_k``.  Raises ``LinAlgError`` where it is not positive definite."""
    r, nb = pattern.r, pattern.nb
    S_border = S[pattern.border_offset : pattern.corner_offset].reshape(nb, r)
    border = np.empty((nb, r))
    Ls, Ss, lambdas = [], [], []
    for g, (s, rows) in enumerate(zip(pattern.sizes, pattern.rows)):
        Sg = S[pattern.offsets[g] : pattern.offsets[g + 1]].reshape(-1, s, s)
        Sg = Sg + np.swapaxes(np.tril(Sg, -1), 1, 2)
        Lam = pattern.lambda_blocks(g, Ts)
        L = _cholesky(np.swapaxes(Lam, 1, 2) @ Sg @ Lam + np.eye(s))
        MB = np.swapaxes(S_border[:, rows].transpose(1, 0, 2) @ Lam, 1, 2)   # (n, s, nb): (S_XR,c Lambda_c)'
        border[:, rows] = _solve(L, MB, trans=False).transpose(2, 0, 1)
        Ls.append(L)
        Ss.append(Sg)
        lambdas.append(Lam)
    C = S[pattern.corner_offset :].reshape(nb, nb)
    C = np.tril(C) + np.tril(C, -1).T - border @ border.T
    corner = _cholesky(C[None])[0]
    return BlockTrailing(pattern=pattern, L=Ls, border=border, corner=corner, S=Ss, S_border=S_border,
                         lambdas=lambdas)


def pair_weights(trailing: BlockTrailing, H: PackedInverse, p: int) -> np.ndarray:
    """Packed ``g``: the lower triangle of ``G = Lambda~ H Lambda~'`` on the pattern, diagonal halved
    (the vector whose ``K' g`` gives the first term's ``Y_j``, :func:`~.solve.inverse_blocks`)."""
    pat = trailing.pattern
    g = np.zeros(pat.size)
    for k, Lam in enumerate(trailing.lambdas):
        G = np.tril(Lam @ H.block_view(k) @ np.swapaxes(Lam, 1, 2))
        idx = np.arange(G.shape[-1])
        G[:, idx, idx] *= 0.5
        g[pat.offsets[k] : pat.offsets[k + 1]] = G.ravel()
    if H.XR is not None:
        GXR = np.empty_like(H.XR)
        for rows, Lam in zip(pat.rows, trailing.lambdas):   # H_XR,c Lambda_c'
            GXR[:, rows] = (H.XR[:, rows].transpose(1, 0, 2) @ np.swapaxes(Lam, 1, 2)).transpose(1, 0, 2)
        g[pat.border_offset : pat.border_offset + p * pat.r] = GXR.ravel()
        corner = np.zeros((pat.nb, pat.nb))
        corner[:p, :p] = np.tril(H.XX)
        corner[np.arange(p), np.arange(p)] *= 0.5
        g[pat.corner_offset :] = corner.ravel()
    return g


def singular_term_blocks(trailing: BlockTrailing, H: PackedInverse, offset: int, n_levels: int, p: int,
                         p_fixed: int) -> np.ndarray:
    """Diagonal blocks over one term's levels of ``H Lambda~' B`` (:mod:`.gradient`, singular ``T_k``).

    On a component ``b`` the product reads only the component's own rows of ``Lambda~' B``
    (``S_RR`` is block-diagonal) and, with X, the X rows (``B_XR = S_XR`` unscaled)::

        (H Lambda~' B)_c = H_c Lambda_c' S_c + H_XR,c' S_XR,c
    """
    pat = trailing.pattern
    parts = []
    for k, (rows, Lam, Sg) in enumerate(zip(pat.rows, trailing.lambdas, trailing.S)):
        P = H.block_view(k) @ (np.swapaxes(Lam, 1, 2) @ Sg)
        if H.XR is not None:
            HX = H.XR[:, rows].transpose(1, 0, 2)                         # (n, p, s)
            SX = trailing.S_border[:p_fixed, rows].transpose(1, 0, 2)     # (n, p, s)
            P = P + np.swapaxes(HX, 1, 2) @ SX
        parts.append(P.ravel())
    return _level_blocks(pat, np.concatenate(parts), offset, n_levels, p)
