"""The inputs beside the formula: prior weights, offsets, subsets and missing values (lme4's ``lmer`` arguments).

With prior weights ``w_i`` the residual variance of row ``i`` is
``sigma^2 / w_i`` and an offset ``o_i`` is a known part of the linear
predictor::

    y = o + X beta + Z b + e,    e ~ N(0, sigma^2 W^{-1}),    W = diag(w).

Multiplying each row by ``sqrt(w_i)`` gives an unweighted model in
``(W^{1/2}(y - o), W^{1/2} X, W^{1/2} Z)`` whose log density differs from the
weighted one by the constant ``(1/2) sum_i log w_i`` (the Jacobian), which is
how lme4 (``lmResp``'s ``ldW``) and the core evaluate it.

Weights and offsets given as arrays are carried through ``subset`` and the
missing-value rule as columns of the model frame, named as R names them
(``(weights)``, ``(offset)``), then removed from it.
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

from ..errors import ArgumentError, DataError, DroppedRowsWarning
from .design import expression_values
from .formula import _split_top

INPUT_DEFAULTS = {"weights": None, "offset": None, "contrasts": None, "subset": None, "na_action": "omit",
                  "sigma_by": None}
WEIGHTS = "(weights)"
OFFSET = "(offset)"
NA_ACTIONS = ("omit", "fail")
_OFFSET_TERM = re.compile(r"^offset\s*\((.*)\)$", re.S)


def split_offsets(fixed: str) -> tuple[str, list[str]]:
    """The fixed part without its ``offset(...)`` terms, and the expressions inside them.

    ``"Days + offset(log(x))"`` gives ``("Days", ["log(x)"])``; a fixed part of
    offsets only keeps the intercept (``"1"``), as in R.
    """
    kept, offsets = [], []
    for piece in _split_top(fixed, "+"):
        match = _OFFSET_TERM.match(piece.strip())
        (offsets.append(match.group(1).strip()) if match else kept.append(piece.strip()))
    if not offsets:
        return fixed, []
    return (" + ".join(kept) if kept else "1"), offsets


def apply_subset(data: pd.DataFrame, subset) -> pd.DataFrame:
    """The rows ``subset`` keeps: a boolean mask of ``len(data)`` or a ``DataFrame.query`` string."""
    if subset is None:
        return data
    if isinstance(subset, str):
        try:
            kept = data.query(subset)
        except Exception as exc:   # pandas raises many types for a bad expression
            raise ArgumentError(f"subset={subset!r} is not a query on the data's columns: {exc}") from exc
    else:
        mask = np.asarray(subset)
        if mask.dtype != bool or mask.shape != (len(data),):
            raise ArgumentError(f"subset must be a query string or a boolean mask of {len(data)} values (one per "
                                f"row of data), got {'dtype ' + str(mask.dtype) if mask.dtype != bool else ''}"
                                f"{' shape ' + str(mask.shape)}")
        kept = data[mask]
    if len(kept) == 0:
        raise DataError(f"subset={subset if isinstance(subset, str) else 'mask'!r} leaves no rows of the "
                        f"{len(data)}; check the condition")
    return kept


def attach_input(data: pd.DataFrame, value, argument: str, column: str) -> tuple[pd.DataFrame, str | None]:
    """``data`` with ``value`` (a column name or one number per row) as column ``column``; the name used.

    Returns ``(data, name)`` with ``name`` the column to read, None when ``value`` is None.
    """
    if value is None:
        return data, None
    if isinstance(value, str):
        if value not in data.columns:
            raise DataError(f"{argument}={value!r} names no column of data; pass a column name or an array with "
                            f"one value per row ({len(data)})")
        values = data[value]
    else:
        values = np.asarray(value)
        if values.ndim != 1 or values.shape[0] != len(data):
            raise DataError(f"{argument} has {values.shape[0] if values.ndim == 1 else values.shape} values; "
                            f"data has {len(data)} rows: pass one value per row (or a column name)")
    if isinstance(values, pd.Series):
        values = values.to_numpy()
    if values.dtype == bool or not (np.issubdtype(values.dtype, np.number) or values.dtype == object):
        raise DataError(f"{argument} must be numeric, got values of dtype {values.dtype}")
    try:
        numbers = pd.to_numeric(pd.Series(values), errors="raise").to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{argument} must be numeric: {exc}") from exc
    return data.assign(**{column: numbers}), column


def check_weights(w: np.ndarray, argument: str) -> None:
    """Negative or infinite prior weights are a :class:`~lmmcompare.errors.DataError` naming ``argument``."""
    bad = ~np.isnan(w) & ((w < 0) | ~np.isfinite(w))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"weights ({argument}) must be finite and non-negative; {int(bad.sum())} are not "
                        f"(the first, at position {i}, is {w[i]!r})")


def check_no_missing(data: pd.DataFrame, used: list[str], na_action: str) -> None:
    """``na_action="fail"``: a :class:`~lmmcompare.errors.DataError` naming the columns with missing values."""
    if na_action not in NA_ACTIONS:
        raise ArgumentError(f"na_action must be one of {', '.join(map(repr, NA_ACTIONS))}, got {na_action!r}")
    if na_action == "omit":
        return
    counts = {c: int(data[c].isna().sum()) for c in used}
    counts = {c: k for c, k in counts.items() if k}
    if counts:
        raise DataError("na_action='fail' and the model's columns have missing values ("
                        + ", ".join(f"{c}: {k}" for c, k in counts.items())
                        + "); remove or impute them, or use na_action='omit' to drop those rows")


def drop_zero_weights(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Rows with weight 0 removed, with a :class:`~lmmcompare.errors.DroppedRowsWarning` (lme4 keeps them and fails)."""
    zero = frame[WEIGHTS].to_numpy() == 0
    if not zero.any():
        return frame, 0
    if zero.all():
        raise DataError("every weight is zero: no rows to fit")
    warnings.warn(f"dropped {int(zero.sum())} of {len(frame)} rows with weight 0 (they carry no information "
                  "about the model; lme4 would keep them and fail)", DroppedRowsWarning, stacklevel=5)
    return frame[~zero], int(zero.sum())


def new_offset(spec, frame: pd.DataFrame, offset, complete) -> np.ndarray | float:
    """The offset of new rows (prediction): the formula's ``offset(...)`` terms evaluated on ``frame``
    (the complete rows of new data) plus ``offset``, the argument's values for every row of new data.
    """
    total = np.zeros(len(frame))
    for expr in spec.offset_terms:
        total += expression_values(expr, frame, "offset(...)")
    if spec.inputs.get("offset") is not None and offset is None:
        raise ArgumentError("the model has an offset argument: pass predict(newdata, offset=...) with one value "
                            "per row of newdata (0 for none)")
    if offset is not None:
        values = np.asarray(offset, dtype=float)
        if values.shape != (len(complete),):
            raise ArgumentError(f"offset has shape {values.shape}; newdata has {len(complete)} rows: give one "
                                "value per row")
        total += values[complete]
    return total


def describe_inputs(spec) -> list[str]:
    """One line per model input a report shows: weights, offset, codings other than R's defaults, sigma_by."""
    out = []
    if spec.weights is not None:
        out.append(f"prior weights (residual variance sigma^2 / w): from {spec.weights.min():.4g} to "
                   f"{spec.weights.max():.4g}")
    if spec.offset is not None:
        terms = [f"offset({t})" for t in spec.offset_terms] + (["the offset argument"] if
                                                                 spec.inputs.get("offset") is not None else [])
        out.append(f"offset: {' + '.join(terms)}")
    codings = {k: ("a matrix" if not isinstance(v, str) else v) for k, v in (spec.inputs.get("contrasts") or {}).items()}
    coded = [f"{k}: {v}" for k, v in codings.items() if v not in ("treatment", "poly")]
    if coded:
        out.append(f"contrasts: {', '.join(coded)}")
    if spec.sigma_by is not None:
        levels = spec.sigma_by.levels
        out.append(f"residual sd by level of {spec.sigma_by.name} ({len(levels)} levels): sigma is level "
                   f"{levels[0]}'s, sigma_ratio_<level> the others' over it")
    return out
