"""Likelihood-ratio tests between nested fits, as lme4's ``anova(fit_a, fit_b)``."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.stats

from ..arguments import check_bool
from ..errors import ArgumentError, LmmWarning
from .inference import anova_terms
from .inference.anova_contrasts import ANOVA_TYPES, check_type
from .inference.hypotheses import DDF_METHODS, check_ddf
from .result import LmerFit


class RefitMLWarning(LmmWarning):
    """REML fits were refitted by ML before a likelihood-ratio test."""


def _by_name(text: str) -> str:
    """Advice for a string passed where anova expects a fit."""
    try:
        return f"pass the test type by name: anova(fit, type={check_type(text)!r})"
    except ArgumentError:
        pass
    if text.lower() in DDF_METHODS:
        return f"pass the degrees-of-freedom method by name: anova(fit, ddf={text.lower()!r})"
    return (f"pass options by name: type= one of {', '.join(ANOVA_TYPES)}, ddf= one of {', '.join(DDF_METHODS)}; "
            "to compare models pass two or more fits")


def anova(*fits: LmerFit, refit: bool = True, ddf: str = "satterthwaite", type: str = "III") -> pd.DataFrame:
    """Likelihood-ratio test table for two or more nested fits of the same data.

    With a single fit, the F-tests of its fixed-effect terms instead (lmerTest's
    ``anova(fit, type = "III", ddf = "Satterthwaite")``; ``type`` is ``"III"``,
    ``"II"`` or ``"I"`` and ``ddf`` ``"satterthwaite"``, ``"kenward-roger"`` or
    ``"none"``; see :func:`lmmcompare.freq.inference.anova_terms`).  ``ddf``
    and ``type`` are checked but not used for a likelihood-ratio test.

    REML fits are refitted by maximum likelihood first (with a
    :class:`~lmmcompare.freq.anova.RefitMLWarning` saying so), as lme4 does: REML criteria of models
    with different fixed effects are not comparable.

    Returns
    -------
    DataFrame
        Rows in increasing number of parameters; columns ``npar``, ``AIC``,
        ``BIC``, ``logLik``, ``deviance``, ``Chisq``, ``Df``, ``Pr(>Chisq)``.
    """
    check_bool("refit", refit)
    for i, f in enumerate(fits):
        if isinstance(f, str) and i > 0:  # anova(fit, "II"): lmerTest takes type and ddf by name only
            raise ArgumentError(f"argument {i + 1} of anova is the string {f!r}, not an LmerFit; "
                                f"{_by_name(f)}")
        if not isinstance(f, LmerFit):
            raise ArgumentError(f"argument {i + 1} of anova is a {f.__class__.__name__}, not an LmerFit")
    ddf, test_type = check_ddf(ddf), check_type(type)
    if len(fits) == 1:
        return anova_terms(fits[0], ddf, test_type)
    if not fits:
        raise ArgumentError("anova needs one fit (term F-tests) or two or more fits (likelihood-ratio test)")
    n = {f.nobs for f in fits}
    same_y = all(np.array_equal(fits[0].spec.y, f.spec.y) for f in fits[1:])
    if len(n) > 1 or not same_y:
        raise ArgumentError("anova: the models were not all fitted to the same response and rows")
    if refit and any(f.reml for f in fits):
        warnings.warn("refitting model(s) with ML (instead of REML)", RefitMLWarning, stacklevel=2)
        fits = tuple(f.by_criterion(reml=False) for f in fits)
    labels = [f"model{i + 1}" for i in range(len(fits))]
    order = sorted(range(len(fits)), key=lambda i: fits[i].npar)
    rows = []
    prev = None
    for i in order:
        f = fits[i]
        row = {"npar": f.npar, "AIC": f.aic, "BIC": f.bic, "logLik": f.loglik, "deviance": f.objective,
               "Chisq": np.nan, "Df": np.nan, "Pr(>Chisq)": np.nan}
        if prev is not None:
            chisq = max(prev.objective - f.objective, 0.0)
            df = f.npar - prev.npar
            row.update(Chisq=chisq, Df=df, **{"Pr(>Chisq)": scipy.stats.chi2.sf(chisq, df) if df > 0 else np.nan})
        rows.append(row)
        prev = f
    table = pd.DataFrame(rows, index=[labels[i] for i in order])
    table.attrs["formulas"] = {labels[i]: fits[i].spec.formula for i in order}
    return table
