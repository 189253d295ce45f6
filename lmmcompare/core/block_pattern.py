"""The sparsity of the trailing block: when the later terms' random effects split into small blocks.

After the first term is eliminated the trailing block is (:mod:`.factor`)::

    S = A22 - A21 blockdiag(W_j) A21'        (m x m: later terms' r effects, then X, then y)

Its random-effects part ``S_RR`` has a nonzero ``(a, b)`` only where
``(Z_r'Z_r)_ab != 0`` or some level of the first term meets both ``a`` and ``b``
(``A21_R A21_R'``).  The connected components of that pattern (with each
level's ``p_i`` effects joined) split ``S_RR`` into independent diagonal
blocks, and Cholesky makes no fill-in between them.  Nested designs
(``(1 | school/cls)``: the first term is ``cls``, each class in one school)
give one 1 x 1 component per school: the trailing block is an *arrowhead*,
block-diagonal ``R`` bordered by the ``p + 1`` dense rows of X and y.

:class:`BlockPattern` stores ``S`` *packed*, in a vector of length
``sum_c s_c^2 + (p+1) r + (p+1)^2``: each component's ``s_c x s_c`` block
(components of equal size grouped, so batched LAPACK calls factor them), the
``(p+1) x r`` border and the ``(p+1) x (p+1)`` corner.  Nothing ``m x m`` exists.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

BLOCKS_FROM = 150      # smallest m for which the block storage is chosen by itself (measured: dense is as fast below)
FLOP_SAVING = 8        # chosen when the blocks' Cholesky costs at most 1/8 of the dense one


@dataclass(frozen=True, eq=False)
class BlockPattern:
    """The components of the later terms' random effects and the packed layout of the trailing block.

    Attributes
    ----------
    r, nb : int
        Later terms' random effects (``q_rest``); border rows ``p + 1`` (X, then y).
    sizes : list of int
        Component size ``s`` of each group (groups hold all components of one size).
    rows : list of ndarray (n_g, s)
        Trailing row indices of each component, ascending.
    offsets : ndarray (groups + 1,)
        Start of each group's ``n_g s^2`` entries in the packed vector.
    group, slot, loc : ndarray (r,)
        For each random-effect row: its group, component within the group, and position within the component.
    lambda_entries : list of tuple
        Per group ``(slot, i, j, t)``: ``Lambda_c[slot, i, j] = concat(T_k.ravel())[t]``.
    """

    r: int
    nb: int
    sizes: list
    rows: list
    offsets: np.ndarray
    group: np.ndarray
    slot: np.ndarray
    loc: np.ndarray
    lambda_entries: list

    @property
    def border_offset(self) -> int:
        return int(self.offsets[-1])

    @property
    def corner_offset(self) -> int:
        return self.border_offset + self.nb * self.r

    @property
    def size(self) -> int:
        """Length of the packed vector."""
        return self.corner_offset + self.nb * self.nb

    @property
    def largest(self) -> int:
        return max(self.sizes, default=0)

    def re_index(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Packed position of ``(a, b)``, both random-effect rows of one component."""
        s = np.asarray(self.sizes)[self.group[a]]
        return self.offsets[self.group[a]] + self.slot[a] * s * s + self.loc[a] * s + self.loc[b]

    def index(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Packed position of trailing entry ``(i, j)``, ``i >= j`` (lower triangle), on the pattern."""
        i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
        out = np.empty(i.shape, dtype=np.int64)
        re, border = i < self.r, (i >= self.r) & (j < self.r)
        corner = j >= self.r
        out[re] = self.re_index(i[re], j[re])
        out[border] = self.border_offset + (i[border] - self.r) * self.r + j[border]
        out[corner] = self.corner_offset + (i[corner] - self.r) * self.nb + (j[corner] - self.r)
        return out

    def pack(self, A22: sp.spmatrix) -> np.ndarray:
        """The lower triangle of a symmetric sparse ``m x m`` matrix on the pattern, packed."""
        coo = sp.tril(A22).tocoo()
        out = np.zeros(self.size)
        np.add.at(out, self.index(coo.row, coo.col), coo.data)
        return out

    def lambda_blocks(self, g: int, Ts: list) -> np.ndarray:
        """``(n_g, s, s)``: ``Lambda_r`` restricted to each component of group ``g`` (block-diagonal in ``T_k``)."""
        slot, i, j, t = self.lambda_entries[g]
        values = np.concatenate([T.ravel() for T in Ts])
        out = np.zeros((self.rows[g].shape[0], self.sizes[g], self.sizes[g]))
        out[slot, i, j] = values[t]
        return out

    def cholesky_cost_ratio(self) -> float:
        """``sum_c s_c^3 / r^3``: the blocks' Cholesky work relative to a dense one of the random-effects part."""
        cubes = sum(len(rows) * float(s) ** 3 for s, rows in zip(self.sizes, self.rows))
        return cubes / float(self.r) ** 3


def block_pattern(A21_re: sp.csr_matrix, ZrtZr: sp.spmatrix, p1: int, nb: int, rest_sizes: list,
                  rest_offsets: list, rest_levels: list) -> BlockPattern:
    """The components of the pattern of ``Z_r'Z_r`` union ``A21_R A21_R'`` (module docstring).

    ``A21_re`` is ``Z_r' Z_1`` (r rows); the components are found on the bipartite graph of
    random-effect rows and first-term levels, so ``A21_R A21_R'`` itself is never formed.
    """
    r = A21_re.shape[0]
    l1 = A21_re.shape[1] // p1
    a21, zz = A21_re.tocoo(), sp.coo_matrix(ZrtZr)
    tails, heads = [a21.row, zz.row], [r + a21.col // p1, zz.col]
    term_of, level_start = np.empty(r, dtype=np.int64), np.empty(r, dtype=np.int64)
    within = np.empty(r, dtype=np.int64)
    t_start, t_pos = [], 0
    for k, (p, off, n_lev) in enumerate(zip(rest_sizes, rest_offsets, rest_levels)):
        idx = off + np.arange(n_lev * p)
        term_of[idx], within[idx] = k, (idx - off) % p
        level_start[idx] = idx - (idx - off) % p
        tails.append(idx)
        heads.append(level_start[idx])   # a level's p effects belong together (T_k mixes them)
        t_start.append(t_pos)
        t_pos += p * p
    tails, heads = np.concatenate(tails), np.concatenate(heads)
    graph = sp.csr_matrix((np.ones(tails.size), (tails, heads)), shape=(r + l1, r + l1))
    _, labels = connected_components(graph, directed=False)
    labels = np.unique(labels[:r], return_inverse=True)[1].ravel()
    counts = np.bincount(labels)
    order = np.lexsort((np.arange(r), labels))          # rows by component, ascending within
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    group, slot, loc = (np.empty(r, dtype=np.int64) for _ in range(3))
    sizes, rows, offsets, lambda_entries = [], [], [0], []
    sizes_arr, t_start = np.asarray(rest_sizes), np.asarray(t_start)
    for g, s in enumerate(np.unique(counts)):
        comps = np.flatnonzero(counts == s)
        block_rows = order[starts[comps][:, None] + np.arange(s)]
        group[block_rows] = g
        slot[block_rows] = np.arange(comps.size)[:, None]
        loc[block_rows] = np.arange(s)[None, :]
        sizes.append(int(s))
        rows.append(block_rows)
        offsets.append(offsets[-1] + comps.size * int(s) ** 2)
        # Lambda_c[loc(a_u), loc(a_v)] = T_k[u, v] for the effects a_u, a_v of one level of term k
        a = block_rows.ravel()
        p_a = sizes_arr[term_of[a]]
        reps = np.repeat(np.arange(a.size), p_a)
        v = np.arange(reps.size) - np.repeat(np.cumsum(p_a) - p_a, p_a)
        a_u, b = a[reps], level_start[a[reps]] + v
        lambda_entries.append((slot[a_u], loc[a_u], loc[b],
                               t_start[term_of[a_u]] + within[a_u] * p_a[reps] + v))
    return BlockPattern(r=r, nb=nb, sizes=sizes, rows=rows, offsets=np.asarray(offsets, dtype=np.int64),
                        group=group, slot=slot, loc=loc, lambda_entries=lambda_entries)


def use_blocks(pattern: BlockPattern, m: int, dense_limit: int) -> bool:
    """Whether the block storage is chosen by itself: beyond the dense limit, or when it saves
    at least ``FLOP_SAVING`` times the dense Cholesky's work on a trailing block of at least ``BLOCKS_FROM``."""
    if m > dense_limit:
        return True
    return bool(m >= BLOCKS_FROM and pattern.sizes and pattern.cholesky_cost_ratio() * FLOP_SAVING <= 1.0)
