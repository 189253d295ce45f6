"""Whether two fits hold the same model of the same data (the precondition of a comparison)."""
from __future__ import annotations

import numpy as np


def _sorted_rows(columns: list[np.ndarray]) -> np.ndarray:
    """The rows of ``[c_1 ... c_k]`` in lexicographic order (a canonical order of the observations)."""
    block = np.column_stack(columns)
    return block[np.lexsort(block.T[::-1])]


def _level_ranks(term) -> np.ndarray:
    """Each row's level as its rank among the sorted level names (independent of the factor's level order)."""
    rank = np.argsort(np.argsort(np.asarray(term.levels, dtype=object)))
    return rank[term.codes].astype(float)


def spec_difference(a, b) -> str | None:
    """What differs between two specs, or None when they are the same model of the same data.

    The same model: the same response values ``y``, the same fixed-effects
    columns ``X`` (names and values, in any order) and the same random-effects
    terms (grouping factor, columns, levels, and so the same ``Z`` up to the order
    of the levels), observation by observation up to the order of the rows.  The formula text is not compared: ``y~x+(1|g)``
    and ``y ~ 1 + x + (1 | g)`` are one model.  Each part is compared on the
    rows sorted by everything compared before it, so the first part named is
    the first that differs.
    """
    if a is b:
        return None
    if a.n != b.n:
        return f"number of observations: {a.n} vs {b.n}"
    if a.response != b.response:
        return f"response: {a.response!r} vs {b.response!r}"
    if sorted(a.fixed_names) != sorted(b.fixed_names):
        return f"fixed-effect columns: {', '.join(a.fixed_names)} vs {', '.join(b.fixed_names)}"
    Xb = b.X[:, [b.fixed_names.index(name) for name in a.fixed_names]]
    terms_a = [(t.group, t.columns) for t in a.terms]
    terms_b = [(t.group, t.columns) for t in b.terms]
    if terms_a != terms_b:
        def show(terms):
            return " + ".join(f"({' + '.join(cols)} | {group})" for group, cols in terms)
        return f"random-effects terms: {show(terms_a)} vs {show(terms_b)}"
    for ta, tb in zip(a.terms, b.terms):
        if sorted(ta.levels) != sorted(tb.levels):
            return f"levels of grouping factor {ta.group!r}"
    parts = [("response values y", [a.y], [b.y]),
             ("fixed-effects model matrix X (row by row, with y)", list(a.X.T), list(Xb.T))]
    parts += [(f"random-effects term ({' + '.join(ta.columns)} | {ta.group}) (its grouping of the rows or its "
               "columns, row by row with y and X)", [_level_ranks(ta), *ta.design.matrix.T],
               [_level_ranks(tb), *tb.design.matrix.T]) for ta, tb in zip(a.terms, b.terms)]
    cols_a, cols_b = [], []
    for what, more_a, more_b in parts:
        cols_a += more_a
        cols_b += more_b
        if not np.array_equal(_sorted_rows(cols_a), _sorted_rows(cols_b)):
            return what
    return None
