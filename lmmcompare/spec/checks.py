"""Data checks and cleaning done once, before any design matrix is built.

Nothing here mutates the user's frame: every function returns a new one.
"""
from __future__ import annotations

import difflib
import warnings

import numpy as np
import pandas as pd

from ..errors import DataError, DroppedRowsWarning, FormulaError


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


def _plain_column(col: pd.Series) -> pd.Series:
    """Nullable extension dtypes become numpy float or object columns (NA -> NaN/None)."""
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return col
    if pd.api.types.is_bool_dtype(dtype) and not isinstance(dtype, np.dtype):
        return col.astype(object).where(col.notna(), None)
    if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, np.dtype):
        return col.astype("float64")
    return col


def complete_rows(data: pd.DataFrame, used: list[str]) -> tuple[pd.DataFrame, int]:
    """Return the used columns with missing or infinite-free rows kept.

    Rows with a missing value in any used column are dropped with a
    :class:`DroppedRowsWarning` that says how many; infinite values are an error.
    """
    frame = pd.DataFrame({c: _plain_column(data[c]) for c in used}, index=data.index)
    for c in used:
        col = frame[c]
        if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            if np.isinf(col.to_numpy(dtype=float, na_value=np.nan)).any():
                raise DataError(
                    f"column {c!r} contains infinite values; remove or replace them before fitting"
                )
    missing = frame.isna().any(axis=1).to_numpy()
    n_drop = int(missing.sum())
    if n_drop == len(frame):
        bad = [c for c in used if frame[c].isna().all()]
        detail = f" (all missing: {', '.join(repr(c) for c in bad)})" if bad else ""
        raise DataError(f"no rows left after dropping rows with missing values in the model's columns{detail}")
    if n_drop:
        per_col = {c: int(frame[c].isna().sum()) for c in used if frame[c].isna().any()}
        warnings.warn(
            f"dropped {n_drop} of {len(frame)} rows with missing values "
            f"({', '.join(f'{c}: {k}' for c, k in per_col.items())})",
            DroppedRowsWarning,
            stacklevel=4,
        )
        frame = frame.loc[~missing]
    return frame, n_drop


def response_vector(values, name: str) -> np.ndarray:
    """Check and return the response as a float vector."""
    series = pd.Series(values) if not isinstance(values, pd.Series) else values
    if pd.api.types.is_bool_dtype(series.dtype):
        raise DataError(f"response {name!r} is boolean; a linear mixed model needs a numeric response")
    if not pd.api.types.is_numeric_dtype(series.dtype):
        raise DataError(
            f"response {name!r} is not numeric (dtype {series.dtype}); convert it, "
            f"e.g. pandas.to_numeric(data[{name!r}])"
        )
    y = series.to_numpy(dtype=float)
    if np.ptp(y) == 0:
        raise DataError(f"response {name!r} is constant (every value is {y[0]!r}); there is nothing to model")
    return y
