"""Data checks and cleaning done once, before any design matrix is built.

Nothing here mutates the user's frame: every function returns a new one.
"""
from __future__ import annotations

import difflib
import numbers
import warnings

import numpy as np
import pandas as pd
import scipy.linalg

from ..errors import DataError, DroppedRowsWarning, FormulaError, NewLevelError, RankDeficiencyWarning


def check_frame(data) -> pd.DataFrame:
    """Require a non-empty DataFrame."""
    if not isinstance(data, pd.DataFrame):
        raise DataError(
            f"data must be a pandas DataFrame (or a shipped dataset name), got {type(data).__name__}; "
            "wrap arrays with pandas.DataFrame({...})"
        )
    if data.shape[0] == 0:
        raise DataError("data is empty: it has no rows")
    return data


def check_columns(names, data: pd.DataFrame, where: str) -> None:
    """Raise :class:`FormulaError` naming each unknown column, with close matches."""
    columns = [str(c) for c in data.columns]
    for name in sorted(names):
        if name not in columns:
            close = difflib.get_close_matches(name, columns, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise FormulaError(
                f"unknown column {name!r} in {where}{hint} (columns: {', '.join(columns[:20])}"
                f"{', ...' if len(columns) > 20 else ''})"
            )


class FrameColumns(dict):
    """The columns of a model frame by name, each taken from the frame once: building a spec reads a column
    up to four times, and a DataFrame lookup costs about 10 us (pandas 3 keeps no cache of them)."""

    def __init__(self, frame: pd.DataFrame, known: dict | None = None):
        super().__init__(known or {})   # ``known``: columns already at hand, each equal to frame[name]
        self.frame = frame

    def __missing__(self, name):
        column = self[name] = self.frame[name]
        return column


def frame_columns(frame: pd.DataFrame | FrameColumns) -> FrameColumns:
    """The columns of ``frame`` by name: ``frame`` itself where the caller keeps a :class:`FrameColumns`
    (building a spec passes one to every stage), a new one around a DataFrame."""
    return frame if isinstance(frame, FrameColumns) else FrameColumns(frame)


def _plain_column(col: pd.Series) -> pd.Series:
    """Nullable extension dtypes become numpy float or object columns (NA -> NaN/None)."""
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return col
    if isinstance(dtype, pd.StringDtype):  # "string" (pd.NA) and pandas 3's "str": plain Python str
        return col.astype(object).where(col.notna(), None)
    if pd.api.types.is_bool_dtype(dtype) and not isinstance(dtype, np.dtype):
        return col.astype(object).where(col.notna(), None)
    if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, np.dtype):
        return col.astype("float64")
    if dtype == object and pd.api.types.infer_dtype(col, skipna=True) in (
            "floating", "integer", "mixed-integer-float", "decimal"):  # numbers held as Python objects
        return col.astype("float64")
    return col


def _missing(col: pd.Series) -> np.ndarray:
    """Which values of a plain column are missing (as ``isna``, without its overhead for common dtypes)."""
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return col.array.codes < 0
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return np.zeros(len(col), dtype=bool)
    if isinstance(dtype, np.dtype) and dtype.kind in "fc":
        return np.isnan(col.to_numpy())
    return col.isna().to_numpy()


def drop_unused_levels(col: pd.Series) -> pd.Series:
    """R's ``drop.unused.levels`` for a categorical column (the column itself when all levels occur)."""
    counts = np.bincount(col.array.codes, minlength=len(col.dtype.categories))
    return col if counts.all() else col.cat.remove_unused_categories()


def _has_infinite(col: pd.Series) -> bool:
    """Whether a numeric column holds +-inf: a numpy integer column cannot, a numpy float one is read as it is
    (converting it with ``na_value`` cost 70 us a column, a tenth of a small model's spec)."""
    dtype = col.dtype
    if isinstance(dtype, np.dtype):
        return dtype.kind == "f" and bool(np.isinf(col.to_numpy()).any())
    return bool(np.isinf(col.to_numpy(dtype=float, na_value=np.nan)).any())


def complete_rows(data: pd.DataFrame, used: list[str]) -> tuple[pd.DataFrame, int, FrameColumns]:
    """Return the used columns with missing or infinite-free rows kept, how many rows were dropped, and
    the new frame's :class:`FrameColumns` (the columns it was made of: no lookups of them again).

    Rows with a missing value in any used column are dropped with a
    :class:`DroppedRowsWarning` that says how many; infinite values are an error.
    """
    given = {c: data[c] for c in used}
    columns = {c: _plain_column(col) for c, col in given.items()}
    missing = {}
    for c, col in columns.items():
        if (pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype)
                and col.dtype.kind != "c"):  # complex columns are refused by check_column_values
            if _has_infinite(col):
                raise DataError(
                    f"column {c!r} contains infinite values; remove or replace them before fitting"
                )
        missing[c] = _missing(col)
    drop = np.logical_or.reduce(list(missing.values())) if missing else np.zeros(len(data), dtype=bool)
    n_drop = int(drop.sum())
    if n_drop == len(data):
        bad = [c for c in used if missing[c].all()]
        detail = f" (all missing: {', '.join(repr(c) for c in bad)})" if bad else ""
        raise DataError(f"no rows left after dropping rows with missing values in the model's columns{detail}")
    if n_drop:
        per_col = {c: int(m.sum()) for c, m in missing.items() if m.any()}
        warnings.warn(
            f"dropped {n_drop} of {len(data)} rows with missing values "
            f"({', '.join(f'{c}: {k}' for c, k in per_col.items())})",
            DroppedRowsWarning,
            stacklevel=4,
        )
        columns = {c: col[~drop] for c, col in columns.items()}
    for c, col in columns.items():
        if isinstance(given[c].dtype, pd.BooleanDtype):  # no NA left: a plain bool column, as numpy's
            columns[c] = col.astype(bool)
        elif isinstance(col.dtype, pd.CategoricalDtype):
            columns[c] = drop_unused_levels(col)
    index = data.index[~drop] if n_drop else data.index
    # copy=False: no column of the frame is ever modified in place (37 us instead of 62 for three columns)
    frame = pd.DataFrame(columns, index=index, copy=False)
    return frame, n_drop, FrameColumns(frame, columns)


_NOT_MODEL_VALUES = {  # numpy dtype kind -> (what it holds, how to convert column {c!r})
    "M": ("dates or times", "(data[{c!r}] - data[{c!r}].min()).dt.days"),
    "m": ("time differences", "data[{c!r}].dt.total_seconds()"),
    "c": ("complex numbers", "numpy.real(data[{c!r}]) or data[{c!r}].abs()"),
}


def _value_kinds(col: pd.Series) -> set[str]:
    """'number', 'text', 'bool' or the type name of each distinct value of an object column."""
    def kind(v):
        if isinstance(v, (bool, np.bool_)):
            return "bool"
        if isinstance(v, numbers.Real):
            return "number"
        return "text" if isinstance(v, str) else type(v).__name__

    try:
        values = col.unique()
    except TypeError:  # unhashable values (lists, dicts)
        values = col.to_numpy()
    return {kind(v) for v in values}


def check_column_values(frame: pd.DataFrame | FrameColumns, used, predictors) -> None:
    """Every model column must hold numbers or labels, and a predictor's labels must be genuine.

    Dates, time differences, complex numbers and Python objects such as lists are errors
    naming the column; so is a column mixing numbers and text (``1`` and ``"1"`` would be
    conflated or split arbitrarily).  A text predictor whose values are all numbers is
    almost always a data-entry accident (R would silently make it a factor with one level
    per distinct value).  Categorical columns are factors whatever their labels.
    """
    for c in used:
        col = frame[c]
        dtype = col.dtype
        kind = dtype.kind if isinstance(dtype, np.dtype) else None
        if kind in _NOT_MODEL_VALUES or isinstance(dtype, (pd.DatetimeTZDtype, pd.PeriodDtype, pd.IntervalDtype)):
            what, how = _NOT_MODEL_VALUES.get(kind, (f"values of dtype {dtype}", "data[{c!r}].astype(str)"))
            raise DataError(f"column {c!r} holds {what} (dtype {dtype}); a model column must hold real numbers or "
                            f"labels: convert it, e.g. with {how.format(c=c)}")
        if dtype != object:
            continue
        kinds = _value_kinds(col)
        if "number" in kinds and "text" in kinds:
            raise DataError(
                f"column {c!r} mixes numbers and text; clean it, e.g. pandas.to_numeric(data[{c!r}], "
                f"errors='coerce') turns the non-numbers into missing values, or data[{c!r}].astype(str) makes "
                "all of them labels")
        if c not in predictors:
            continue
        odd = kinds - {"text", "bool", "number"}
        if odd:
            raise DataError(f"column {c!r} holds values of type {', '.join(sorted(odd))}; a predictor must hold "
                            "numbers or labels")
        if kinds == {"text"} and pd.to_numeric(col, errors="coerce").notna().all():
            raise DataError(
                f"column {c!r} holds numbers stored as text; convert it with pandas.to_numeric(data[{c!r}]) "
                f"for a numeric predictor, or with data[{c!r}].astype('category') for a factor")


def check_magnitude(values: np.ndarray, what: str) -> None:
    """Finite values whose squares neither overflow nor underflow in double precision."""
    finite = np.isfinite(values)
    if not finite.all():
        rows = np.flatnonzero(~finite.reshape(len(values), -1).all(axis=1))
        raise DataError(f"{what} has {rows.size} non-finite value(s) (first in row {rows[0]} of the model frame), "
                        "e.g. from a division by zero or the log of a value <= 0: transform or drop them")
    top = float(np.max(np.abs(values))) if values.size else 0.0
    if top > 1e150 or 0 < top < 1e-150:
        raise DataError(f"{what} has values of magnitude {top:.3g}, whose squares do not fit in double "
                        "precision: rescale it")


def response_vector(values, name: str) -> np.ndarray:
    """Check and return the response as a float vector."""
    series = pd.Series(values) if not isinstance(values, pd.Series) else values
    if pd.api.types.is_bool_dtype(series.dtype) or (
            series.dtype == object and series.map(lambda v: isinstance(v, (bool, np.bool_))).all()):
        raise DataError(f"response {name!r} is boolean; a linear mixed model needs a numeric response")
    if not pd.api.types.is_numeric_dtype(series.dtype):
        if series.map(lambda v: isinstance(v, str)).all() and pd.to_numeric(series, errors="coerce").notna().all():
            raise DataError(f"response {name!r} holds numbers stored as text; convert it with "
                            f"pandas.to_numeric(data[{name!r}])")
        raise DataError(
            f"response {name!r} is not numeric (dtype {series.dtype}); convert it, "
            f"e.g. pandas.to_numeric(data[{name!r}])"
        )
    if series.dtype.kind == "c":
        raise DataError(f"response {name!r} holds complex numbers; a linear mixed model needs a real response")
    y = series.to_numpy(dtype=float)
    check_magnitude(y, f"response {name!r}")
    if np.ptp(y) == 0:
        raise DataError(f"response {name!r} is constant (every value is {y[0]:g}); there is nothing to model")
    return y


def prediction_frame(spec, newdata: pd.DataFrame, with_groups: bool) -> tuple[pd.DataFrame, np.ndarray]:
    """The complete rows of ``newdata``'s model columns as plain columns, and which rows they are.

    A predictor column that ``newdata`` lacks is a :class:`DataError` (a missing
    grouping column is named by the caller).  Rows with a missing value are counted in a
    :class:`DroppedRowsWarning` (their predictions are NaN); a level of a
    fixed-effect factor that the fit never saw is a :class:`NewLevelError`.
    """
    absent = [c for c in spec.predictors if c not in newdata.columns]
    if absent:
        raise DataError(f"newdata lacks column {absent[0]!r} that the model uses "
                        f"(predictors: {', '.join(spec.predictors)})")
    cols = list(spec.predictors)
    if with_groups:
        cols += [c for f in spec.factors.values() for c in f.columns if c in newdata.columns and c not in cols]
    frame = pd.DataFrame({c: _plain_column(newdata[c]) for c in cols}, index=newdata.index)
    complete = ~frame.isna().any(axis=1).to_numpy()
    if not complete.all():
        per_col = {c: int(frame[c].isna().sum()) for c in cols if frame[c].isna().any()}
        warnings.warn(f"{int((~complete).sum())} of {len(frame)} rows of newdata have missing values "
                      f"({', '.join(f'{c}: {k}' for c, k in per_col.items())}); their predictions are NaN",
                      DroppedRowsWarning, stacklevel=3)
        frame = frame.loc[complete]
    for c in spec.predictors:
        if c not in frame.columns:
            continue
        fitted = spec.frame[c]
        if pd.api.types.is_bool_dtype(fitted.dtype):
            frame[c] = frame[c].astype(bool)
        elif not pd.api.types.is_numeric_dtype(fitted.dtype):
            known = fitted.cat.categories if isinstance(fitted.dtype, pd.CategoricalDtype) else fitted.unique()
            new = sorted(set(map(str, frame[c].unique())) - set(map(str, known)))
            if new:
                raise NewLevelError(
                    f"newdata has level(s) {', '.join(map(repr, new[:5]))} of factor {c!r} not in the fit "
                    f"(levels: {', '.join(map(str, list(known)[:10]))}); a fixed effect has no estimate for them")
            if isinstance(frame[c].dtype, pd.CategoricalDtype):  # the fit's levels decide, not newdata's
                frame[c] = frame[c].astype(object)
    return frame, complete


def check_sizes(spec) -> None:
    """lme4's checks: levels < observations and ``l_i p_i`` < observations for every term; and p < n."""
    if spec.p >= spec.n:
        raise DataError(
            f"the fixed-effects model matrix has {spec.p} columns ({', '.join(spec.fixed_names[:6])}"
            f"{', ...' if spec.p > 6 else ''}) for {spec.n} observations; the residual variance needs more "
            "observations than fixed effects: remove fixed-effect terms (is a numeric column stored as text "
            "or as a factor with one level per row?)")
    for t in spec.terms:
        if t.n_levels >= spec.n:
            raise DataError(
                f"grouping factor {t.group!r} has {t.n_levels} levels for {spec.n} observations; "
                "the number of levels of each grouping factor must be < the number of observations "
                "(one observation per level makes the random effect indistinguishable from the residual)")
    for t in spec.terms:  # lme4's check.nobs.vs.nRE = "stop", term by term (checkZdims)
        if t.q >= spec.n:
            raise DataError(
                f"number of observations (={spec.n}) <= number of random effects (={t.q}) for term "
                f"({t.expr} | {t.group}); the random-effects parameters and the residual variance (or scale "
                "parameter) are probably unidentifiable: simplify the term or use a grouping factor with fewer levels")


def full_rank_columns(fixed, tol: float = 1e-7) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Keep a full-rank subset of X's columns, as lme4's ``chkRank.drop.cols``.

    R's ``qr(X, LAPACK = FALSE)`` (LINPACK ``dqrdc2``, tolerance 1e-7) pivots
    only to move a column that is (numerically) a combination of the columns
    before it to the end: columns are taken in order and a later aliased
    column is dropped, never an earlier one.  Here each column is kept when
    its residual after projecting out the kept columns has norm above
    ``tol`` times its own norm (a zero column is always dropped).
    """
    X = fixed.matrix
    if X.shape[1] == 0:
        return (), ()
    norms = np.linalg.norm(X, axis=0)
    if X.shape[0] >= X.shape[1] and norms.all():
        # |R_jj| of Householder QR (columns in order) is column j's residual norm after projecting out the
        # columns before it: when every column passes, all are kept (the common case, in one LAPACK call)
        qr = scipy.linalg.lapack.dgeqrf(X)[0]
        if np.all(np.abs(np.diagonal(qr)) > tol * norms):
            return tuple(range(X.shape[1])), ()
    keep, basis = [], np.zeros((X.shape[0], 0))
    for j in range(X.shape[1]):
        r = X[:, j].copy()
        for _ in range(2):  # Gram-Schmidt twice is orthogonal to working precision
            r -= basis @ (basis.T @ r)
        rnorm = float(np.linalg.norm(r))
        if norms[j] > 0 and rnorm > tol * norms[j]:
            keep.append(j)
            basis = np.column_stack([basis, r / rnorm])
    keep = tuple(keep)
    dropped = tuple(fixed.names[i] for i in range(X.shape[1]) if i not in keep)
    if dropped:
        warnings.warn(
            f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
            f"column{'s' if len(dropped) > 1 else ''}: {', '.join(dropped)}",
            RankDeficiencyWarning, stacklevel=4)
    return keep, dropped
