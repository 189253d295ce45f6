"""Posterior predictive checks and model-fit summaries beside the frequentist ones."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import CrossedGroupingError

HIGH_K = "pareto_k_over_0.7"


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
    """logLik, AIC, BIC of the frequentist fit beside PSIS-LOO of the posterior, by observation and by group.

    ``elpd_loo`` leaves out one observation (log-likelihood conditional on the
    random effects); ``elpd_loo_group`` leaves out one level of the grouping
    factor the marginal likelihood factorizes over (``loo_group``), b integrated
    out (:mod:`lmmcompare.bayesian.group_loo`).  Each has its count of Pareto
    k > 0.7; ``attrs["pareto_note"]`` says which of the two those diagnostics trust
    (:func:`pareto_note`).  The observation rows are NaN when the fit has no
    pointwise log-likelihood (``bayes(..., log_likelihood=False)``); the group rows
    when the factors are crossed (the note says why).
    """
    freq = {"logLik": freq_fit.loglik, "AIC": freq_fit.aic, "BIC": freq_fit.bic,
            "criterion": "REML" if freq_fit.reml else "ML"}
    spec, why_not = bayes_fit.spec, {}
    if "log_likelihood" not in bayes_fit.idata.groups():
        why_not["observation"] = "the fit stored no pointwise log-likelihood"
    from ..bayesian.group_loo import loo_grouping_factor   # the Bayesian engine loads ArviZ: only here

    try:
        G = loo_grouping_factor(spec)
    except CrossedGroupingError:
        G = None
        why_not["group"] = f"crossed grouping factors {', '.join(spec.factors)}: see loo(by='group')"
    by_observation = _loo_rows(bayes_fit, "observation", "observation" not in why_not)
    by_group = _loo_rows(bayes_fit, "group", G is not None)
    bayes = {**by_observation, "loo_group": G.name if G else float("nan"),
             **{f"{k}_group": v for k, v in by_group.items()}}
    frame = pd.DataFrame({"frequentist": freq, "bayesian": bayes})
    frame.attrs["pareto_note"] = pareto_note(by_observation[HIGH_K], by_group[HIGH_K], spec.n, why_not,
                                             *((G.name, G.n_levels) if G else ()))
    return frame


def _loo_rows(bayes_fit, by: str, available: bool) -> dict:
    """elpd_loo, its se, p_loo and the count of Pareto k > 0.7 of ``bayes_fit.loo(by=by)``; NaN if not ``available``."""
    import warnings

    if not available:
        return dict.fromkeys(["elpd_loo", "se_elpd_loo", "p_loo", HIGH_K], float("nan"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the counts below are the message
        loo = bayes_fit.loo(pointwise=True, by=by)
    return {"elpd_loo": float(loo.elpd_loo), "se_elpd_loo": float(loo.se), "p_loo": float(loo.p_loo),
            HIGH_K: int(np.sum(np.asarray(loo.pareto_k) > 0.7))}


def pareto_note(high_observations, high_groups, n_observations: int, why_not: dict,
                group: str = "", n_groups: int = 0) -> str:
    """Which PSIS-LOO the Pareto diagnostics trust: the level(s) with no k > 0.7, both, or neither.

    ``high_*`` are the counts of k > 0.7 (NaN where that level was not computed,
    ``why_not[level]`` saying why).  The two estimate different things: predicting
    a new observation of a group in the data, or a new level of ``group``.
    """
    levels = {"observation-level": high_observations, "group-level": high_groups}
    done = {name: count for name, count in levels.items() if count == count}   # NaN: not computed
    parts = []
    if "observation-level" in done:
        parts.append(f"{high_observations} of {n_observations} observations have Pareto k > 0.7")
    else:
        parts.append(f"observation-level PSIS-LOO not computed ({why_not.get('observation', 'no log-likelihood')})")
    if "group-level" in done:
        parts.append(f"{high_groups} of {n_groups} levels of {group} have Pareto k > 0.7 when left out whole")
    else:
        parts.append(f"group-level PSIS-LOO not available ({why_not.get('group', 'not computed')})")
    trusted = [name for name, count in done.items() if count == 0]
    if len(trusted) == 2:
        verdict = ("the Pareto diagnostics trust both estimates (they answer different questions: "
                   "a new observation of a group in the data, or a new group)")
    elif trusted:
        verdict = f"the Pareto diagnostics trust the {trusted[0]} estimate only"
    elif done:
        verdict = ("the Pareto diagnostics trust neither: refit without the flagged observations or groups "
                   "(as brms's reloo does) or use K-fold cross-validation")
    else:
        verdict = "there is no PSIS-LOO estimate to judge"
    return "; ".join(parts) + ". So " + verdict + "."
