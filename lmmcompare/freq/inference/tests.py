"""Coefficient tables and F-tests with Satterthwaite or Kenward-Roger df (lmerTest's
``summary``, ``contest`` and ``anova``)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.stats

from ...errors import ArgumentError
from .ddf import kenward_roger_df, kenward_roger_vcov, satterthwaite_df

DDF_METHODS = ("satterthwaite", "kenward-roger", "none")


def _check_ddf(ddf):
    if not isinstance(ddf, str) or ddf.lower() not in DDF_METHODS:
        raise ArgumentError(f"ddf must be one of {', '.join(DDF_METHODS)}, got {ddf!r}")
    return ddf.lower()


def coef_table(fit, ddf: str = "satterthwaite") -> pd.DataFrame:
    """Estimate, se, df, t and p for every fixed effect.

    ``ddf="none"`` gives z-based (normal) p-values with ``df = inf``;
    Kenward-Roger uses its adjusted covariance for the standard errors.
    """
    ddf = _check_ddf(ddf)
    p = fit.spec.p
    beta = fit.beta
    if ddf == "kenward-roger":
        se = np.sqrt(np.diag(kenward_roger_vcov(fit)[0]))
        df = np.array([kenward_roger_df(fit, np.eye(p)[i]) for i in range(p)])
    else:
        se = np.sqrt(np.diag(fit.vcov_beta))
        df = (np.array([satterthwaite_df(fit, np.eye(p)[i]) for i in range(p)]) if ddf == "satterthwaite"
              else np.full(p, np.inf))
    t = beta / se
    pval = 2 * scipy.stats.t.sf(np.abs(t), df) if ddf != "none" else 2 * scipy.stats.norm.sf(np.abs(t))
    return pd.DataFrame({"estimate": beta, "se": se, "df": df, "t": t, "p": pval}, index=fit.spec.fixed_names)


def contrast(fit, L, ddf: str = "satterthwaite") -> pd.DataFrame:
    """Test ``L beta = 0`` (lmerTest's ``contest``): a t-test for one row, an F-test for several.

    Parameters
    ----------
    L : array-like (q x p) or (p,)
        Contrast rows over the fixed effects (``fit.spec.fixed_names`` order).
    """
    ddf = _check_ddf(ddf)
    L = np.atleast_2d(np.asarray(L, dtype=float))
    p = fit.spec.p
    if L.shape[1] != p:
        raise ArgumentError(f"L must have {p} columns (one per fixed effect: {', '.join(fit.spec.fixed_names)})")
    if np.linalg.matrix_rank(L) < L.shape[0]:
        raise ArgumentError("the rows of L must be linearly independent")
    V = kenward_roger_vcov(fit)[0] if ddf == "kenward-roger" else fit.vcov_beta
    est = L @ fit.beta
    q = L.shape[0]
    F = float(est @ np.linalg.solve(L @ V @ L.T, est)) / q
    if ddf == "satterthwaite":
        df = satterthwaite_df(fit, L)
    elif ddf == "kenward-roger":
        df = kenward_roger_df(fit, L)
    else:
        df = np.inf
    pval = scipy.stats.f.sf(F, q, df) if np.isfinite(df) else scipy.stats.chi2.sf(F * q, q)
    return pd.DataFrame({"NumDF": [q], "DenDF": [df], "F value": [F], "Pr(>F)": [pval]})


def anova_terms(fit, ddf: str = "satterthwaite") -> pd.DataFrame:
    """F-test of each fixed-effect model term: all of the term's coefficients = 0.

    This is the type III table when the term's columns are the only ones it
    contributes (main effects without interactions, or any term under
    sum-to-zero contrasts); with treatment contrasts and interactions it tests
    the term's coefficients as parameterised.
    """
    names = fit.spec.fixed_names
    rows, labels = [], []
    for label, cols in fit.spec.fixed.term_columns:
        kept = [fit.spec.fixed.names[c] for c in cols if c in fit.spec.keep_fixed]
        if label == "1" or not kept:
            continue
        L = np.zeros((len(kept), len(names)))
        for i, name in enumerate(kept):
            L[i, names.index(name)] = 1.0
        res = contrast(fit, L, ddf)
        rows.append(res.iloc[0])
        labels.append(label)
    return pd.DataFrame(rows, index=labels)
