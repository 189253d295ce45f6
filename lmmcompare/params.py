"""One naming scheme for the variance parameters, shared by both engines.

Names follow lme4's ``confint(..., oldNames = FALSE)``: for a term with
columns ``c_1..c_p`` and grouping factor ``g``, the entries of the lower
triangle of its covariance, column by column (theta's order), are named
``sd_c_j|g`` on the diagonal and ``cor_c_i.c_j|g`` below it; the residual
standard deviation is ``sigma``.  Where two terms on one factor would repeat a
name (``(x | g) + (1 | g)``, which lme4 labels alike), the later term's names
carry lme4's ``VarCorr`` label ``g.1`` instead (:attr:`lmmcompare.spec.RandomTerm.parameter_group`).
"""
from __future__ import annotations

import numpy as np

from .core.relcovar import lower_index


def term_parameter_names(columns, group) -> list[str]:
    """Names of one term's sd/correlation parameters in theta's order."""
    rows, cols = lower_index(len(columns))
    return [f"sd_{columns[i]}|{group}" if i == j else f"cor_{columns[i]}.{columns[j]}|{group}"
            for i, j in zip(rows, cols)]


def variance_parameter_names(spec) -> list[str]:
    """All sd/cor names of a spec in theta's order, then ``sigma``."""
    names = []
    for t in spec.terms:
        names.extend(term_parameter_names(t.columns, t.parameter_group))
    return names + ["sigma"]


def sd_cor_from_cov(cov: np.ndarray) -> np.ndarray:
    """Lower-triangle (theta order) of sds on the diagonal and correlations below."""
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    rows, cols = lower_index(cov.shape[0])
    out = np.empty(rows.size)
    for k, (i, j) in enumerate(zip(rows, cols)):
        if i == j:
            out[k] = sd[i]
        else:
            denom = sd[i] * sd[j]
            # rounding can put a correlation of a singular (boundary) fit just beyond +-1
            out[k] = np.clip(cov[i, j] / denom, -1.0, 1.0) if denom > 0 else np.nan
    return out
