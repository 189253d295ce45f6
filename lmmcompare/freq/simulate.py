"""Responses simulated from a fitted model, as lme4's ``simulate``.

``y* = offset + X beta + sigma Z Lambda z + sigma W^{-1/2} e`` with ``z`` and ``e``
standard normal: new random effects and new noise for every simulation; ``W``
the prior weights (with ``sigma_by``, also each row's residual sd ratio).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..arguments import check_seed, shown
from ..core.relcovar import lambda_matrix
from ..errors import ArgumentError


def simulate_responses(fit, nsim: int = 1, seed=None) -> pd.DataFrame:
    """``n x nsim`` simulated responses of ``fit`` (an ``LmerFit``), columns ``sim_1 ... sim_nsim``."""
    if not isinstance(nsim, (int, np.integer)) or isinstance(nsim, bool) or nsim < 1:
        raise ArgumentError(f"nsim must be a positive integer, got {shown(nsim)}")
    check_seed("seed", seed)
    rng = np.random.default_rng(seed)
    spec = fit.spec
    fixed = spec.working_offset + spec.X @ fit.beta
    z = rng.standard_normal((spec.q, nsim))
    eps = rng.standard_normal((spec.n, nsim))
    if spec.row_weights is not None:   # residual sd sigma / sqrt(w_i), w_i = a_i / delta_f(i)^2 (sigma_by)
        eps /= np.sqrt(spec.row_weights)[:, None]
    sims = fixed[:, None] + fit.sigma * (spec.Z @ (lambda_matrix(spec, fit.theta) @ z)) + fit.sigma * eps
    return pd.DataFrame(sims, columns=[f"sim_{i + 1}" for i in range(nsim)])
