"""Derived quantities side by side: marginal means, their contrasts, predictions and R².

Each row is one quantity the two fits both answer: the frequentist estimate,
se and interval beside the posterior median, sd and equal-tailed interval,
with the ``shift``, ``overlap`` and ``flag`` columns of the parameter table
(:mod:`.table`; ``shift`` in units of the frequentist se, or the posterior sd
where the frequentist answer has no se).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .table import interval_overlap


def side_by_side(freq: pd.DataFrame, draws: np.ndarray, level: float) -> pd.DataFrame:
    """``freq`` (columns ``estimate``, and ``se``, ``lower``, ``upper`` where known; one row per quantity)
    beside ``draws`` (posterior draws x quantities, in the same order)."""
    a = (1 - level) / 2
    rows = []
    for k, (_, row) in enumerate(freq.iterrows()):
        d = draws[:, k]
        est = float(row["estimate"])
        se = float(row.get("se", np.nan))
        lo, hi = float(row.get("lower", np.nan)), float(row.get("upper", np.nan))
        med, sd = float(np.median(d)), float(d.std(ddof=1))
        eti = np.quantile(d, [a, 1 - a])
        scale = se if np.isfinite(se) and se > 0 else sd
        shift = (med - est) / scale if scale > 0 else np.nan
        flags = []
        f_width, b_width = hi - lo, eti[1] - eti[0]
        if np.isfinite(f_width) and f_width > 0 and b_width > 0 and max(b_width / f_width, f_width / b_width) > 1.5:
            flags.append("width")
        if np.isfinite(shift) and abs(shift) > 1:
            flags.append("shift")
        rows.append({"estimate": est, "se": se, "lower": lo, "upper": hi, "post_median": med, "post_sd": sd,
                     "eti_lower": eti[0], "eti_upper": eti[1], "shift": shift,
                     "overlap": interval_overlap(lo, hi, eti[0], eti[1]), "flag": ",".join(flags)})
    return pd.DataFrame(rows, index=freq.index)


def _both_means(freq_fit, bayes_fit, specs, level, options):
    """The marginal means of ``specs`` in each fit (``ddf`` is the frequentist fit's alone)."""
    from ..derived.emmeans import emmeans

    bayes_options = {k: v for k, v in options.items() if k != "ddf"}
    return emmeans(freq_fit, specs, level=level, **options), emmeans(bayes_fit, specs, level=level, **bayes_options)


def emmeans_table(freq_fit, bayes_fit, specs, level: float = 0.95, **options) -> pd.DataFrame:
    """The marginal means of ``specs`` in both fits (:func:`lmmcompare.emmeans`)."""
    freq, post = _both_means(freq_fit, bayes_fit, specs, level, options)
    table = freq.table().rename(columns={"emmean": "estimate"})
    out = side_by_side(table, post.draws().to_numpy(), level)
    out.insert(2, "df", table["df"])
    return out


def pairs_table(freq_fit, bayes_fit, specs, adjust: str = "tukey", level: float = 0.95, **options) -> pd.DataFrame:
    """Pairwise differences of the means of ``specs`` in both fits: the frequentist ones with their
    (adjusted) p-values and intervals, the posterior ones with the probability of direction ``pd``."""
    from ..derived.emmeans_bayes import direction_probability

    freq_means, post = _both_means(freq_fit, bayes_fit, specs, level, options)
    freq = freq_means.pairs(adjust)
    draws = post.contrast_draws("pairwise").to_numpy()
    out = side_by_side(freq, draws, level)
    out.insert(2, "df", freq["df"])
    out.insert(3, "p", freq["p"])
    out["pd"] = direction_probability(draws)
    return out


def predict_table(freq_fit, bayes_fit, newdata=None, re: bool = True, allow_new_levels: bool = False,
                  level: float = 0.95, seed=None) -> pd.DataFrame:
    """Predictions for ``newdata`` (or the model frame) from both fits: lme4's ``predict(se.fit=TRUE)`` with a
    confidence interval (conditional on theta; a new level's effect is 0) beside the posterior of
    ``offset + x'beta + z'b`` (brms' ``posterior_epred``; a new level's effect drawn from N(0, Sigma),
    so the Bayesian interval of a new level is the wider one by design)."""
    freq = freq_fit.predict(newdata, re=re, allow_new_levels=allow_new_levels, se_fit=True,
                            interval="confidence", level=level)
    freq = freq.rename(columns={"fit": "estimate"})
    if re:
        draws = bayes_fit.predict(newdata, kind="epred", allow_new_levels=allow_new_levels, summary=False,
                                  seed=seed)
        values = draws.values.reshape(-1, draws.shape[-1])
    else:   # offset + x'beta per draw, on the rows both engines' predict builds
        from ..bayesian.postprocess import posterior_beta
        from ..spec.new_rows import prediction_rows

        rows = prediction_rows(bayes_fit.spec, newdata, False, allow_new_levels, None, with_z=False)
        beta = posterior_beta(bayes_fit.idata.posterior, bayes_fit.spec)
        values = np.full((beta.shape[0] * beta.shape[1], len(rows.complete)), np.nan)
        values[:, rows.complete] = beta.reshape(-1, beta.shape[-1]) @ rows.X.T + rows.offset
    return side_by_side(freq, values, level)


def r2_table(freq_fit, bayes_fit, level: float = 0.95) -> pd.DataFrame:
    """Nakagawa's marginal and conditional R² and the adjusted and unadjusted ICC from both fits: the
    frequentist numbers at the estimates beside their posteriors (computed on every draw), and Gelman et
    al.'s Bayesian R² (``bayes_R2``) for the posterior alone."""
    import warnings

    from ..derived import icc, r2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # a singular fit's R² is NaN, as performance's: the table shows it
        f_r2, f_icc = r2(freq_fit), icc(freq_fit)
    b_r2, b_icc, gelman = r2(bayes_fit), icc(bayes_fit), r2(bayes_fit, kind="bayes")
    names = ["R2 marginal", "R2 conditional", "ICC adjusted", "ICC unadjusted"]
    freq = pd.DataFrame({"estimate": [f_r2.marginal, f_r2.conditional, f_icc.adjusted, f_icc.unadjusted]},
                        index=pd.Index(names, name="quantity"))
    draws = np.column_stack([np.ravel(v) for v in (b_r2.marginal, b_r2.conditional, b_icc.adjusted,
                                                   b_icc.unadjusted)])
    out = side_by_side(freq, draws, level)
    extra = side_by_side(pd.DataFrame({"estimate": [np.nan, np.nan]},
                                      index=pd.Index(["Bayes R2 marginal", "Bayes R2 conditional"], name="quantity")),
                         np.column_stack([np.ravel(gelman.marginal), np.ravel(gelman.conditional)]), level)
    return pd.concat([out, extra])
