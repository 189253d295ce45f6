"""Predictions of a frequentist fit for new rows, as lme4's ``predict.merMod``.

``offset + X beta`` for the new rows, plus ``Z b`` with the conditional modes
of the levels seen in the fit (zero for new levels when allowed).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..arguments import check_bool
from ..errors import ArgumentError, DataError, NewLevelError
from ..spec.checks import prediction_frame
from ..spec.design import rebuild_design
from ..spec.inputs import new_offset


def predict_rows(fit, newdata, re: bool, allow_new_levels: bool, offset) -> np.ndarray:
    """:meth:`LmerFit.predict` (its docstring): ``offset + X beta`` plus, with ``re``, ``Z b`` for new rows."""
    re = check_bool("re", re)
    check_bool("allow_new_levels", allow_new_levels)
    if newdata is None:
        return fit.fitted() if re else fit.spec.working_offset + fit.spec.X @ fit.beta
    if not isinstance(newdata, pd.DataFrame):
        raise ArgumentError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
    spec = fit.spec
    frame, complete = prediction_frame(spec, newdata, with_groups=re)
    X = rebuild_design(spec.fixed, frame, "the fixed-effects model matrix")[:, list(spec.keep_fixed)]
    out = np.full(len(newdata), np.nan)
    out[complete] = X @ fit.beta + new_offset(spec, frame, offset, complete)
    if not re:
        return out
    for t, sl in fit._term_slices():
        missing = [c for c in t.factor.columns if c not in newdata.columns]
        if missing:
            raise DataError(f"newdata lacks grouping column {missing[0]!r} needed by term {t.group!r}")
        codes = t.factor.codes_for(frame)
        new = codes < 0
        if new.any() and not allow_new_levels:
            bad = frame.loc[new, list(t.factor.columns)].astype(str).agg(":".join, axis=1).unique()
            raise NewLevelError(
                f"newdata has level(s) {', '.join(map(repr, bad[:5]))} of {t.group!r} not in the fit; "
                "pass allow_new_levels=True to predict them with zero random effects")
        Xi = rebuild_design(t.design, frame, f"random term for {t.group!r}")
        coef = fit.b[sl].reshape(t.n_levels, t.p)[np.where(new, 0, codes)]
        coef[new] = 0.0
        out[complete] += np.einsum("ij,ij->i", Xi, coef)
    return out
