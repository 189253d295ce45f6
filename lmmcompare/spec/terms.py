"""Model matrices of plain formulas without formulaic.

Most fixed parts are terms of plain column names: ``1 + age * Sex``,
``recipe * temperature``, ``x + z``.  For those, :func:`direct_columns`
builds the same matrix as ``formulaic.model_matrix`` does, with its column
names and term order, in a fraction of the time.  It returns None for
anything it does not certainly reproduce (functions, ``I(...)``, ``-``
terms, parentheses, factors coded by all their levels, unusual column types),
and the caller falls back to formulaic.

The rules reproduced (formulaic's, which are R's for these formulas):

* ``a * b * c`` expands to every non-empty subset in R's order (``a, b, c,
  a:b, a:c, b:c, a:b:c``); terms are then ordered by degree, stably, after the
  intercept; a repeated term is kept once.
* Numeric and boolean columns enter as their values (``True`` is 1); the
  columns of an interaction are products, the term's first variable varying
  fastest.
* A categorical column has its categories as levels, in their order (unused
  ones included); a text column has its sorted distinct values.  It is
  treatment coded (first level the reference) in every term, which formulaic
  and R do when the model has an intercept and every term containing a
  factor has all its sub-terms in the model (``a * b`` does; ``0 + a`` and
  ``age:Sex`` without ``Sex`` do not, and fall back).
"""
from __future__ import annotations

import itertools
import keyword
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .checks import FrameColumns, frame_columns
from .formula import _split_top

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def simple_terms(expr: str) -> tuple[bool, list[tuple[str, ...]]] | None:
    """``(intercept, terms)`` of a formula of plain names, or None.

    Accepted: ``[0 + | 1 +] t + t ...`` with each ``t`` a name, ``a:b:...``
    or ``a*b*...`` of distinct names.  Terms are tuples of names in formula
    order, expanded and ordered as formulaic orders them (by degree, stably).
    """
    tokens = [t.strip() for t in _split_top(expr, "+")]
    intercept, terms = True, []
    for i, tok in enumerate(tokens):
        if tok in ("0", "1") and i == 0:
            intercept = tok == "1"
            continue
        names = _names(tok, "*")
        if names is not None:
            new = [c for k in range(1, len(names) + 1) for c in itertools.combinations(names, k)]
        else:
            names = _names(tok, ":")
            if names is None:
                return None
            new = [names]
        for term in new:
            same = [u for u in terms if set(u) == set(term)]
            if same and same[0] != term:  # a:b and b:a: leave the naming to formulaic
                return None
            if not same:
                terms.append(term)
    return intercept, sorted(terms, key=len)


def _names(token: str, sep: str) -> tuple[str, ...] | None:
    names = tuple(p.strip() for p in token.split(sep))
    if len(set(names)) == len(names) and all(_NAME.fullmatch(n) for n in names):
        return names
    return None


@dataclass(frozen=True)
class DirectColumns:
    """Columns built without formulaic, named as formulaic names them.

    Attributes
    ----------
    matrix : ndarray (n, k)
    columns : tuple of str
        formulaic's names (``Intercept``, ``Sex[T.Female]``, ``age:Sex[T.Female]``).
    terms : tuple of tuple of str
        Variables of each term, ``("1",)`` for the intercept (as formulaic), in column order.
    term_columns : tuple of (label, column indices)
        formulaic's term labels (``1``, ``age:Sex``) and their columns.
    categorical : frozenset of str
        The variables coded as factors.
    """

    matrix: np.ndarray
    columns: tuple[str, ...]
    terms: tuple[tuple[str, ...], ...]
    term_columns: tuple[tuple[str, tuple[int, ...]], ...]
    categorical: frozenset


def _variable(col: pd.Series) -> tuple[np.ndarray, list | None] | None:
    """``(values, None)`` of a numeric column, ``(codes, levels)`` of a factor, None otherwise."""
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return col.array.codes, dtype.categories.tolist()
    if pd.api.types.is_bool_dtype(dtype) or (pd.api.types.is_numeric_dtype(dtype) and dtype.kind in "iuf"):
        return col.to_numpy(dtype=float), None
    if dtype in ("object", "str"):  # formulaic's test for text (not pandas' NA-based "string" dtype)
        if pd.api.types.infer_dtype(col, skipna=False) != "string":
            return None
        cat = col.astype("category")  # as formulaic: the sorted distinct values
        return cat.array.codes, cat.dtype.categories.tolist()
    return None


def _treatment_coded(intercept: bool, terms: list[tuple[str, ...]], categorical: set[str]) -> bool:
    """Whether every factor is treatment coded in every term (R's rule, see the module docstring)."""
    if not categorical:
        return True
    present = {frozenset(t) for t in terms} | ({frozenset()} if intercept else set())
    for term in terms:
        if categorical & set(term):
            subsets = (frozenset(s) for k in range(len(term)) for s in itertools.combinations(term, k))
            if not all(s in present for s in subsets):
                return False
    return True


def direct_columns(expr: str, frame: pd.DataFrame | FrameColumns, reserved=()) -> DirectColumns | None:
    """formulaic's model matrix of ``expr`` on ``frame``, or None where it is not certainly the same.

    Parameters
    ----------
    expr : str
        One-sided formula (no ``~``).
    frame : DataFrame or FrameColumns
        Complete rows, or their columns by name (:class:`~.checks.FrameColumns`).
    reserved : collection of str
        Names formulaic could read otherwise (its evaluation context): a model
        with factors, which is rebuilt by formulaic for new data, avoids them.
    """
    parsed = simple_terms(expr)
    if parsed is None:
        return None
    intercept, terms = parsed
    columns = frame_columns(frame)
    frame = columns.frame
    variables = {}
    for name in dict.fromkeys(v for t in terms for v in t):
        if name not in frame.columns:
            return None
        variables[name] = _variable(columns[name])
        if variables[name] is None:
            return None
    categorical = {v for v, (_, levels) in variables.items() if levels is not None}
    if categorical and any(keyword.iskeyword(v) or v in reserved for v in variables):
        return None
    if not _treatment_coded(intercept, terms, categorical):
        return None
    n = len(frame)
    blocks, names, term_columns = ([np.ones((n, 1))], ["Intercept"], [("1", (0,))]) if intercept else ([], [], [])
    kept = [("1",)] if intercept else []
    for term in terms:
        block, cols = _term_block(term, variables, n)
        if not cols:  # a factor with one level: no columns, and formulaic lists no term
            continue
        term_columns.append((":".join(term), tuple(range(len(names), len(names) + len(cols)))))
        kept.append(term)
        blocks.append(block)
        names.extend(cols)
    matrix = np.hstack(blocks) if blocks else np.zeros((n, 0))
    return DirectColumns(matrix=matrix, columns=tuple(names), terms=tuple(kept),
                         term_columns=tuple(term_columns),
                         categorical=frozenset(v for t in kept for v in t if v in categorical))


def _term_block(term: tuple[str, ...], variables: dict, n: int) -> tuple[np.ndarray, list[str]]:
    """Columns of one term: numeric values multiplied in term order, then each factor's contrasts."""
    numeric = np.ones(n)
    first = True
    block, names = None, [""]
    for v in term:
        values, levels = variables[v]
        if levels is None:
            numeric = values if first else numeric * values
            first = False
            names = [f"{name}:{v}" for name in names]
            continue
        dummies = values[:, None] == np.arange(1, len(levels))[None, :]  # treatment: level 0 is the reference
        block = dummies if block is None else (block[:, None, :] & dummies[:, :, None]).reshape(n, -1)
        names = [f"{name}:{v}[T.{lev}]" for lev in levels[1:] for name in names]
    names = [name[1:] for name in names]
    if block is None:
        return numeric[:, None], names
    return (block * numeric[:, None]) if not first else block.astype(float), names
