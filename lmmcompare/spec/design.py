"""Design matrices through formulaic, named as lme4 names them.

``(Intercept)``, ``SexFemale``, ``recipeB:temp``: formulaic's ``recipe[T.B]``
becomes R's ``recipeB``.  Grouping factors are integer codes plus level names,
with R's level order (categorical order, or sorted values) and unused levels
dropped; an interaction ``a:b`` has levels ``"a1:b1"`` with ``a`` varying
slowest, as R's ``a:b`` gives.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import formulaic
import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from .checks import check_magnitude
from .formula import _split_top

_CONTEXT = {"np": np, "log": np.log, "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs,
            "log10": np.log10, "log2": np.log2, "log1p": np.log1p}
_TREATMENT = re.compile(r"^(.*)\[T\.(.*)\]$")
_FULL_DUMMY = re.compile(r"^(.*)\[(.*)\]$")
_SYNTACTIC_QUOTED = re.compile(r"`([A-Za-z.][A-Za-z0-9_.]*)`")


def r_expression(expr: str) -> str:
    """R's ``^`` inside ``I(...)`` is Python's ``**``."""
    return expr.replace("^", "**")


_DOTTED = re.compile(r"`[^`]*`|(?<![\w.])([A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]*)+)(?![\w.(])")


def quote_names(expr: str) -> str:
    """Backquote R names with dots (``my.var``), which Python would read as attribute access.

    Names already in backquotes, ``np.`` functions and anything followed by
    ``(`` (a function call) are left alone.
    """
    def repl(m):
        name = m.group(1)
        if name is None or name.startswith("np."):
            return m.group(0)
        return f"`{name}`"

    return _DOTTED.sub(repl, expr)


def lme4_name(column: str, power_written: bool = False) -> str:
    """Map one formulaic column name to lme4's coefficient name."""
    parts = []
    for part in _split_top(column, ":"):
        if part == "Intercept":
            parts.append("(Intercept)")
            continue
        match = _TREATMENT.match(part) or _FULL_DUMMY.match(part)
        name = f"{match.group(1)}{match.group(2)}" if match else part
        name = _SYNTACTIC_QUOTED.sub(r"\1", name)  # R writes I(my.var^2), not I(`my.var`^2)
        parts.append(name.replace(" ** ", "^") if power_written else name)
    return ":".join(parts)


@dataclass(frozen=True)
class Design:
    """A model matrix, its lme4 column names and what rebuilds it for new data.

    ``model_spec`` is formulaic's spec; designs made only of an optional
    intercept and numeric columns skip formulaic (``model_spec`` None) and
    rebuild from ``numeric_columns`` directly.
    """

    matrix: np.ndarray
    names: tuple[str, ...]
    model_spec: object  # formulaic.ModelSpec, or None for the numeric fast path
    term_columns: tuple[tuple[str, tuple[int, ...]], ...]  # (term label, column indices)
    numeric_columns: tuple[str, ...] = ()
    intercept: bool = False


def simple_terms(expr: str) -> tuple[bool, list[str]] | None:
    """``(intercept, columns)`` when ``expr`` is ``[0 +|1 +] a + b ...`` of plain names, else None."""
    tokens = [t.strip() for t in _split_top(expr, "+")]
    intercept, names = True, []
    for i, tok in enumerate(tokens):
        if tok in ("0", "1") and i == 0:
            intercept = tok == "1"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", tok) and tok not in names:
            names.append(tok)
        else:
            return None
    return intercept, names


def _numeric_design(expr: str, frame: pd.DataFrame) -> Design | None:
    parsed = simple_terms(expr)
    if parsed is None:
        return None
    intercept, names = parsed
    if not all(n in frame.columns and pd.api.types.is_numeric_dtype(frame[n].dtype)
               and not pd.api.types.is_bool_dtype(frame[n].dtype) for n in names):
        return None
    cols = ([np.ones(len(frame))] if intercept else []) + [frame[n].to_numpy(dtype=float) for n in names]
    labels = (["1"] if intercept else []) + names
    matrix = np.column_stack(cols) if cols else np.zeros((len(frame), 0))
    return Design(matrix=matrix, names=tuple((["(Intercept)"] if intercept else []) + names), model_spec=None,
                  term_columns=tuple((lab, (i,)) for i, lab in enumerate(labels)),
                  numeric_columns=tuple(names), intercept=intercept)


def build_design(expr: str, frame: pd.DataFrame, where: str) -> Design:
    """Evaluate a one-sided formula on ``frame`` (complete rows only).

    Every column must be finite with squares representable in double precision
    (``I(1/x)`` at ``x = 0`` or ``log(x)`` at ``x <= 0`` is a :class:`DataError` naming it).
    """
    design = _numeric_design(expr, frame)
    if design is None:
        try:  # the frame has no missing values: NaN or inf can only come from a transformation, reported below
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                mm = formulaic.model_matrix(r_expression(quote_names(expr)), frame, na_action="ignore",
                                            context=_CONTEXT)
        except Exception as exc:  # formulaic raises many types; the user needs one message
            raise FormulaError(f"cannot build {where} from {expr!r}: {exc}") from exc
        design = design_from_matrix(mm, power_written="^" in expr)
    for j, name in enumerate(design.names):
        check_magnitude(design.matrix[:, j], f"column {name!r} of {where}")
    return design


def design_from_matrix(mm, power_written: bool) -> Design:
    names = tuple(lme4_name(str(c), power_written) for c in mm.columns)
    terms = tuple(
        (str(term), tuple(range(sl.start, sl.stop)))
        for term, sl in mm.model_spec.term_slices.items()
        if sl.stop > sl.start
    )
    matrix = np.asarray(mm.to_numpy() if hasattr(mm, "to_numpy") else mm, dtype=float)
    return Design(matrix=matrix, names=names, model_spec=mm.model_spec, term_columns=terms)


def rebuild_design(design: Design, frame: pd.DataFrame, where: str) -> np.ndarray:
    """The same columns as ``design`` for new data (prediction)."""
    if design.model_spec is None:
        missing = [c for c in design.numeric_columns if c not in frame.columns]
        if missing:
            raise FormulaError(f"cannot build {where} for the new data: column {missing[0]!r} is missing")
        cols = ([np.ones(len(frame))] if design.intercept else []) + [
            pd.to_numeric(frame[c]).to_numpy(dtype=float) for c in design.numeric_columns]
        return np.column_stack(cols) if cols else np.zeros((len(frame), 0))
    try:
        mm = design.model_spec.get_model_matrix(frame, na_action="raise", context=_CONTEXT)
    except Exception as exc:
        raise FormulaError(f"cannot build {where} for the new data: {exc}") from exc
    return np.asarray(mm.to_numpy(), dtype=float)


def _level_label(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _factor_codes(col: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes and level labels of one column, R's level order, unused levels dropped."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cat = col.cat.remove_unused_categories()
        return cat.cat.codes.to_numpy().astype(np.int64), [_level_label(c) for c in cat.cat.categories]
    values = col.to_numpy()
    try:
        uniques, codes = np.unique(values, return_inverse=True)
    except TypeError:  # mixed types: order by their text
        uniques, codes = np.unique(values.astype(str), return_inverse=True)
    return codes.astype(np.int64), [_level_label(u) for u in uniques]


@dataclass(frozen=True)
class GroupingFactor:
    """Integer codes (0-based, one per row) and level names of a grouping factor."""

    name: str
    columns: tuple[str, ...]
    codes: np.ndarray
    levels: tuple[str, ...]

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    def codes_for(self, frame: pd.DataFrame) -> np.ndarray:
        """Codes of new rows; -1 where the level was not seen in the fit."""
        labels = frame[list(self.columns)].astype(object).map(_level_label).agg(":".join, axis=1)
        lookup = {lev: i for i, lev in enumerate(self.levels)}
        return np.array([lookup.get(v, -1) for v in labels], dtype=np.int64)


def grouping_factor(columns: tuple[str, ...], frame: pd.DataFrame) -> GroupingFactor:
    """Build the (interaction) grouping factor of ``columns``; first column slowest."""
    codes = np.zeros(len(frame), dtype=np.int64)
    per_column = []
    for c in columns:
        sub_codes, sub_levels = _factor_codes(frame[c])
        codes = codes * len(sub_levels) + sub_codes
        per_column.append(sub_levels)
    used, dense = np.unique(codes, return_inverse=True)
    parts = []
    for sub_levels in reversed(per_column):  # decode the mixed-radix code, last column fastest
        used, digit = np.divmod(used, len(sub_levels))
        parts.append(np.asarray(sub_levels, dtype=object)[digit])
    levels = tuple(":".join(p) for p in zip(*reversed(parts)))
    name = ":".join(columns)
    if len(levels) < 2:
        raise DataError(
            f"grouping factor {name!r} has a single level ({levels[0]!r}); "
            "a random effect needs at least 2 levels: drop the term or fit fixed effects only"
        )
    return GroupingFactor(name=name, columns=columns, codes=dense.astype(np.int64), levels=levels)
