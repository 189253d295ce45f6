"""Coefficient tables and F-tests with Satterthwaite or Kenward-Roger df (lmerTest's
``summary``, ``contest`` and ``anova``)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.stats

from ...arguments import shown
from ...errors import ArgumentError
from .anova_contrasts import anova_contrasts, check_type
from .ddf import satterthwaite_df
from .kenward_roger import kenward_roger_fit, reml_fit

DDF_METHODS = ("satterthwaite", "kenward-roger", "none")


def check_ddf(ddf):
    if not isinstance(ddf, str) or ddf.lower() not in DDF_METHODS:
        raise ArgumentError(f"ddf must be one of {', '.join(DDF_METHODS)}, got {shown(ddf)}")
    return ddf.lower()


def coef_table(fit, ddf: str = "satterthwaite") -> pd.DataFrame:
    """Estimate, se, df, t and p for every fixed effect.

    ``ddf="none"`` gives z-based (normal) p-values with ``df = inf``;
    Kenward-Roger uses its adjusted covariance for the standard errors (an ML
    fit is refitted by REML first, as pbkrtest does, with a warning).
    """
    ddf = check_ddf(ddf)
    fit = reml_fit(fit) if ddf == "kenward-roger" else fit
    p = fit.spec.p
    beta = fit.beta
    if ddf == "kenward-roger":
        kr = kenward_roger_fit(fit)
        se = np.sqrt(np.diag(kr.vcov_adjusted))
        df = np.array([kr.df(np.eye(p)[i]) for i in range(p)])
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
    ddf = check_ddf(ddf)
    fit = reml_fit(fit) if ddf == "kenward-roger" else fit
    p = fit.spec.p
    try:
        L = np.atleast_2d(np.asarray(L, dtype=float))
    except (TypeError, ValueError):
        raise ArgumentError(f"L must be a numeric matrix with {p} columns, got {L!r}") from None
    if L.ndim != 2 or L.shape[1] != p:
        raise ArgumentError(f"L must have {p} columns (one per fixed effect: {', '.join(fit.spec.fixed_names)})")
    if not np.all(np.isfinite(L)):
        raise ArgumentError("L must hold finite numbers")
    if np.linalg.matrix_rank(L) < L.shape[0]:
        raise ArgumentError("the rows of L must be linearly independent")
    _, F, q, df, pval = _f_test(fit, L, ddf)
    return pd.DataFrame({"NumDF": [q], "DenDF": [df], "F value": [F], "Pr(>F)": [pval]})


def _f_test(fit, L, ddf):
    """``(F_unscaled, F, q, df, p)`` for a full-row-rank ``L`` (lmerTest's ``contestMD``).

    Kenward-Roger uses the adjusted covariance and reports pbkrtest's scaled
    ``F = scaling * W / q``; ``F_unscaled = W / q`` gives lmerTest's mean square.
    """
    kr = kenward_roger_fit(fit) if ddf == "kenward-roger" else None
    V = kr.vcov_adjusted if kr is not None else fit.vcov_beta
    est = L @ fit.beta
    q = L.shape[0]
    F0 = F = float(est @ np.linalg.solve(L @ V @ L.T, est)) / q
    if ddf == "satterthwaite":
        df = satterthwaite_df(fit, L)
    elif ddf == "kenward-roger":
        df, scaling = kr.df_scaling(L)
        F = F0 * scaling
    else:
        df = np.inf
    pval = scipy.stats.f.sf(F, q, df) if np.isfinite(df) else scipy.stats.chi2.sf(F * q, q)
    return F0, F, q, df, pval


ANOVA_COLUMNS = ("Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)")


_SQRT_EPS = float(np.sqrt(np.finfo(float).eps))


def _independent_rows(fit, L, eps=_SQRT_EPS):
    """Rotate a rank-deficient ``L`` onto the eigenvectors of ``L V L'`` with positive eigenvalue.

    lmerTest's ``contestMD`` does this (tolerance ``sqrt(eps)`` times the largest
    eigenvalue); a full-rank ``L`` is returned unchanged.
    """
    if L.shape[0] <= 1:
        return L
    d, P = np.linalg.eigh(L @ fit.vcov_beta @ L.T)
    d, P = d[::-1], P[:, ::-1]
    pos = d > max(eps * d[0], 0.0)
    return L if pos.all() else P[:, pos].T @ L


def anova_terms(fit, ddf: str = "satterthwaite", type: str = "III") -> pd.DataFrame:
    """F-test of each fixed-effect term: lmerTest's ``anova(fit, type, ddf)``.

    Parameters
    ----------
    fit : LmerFit
    ddf : {"satterthwaite", "kenward-roger", "none"}
        Denominator df; ``"none"`` gives chi-square p-values (``DenDF = inf``).
    type : {"III", "II", "I"}
        Hypotheses of each term (see
        :mod:`lmmcompare.freq.inference.anova_contrasts`): SAS type III
        (lmerTest's default; it does not depend on the contrast coding), type II
        (each term adjusted for the terms that do not contain it) or sequential
        type I.  ``3, 2, 1`` are accepted too.

    Returns
    -------
    DataFrame
        One row per term, columns ``Sum Sq``, ``Mean Sq``, ``NumDF``, ``DenDF``,
        ``F value``, ``Pr(>F)``.  ``Mean Sq = F sigma^2`` and ``Sum Sq = Mean Sq
        NumDF``, with ``F`` before pbkrtest's scaling for Kenward-Roger (as
        lmerTest).  A term whose columns were all dropped as aliased, or whose
        hypothesis is empty, gets a row of NaN at the end, as in lmerTest.
        ``attrs["heading"]`` names the type and method, ``attrs["hypotheses"]``
        holds each term's contrast matrix (a DataFrame over the fixed effects).
    """
    ddf = check_ddf(ddf)
    type = check_type(type)
    fit = reml_fit(fit) if ddf == "kenward-roger" else fit
    contrasts = anova_contrasts(fit.spec, type)
    rows, labels, empty = [], [], []
    for label, L in contrasts.items():
        L = _independent_rows(fit, L)
        if L.shape[0] == 0:
            empty.append(label)
            continue
        F0, F, q, df, pval = _f_test(fit, L, ddf)
        ms = F0 * fit.sigma**2
        rows.append((ms * q, ms, q, df, F, pval))
        labels.append(label)
    rows += [(np.nan,) * len(ANOVA_COLUMNS)] * len(empty)
    table = pd.DataFrame(rows, index=labels + empty, columns=list(ANOVA_COLUMNS), dtype=float)
    method = {"satterthwaite": "Satterthwaite's", "kenward-roger": "Kenward-Roger's", "none": "no (chi-square)"}[ddf]
    table.attrs["heading"] = f"Type {type} Analysis of Variance Table with {method} method"
    table.attrs["hypotheses"] = {k: pd.DataFrame(v, columns=fit.spec.fixed_names) for k, v in contrasts.items()}
    return table
