"""Analytic gradient of the profiled deviance / REML criterion in theta.

With ``M`` the system matrix (``Lambda'Z'Z Lambda + I`` for ML, the whole
``[u; beta]`` matrix for REML) and ``E_k = dLambda/dtheta_k``::

    d log|M| / d theta_k = 2 tr(M^{-1} Lambda~' A E_k)
    d r^2    / d theta_k = -2 e' Z E_k u            (envelope theorem)

where ``e = y - X beta - Z Lambda u``.  ``E_k`` is the unit matrix at entry
``(a, b)`` of ``T_i`` in every level block, so only the diagonal blocks
``Q_j`` of ``M^{-1} Lambda~' A`` are needed: ``Q_j = (I - C_j) T_i^{-1}`` with
``C_j`` the diagonal blocks of ``M^{-1}``.  For the first term this is
rewritten without ``T_1^{-1}`` (stable at the boundary)::

    Q_j = M_j^{-1} T1' [A11_j - (Y_j + Y_j')(T1 T1' A11_j + I)^{-1}]

A later term with a (near) zero diagonal in ``T_i`` (a singular covariance, as
maximal models often have) cannot use ``T_i^{-1}``; there ``Q_j`` is read off
its defining product instead: with ``B`` the trailing cross-products with the
first term eliminated (:func:`~lmmcompare.core.factor.schur_cross_products`) and ``H`` the
inverse of the trailing system ``Lambda~' B Lambda~ + I``,
``Q = (H Lambda~' B)_{ii}`` (its diagonal blocks over term i's levels), which
equals ``(I - C) T_i^{-1}`` where ``T_i`` is invertible.  With the trailing block
in blocks (nested designs) H and B are read on their components only
(:func:`~lmmcompare.core.trailing.singular_term_blocks`).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

from .blocks import CrossProducts, Workspace
from .factor import factorize, schur_cross_products, scratch
from .relcovar import apply_lambda, left_scale, lower_index
from .solve import diagonal_blocks, inverse_blocks, solve_modes
from .trailing import singular_term_blocks

_TINY = 1e-6


def _zt_residual(cp: CrossProducts, b: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``Z'(y - X beta - Z b)`` from the cross-products alone."""
    qr, p, q1 = cp.q_rest, cp.p, cp.l1 * cp.p1
    b1, br = b[:q1], b[q1:]
    first = cp.zty_first - cp.ztx_first.T @ beta - (cp.A11 @ b1.reshape(cp.l1, cp.p1, 1)).ravel()
    if not qr:  # a single term
        return first
    first -= cp.A21_re_T @ br
    if cp.blocks is not None:  # sparse A22
        rest_cols = cp.A22_re_rest
        rest = rest_cols[:, -1] - rest_cols[:, :p] @ beta - cp.A21_re @ b1 - cp.A22_re @ br
        return np.concatenate([first, rest])
    rest = (cp.A22[:qr, -1] - cp.A22[:qr, qr : qr + p] @ beta
            - cp.A21_re @ b1 - cp.A22[:qr, :qr] @ br)
    return np.concatenate([first, rest])


def _sum_blocks(Q: np.ndarray) -> np.ndarray:
    """``sum_j Q_j[b, a]`` for each lower-triangle entry (a, b) of T, column-major."""
    p = Q.shape[-1]
    rows, cols = lower_index(p)
    total = Q.sum(axis=0)
    return total[cols, rows]


def logdet_gradient(f, include_X: bool, workspaces: Workspace | None = None):
    """``d logdet / d theta`` at the factor ``f``.

    ``logdet`` is ``log|L_theta|^2`` (plus ``log|L_X|^2`` with ``include_X``, REML).
    ``workspaces`` (a :class:`~lmmcompare.core.blocks.Workspace`) lends two scratch
    arrays; without it (None or False) fresh ones are allocated.
    """
    cp = f.cp
    if f.blocks is None and cp.dense_pairs:
        YY, Linv = _dense_pair_forms(f, cp.q_rest + (cp.p if include_X else 0))
        H = None
    else:
        buffers = (scratch(cp, workspaces, 1), scratch(cp, workspaces, 2)) if workspaces else None
        _, H, Y = inverse_blocks(f, include_X=include_X, workspace=buffers)
        YY = Y + np.swapaxes(Y, 1, 2)
    Ts = f.Ts
    # first term: stable form of Q_j
    T1 = Ts[0]
    if cp.p1 == 1:
        lam = T1[0, 0]
        Q1 = (cp.A11 - YY / (lam * lam * cp.A11 + 1.0)) * lam / f.L11**2
    else:
        inner = np.linalg.inv((T1 @ T1.T) @ cp.A11 + np.eye(cp.p1))
        Q1 = f.M1_inv @ T1.T @ (cp.A11 - YY @ inner)
    grads = [2.0 * _sum_blocks(Q1)]
    product = None
    for T, off, n_lev in zip(Ts[1:], cp.rest_offsets, cp.rest_levels):
        p = T.shape[0]
        if np.min(np.diag(T)) <= _TINY and f.blocks is not None:   # on the components (:mod:`.trailing`)
            Q = singular_term_blocks(f.blocks, H, off, n_lev, p, cp.p)
        elif np.min(np.diag(T)) <= _TINY:
            if product is None:
                product = _trailing_product(f, np.tril(Linv.T @ Linv) if H is None else H)
            Q = _term_blocks(product, off, n_lev, p)
        else:
            if H is None:   # dense pairs: H's diagonal blocks are the Gram blocks of L^{-1}'s columns
                C = _column_grams(Linv[:, off : off + n_lev * p], p)
            else:
                C = diagonal_blocks(H, off, n_lev, p)
            Q = (np.eye(p) - C) @ np.linalg.inv(T)
        grads.append(2.0 * _sum_blocks(Q))
    return np.concatenate(grads)


def _column_grams(V: np.ndarray, p: int) -> np.ndarray:
    """``V_j' V_j`` for the consecutive ``p``-column blocks ``V_j`` of ``V``, as an ``(n_blocks, p, p)`` array."""
    blocks = V.reshape(V.shape[0], -1, p).transpose(1, 0, 2)
    return np.swapaxes(blocks, 1, 2) @ blocks


def _dense_pair_forms(f, k: int):
    """``(Y_j + Y_j', L^{-1})`` for dense pairs, ``L`` the trailing factor's first ``k`` rows and columns.

    ``Y_j + Y_j' = A21_j' Lr H Lr' A21_j`` with ``H = (L L')^{-1} = L^{-T} L^{-1}``
    (:func:`~.solve.inverse_blocks`) is the Gram matrix ``V_j' V_j`` of the level-j
    columns of ``V = L^{-1} Lr' A21``; the diagonal blocks of ``H`` are those of
    ``L^{-1}``'s columns.  One triangular inverse and one product replace the
    inverse ``H``, the sandwich ``Lr H Lr'`` and its product with ``A21``
    (maximal crossed design: 0.9 -> 0.45 ms of the gradient's 2.7 ms).
    """
    cp = f.cp
    # L22 is C-ordered lower: its transpose is the Fortran-ordered upper factor, inverted in place of a copy
    Linv_t, info = scipy.linalg.lapack.dtrtri(np.array(f.L22[:k, :k].T, order="F"), lower=0, overwrite_c=1)
    if info:
        raise np.linalg.LinAlgError(f"trtri failed ({info})")
    Linv = Linv_t.T
    scaled = left_scale(cp.A21_dense[:k], f.Ts[1:], cp.rest_offsets, cp.rest_levels)   # Lr' A21
    return _column_grams(Linv @ scaled, cp.p1), Linv


def _trailing_product(f, H: np.ndarray):
    """``(H, Lambda~' B)`` over the trailing rows H covers: the two factors of ``H Lambda~' B`` (module docstring)."""
    cp = f.cp
    k = H.shape[0]
    B = schur_cross_products(f)[:k, :k]
    return H + np.tril(H, -1).T, left_scale(B, f.Ts[1:], cp.rest_offsets, cp.rest_levels)


def _term_blocks(product, offset: int, n_levels: int, p: int) -> np.ndarray:
    """Diagonal ``p x p`` blocks, per level, of ``(H Lambda~' B)`` over one term's rows and columns."""
    Hs, LB = product
    cols = slice(offset, offset + n_levels * p)
    G = Hs[cols, :] @ LB[:, cols]
    blocks = G.reshape(n_levels, p, n_levels, p)
    return blocks[np.arange(n_levels), :, np.arange(n_levels), :]


def rss_gradient(f, u: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``d r^2(beta, theta) / d theta = -2 e' Z E_k u`` at the modes ``u`` for ``beta``.

    ``r^2(beta, theta) = min_u |y - X beta - Z Lambda u|^2 + |u|^2``; by the envelope
    theorem its theta-derivative is that of the bracket with ``u`` held fixed.
    """
    cp = f.cp
    b = apply_lambda(u, f.Ts, [cp.l1] + cp.rest_levels)
    zte = _zt_residual(cp, b, beta if cp.beta_offset is None else beta - cp.beta_offset)
    dr2, start = [], 0
    for T, n_lev in zip(f.Ts, [cp.l1] + cp.rest_levels):
        p = T.shape[0]
        ze = zte[start : start + n_lev * p].reshape(n_lev, p)
        uu = u[start : start + n_lev * p].reshape(n_lev, p)
        rows, cols = lower_index(p)
        dr2.append(-2.0 * (ze.T @ uu)[rows, cols])
        start += n_lev * p
    return np.concatenate(dr2)


def deviance_pieces(cp: CrossProducts, theta: np.ndarray, include_X: bool, workspace: Workspace | None = None):
    """``(f, d logdet, d r^2)``: the factor and the theta-gradients of its two pieces.

    ``logdet`` is ``log|L_theta|^2`` (plus ``log|L_X|^2`` with ``include_X``, REML)
    and ``r^2`` the penalised residual sum of squares; every profiled criterion
    is built from these two.  Raises ``LinAlgError`` where L fails.  With a
    ``workspace`` the factor lives in its buffer: use it before the next evaluation.
    """
    theta = np.asarray(theta, dtype=float)
    f = factorize(cp, theta, scratch(cp, workspace, 0))
    u, beta = solve_modes(f)
    return f, logdet_gradient(f, include_X, workspace), rss_gradient(f, u, beta)


def objective_and_gradient(cp: CrossProducts, theta: np.ndarray, reml: bool, workspace: Workspace | None = None,
                           with_factor: bool = False):
    """Objective and its gradient at ``theta``; ``(inf, nan)`` where L fails (``workspace``: as :func:`deviance_pieces`).

    ``d objective = d logdet + dof d r^2 / r^2`` (``dof = n`` or ``n - p``).  With ``with_factor``
    the factor is returned too (None where L fails), for callers that read more off it.
    """
    theta = np.asarray(theta, dtype=float)
    try:
        f, dlogdet, dr2 = deviance_pieces(cp, theta, include_X=reml, workspace=workspace)
    except np.linalg.LinAlgError:
        failed = np.inf, np.full(theta.shape, np.nan)
        return (*failed, None) if with_factor else failed
    dof = cp.n - cp.p if reml else cp.n
    value, grad = f.objective(reml), dlogdet + dof * dr2 / f.r2
    return (value, grad, f) if with_factor else (value, grad)
