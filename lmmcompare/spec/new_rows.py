"""The design of rows to predict, new or the model frame's: shared by both engines' ``predict``.

For each row: ``x`` (fixed effects), the offset, and per random-effects term its
design row ``z_i`` and level code, negative for a level the fit has not seen
(``-1 - k`` for the k-th such level in order of appearance, so that rows of one
new level share it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ArgumentError, DataError, NewLevelError
from .checks import prediction_frame
from .design import rebuild_design
from .inputs import new_offset


@dataclass(frozen=True)
class PredictionRows:
    """The design of the rows to predict (the complete ones).

    ``complete`` marks them among all rows; ``X`` (k, p) and ``offset`` (k,);
    per random term, its design rows ``Zi`` (k, p_i) and level codes (k,), negative
    for a level not in the fit (module docstring; None when the prediction does not
    use the grouping columns, ``re=False``).
    ``weights`` are the prior weights (1 for new rows); ``residual_codes`` the level of
    ``sigma_by`` of each row (-1 for a level the fit has not seen), None without
    ``sigma_by`` or when ``newdata`` lacks its column.
    """

    complete: np.ndarray
    index: pd.Index
    X: np.ndarray
    offset: np.ndarray
    Zs: list
    codes: list
    weights: np.ndarray
    residual_codes: np.ndarray | None = None


def prediction_rows(spec, newdata, re: bool, allow_new_levels: bool, offset, with_z: bool) -> PredictionRows:
    """The :class:`PredictionRows` of ``newdata`` (the model frame when None); with ``re=False`` the
    terms' design rows only ``with_z`` (empty otherwise: a population-level point prediction needs none)."""
    if newdata is None:
        w = np.ones(spec.n) if spec.weights is None else spec.weights
        return PredictionRows(np.ones(spec.n, bool), spec.frame.index, spec.X, spec.working_offset,
                              [t.design.matrix for t in spec.terms], [t.codes for t in spec.terms], w,
                              None if spec.sigma_by is None else spec.sigma_by.codes)
    if not isinstance(newdata, pd.DataFrame):
        raise ArgumentError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
    frame, complete = prediction_frame(spec, newdata, with_groups=re)
    X = rebuild_design(spec.fixed, frame, "the fixed-effects model matrix")[:, list(spec.keep_fixed)]
    Zs, codes = [], []
    for t in spec.terms:
        if not re:
            Zs.append(rebuild_design(t.design, frame, f"random term for {t.group!r}") if with_z
                      else np.zeros((len(frame), 0)))
            codes.append(None)
            continue
        missing = [c for c in t.factor.columns if c not in newdata.columns]
        if missing:
            raise DataError(f"newdata lacks grouping column {missing[0]!r} needed by term {t.group!r}")
        c = np.array(t.factor.codes_for(frame), dtype=np.int64)
        if (c < 0).any():
            labels = frame.loc[c < 0, list(t.factor.columns)].astype(str).agg(":".join, axis=1)
            if not allow_new_levels:
                raise NewLevelError(
                    f"newdata has level(s) {', '.join(map(repr, labels.unique()[:5]))} of {t.group!r} not in the "
                    "fit; pass allow_new_levels=True to predict them with zero random effects")
            c[c < 0] = -1 - pd.factorize(labels)[0]     # new level k (order of appearance) is -1 - k
        codes.append(c)
        Zs.append(rebuild_design(t.design, frame, f"random term for {t.group!r}"))
    by = spec.sigma_by
    residual_codes = (by.codes_for(newdata.loc[complete]) if by is not None and all(c in newdata.columns for c in
                                                                                   by.columns) else None)
    return PredictionRows(complete, newdata.index, X, new_offset(spec, frame, offset, complete), Zs, codes,
                          np.ones(len(frame)), residual_codes)
