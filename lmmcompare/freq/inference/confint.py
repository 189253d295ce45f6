"""Confidence intervals for every parameter, as lme4's ``confint(fit, oldNames = FALSE)``."""
from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import scipy.stats

from ...arguments import check_bool, check_int, check_n_jobs, check_seed, shown
from ...errors import ArgumentError
from ...progress import Progress
from .bootstrap import bootstrap
from .profile import profile

METHODS = ("profile", "wald", "boot")


def confint(fit, method: str = "profile", level: float = 0.95, nsim: int = 500, seed=None,
            n_jobs: int = 1, progress: bool = True) -> pd.DataFrame:
    """Intervals for sd/cor, sigma and fixed effects (rows in lme4's order).

    ``wald`` gives fixed effects only (NaN for the variance parameters, as
    lme4); ``profile`` uses the ML profile likelihood (lme4 profiles REML fits
    after refitting by ML); ``boot`` the percentiles of a parametric bootstrap.
    """
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ArgumentError(f"method must be one of {', '.join(METHODS)}, got {shown(method)}")
    if not isinstance(level, numbers.Real) or isinstance(level, (bool, np.bool_)) or not 0 < level < 1:
        raise ArgumentError(f"level must be a number between 0 and 1, got {shown(level)}")
    check_int("nsim", nsim, 2)
    check_n_jobs("n_jobs", n_jobs)
    check_seed("seed", seed)
    check_bool("progress", progress)
    method = method.lower()
    names = fit.spec.parameters.variance_labels + fit.spec.fixed_names
    out = pd.DataFrame(np.nan, index=names, columns=["lower", "upper"])
    if method == "wald":
        z = scipy.stats.norm.ppf(0.5 + level / 2)
        se = np.sqrt(np.diag(fit.vcov_beta))
        out.loc[fit.spec.fixed_names, "lower"] = fit.beta - z * se
        out.loc[fit.spec.fixed_names, "upper"] = fit.beta + z * se
    elif method == "profile":
        with Progress(len(names), "profile", enabled=progress) as bar:
            prof = profile(fit, level=level, progress=lambda done, total: bar.update(1))
        out[:] = prof.confint(level).loc[names].to_numpy()
    else:
        draws = bootstrap(fit, nsim=nsim, seed=seed, n_jobs=n_jobs, progress=progress)
        a = (1 - level) / 2
        out["lower"] = draws.quantile(a).to_numpy()
        out["upper"] = draws.quantile(1 - a).to_numpy()
    out.attrs.update(method=method, level=level)
    return out
