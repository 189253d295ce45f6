"""The residual sd of each row: ``sigma / sqrt(a_i)``, or with ``sigma_by`` ``sigma delta_{f(i)} / sqrt(a_i)``.

With ``sigma_by = f`` (levels ``1..K``) each level's residual sd ``sigma_k`` has
the sigma prior, independently (brms' ``sigma ~ 0 + f`` puts a prior on each level's
log sd; here it is the same prior as a single sigma's, on each level's sd).  The
posterior holds ``sigma = sigma_1`` (the reference level, as glmmTMB and nlme's
``varIdent``) and the ratios ``sigma_ratio_<level>|<f> = sigma_k / sigma_1``,
``k >= 2``, the parameters of the frequentist fit (``lmmcompare.spec.residual_groups``).
``a_i`` are the prior weights.
"""
from __future__ import annotations

import numpy as np

from ..spec.residual_groups import row_scales


def residual_parameters(spec, priors, pm, pt):
    """``(sigma, ratios)``: the first level's residual sd and, with ``sigma_by``, ``delta_2..delta_K`` (else None).

    The other levels' sds are ``sigma_level_k`` (the sigma prior); the ratios are
    Deterministics named by the parameter table's ``sigma_ratio_k``.
    """
    sigma = priors.sigma.variable(spec.parameters["sigma"].pymc_name)
    if spec.sigma_by is None:
        return sigma, None
    ratios = []
    for row in spec.parameters.variance:
        if row.kind == "sigma_ratio":
            level_sd = priors.sigma.variable(f"sigma_level_{row.i}")
            ratios.append(pm.Deterministic(row.pymc_name, level_sd / sigma))
    return sigma, pt.stack(ratios)


def row_sd(spec, sigma, ratios, pt):
    """The residual sd of every row as a PyTensor expression, ``sigma delta_{f(i)} / sqrt(a_i)`` (``delta_1 = 1``)."""
    scale = sigma
    if spec.sigma_by is not None:
        scale = sigma * pt.concatenate([pt.ones(1), ratios])[spec.sigma_by.codes]
    return scale if spec.weights is None else scale / np.sqrt(spec.weights)


def row_sd_draws(spec, sigma, ratios=None) -> np.ndarray:
    """The residual sd of every row and draw, (..., n), from ``sigma`` (...) and the ratios (..., K - 1)."""
    sigma = np.asarray(sigma, dtype=float)[..., None]
    if spec.sigma_by is None:
        scale = np.broadcast_to(sigma, sigma.shape[:-1] + (spec.n,))
    else:
        scale = sigma * row_scales(spec.sigma_by, ratios)
    return scale if spec.weights is None else scale / np.sqrt(spec.weights)


def ratio_draws(post, spec) -> np.ndarray | None:
    """``delta_2..delta_K`` of every draw, (chain, draw, K - 1), from a BayesFit's posterior (None without sigma_by).

    ``post`` maps the table's labels to draws: the posterior Dataset, or a dict of arrays.
    """
    if spec.sigma_by is None:
        return None
    rows = [r for r in spec.parameters.variance if r.kind == "sigma_ratio"]
    return np.stack([np.asarray(post[r.label]) for r in rows], axis=-1)
