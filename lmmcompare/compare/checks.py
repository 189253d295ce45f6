"""Posterior predictive checks and model-fit summaries beside the frequentist ones."""
from __future__ import annotations

import numpy as np
import pandas as pd


def _group_mean_spread(y, codes, n_levels):
    counts = np.bincount(codes, minlength=n_levels)
    sums = np.bincount(codes, weights=y, minlength=n_levels)
    return float(np.std(sums / np.maximum(counts, 1), ddof=1))


def ppc_statistics(bayes_fit, seed=None) -> pd.DataFrame:
    """Observed test statistics, their posterior predictive means, and Bayesian p-values
    ``P(T(y_rep) >= T(y))`` for mean, sd, min, max and the spread of group means
    (one row per grouping factor)."""
    spec = bayes_fit.spec
    yrep = bayes_fit.posterior_predictive(seed=seed).values.reshape(-1, spec.n)
    y = spec.y
    stats = {"mean": np.mean, "sd": lambda v: np.std(v, ddof=1), "min": np.min, "max": np.max}
    rows = {}
    for name, fn in stats.items():
        rep = np.apply_along_axis(fn, 1, yrep) if name == "sd" else fn(yrep, axis=1)
        rows[name] = (float(fn(y)), float(np.mean(rep)), float(np.mean(rep >= fn(y))))
    for group, factor in spec.factors.items():
        obs = _group_mean_spread(y, factor.codes, factor.n_levels)
        rep = np.array([_group_mean_spread(r, factor.codes, factor.n_levels) for r in yrep])
        rows[f"sd of {group} means"] = (obs, float(rep.mean()), float(np.mean(rep >= obs)))
    return pd.DataFrame(rows, index=["observed", "replicated_mean", "p_value"]).T


def fit_statistics(freq_fit, bayes_fit) -> pd.DataFrame:
    """logLik, AIC, BIC of the frequentist fit beside PSIS-LOO of the posterior.

    PSIS-LOO is NaN when the fit has no pointwise log-likelihood (``bayes(..., log_likelihood=False)``).
    """
    import warnings

    freq = {"logLik": freq_fit.loglik, "AIC": freq_fit.aic, "BIC": freq_fit.bic,
            "criterion": "REML" if freq_fit.reml else "ML"}
    if "log_likelihood" not in bayes_fit.idata.groups():
        nan = float("nan")
        return pd.DataFrame({"frequentist": freq, "bayesian": {"elpd_loo": nan, "se_elpd_loo": nan, "p_loo": nan,
                                                               "pareto_k_over_0.7": nan}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loo = bayes_fit.loo(pointwise=True)
    k = np.asarray(loo.pareto_k)
    return pd.DataFrame({
        "frequentist": freq,
        "bayesian": {"elpd_loo": float(loo.elpd_loo), "se_elpd_loo": float(loo.se), "p_loo": float(loo.p_loo),
                     "pareto_k_over_0.7": int(np.sum(k > 0.7))},
    })
