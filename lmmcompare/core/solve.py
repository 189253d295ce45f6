"""Quantities read off the blocked factor: beta, u, b, sigma and inverse blocks.

``L`` is lower triangular with blocks [term 1 | later terms, X, y].  The
penalised least-squares solution ``s = [u_1; u_r; beta]`` satisfies
``L_a' s = l_y'`` where ``L_a`` is L without its y row and column and
``l_y`` the y row (Bates et al. 2015, sec. 3.5), solved block by block
from the bottom.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse

from .factor import BlockedFactor
from .relcovar import apply_lambda, left_scale, scale_rows_cols
from .trailing import PackedInverse, pair_weights


def L21_transpose_times(f: BlockedFactor, v: np.ndarray) -> np.ndarray:
    """``L21' v = D' A21' Lr v`` without forming L21 (v has m entries)."""
    cp = f.cp
    qr = cp.q_rest
    w = np.concatenate([apply_lambda(v[:qr], f.Ts[1:], cp.rest_levels), v[qr:]]) if qr else v  # Lr v
    t = (cp.A21_T @ w).reshape(cp.l1, cp.p1)
    if cp.p1 == 1:
        return f.D1.ravel() * t.ravel()
    return (np.swapaxes(f.D1, 1, 2) @ t[:, :, None]).ravel()


def solve_modes(f: BlockedFactor, beta: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Spherical random effects ``u`` (all terms, stacked) and ``beta`` (for the response itself,
    ``cp.beta_offset`` added back).

    With ``beta`` given, ``u`` is the conditional mode for that ``beta``: the
    solution of ``L_uu' u = l_yu' - L_Xu' beta`` (Bates et al. 2015, eq. 3.13 with
    beta held fixed), and ``beta`` is returned as given.
    """
    cp = f.cp
    qr = cp.q_rest
    if beta is None and f.blocks is None:
        La = f.L22[:-1, :-1]
        s = scipy.linalg.solve_triangular(La, f.L22[-1, :-1], lower=True, trans="T", check_finite=False)
    else:
        if beta is None:  # blocks: L_X' beta = l_yX, then the random effects
            corner = f.corner
            shifted = scipy.linalg.solve_triangular(corner[:-1, :-1], corner[-1, :-1], lower=True, trans="T",
                                                    check_finite=False)
        else:
            shifted = np.asarray(beta, dtype=float) - cp.beta_offset
        border = f.border
        u_rest = f.solve_re(border[-1] - border[: cp.p].T @ shifted, trans=True)
        s = np.concatenate([u_rest, shifted])
    u_rest, beta_s = s[:qr], s[qr:]
    rhs = L21_transpose_times(f, np.append(-s, 1.0))  # l_y1' - L21a' s
    if cp.p1 == 1:
        u1 = rhs / f.L11.ravel()
    else:
        u1 = np.linalg.solve(np.swapaxes(f.L11, 1, 2), rhs.reshape(cp.l1, cp.p1, 1)).ravel()
    return np.concatenate([u1, u_rest]), beta_s + cp.beta_offset


def inverse_blocks(f: BlockedFactor, include_X: bool, workspace=None):
    """Diagonal blocks of ``(L L')^{-1}`` over the random effects.

    With ``include_X`` the factor is that of the whole ``[u; beta]`` system
    (REML's ``M_a``); without, that of ``Lambda'Z'Z Lambda + I`` alone.

    Returns
    -------
    first : ndarray (l1, p1, p1)
        Blocks of the first term.
    H : ndarray (k, k) or PackedInverse
        ``(L22s L22s')^{-1}`` for the trailing rows used (later terms [, X]); on the pattern with blocks.
    Y : ndarray (l1, p1, p1)
        ``A21_j' Lr H Lr' A21_j`` halves (see ``_pair_quadratic``).

    ``workspace``, two ``m x m`` scratch arrays, avoids fresh allocations; H then
    lives in the first and is only valid until it is reused.
    """
    cp = f.cp
    if f.blocks is not None:  # H on the pattern only (:mod:`.trailing`)
        H = f.blocks.inverse(include_X, cp.p)
        Y = (cp.K_T @ pair_weights(f.blocks, H, cp.p)).reshape(cp.l1, cp.p1, cp.p1)
    else:
        k = cp.q_rest + (cp.p if include_X else 0)
        ws_H, ws_G = workspace if workspace is not None else (None, None)
        H = _inverse_gram(f.L22[:k, :k], ws_H)
        Y = _pair_quadratic(f, H, k, ws_G)
    R = f.Ts[0] @ f.M1_inv  # R_j = T1 M_j^{-1}
    first = f.M1_inv + np.swapaxes(R, 1, 2) @ (Y + np.swapaxes(Y, 1, 2)) @ R
    return first, H, Y


def _inverse_gram(L: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Lower triangle of ``(L L')^{-1}`` for a dense lower-triangular ``L`` (LAPACK potri).

    The strict upper triangle of the result is zero (it mirrors L's, which the
    factorisation leaves zero); use :func:`diagonal_blocks` for symmetric blocks.
    """
    if L.shape[0] == 0:
        return np.zeros((0, 0))
    # L is C-ordered lower: L.T is its Fortran-ordered upper view
    k = L.shape[0]
    work = np.empty((k, k)) if out is None else out.reshape(-1)[: k * k].reshape(k, k)
    np.copyto(work, L)
    inv, info = scipy.linalg.lapack.dpotri(work.T, lower=0, overwrite_c=1)
    if info:
        raise np.linalg.LinAlgError(f"potri failed ({info})")
    return inv.T


def diagonal_blocks(H_lower, offset: int, n_levels: int, p: int) -> np.ndarray:
    """The ``(n_levels, p, p)`` symmetric diagonal blocks of a term's rows of H (dense lower or packed)."""
    if isinstance(H_lower, PackedInverse):
        return H_lower.diagonal_blocks(offset, n_levels, p)
    if p == 1:
        return np.diagonal(H_lower)[offset : offset + n_levels].reshape(n_levels, 1, 1).copy()
    idx = offset + np.arange(n_levels * p).reshape(n_levels, p)
    C = H_lower[idx[:, :, None], idx[:, None, :]]
    lower = np.tril(C)
    return lower + np.transpose(np.tril(C, -1), (0, 2, 1))


def _pair_quadratic(f: BlockedFactor, H: np.ndarray, k: int, out=None) -> np.ndarray:
    """``Y_j`` with ``Y_j + Y_j' = A21_j' G A21_j``, ``G = Lr H Lr'`` on the first k rows.

    ``K`` holds every pair of A21 entries with row(e1) >= row(e2), so ``K' vec(g)``
    with ``g`` the lower triangle of G, diagonal halved, gives one half of the form.
    """
    cp = f.cp
    G = np.zeros((cp.m, cp.m)) if out is None else out
    G[:] = 0.0
    G[:k, :k] = H
    if any(T.shape[0] > 1 for T in f.Ts[1:]):
        G[:k, :k] += np.tril(H, -1).T  # the sandwich below needs the full symmetric H
    # Lr H Lr': left_scale applies T' per block, so pass T' to apply T
    if len(f.Ts) > 1:
        G = scale_rows_cols(G, [T.T for T in f.Ts[1:]], cp.rest_offsets, cp.rest_levels)
        G = np.tril(G) if any(T.shape[0] > 1 for T in f.Ts[1:]) else G
    G[np.arange(k), np.arange(k)] *= 0.5
    if cp.dense_pairs:
        # g + g' is the symmetric G (diagonal halved once each way); Y_j = A21_j' G A21_j / 2
        C = ((G + G.T) @ cp.A21_dense).reshape(cp.m, cp.l1, cp.p1).transpose(1, 0, 2)
        return 0.5 * (np.swapaxes(cp.A21_blocks, 1, 2) @ C)
    return (cp.K_T @ G.ravel()).reshape(cp.l1, cp.p1, cp.p1)


def rest_values_of(cp, X: np.ndarray, entries: list):
    """The ``(k, m - 1)`` values of k vectors on the later terms' effects and on beta (for
    :func:`inverse_quadratic_forms`): ``X`` in beta's columns and, per later term, ``(rows, cols, values)``
    with ``values[a]`` placed at ``(rows[a], cols[a])``.  A dense array for dense storage; a sparse one
    with blocks, whose trailing solve keeps the random-effects rows sparse."""
    k, p = X.shape
    if cp.blocks is None:
        rest = np.zeros((k, cp.m - 1))
        rest[:, cp.q_rest :] = X
        for rows, cols, values in entries:
            rest[rows[:, None], cols] = values
        return rest
    row_index = [np.repeat(np.arange(k), p)] + [np.repeat(rows, cols.shape[1]) for rows, cols, _ in entries]
    col_index = [np.tile(cp.q_rest + np.arange(p), k)] + [cols.ravel() for _, cols, _ in entries]
    values = [X.ravel()] + [v.ravel() for _, _, v in entries]
    return scipy.sparse.csr_matrix((np.concatenate(values), (np.concatenate(row_index), np.concatenate(col_index))),
                                   shape=(k, cp.m - 1))


def inverse_quadratic_forms(f: BlockedFactor, first_codes: np.ndarray, first_values: np.ndarray,
                            rest_values: np.ndarray, include_X: bool = True) -> np.ndarray:
    """``v_i' (L_a L_a')^{-1} v_i`` for k vectors ``v_i`` on the ``[u_1; u_r; beta]`` system, by forward solves.

    ``L_a`` is L without its y row and column, so ``L_a L_a'`` is the matrix of
    the mixed-model equations ``[[Lambda'Z'Z Lambda + I, Lambda'Z'X], [X'Z Lambda, X'X]]``
    and ``sigma^2`` times the result is the variance of ``v' [u; beta]`` given
    theta.  With ``w = L_a^{-1} v`` the form is ``|w|^2``, and (blocks as in
    :mod:`.factor`, ``L21 = Lr' A21 blockdiag(D_j)``)::

        w_1 = L11_j^{-1} v_1                     (the one level j of term 1 that v_i touches)
        w_2 = L22a^{-1} (v_2 - Lr' A21_j D_j w_1)

    Nothing ``q x q`` is formed; the work is ``O(k m^2)`` for the trailing block.
    With ``include_X=False`` the forms are of the random-effects block alone,
    ``v_u' (Lambda'Z'Z Lambda + I)^{-1} v_u``: the first ``q`` rows of the forward
    solve, which do not involve beta's rows (L is lower triangular).

    Parameters
    ----------
    f : BlockedFactor
    first_codes : ndarray of int (k,)
        The level of the first term that ``v_i`` touches; ``-1`` for none.
    first_values : ndarray (k, p1)
        ``v_i``'s entries at that level (ignored where the code is -1).
    rest_values : ndarray or sparse matrix (k, m - 1)
        ``v_i``'s entries on the later terms' effects and on beta (:func:`rest_values_of`).
    """
    cp = f.cp
    k = first_codes.shape[0]
    seen = first_codes >= 0
    j = first_codes[seen]
    w1 = np.zeros((k, cp.p1))
    if seen.any():
        w1[seen] = np.linalg.solve(f.L11[j], first_values[seen][:, :, None])[:, :, 0]
    s = np.einsum("kab,kb->ka", f.D1[j], w1[seen])          # D_j w_1
    rows = (j[:, None] * cp.p1 + np.arange(cp.p1)).ravel()
    cols = np.repeat(np.flatnonzero(seen), cp.p1)
    E = scipy.sparse.csr_matrix((s.ravel(), (rows, cols)), shape=(cp.l1 * cp.p1, k))
    upto = cp.m - 1 if include_X else cp.q_rest
    if scipy.sparse.issparse(rest_values) and f.blocks is None:
        rest_values = rest_values.toarray()
    if f.blocks is not None and upto:   # the random-effects rows stay sparse (:mod:`.trailing`)
        return np.einsum("ka,ka->k", w1, w1) + f.blocks.forward_norms(cp.A21 @ E, rest_values, upto)
    G = np.asarray((cp.A21 @ E).todense())[:-1]              # A21_j D_j w_1, y row dropped
    if cp.q_rest:
        G = left_scale(G, f.Ts[1:], cp.rest_offsets, cp.rest_levels)
    if upto == 0:
        return np.einsum("ka,ka->k", w1, w1)
    w2 = scipy.linalg.solve_triangular(f.L22[:upto, :upto], rest_values.T[:upto] - G[:upto], lower=True,
                                       check_finite=False)
    return np.einsum("ka,ka->k", w1, w1) + np.einsum("ik,ik->k", w2, w2)
