"""Random effects of the two fits side by side: conditional modes beside posterior means, and shrinkage."""
from __future__ import annotations

import numpy as np
import pandas as pd


def ranef_table(freq, bayes) -> pd.DataFrame:
    """Conditional modes and SDs beside posterior means and SDs, per group level and coefficient."""
    frames = []
    modes, csd = freq.ranef(), freq.ranef(condsd=True)
    pmean, psd = bayes.ranef(), bayes.ranef(sd=True)
    for group in modes:
        long = lambda f, name: f.rename_axis("level").reset_index().melt(
            id_vars="level", var_name="coef", value_name=name)
        merged = long(modes[group], "mode").merge(long(csd[group], "cond_sd"), on=["level", "coef"])
        merged = merged.merge(long(pmean[group], "post_mean"), on=["level", "coef"])
        merged = merged.merge(long(psd[group], "post_sd"), on=["level", "coef"])
        merged.insert(0, "group", group)
        frames.append(merged)
    return pd.concat(frames, ignore_index=True)


def shrinkage_table(freq, bayes) -> pd.DataFrame:
    """Per group level of the first term: separate per-group OLS estimate, REML BLUP
    (fixed effect + conditional mode) and posterior mean, for each of the term's columns."""
    term = freq.spec.terms[0]
    X, y, codes = term.design.matrix, freq.spec.y, term.codes
    fixef = freq.fixef
    modes = freq.ranef()[term.group]
    post = bayes.ranef()[term.group]
    post_fixed = {c: float(bayes.idata.posterior[c].mean()) for c in term.columns if c in fixef.index}
    rows = []
    for j, level in enumerate(term.levels):
        rows_j = codes == j
        ols = np.linalg.lstsq(X[rows_j], y[rows_j], rcond=None)[0] if rows_j.sum() >= term.p else \
            np.full(term.p, np.nan)
        for k, col in enumerate(term.columns):
            base_f = fixef.get(col, 0.0)
            rows.append({"level": level, "coef": col, "ols": ols[k],
                         "reml": base_f + modes.loc[level, col],
                         "bayes": post_fixed.get(col, 0.0) + post.loc[level, col]})
    return pd.DataFrame(rows)
