"""Design matrices, named as lme4 names them.

Plain formulas are built directly (:mod:`.terms`), others by formulaic; both
name columns and terms as formulaic does, and the names are then mapped to R's:
``(Intercept)``, ``SexFemale``, ``recipeB:temp``: formulaic's ``recipe[T.B]``
becomes R's ``recipeB``.  Grouping factors are integer codes plus level names,
with R's level order (categorical order, or sorted values) and unused levels
dropped; an interaction ``a:b`` has levels ``"a1:b1"`` with ``a`` varying
slowest, as R's ``a:b`` gives.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from functools import cached_property

import formulaic
import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from .checks import FrameColumns, check_magnitude, drop_unused_levels, frame_columns, response_vector
from .contrasts import coded_expression, r_coded_name
from .formula import _split_top
from .formula_checks import formula_error
from .terms import direct_columns

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
        if name is None or name.startswith(("np.", "contr.")):  # contr.sum & co. are formulaic's, as R's
            return m.group(0)
        return f"`{name}`"

    return _DOTTED.sub(repl, expr)


def lme4_name(column: str, power_written: bool = False, intercept: bool = False) -> str:
    """Map one formulaic column name to lme4's coefficient name (``intercept``: the intercept's column).

    Only the intercept is ``(Intercept)``: a data column named ``Intercept`` keeps its name, as in R.
    """
    if intercept:
        return "(Intercept)"
    parts = []
    for part in _split_top(column, ":"):
        match = _TREATMENT.match(part) or _FULL_DUMMY.match(part)
        name = f"{match.group(1)}{match.group(2)}" if match else part
        name = _SYNTACTIC_QUOTED.sub(r"\1", name)  # R writes I(my.var^2), not I(`my.var`^2)
        parts.append(name.replace(" ** ", "^") if power_written else name)
    return ":".join(parts)


_NUMBERED_CONTRAST = re.compile(r"^(.*)\[([SH])\.(.*)\]$")


def r_contrast_names(columns) -> list[str]:
    """Number the columns of sum and Helmert contrasts as R does.

    formulaic names them by level (``C(f, contr.sum)[S.p]``); R's
    ``contr.sum`` and ``contr.helmert`` matrices have no column names, so R
    numbers them (``C(f, contr.sum)1``): the k-th column of a factor's contrasts
    is number k, in formulaic's column order.
    """
    seen: dict = {}
    out = []
    for column in columns:
        parts = []
        for part in _split_top(str(column), ":"):
            match = _NUMBERED_CONTRAST.match(part)
            if match:
                levels = seen.setdefault(match.group(1), {})
                number = levels.setdefault(match.group(3), len(levels) + 1)
                part = f"{match.group(1)}[{number}]"
            parts.append(part)
        out.append(":".join(parts))
    return out


@dataclass(frozen=True)
class Design:
    """A model matrix, its lme4 column names and what rebuilds it for new data.

    Attributes
    ----------
    matrix : ndarray (n, k)
    names : tuple of str
        lme4's column names.
    term_columns : tuple of (label, column indices)
        formulaic's term labels (``1``, ``age:Sex``) and their columns.
    term_variables : tuple of tuple of str
        The variables (formulaic's factor expressions) of each term of ``term_columns``.
    categorical : frozenset of str
        The variables coded as factors.
    expr : str
        The one-sided formula the matrix was built from.
    frame : DataFrame
        The rows it was built on.
    formulaic_spec : formulaic.ModelSpec or None
        formulaic's spec, None when the matrix was built directly (:mod:`.terms`).
    context : dict
        Names ``expr`` uses beyond :data:`_CONTEXT`: the contrast objects of coded
        factors (:mod:`.contrasts`), needed again to rebuild the matrix for new data.
    """

    matrix: np.ndarray
    names: tuple[str, ...]
    term_columns: tuple[tuple[str, tuple[int, ...]], ...]
    term_variables: tuple[tuple[str, ...], ...]
    categorical: frozenset = frozenset()
    expr: str = ""
    frame: pd.DataFrame | None = field(default=None, repr=False)
    formulaic_spec: object = field(default=None, repr=False)
    context: dict = field(default_factory=dict, repr=False)

    @property
    def direct(self) -> bool:
        """Built without formulaic (see :mod:`.terms`)."""
        return self.formulaic_spec is None

    @cached_property
    def model_spec(self):
        """formulaic's spec; built on ``frame`` the first time it is needed for a direct design."""
        if self.formulaic_spec is not None:
            return self.formulaic_spec
        return formulaic_design(self.expr, self.frame, "the model matrix").formulaic_spec


def build_design(expr: str, frame: pd.DataFrame | FrameColumns, where: str, codings: dict | None = None) -> Design:
    """Evaluate a one-sided formula on ``frame`` (complete rows only; a DataFrame, or the
    :class:`~.checks.FrameColumns` of one, whose columns are then read once).

    Plain formulas (:func:`.terms.simple_terms`) are built directly, others by
    formulaic (:func:`formulaic_design`); both give the same design.
    ``codings`` (from :func:`.contrasts.resolve_contrasts`) codes those factors
    by their contrasts, with R's names (``recipe1``).  Every
    column must be finite with squares representable in double precision
    (``I(1/x)`` at ``x = 0`` or ``log(x)`` at ``x <= 0`` is a :class:`DataError` naming it).
    """
    columns = frame_columns(frame)
    frame = columns.frame
    cols = None if codings else direct_columns(expr, columns, reserved=_CONTEXT)
    if codings:
        design = _coded_design(expr, frame, where, codings)
    elif cols is None:
        design = formulaic_design(expr, frame, where)
    else:
        _check_intercept_name(cols.columns, bool(cols.categorical), expr)
        design = Design(matrix=cols.matrix,
                        names=tuple(lme4_name(c, intercept=k == 0 and cols.terms[0] == ("1",))
                                    for k, c in enumerate(cols.columns)),
                        term_columns=cols.term_columns, term_variables=cols.terms, categorical=cols.categorical,
                        expr=expr, frame=frame)
    for j, name in enumerate(design.names):
        check_magnitude(design.matrix[:, j], f"column {name!r} of {where}")
    return design


def _coded_design(expr: str, frame: pd.DataFrame, where: str, codings: dict) -> Design:
    """The design with coded factors written ``C(f, coding)`` for formulaic, named back as R names them."""
    coded, context, back = coded_expression(expr, codings)
    design = formulaic_design(coded, frame, where, context)
    return dataclasses.replace(
        design, names=tuple(r_coded_name(n, back) for n in design.names),
        term_columns=tuple((r_coded_name(label, back), cols) for label, cols in design.term_columns),
        term_variables=tuple(tuple(back.get(v, v) for v in term) for term in design.term_variables),
        categorical=frozenset(back.get(v, v) for v in design.categorical))


def formulaic_design(expr: str, frame: pd.DataFrame, where: str, context: dict | None = None) -> Design:
    """The :class:`Design` of ``expr`` on ``frame`` by formulaic (no checks of the values)."""
    context = context or {}
    try:  # the frame has no missing values: NaN or inf can only come from a transformation, reported later
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            mm = formulaic.model_matrix(r_expression(quote_names(expr)), frame, na_action="ignore",
                                        context={**_CONTEXT, **context})
    except Exception as exc:  # formulaic raises many types; the user needs one message
        raise formula_error(f"cannot build {where} from", expr, exc, frame.columns) from exc
    ms = mm.model_spec
    terms = [(term, sl) for term, sl in ms.term_slices.items() if sl.stop > sl.start]
    if sum(sl.stop - sl.start for _, sl in terms) > mm.shape[1]:  # columns of one name kept once
        _check_intercept_name(["Intercept"] * 2, True, expr)
    intercept = {k for term, sl in terms if str(term) == "1" for k in range(sl.start, sl.stop)}
    variables = tuple(tuple(f.expr for f in term.factors) for term, _ in terms)
    kinds = {e: ms.encoder_state.get(e, (None,))[0] for v in variables for e in v}
    return Design(matrix=np.asarray(mm.to_numpy(), dtype=float),
                  names=tuple(lme4_name(c, "^" in expr, k in intercept)
                              for k, c in enumerate(r_contrast_names(mm.columns))),
                  term_columns=tuple((str(term), tuple(range(sl.start, sl.stop))) for term, sl in terms),
                  term_variables=variables,
                  categorical=frozenset(e for e, k in kinds.items() if getattr(k, "value", k) == "categorical"),
                  expr=expr, frame=frame, formulaic_spec=ms, context=context)


def expression_values(expr: str, frame: pd.DataFrame | FrameColumns, where: str = "response") -> np.ndarray:
    """One numeric column from an expression of the frame's columns (the response, an offset); ``frame``: a
    DataFrame or its :class:`~.checks.FrameColumns`."""
    columns = frame_columns(frame)
    name = expr[1:-1] if expr.startswith("`") and expr.endswith("`") else expr
    if name in columns.frame.columns:
        return response_vector(columns[name], name)
    design = build_design(f"0 + I({expr})" if where != "response" else f"0 + {expr}", columns, f"the {where}")
    if design.matrix.shape[1] != 1:
        raise FormulaError(f"{where} {expr!r} must evaluate to one numeric column")
    return response_vector(design.matrix[:, 0], expr)


def _check_intercept_name(columns, by_formulaic: bool, expr: str) -> None:
    """A data column ``Intercept`` beside the intercept: fine in a numeric design built here, not by formulaic.

    formulaic names the intercept's column ``Intercept`` and keys columns by name,
    so the data column replaces the intercept; a design with factors is rebuilt by
    formulaic for prediction.
    """
    if by_formulaic and list(columns).count("Intercept") > 1:
        raise FormulaError(
            f"the data column 'Intercept' in {expr!r} would take the place of the intercept (formulaic, which "
            "builds this model matrix, names the intercept 'Intercept'); rename the column, e.g. "
            "data.rename(columns={'Intercept': 'Intercept_'})")


def rebuild_design(design: Design, frame: pd.DataFrame, where: str) -> np.ndarray:
    """The same columns as ``design`` for new data (prediction).

    A direct design of numeric columns only is rebuilt from the columns; any
    other by formulaic's spec (built on the training rows the first time).
    """
    if design.direct and not design.categorical:
        terms = [(label == "1", term) for (label, _), term in zip(design.term_columns, design.term_variables)]
        needed = dict.fromkeys(v for intercept, term in terms if not intercept for v in term)
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise FormulaError(f"cannot build {where} for the new data: column {missing[0]!r} is missing")
        values = {c: pd.to_numeric(frame[c]).to_numpy(dtype=float) for c in needed}
        cols = [np.ones(len(frame)) if intercept else np.prod([values[v] for v in term], axis=0)
                for intercept, term in terms]
        return np.column_stack(cols) if cols else np.zeros((len(frame), 0))
    try:
        mm = design.model_spec.get_model_matrix(frame, na_action="raise", context={**_CONTEXT, **design.context})
    except Exception as exc:
        raise formula_error(f"cannot build {where} for the new data from", design.expr, exc,
                            frame.columns) from exc
    return np.asarray(mm.to_numpy(), dtype=float)


def _level_label(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _factor_codes(col: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes and level labels of one column, R's level order, unused levels dropped."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cat = drop_unused_levels(col)
        return cat.array.codes.astype(np.int64), [_level_label(c) for c in cat.dtype.categories.tolist()]
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
        # zip over columns, not DataFrame.agg(axis=1), which returns the wrong length for zero rows
        labels = map(":".join, zip(*(frame[c].astype(object).map(_level_label) for c in self.columns)))
        lookup = {lev: i for i, lev in enumerate(self.levels)}
        return np.array([lookup.get(v, -1) for v in labels], dtype=np.int64)


def grouping_factor(columns: tuple[str, ...], frame: pd.DataFrame | FrameColumns) -> GroupingFactor:
    """Build the (interaction) grouping factor of ``columns``; first column slowest (``frame``: a DataFrame
    or its :class:`~.checks.FrameColumns`)."""
    lookup = frame_columns(frame)
    if len(columns) == 1:   # one column's codes are dense already (_factor_codes drops unused levels)
        dense, levels = _factor_codes(lookup[columns[0]])
        levels = tuple(levels)
    else:
        codes = np.zeros(len(lookup.frame), dtype=np.int64)
        per_column = []
        for c in columns:
            sub_codes, sub_levels = _factor_codes(lookup[c])
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
