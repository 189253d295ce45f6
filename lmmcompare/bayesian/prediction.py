"""Posterior predictions for new rows, as brms' ``posterior_epred`` and ``posterior_predict``.

For posterior draw ``s`` and row ``i`` (design rows from
:func:`lmmcompare.spec.new_rows.prediction_rows`)::

    epred_si    = offset_i + x_i' beta_s + sum_t z_ti' b_t[level_ti, s]
    response_si = epred_si + sigma_s delta_s,f(i) e_si / sqrt(w_i),   e_si ~ N(0, 1)

with ``w_i`` the prior weight (the model frame's; 1 on new rows) and ``delta`` the
``sigma_by`` ratio of the row's level (1 without ``sigma_by``).  A level the
fit has not seen (``allow_new_levels=True``) gets, per draw, an effect drawn
anew, the same for every row of that level:

* ``"gaussian"``: ``b_new,s ~ N(0, Sigma_t,s)``, the term's covariance at draw ``s``;
  the spread of the fitted random-effect distribution itself.
* ``"uncertainty"`` (brms' default): the effect of a level of the fit chosen
  uniformly at random per draw, ``b_new,s = b_t[J_s, s]``; it follows the
  estimated levels (shrunken, with their posterior uncertainty) rather than the
  normal distribution, so its spread is that of the fitted levels' effects.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..arguments import check_bool, check_choice, check_seed
from ..errors import ArgumentError, DataError
from ..spec.new_rows import prediction_rows
from ..spec.residual_groups import level_scales
from .postprocess import posterior_beta, random_effects_from_posterior, term_covariance_draws
from .residual import ratio_draws

KINDS = ("epred", "response")
NEW_LEVEL_DRAWS = ("gaussian", "uncertainty")
SUMMARY_QUANTILES = (0.025, 0.975)


def _new_level_effects(b, cov, n_new: int, how: str, rng) -> np.ndarray:
    """(chain, draw, n_new, p) effects of new levels (module docstring)."""
    chains, draws, n_levels, p = b.shape
    if how == "gaussian":
        root = np.linalg.cholesky(cov)                                    # (c, d, p, p)
        z = rng.standard_normal((chains, draws, n_new, p))
        return np.einsum("cdab,cdkb->cdka", root, z)
    pick = rng.integers(0, n_levels, size=(chains, draws, n_new))
    return np.take_along_axis(b, pick[..., None], axis=2)


def prediction_draws(fit, newdata, kind: str, allow_new_levels: bool, sample_new_levels: str, seed,
                     offset) -> tuple[np.ndarray, pd.Index]:
    """(chain, draw, rows) predictions of :meth:`lmmcompare.BayesFit.predict` and the rows' index (NaN for incomplete rows)."""
    check_choice("kind", kind, KINDS)
    check_bool("allow_new_levels", allow_new_levels)
    check_choice("sample_new_levels", sample_new_levels, NEW_LEVEL_DRAWS)
    check_seed("seed", seed)
    if newdata is None and offset is not None:
        raise ArgumentError("offset is for newdata's rows; without newdata the model frame's own offset is used")
    spec, post = fit.spec, fit.idata.posterior
    rows = prediction_rows(spec, newdata, True, allow_new_levels, offset, with_z=True)
    rng = np.random.default_rng(seed)
    sigma = post["sigma"].values
    beta = posterior_beta(post, spec)
    mu = np.einsum("kp,cdp->cdk", rows.X, beta) + rows.offset
    covs = term_covariance_draws(post, spec) if (np.concatenate(rows.codes) < 0).any() else None
    for i, (b, Zi, codes) in enumerate(zip(random_effects_from_posterior(post, spec), rows.Zs, rows.codes)):
        effects = b[:, :, np.maximum(codes, 0), :]                               # (c, d, k, p)
        new = codes < 0
        if new.any():
            drawn = _new_level_effects(b, covs[i], int(-codes.min()), sample_new_levels, rng)
            effects[:, :, new, :] = drawn[:, :, -1 - codes[new], :]
        mu += np.einsum("kp,cdkp->cdk", Zi, effects)
    if kind == "response":
        scale = sigma[..., None] / np.sqrt(rows.weights)
        if spec.sigma_by is not None:   # row i's residual sd is sigma delta_f(i)
            scale = scale * level_scales(ratio_draws(post, spec))[..., _residual_levels(spec, newdata, rows)]
        mu += scale * rng.standard_normal(mu.shape)
    out = np.full(mu.shape[:2] + (len(rows.complete),), np.nan)
    out[..., rows.complete] = mu
    return out, rows.index


def _residual_levels(spec, newdata, rows) -> np.ndarray:
    """The ``sigma_by`` level of each row to predict (a typed error for a missing column or an unseen level)."""
    factor = spec.sigma_by
    if newdata is None:
        return factor.codes
    if factor.name not in newdata.columns:
        raise DataError(f"kind='response' draws each row's residual noise with the sd of its level of sigma_by "
                        f"{factor.name!r}: newdata lacks that column")
    codes = factor.codes_for(newdata.loc[rows.complete])
    if (codes < 0).any():
        unseen = newdata.loc[rows.complete, factor.name][codes < 0].astype(str).unique()[:5]
        raise DataError(f"newdata has level(s) {', '.join(map(repr, unseen))} of sigma_by {factor.name!r} that the fit "
                        "has no residual sd for; predict those rows with kind='epred'")
    return codes


def summarise(draws: np.ndarray, index: pd.Index) -> pd.DataFrame:
    """Per row: posterior mean (``estimate``), sd (``est_error``) and 2.5% / 97.5% quantiles (brms' columns)."""
    flat = draws.reshape(-1, draws.shape[-1])
    complete = ~np.isnan(flat).any(axis=0)
    table = pd.DataFrame(np.nan, index=index, columns=["estimate", "est_error"]
                         + [f"q{100 * q:g}" for q in SUMMARY_QUANTILES])
    if complete.any():
        kept = flat[:, complete]
        table.loc[complete, :] = np.column_stack(
            [kept.mean(axis=0), kept.std(axis=0, ddof=1), *np.quantile(kept, SUMMARY_QUANTILES, axis=0)])
    return table


def predict_posterior(fit, newdata, kind, allow_new_levels, sample_new_levels, summary, seed, offset):
    """:meth:`lmmcompare.BayesFit.predict` (its docstring)."""
    summary = check_bool("summary", summary)
    draws, index = prediction_draws(fit, newdata, kind, allow_new_levels, sample_new_levels, seed, offset)
    if summary:
        return summarise(draws, index)
    post = fit.idata.posterior
    return xr.DataArray(draws, dims=("chain", "draw", "obs"),
                        coords={"chain": post.chain.values, "draw": post.draw.values, "obs": np.asarray(index)},
                        name=kind)
