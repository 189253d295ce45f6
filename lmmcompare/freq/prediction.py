"""Predictions of a frequentist fit, with standard errors and intervals, as lme4's ``predict.merMod``.

``offset + x'beta`` for each row, plus ``z'b`` with the conditional modes of
the levels seen in the fit (zero for new levels when allowed).

Standard errors are lme4's (``se.fit``, lme4 >= 1.1-35): conditional on theta
and sigma, from the joint covariance of the fixed and spherical random effects,
``Cov([u; beta] | theta, sigma) = sigma^2 (L_a L_a')^{-1}`` (``L_a`` the blocked
factor without its y row, :func:`~lmmcompare.core.solve.inverse_quadratic_forms`)::

    se^2 = sigma^2 v'(L_a L_a')^{-1} v,   v = [Lambda'z; x]     (re=True)
    se^2 = x' V_beta x                                          (re=False)

A new level's effect enters as a known zero (lme4 pads its covariance with
zeros), so its rows carry the fixed part's uncertainty and that of the other
terms' known levels.  Intervals are ``fit -/+ z_{(1+level)/2} sqrt(var)``
(normal quantiles: lme4 has no intervals, and the se is conditional on theta
and sigma) with ``var = se^2`` ("confidence") or, for a new observation
("prediction"), ``se^2 + sigma^2 / w + sum_i z_i' Sigma_i z_i`` over the terms
whose effect the prediction does not condition on (all with ``re=False``, the
new levels with ``re=True``); ``w`` is the prior weight on the model frame and 1
on new rows.  With ``sigma_by`` the residual variance of a row is
``(sigma delta_{f(i)})^2 / w``, ``f(i)`` its level of the ``sigma_by`` factor, which
``newdata`` must then hold.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.stats

from ..arguments import check_bool, check_choice, check_level
from ..core.solve import inverse_quadratic_forms, rest_values_of
from ..errors import ArgumentError, DataError
from ..spec.new_rows import PredictionRows, prediction_rows

INTERVALS = ("confidence", "prediction")


def point_predictions(fit, rows: PredictionRows) -> np.ndarray:
    """``offset + X beta + sum_i z_i'b_i`` over the terms with codes (zero for new levels)."""
    out = rows.offset + rows.X @ fit.beta
    for (t, sl), Zi, codes in zip(fit._term_slices(), rows.Zs, rows.codes):
        if codes is None:
            continue
        coef = fit.b[sl].reshape(t.n_levels, t.p)[np.maximum(codes, 0)]
        coef[codes < 0] = 0.0
        out = out + np.einsum("ij,ij->i", Zi, coef)
    return out


def fit_variances(fit, rows: PredictionRows) -> np.ndarray:
    """``se^2`` of each row's prediction (module docstring), in chunks of rows (no q x q array)."""
    if all(c is None for c in rows.codes):
        return np.einsum("kp,pq,kq->k", rows.X, fit.vcov_beta, rows.X)
    f, cp = fit.factor, fit.cp
    k = rows.X.shape[0]
    out = np.empty(k)
    step = max(1, 4_000_000 // cp.largest_dense_block)
    for start in range(0, k, step):
        sl = slice(start, min(k, start + step))
        n = sl.stop - sl.start
        first_codes, first_values, entries = np.full(n, -1), np.zeros((n, cp.p1)), []
        for i, (t, T, Zi, codes) in enumerate(zip(fit.spec.terms, f.Ts, rows.Zs, rows.codes)):
            c = codes[sl]
            seen = c >= 0
            v = Zi[sl] @ T                      # (Lambda'z)' per level: z' T_i
            if i == 0:
                first_codes[seen], first_values[seen] = c[seen], v[seen]
                continue
            cols = cp.rest_offsets[i - 1] + c[seen][:, None] * t.p + np.arange(t.p)
            entries.append((np.flatnonzero(seen), cols, v[seen]))
        out[sl] = inverse_quadratic_forms(f, first_codes, first_values, rest_values_of(cp, rows.X[sl], entries))
    return fit.sigma**2 * out


def residual_variances(fit, rows: PredictionRows) -> np.ndarray:
    """``sigma^2 delta_{f(i)}^2 / w_i`` of each row (``delta = 1`` without ``sigma_by``)."""
    by = fit.spec.sigma_by
    if by is None:
        return fit.sigma**2 / rows.weights
    if rows.residual_codes is None:
        raise DataError(f"newdata lacks column {by.name!r}, the factor of sigma_by: a prediction interval needs "
                        "each row's residual sd, which differs by its level; add the column")
    codes = rows.residual_codes
    if np.any(codes < 0):
        raise DataError(f"newdata has {int(np.sum(codes < 0))} row(s) whose {by.name!r} is not one of the fit's "
                        f"levels ({', '.join(map(str, by.levels))}), so their residual sd is unknown")
    return fit.residual_sd.to_numpy()[codes] ** 2 / rows.weights


def unconditioned_variances(fit, rows: PredictionRows) -> np.ndarray:
    """``sum_i z_i' Sigma_i z_i`` over the terms a row's prediction does not condition on."""
    out = np.zeros(rows.X.shape[0])
    for Zi, codes, cov in zip(rows.Zs, rows.codes, fit.term_covariances()):
        free = np.ones(len(Zi), bool) if codes is None else codes < 0
        out[free] += np.einsum("ka,ab,kb->k", Zi[free], cov, Zi[free])
    return out


def predict_rows(fit, newdata, re: bool, allow_new_levels: bool, offset, se_fit=False, interval=None,
                 level=0.95):
    """:meth:`lmmcompare.LmerFit.predict` (its docstring): an array of predictions, or with ``se_fit`` or
    ``interval`` a DataFrame of ``fit``, ``se`` (and ``lower``, ``upper``)."""
    re = check_bool("re", re)
    check_bool("allow_new_levels", allow_new_levels)
    se_fit = check_bool("se_fit", se_fit)
    if interval is not None:
        check_choice("interval", interval, INTERVALS)
    level = check_level("level", level)
    if newdata is None and offset is not None:
        raise ArgumentError("offset is for newdata's rows; without newdata the model frame's own offset is used")
    if newdata is None and not se_fit and interval is None:
        return fit.fitted() if re else fit.spec.working_offset + fit.spec.X @ fit.beta
    rows = prediction_rows(fit.spec, newdata, re, allow_new_levels, offset, with_z=interval == "prediction")
    out = np.full(len(rows.complete), np.nan)
    out[rows.complete] = point_predictions(fit, rows)
    if not se_fit and interval is None:
        return out
    var = fit_variances(fit, rows)
    table = pd.DataFrame({"fit": out, "se": np.nan}, index=rows.index)
    table.loc[rows.complete, "se"] = np.sqrt(var)
    if interval is not None:
        if interval == "prediction":
            var = var + residual_variances(fit, rows) + unconditioned_variances(fit, rows)
        half = np.full(len(out), np.nan)
        half[rows.complete] = scipy.stats.norm.ppf(0.5 + level / 2) * np.sqrt(var)
        table["lower"], table["upper"] = out - half, out + half
    return table
