"""Parametric bootstrap of an LmerFit (lme4's ``bootMer`` with ``type = "parametric"``).

Responses are simulated from the fit (new random effects and noise) in the
calling process from one seed, so a result does not depend on ``n_jobs``;
each replicate is refitted by the same criterion from the fitted phi (theta for
lme4's models; structured terms' parameters and ``sigma_by``'s log ratios otherwise,
:class:`~lmmcompare.freq.fit.Devfun`).  With ``sigma_by`` the noise of row ``i`` has sd
``sigma delta_{f(i)} / sqrt(a_i)`` (:meth:`~lmmcompare.LmerFit.simulate`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...arguments import check_bool, check_int, check_n_jobs, check_seed
from ...errors import ArgumentError
from ...progress import Progress
from ..refit import ResponseRefit, response_refit_of


def _refit_chunk(spec, reml, start, ys):
    """Refit each response of ``ys`` from phi ``start``: the variance parameters (table order) and beta.
    The design's cross-products are computed once per chunk, in the worker (:class:`~lmmcompare.freq.refit.ResponseRefit`)."""
    refit = ResponseRefit(spec, reml)
    return [refit.parameters(y, start) for y in ys]


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
        if n_jobs == 1:   # the fit's own ResponseRefit (LmerFit.refit uses it too)
            refit = response_refit_of(fit)
            for idx in chunks:
                rows.extend(refit.parameters(y, fit.phi) for y in sims[idx])
                bar.update(len(idx))
        else:
            try:
                from joblib import Parallel, delayed
            except ImportError as exc:  # pragma: no cover - joblib comes with the parallel extra
                raise ArgumentError("n_jobs > 1 needs joblib: pip install 'lmmcompare[parallel]'") from exc
            parallel = Parallel(n_jobs=n_jobs, return_as="generator")
            for idx, part in zip(chunks, parallel(delayed(_refit_chunk)(fit.spec, fit.reml, fit.phi, sims[idx])
                                                  for idx in chunks)):
                rows.extend(part)
                bar.update(len(idx))
    return pd.DataFrame(np.array(rows), columns=names)
