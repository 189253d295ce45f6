"""Parametric bootstrap of an LmerFit (lme4's ``bootMer`` with ``type = "parametric"``).

Responses are simulated from the fit (new random effects and noise) in the
calling process from one seed, so a result does not depend on ``n_jobs``;
each replicate is refitted by the same criterion from the fitted theta.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ...arguments import check_bool, check_int, check_n_jobs, check_seed
from ...core.factor import factorize
from ...core.relcovar import theta_to_T
from ...core.solve import solve_modes
from ...errors import ArgumentError
from ...spec.parameters import sd_cor_from_cov
from ...progress import Progress
from ..fit import make_devfun, optimize_lmer


def _params_of(spec, reml, start):
    """Refit ``spec`` and return (sd/cor..., sigma, beta...) without building an LmerFit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        devfun = make_devfun(spec, reml)
        opt = optimize_lmer(devfun, start=start)
    f = factorize(devfun.cp, opt.theta)
    _, beta = solve_modes(f)
    sigma = np.sqrt(f.r2 / (spec.n - spec.p if reml else spec.n))
    out = []
    for T in theta_to_T(opt.theta, [t.p for t in spec.terms]):
        out.extend(sd_cor_from_cov(sigma**2 * T @ T.T))
    return np.r_[out, sigma, beta]


def _refit_chunk(spec, reml, start, ys):
    return [_params_of(spec.with_response(y), reml, start) for y in ys]


def bootstrap(fit, nsim: int = 500, seed=None, n_jobs: int = 1, progress: bool = True) -> pd.DataFrame:
    """Parameters re-estimated on ``nsim`` responses simulated from the fit.

    Returns
    -------
    DataFrame
        ``nsim`` rows; columns sd/cor, ``sigma`` and fixed effects (common names).
    """
    check_int("nsim", nsim, 2)
    check_n_jobs("n_jobs", n_jobs)
    check_seed("seed", seed)
    check_bool("progress", progress)
    sims = fit.simulate(nsim, seed=seed).to_numpy().T
    names = fit.spec.parameters.variance_labels + fit.spec.fixed_names
    chunks = np.array_split(np.arange(nsim), max(1, min(nsim, 4 * (abs(n_jobs) if n_jobs > 0 else 8))))
    rows = []
    with Progress(nsim, "parametric bootstrap", enabled=progress) as bar:
        if n_jobs == 1:
            for idx in chunks:
                rows.extend(_refit_chunk(fit.spec, fit.reml, fit.theta, sims[idx]))
                bar.update(len(idx))
        else:
            try:
                from joblib import Parallel, delayed
            except ImportError as exc:  # pragma: no cover - joblib comes with the parallel extra
                raise ArgumentError("n_jobs > 1 needs joblib: pip install 'lmmcompare[parallel]'") from exc
            parallel = Parallel(n_jobs=n_jobs, return_as="generator")
            for idx, part in zip(chunks, parallel(delayed(_refit_chunk)(fit.spec, fit.reml, fit.theta, sims[idx])
                                                  for idx in chunks)):
                rows.extend(part)
                bar.update(len(idx))
    return pd.DataFrame(np.array(rows), columns=names)
