"""The cross-products of a design's pieces: ``Z_i'Z_j``, ``Z_i'D`` and ``D'D`` with ``D = [X y]``.

:func:`design_cross_products` computes what :func:`lmmcompare.core.blocks.cross_products`
arranges into blocks: ``A21 = W'Z_1`` and the pieces of ``A22 = W'W`` for
``W = [Z_2 ... Z_k D]``.  A small design (``n q <= DENSE_DESIGN_UP_TO`` and a few
columns) gets them by bincounts over the rows (:func:`small_cross_products`), others by
sparse products (:func:`sparse_cross_products`).  Both sum ``Z'D`` and ``D'D`` over the
rows in order, so they agree to the last digit there: the polish of a badly scaled fit
(years as a covariate) depends on those digits.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

DENSE_DESIGN_UP_TO = 50_000  # largest n * q for which the terms' cross-products are dense products

# a small design's cross-products by bincounts up to this many passes over the rows (sleepstudy: 16)
LEVEL_SUMS_UP_TO = 64


def design_cross_products(spec, X1: np.ndarray, D: np.ndarray):
    """``(A21, Z_r'Z_r, Z_r'D, D'D)`` of ``spec`` (``Z_r`` pieces None for a single term), rows weighted as
    ``spec.weighted_rows`` weights them; ``X1`` the first term's weighted columns, ``D`` the weighted ``[X y]``."""
    first, rest = spec.terms[0], spec.terms[1:]
    q = sum(t.q for t in spec.terms)
    if spec.n * q <= DENSE_DESIGN_UP_TO and bincount_passes(spec.terms, D.shape[1]) <= LEVEL_SUMS_UP_TO:
        weighted = [X1] + [spec.weighted_rows(t.design.matrix) for t in rest]
        return small_cross_products(spec.terms, weighted, D)
    return sparse_cross_products([spec.weighted_rows(t.Z) for t in rest], D, spec.weighted_rows(first.Z))


def sparse_cross_products(rest_blocks: list, D: np.ndarray, Z1: sp.csc_matrix):
    """``A21 = W' Z_1`` (CSR, sorted indices) and the pieces ``Z_r'Z_r`` (sparse), ``Z_r'D``, ``D'D`` of
    ``A22 = W' W`` for ``W = [Z_2 ... Z_k D]`` (no ``Z_r`` pieces for a single term).

    The dense columns ``D = [X y]`` enter as a dense array (a sparse copy of
    them costs more than it saves).  ``Z'D`` and ``D'D`` are sparse products, whose
    sums run over the rows in order (``D'D`` by BLAS would round differently).
    """
    DtZ1 = (Z1.T @ D).T
    DtD = sp.csr_matrix(D.T) @ D
    if not rest_blocks:
        return dense_to_csr(DtZ1), None, None, DtD
    Zr = sp.hstack(rest_blocks, format="csc")
    ZrtD = Zr.T @ D
    if Zr.shape[0] * (Zr.shape[1] + Z1.shape[1]) <= DENSE_DESIGN_UP_TO:
        # Z_r'Z_1 and Z_r'Z_r of a small design by BLAS on dense copies: the same numbers (sums of
        # products of the terms' columns) without scipy's per-product overhead (Penicillin 0.66 -> 0.4 ms)
        Zr_dense = Zr.toarray()
        A21 = dense_to_csr(np.vstack([Zr_dense.T @ Z1.toarray(), DtZ1]))
        return A21, dense_to_csr(Zr_dense.T @ Zr_dense), ZrtD, DtD
    A21 = sp.vstack([Zr.T @ Z1, dense_to_csr(DtZ1)], format="csr")
    A21.sort_indices()
    return A21, Zr.T @ Zr, ZrtD, DtD


def level_sums(codes: np.ndarray, n_levels: int, U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """``(n_levels, U's columns, V's columns)``: per level, ``sum_i U_ia V_ib`` over its rows, summed in row
    order, as scipy's sparse products sum (``Z_1' D`` and ``D' D`` of :func:`sparse_cross_products`): the
    same digits, without scipy's construction of sparse matrices (0.4 ms of sleepstudy's 6 ms fit).
    With ``V is U`` the sums are symmetric (``U_ia U_ib = U_ib U_ia`` exactly): the upper triangle is mirrored."""
    out = np.empty((n_levels, U.shape[1], V.shape[1]))
    for a in range(U.shape[1]):
        for b in range(a if V is U else 0, V.shape[1]):
            out[:, a, b] = np.bincount(codes, weights=U[:, a] * V[:, b], minlength=n_levels)
            if V is U:
                out[:, b, a] = out[:, a, b]
    return out


def dense_to_csr(M: np.ndarray) -> sp.csr_matrix:
    """``scipy.sparse.csr_matrix(M)`` for a dense ``M`` (its non-zeros, sorted indices) from its non-zeros found
    once: scipy's constructor from a dense array costs 40 us of a small model's 2.5 ms fit, this 19 us."""
    rows, cols = np.nonzero(M)
    indptr = np.zeros(M.shape[0] + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=M.shape[0]), out=indptr[1:])
    return sp.csr_matrix((M[rows, cols], cols.astype(np.int32), indptr), shape=M.shape)


def _term_pair_sums(a, Xa: np.ndarray, b, Xb: np.ndarray) -> np.ndarray:
    """``Z_a' Z_b`` (dense, ``q_a x q_b``) of two terms by bincounts over their pairs of levels."""
    pair = a.codes.astype(np.int64) * b.n_levels + b.codes
    out = np.empty((a.n_levels, a.p, b.n_levels, b.p))
    for i in range(a.p):
        for j in range(b.p):
            out[:, i, :, j] = np.bincount(pair, weights=Xa[:, i] * Xb[:, j],
                                          minlength=a.n_levels * b.n_levels).reshape(a.n_levels, b.n_levels)
    return out.reshape(a.q, b.q)


def small_cross_products(terms, weighted: list, D: np.ndarray):
    """:func:`sparse_cross_products` of a small design by bincounts (:func:`level_sums`, ``_term_pair_sums``):
    ``Z_1'D``, ``Z_r'D`` and ``D'D`` with the digits of scipy's sparse products, the terms' products
    with those of any exact sum (0/1 columns) and otherwise to rounding; no sparse matrix is built
    but the two the blocks keep (Penicillin's cross-products 1.1 -> 0.5 ms)."""
    nb = D.shape[1]
    first, rest = terms[0], terms[1:]

    def with_D(t, X):   # (q_t, nb): Z_t' D
        return level_sums(t.codes, t.n_levels, D, X).transpose(0, 2, 1).reshape(t.q, nb)

    DtZ1 = with_D(first, weighted[0]).T
    DtD = level_sums(np.zeros(D.shape[0], dtype=np.intp), 1, D, D)[0]
    if not rest:
        return dense_to_csr(DtZ1), None, None, DtD
    ZrtZ1 = np.vstack([_term_pair_sums(t, X, first, weighted[0]) for t, X in zip(rest, weighted[1:])])
    ZrtZr = np.block([[_term_pair_sums(t, X, u, Y) for u, Y in zip(rest, weighted[1:])]
                      for t, X in zip(rest, weighted[1:])])
    ZrtD = np.vstack([with_D(t, X) for t, X in zip(rest, weighted[1:])])
    return dense_to_csr(np.vstack([ZrtZ1, DtZ1])), dense_to_csr(ZrtZr), ZrtD, DtD


def bincount_passes(terms, nb: int) -> int:
    """Passes over the rows :func:`small_cross_products` makes."""
    sizes = [t.p for t in terms]
    return sum(sizes) ** 2 + nb * (sum(sizes) + nb)


def first_block_diagonal(X1: np.ndarray, codes: np.ndarray, l1: int, weights=None) -> np.ndarray:
    """``(l1, p1, p1)``: per level j of the codes, ``X1_j' W_j X1_j`` over the rows of that level (``W = I``
    without ``weights``)."""
    p1 = X1.shape[1]
    A11 = np.empty((l1, p1, p1))
    for a in range(p1):
        for b in range(a + 1):
            products = X1[:, a] * X1[:, b] if weights is None else weights * X1[:, a] * X1[:, b]
            A11[:, a, b] = A11[:, b, a] = np.bincount(codes, weights=products, minlength=l1)
    return A11
