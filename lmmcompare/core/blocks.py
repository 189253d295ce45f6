"""Cross-products of [Z X y], computed once per model.

The first term (most levels) is kept block-diagonal: ``A11`` holds the
``l_1`` blocks ``Z_1j' Z_1j`` of size ``p_1 x p_1``.  The remaining rows
``W = [Z_2 ... Z_k X y]`` (``m`` columns) give the sparse ``A21 = W' Z_1``
and the small dense ``A22 = W' W``.

Per evaluation the engine needs ``S = A21 D D' A21'`` where ``D`` is
block-diagonal (one ``p_1 x p_1`` block per level).  ``S`` is linear in the
entries of the blocks ``D_j D_j'``, so it is ``K @ vec(D_j D_j')`` for a sparse
``K`` built here once: each column of ``K`` pairs two nonzeros of ``A21`` in
the same level block.  One sparse matrix-vector product then replaces a
sparse-sparse product per evaluation.

K has ``sum_j r_j (r_j + 1) / 2 * p_1^2`` entries (``r_j`` the rows of
``A21`` that level j of the first term touches), which grows as ``m^2`` when
every level meets every later level: a maximal crossed design (56 subjects x
32 items, ``p = 4`` each) has 7.7 million, 7 ms a product.  There
:attr:`CrossProducts.dense_pairs` switches to the dense products
``B = A21 blockdiag(D_j)``, ``S = B B'`` (``m^2 l_1 p_1`` flops by BLAS: 0.3 ms).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.linalg
import scipy.sparse as sp

try:  # y += A x without allocating y (scipy's own kernel behind A @ x)
    from scipy.sparse._sparsetools import csc_matvec
except ImportError:  # pragma: no cover - a future scipy may move it
    def csc_matvec(n_row, n_col, indptr, indices, data, x, y):
        y += sp.csc_matrix((data, indices, indptr), shape=(n_row, n_col)) @ x

from ..spec import ModelSpec
from .block_pattern import BLOCKS_FROM, BlockPattern, block_pattern, use_blocks
from .design_products import design_cross_products, first_block_diagonal

DENSE_LIMIT = 6_000  # largest m for which the trailing block is stored dense
PAIRS_DENSE_FROM = 50_000   # K entries from which the dense products are considered (small models keep K's digits)
PAIRS_FLOP_RATIO = 20       # a BLAS flop costs about 1/20 of a sparse entry visited (measured, 2-core x86)
PAIRS_DENSE_MAX = 5_000_000  # largest dense A21 (m * l1 * p1 entries) held for the dense products


@dataclass(frozen=True, eq=False)
class CrossProducts:
    """Blocks of ``[Z X y]'[Z X y]`` in the layout the blocked Cholesky uses.

    Immutable and shareable (between a devfun, its fit and threads): the
    derived blocks below are cached once (``cached_property``, pure functions
    of the fields), and the scratch arrays of evaluations live in a separate
    :class:`Workspace`.

    Attributes
    ----------
    p1, l1 : int
        Columns and levels of the first term.
    A11 : ndarray (l1, p1, p1)
    A21 : csr_matrix (m, l1 * p1)
    A22 : ndarray (m, m), or csr_matrix (m, m) with ``blocks``
    rest_sizes, rest_levels, rest_offsets : list of int
        ``p_i``, ``l_i`` and row offset of each later term inside ``m``.
    q_rest, p : int
        Random effects of the later terms; fixed effects.  ``m = q_rest + p + 1``.
    beta_offset : ndarray (p,)
        The blocks hold ``y - X beta_offset`` in place of ``y`` (``beta_offset`` the
        least-squares coefficients of y on X): the criterion and the random effects
        are unchanged, beta is shifted by ``beta_offset`` (added back by
        :func:`~lmmcompare.core.solve.solve_modes`), and ``r^2`` no longer loses
        digits to ``y'y`` when y has a large mean (``y -> a y + b`` invariance).
    blocks : BlockPattern or None
        Set when the trailing block is stored in blocks (:mod:`.block_pattern`, nested designs):
        then ``A22`` is sparse and ``K`` maps onto the packed layout.  None: the dense ``m x m`` block.
    """

    p1: int
    l1: int
    A11: np.ndarray
    A21: sp.csr_matrix
    A22: np.ndarray
    rest_sizes: list
    rest_levels: list
    rest_offsets: list
    q_rest: int
    p: int
    n: int
    beta_offset: np.ndarray
    log_weights: float = 0.0   # sum_i log w_i of prior weights: -2 log L gains -log_weights (lmmcompare.spec.inputs)
    blocks: BlockPattern | None = None

    @property
    def m(self) -> int:
        """Size of the trailing block: later terms' random effects, then X, then y."""
        return self.q_rest + self.p + 1

    @cached_property
    def K(self) -> sp.csc_matrix:
        """(m * m, l1 * p1 * p1): ``(K @ vec(W)).reshape(m, m)`` is the lower triangle of ``A21 W A21'``.

        With ``blocks``, ``(packed size, l1 * p1 * p1)``: ``K @ vec(W)`` is that lower triangle packed.
        """
        if self.blocks is not None:
            return _pair_structure(self.A21, self.l1, self.p1, self.m, self.blocks.index, self.blocks.size)
        return _pair_structure(self.A21, self.l1, self.p1, self.m)

    @property
    def largest_dense_block(self) -> int:
        """Order of the largest dense matrix an evaluation factors: ``m``, or with blocks the largest
        component plus the X and y rows (what decides whether BLAS threads can help)."""
        return self.m if self.blocks is None else self.blocks.largest + self.p + 1

    @cached_property
    def A22_re_rest(self) -> np.ndarray:
        """``Z_r'[X y]`` (q_rest x (p + 1)) as a dense array, read off the sparse ``A22`` of blocks once."""
        return self.A22[: self.q_rest, self.q_rest :].toarray()

    @cached_property
    def A22_re(self) -> sp.csr_matrix:
        """``Z_r'Z_r``, the sparse ``A22``'s random-effects block (blocks only)."""
        return self.A22[: self.q_rest, : self.q_rest]

    @cached_property
    def A22_packed(self) -> np.ndarray:
        """The lower triangle of the sparse ``A22`` in the packed layout of ``blocks``."""
        return self.blocks.pack(self.A22)

    @cached_property
    def dense_pairs(self) -> bool:
        """Whether ``A21 W A21'`` and its adjoint are cheaper as dense products than through K (module docstring)."""
        dense = self.m * self.l1 * self.p1
        if self.l1 * self.p1 * self.p1 * self.m * (self.m + 1) // 2 < PAIRS_DENSE_FROM:
            return False  # K cannot reach PAIRS_DENSE_FROM entries: r_j <= m (saves counting them, 0.1 ms)
        entries = _pair_count(self.A21, self.l1, self.p1)
        return (entries >= PAIRS_DENSE_FROM and dense <= PAIRS_DENSE_MAX
                and dense * self.m < PAIRS_FLOP_RATIO * entries)

    @cached_property
    def A21_blocks(self) -> np.ndarray:
        """A21 as a dense (l1, m, p1) array, one ``m x p1`` block per level: the dense products' operand."""
        return np.ascontiguousarray(self.A21_dense.reshape(self.m, self.l1, self.p1).transpose(1, 0, 2))

    @cached_property
    def A21_dense(self) -> np.ndarray:
        """A21 as a dense (m, l1 * p1) array (the dense products' other layout)."""
        return self.A21.toarray()

    @cached_property
    def lower_mask(self) -> np.ndarray:
        """``m x m`` booleans, True on and below the diagonal: ``A22 * lower_mask`` is ``tril(A22)`` in one
        pass, without keeping a second 8 m^2-byte copy of A22 (32 MB on a 2,000-item crossed design)."""
        return np.tri(self.m, dtype=bool)

    @cached_property
    def A21_re(self) -> sp.csr_matrix:
        """``Z_r' Z_1``: the random-effects rows of A21."""
        return self.A21[: self.q_rest]

    @cached_property
    def A21_T(self) -> sp.csr_matrix:
        return self.A21.T.tocsr()

    @cached_property
    def A21_re_T(self) -> sp.csr_matrix:
        return self.A21_re.T.tocsr()

    @property
    def K_T(self) -> sp.csr_matrix:
        """``K'`` in CSR form (the gradient's ``K' vec(G)``): the transpose of K's CSC arrays, no copy."""
        return self.K.T

    @cached_property
    def ztx_first(self) -> np.ndarray:
        """``X' Z_1`` (p x q1)."""
        return self.A21[self.q_rest : self.q_rest + self.p].toarray()

    @cached_property
    def zty_first(self) -> np.ndarray:
        """``Z_1' y``."""
        return self.A21[-1].toarray().ravel()


class Workspace:
    """Scratch ``m x m`` arrays that objective evaluations reuse, one set per thread.

    Kept apart from the immutable :class:`CrossProducts`: a factor built in a
    workspace buffer is valid until the next evaluation with the same workspace
    in the same thread, and never escapes an evaluation that returns numbers.
    Threads sharing one workspace each get their own buffers, so an objective
    holding one is re-entrant across threads.  Pickles as its size only.
    """

    def __init__(self, m: int):
        self.m = int(m)
        self._local = threading.local()

    def buffer(self, slot: int) -> np.ndarray:
        """The calling thread's ``m x m`` array number ``slot`` (allocated on first use)."""
        buffers = self._local.__dict__.setdefault("buffers", {})
        if slot not in buffers:
            buffers[slot] = np.empty((self.m, self.m))
        return buffers[slot]

    def __reduce__(self):
        return Workspace, (self.m,)


def _pair_count(A21: sp.csr_matrix, l1: int, p1: int) -> int:
    """Entries of K without building it: ``sum_j r_j (r_j + 1) / 2 * p1^2`` (module docstring)."""
    coo = A21.tocoo()
    touched = np.unique(coo.col // p1 * A21.shape[0] + coo.row) // A21.shape[0]
    r = np.bincount(touched, minlength=l1).astype(np.int64)
    return int(np.sum(r * (r + 1) // 2) * p1 * p1)


def _pair_structure(A21: sp.csr_matrix, l1: int, p1: int, m: int, index=None, n_rows=None) -> sp.csc_matrix:
    """Sparse K (m*m rows) with ``vec(lower(S)) = K @ vec(W_j)``, ``S = sum_j A21_j W_j A21_j'``.

    The rows of K index the flattened ``m x m`` matrix, so ``(K @ w).reshape(m, m)``
    is the lower triangle of ``S`` with no scatter step.  With ``index`` (a map of
    ``(i, j)``, ``i >= j``, to ``n_rows`` positions) its rows are those positions instead.

    K is built column by column in CSC form (its columns are the levels' ``p1 x p1``
    entries, which the pairs come in order of), so ``K.T`` is its CSR transpose without a
    copy, and the indices are 32-bit: on a crossed 20,000 x 2,000 design (3.5 million
    entries) building K and K' peaked at 218 + 101 MB through COO and CSR copies, and now
    at about half of that.
    """
    coo = A21.tocoo()
    level, within = np.divmod(coo.col.astype(np.int32), np.int32(p1))
    order = np.lexsort((coo.row, level))
    rows, level, within, vals = coo.row[order].astype(np.int32), level[order], within[order], coo.data[order]
    del coo, order
    counts = np.bincount(level, minlength=l1)
    block_start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
    index_in_block = np.arange(rows.size, dtype=np.int32) - block_start[level]
    # pairs (e1, e2) in one level block with row(e2) <= row(e1); with p1 == 1 the rows
    # in a block are distinct and sorted, so e2 runs over the block up to e1 itself
    per_entry = index_in_block + 1 if p1 == 1 else counts[level].astype(np.int32)
    first = np.repeat(np.arange(rows.size, dtype=np.int32), per_entry)
    second = np.arange(first.size, dtype=np.int32)
    second -= np.repeat((np.cumsum(per_entry, dtype=np.int64) - per_entry).astype(np.int32), per_entry)
    second += block_start[level[first]]
    if p1 > 1:
        keep = rows[first] >= rows[second]
        first, second = first[keep], second[keep]
    row_first, row_second = rows[first], rows[second]
    if index is None:   # m <= DENSE_LIMIT: m * m fits 32 bits
        flat, n_rows = row_first * np.int32(m) + row_second, m * m
    else:
        flat = index(row_first, row_second)
    del row_first, row_second
    data = vals[first] * vals[second]
    column = level[first] * np.int32(p1 * p1)
    if p1 > 1:
        column += within[first] * np.int32(p1) + within[second]
        order = np.argsort(column, kind="stable")
        column, flat, data = column[order], flat[order], data[order]
    indptr = np.zeros(l1 * p1 * p1 + 1, dtype=np.int64 if flat.size >= 2**31 else np.int32)
    np.cumsum(np.bincount(column, minlength=l1 * p1 * p1), out=indptr[1:])
    return sp.csc_matrix((data, flat.astype(indptr.dtype, copy=False), indptr), shape=(n_rows, l1 * p1 * p1))


def _trailing_storage(first, rest, A21, ZrtZr, ZrtD, DtD, trailing: str):
    """``(A22, blocks)``: dense ``A22`` and None, or sparse ``A22`` and its :class:`BlockPattern` (nested
    designs, :mod:`.block_pattern`); ``trailing`` is ``"auto"``, ``"dense"`` or ``"blocks"``."""
    from ..errors import ArgumentError, DataError

    if trailing not in ("auto", "dense", "blocks"):
        raise ArgumentError(f"trailing must be 'auto', 'dense' or 'blocks', not {trailing!r}")
    nb = DtD.shape[0]
    q_rest = 0 if ZrtZr is None else ZrtZr.shape[0]
    m = q_rest + nb
    pattern = None
    if q_rest and (trailing == "blocks" or (trailing == "auto" and m >= BLOCKS_FROM)):   # below: dense by use_blocks
        offsets = np.cumsum([0] + [t.q for t in rest])[:-1].tolist()
        pattern = block_pattern(A21[:q_rest], ZrtZr, first.p, nb, [t.p for t in rest], offsets,
                                [t.n_levels for t in rest])
        if trailing == "auto" and not use_blocks(pattern, m, DENSE_LIMIT):
            pattern = None
    largest = m if pattern is None else pattern.largest + nb
    if largest > DENSE_LIMIT:
        coupled = "" if pattern is None else f", {pattern.largest} of them coupled in one block"
        raise DataError(
            f"the random-effects terms after {first.group!r} have {q_rest} random effects in all{coupled}; "
            f"a coupled block of more than {DENSE_LIMIT - nb} is beyond the dense factor this engine stores. "
            "Put the grouping factor with most levels first or reduce the later terms")
    if pattern is None:
        A22 = DtD if not q_rest else np.block([[ZrtZr.toarray(), ZrtD], [ZrtD.T, DtD]])
        return A22, None
    A22 = sp.bmat([[ZrtZr, sp.csr_matrix(ZrtD)], [sp.csr_matrix(ZrtD.T), sp.csr_matrix(DtD)]], format="csr")
    return A22, pattern


def cross_products(spec: ModelSpec, trailing: str = "auto") -> CrossProducts:
    """Compute the blocks once for ``spec``: of ``W^{1/2} [Z X (y - offset)]`` with prior weights ``W``
    and an offset (:mod:`lmmcompare.spec.inputs`), of ``[Z X y]`` without.

    ``trailing`` stores the trailing block dense (``"dense"``), in blocks (``"blocks"``,
    :mod:`.block_pattern`) or as its sparsity makes cheaper (``"auto"``).  Raises
    :class:`~lmmcompare.errors.DataError` when one coupled block exceeds ``DENSE_LIMIT``."""
    first, rest = spec.terms[0], spec.terms[1:]
    X = spec.weighted_rows(spec.X)
    X1 = spec.weighted_rows(first.design.matrix)
    offset, y = shifted_response(X, spec.working_response)
    D = np.column_stack([X, y]) if spec.p else y[:, None]
    A21, ZrtZr, ZrtD, DtD = design_cross_products(spec, X1, D)
    A22, blocks = _trailing_storage(first, rest, A21, ZrtZr, ZrtD, DtD, trailing)
    offsets, pos = [], 0
    for t in rest:
        offsets.append(pos)
        pos += t.q
    return CrossProducts(
        p1=first.p, l1=first.n_levels,
        A11=first_block_diagonal(X1, first.codes, first.n_levels),
        A21=A21, A22=A22,
        rest_sizes=[t.p for t in rest], rest_levels=[t.n_levels for t in rest], rest_offsets=offsets,
        q_rest=pos, p=spec.p, n=spec.n, beta_offset=offset, log_weights=spec.log_weights, blocks=blocks)


def shifted_response(X: np.ndarray, y: np.ndarray, least_squares=None) -> tuple[np.ndarray, np.ndarray]:
    """``(beta_offset, y - X beta_offset)`` with ``beta_offset`` the least-squares coefficients of y on X
    (:class:`CrossProducts`), by one step of iterative refinement: the difference is accurate to rounding.
    ``least_squares(r)``: the coefficients of ``r`` on X (default ``numpy.linalg.lstsq``)."""
    offset = np.zeros(X.shape[1])
    if X.shape[1]:
        for _ in range(2):
            step = np.linalg.lstsq(X, y, rcond=None)[0] if least_squares is None else least_squares(y)
            offset, y = offset + step, y - X @ step
    return offset, y


def least_squares_on(X: np.ndarray):
    """``r -> argmin_b |r - X b|`` for one X, from its pivoted QR made once (many responses, one design):
    ``b = P R^{-1} Q' r`` over the ``k`` columns R's diagonal keeps, the others 0 (a minimum-residual
    solution when X is rank deficient, as ``lstsq``'s)."""
    Q, R, perm = scipy.linalg.qr(X, mode="economic", pivoting=True)
    d = np.abs(np.diag(R))
    k = int(np.sum(d > d[0] * max(X.shape) * np.finfo(float).eps)) if d.size and d[0] > 0 else 0
    Qk, Rk, keep = Q[:, :k], R[:k, :k], perm[:k]

    def solve(r):
        b = np.zeros(X.shape[1])
        b[keep] = scipy.linalg.solve_triangular(Rk, Qk.T @ r, check_finite=False)
        return b
    return solve


class ResponseRows:
    """:func:`response_row` of new responses for one design, without the design's cross-products again.

    The row of ``y`` is ``[Z' y~, X' y~, y~' y~, beta_offset]`` with ``y~ = W^{1/2}(y - offset) - X beta_offset``
    (weights and offset as in :func:`cross_products`): one sparse and one dense product per response.
    """

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.X = spec.weighted_rows(spec.X)
        self.Zt = sp.hstack([spec.weighted_rows(t.Z) for t in spec.terms], format="csc").T.tocsr()
        self.least_squares = least_squares_on(self.X) if self.X.shape[1] else None

    def __call__(self, y: np.ndarray) -> np.ndarray:
        offset, shifted = shifted_response(self.X, self.spec.with_response(y).working_response, self.least_squares)
        return np.concatenate([self.Zt @ shifted, self.X.T @ shifted, [shifted @ shifted], offset])


def response_row(cp: CrossProducts) -> np.ndarray:
    """The entries of the blocks that depend on y, as one vector.

    ``[Z_1' y~, (A22's y row), beta_offset]`` with ``y~ = y - X beta_offset``:
    two designs that differ only in y differ only here (:func:`with_response_row`).
    """
    y_row = cp.A22[-1] if cp.blocks is None else cp.A22[-1].toarray().ravel()
    return np.concatenate([cp.A21[-1].toarray().ravel(), y_row, cp.beta_offset])


def with_response_row(cp: CrossProducts, row: np.ndarray) -> CrossProducts:
    """``cp`` with the response of :func:`response_row` ``row`` in place of its own (same design)."""
    q1, m = cp.l1 * cp.p1, cp.m
    A21 = sp.vstack([cp.A21[:-1], sp.csr_matrix(row[None, :q1])], format="csr")
    A21.sort_indices()
    if cp.blocks is None:
        A22 = cp.A22.copy()
        A22[-1], A22[:, -1] = row[q1 : q1 + m], row[q1 : q1 + m]
    else:  # the y row and column replaced in the sparse A22
        old = cp.A22.tocoo()
        keep = (old.row < m - 1) & (old.col < m - 1)
        line, last = np.arange(m), np.full(m - 1, m - 1)
        A22 = sp.csr_matrix((np.concatenate([old.data[keep], row[q1 : q1 + m], row[q1 : q1 + m - 1]]),
                             (np.concatenate([old.row[keep], np.full(m, m - 1), line[:-1]]),
                              np.concatenate([old.col[keep], line, last]))), shape=(m, m))
    return CrossProducts(
        p1=cp.p1, l1=cp.l1, A11=cp.A11, A21=A21, A22=A22, rest_sizes=cp.rest_sizes,
        rest_levels=cp.rest_levels, rest_offsets=cp.rest_offsets, q_rest=cp.q_rest, p=cp.p, n=cp.n,
        beta_offset=np.array(row[q1 + m :]), log_weights=cp.log_weights, blocks=cp.blocks)
