"""From the sampler's internal variables to an InferenceData with the shared names.

``(Intercept)``, slopes, ``sd_col|group``, ``cor_ci.cj|group``, ``sigma`` and, per
grouping factor, ``r_group`` with dims (group levels, coefficient).  For the
marginal parameterisation the random effects are drawn afterwards from their
exact Gaussian conditional (``u | y, beta, sigma, Sigma ~ N(M^{-1} w, M^{-1})``,
``b = Lambda u``, notation of :mod:`.model`).
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from ..params import term_parameter_names


def _stack(post, name):
    return post[name].values  # (chain, draw, ...)


def fixed_effects(post, built):
    """Fixed-effect draws by name; ``(Intercept)`` moved back from the centred predictors (``alpha - sum xbar_j beta_j``)."""
    spec = built.spec
    names = spec.fixed_names
    out = {}
    slopes = [_stack(post, f"beta_{k}") for k in range(len(built.slope_index))]
    for k, j in enumerate(built.slope_index):
        out[names[j]] = slopes[k]
    if "(Intercept)" in names:
        alpha = _stack(post, "alpha")
        shift = sum(m * s for m, s in zip(built.x_means, slopes)) if slopes else 0.0
        out["(Intercept)"] = alpha - shift
    return {n: out[n] for n in names}


def beta_draws(fixed, names, draw_shape):
    """The fixed effects ``names`` stacked along a last axis: (chain, draw, p), p = 0 when there are none."""
    if not names:  # y ~ 0 + (x | g): lme4 fits it too
        return np.zeros(tuple(draw_shape) + (0,))
    return np.stack([fixed[n] for n in names], axis=-1)


def covariance_factors(post, built):
    """Per term, the Cholesky factor L_i of Sigma_i for every draw: (chain, draw, p, p)."""
    out = []
    for i, t in enumerate(built.spec.terms):
        if t.p == 1:
            out.append(_stack(post, f"sd_{i}_0")[..., None, None])
        else:
            out.append(_stack(post, f"L_{i}"))
    return out


def variance_parameters(post, built, factors):
    """Draws of every ``sd_*`` and ``cor_*`` (from ``L_i L_i'``) and of ``sigma``, by the shared names."""
    out = {}
    for t, L in zip(built.spec.terms, factors):
        cov = L @ np.swapaxes(L, -1, -2)
        sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
        for name in term_parameter_names(t.columns, t.parameter_group):
            if name.startswith("sd_"):
                col = name[3:].rsplit("|", 1)[0]
                out[name] = sd[..., t.columns.index(col)]
            else:
                i, j = _cor_index(name, t)
                out[name] = cov[..., i, j] / (sd[..., i] * sd[..., j])
    out["sigma"] = _stack(post, "sigma")
    return out


def _cor_index(name, term):
    body = name[4:].rsplit("|", 1)[0]
    for i, ci in enumerate(term.columns):
        for j, cj in enumerate(term.columns):
            if i > j and body == f"{ci}.{cj}":
                return i, j
    raise KeyError(name)


def random_effects_noncentered(post, built):
    """Per term, the sampled ``b_i`` (noncentered and centered parameterisations)."""
    return [_stack(post, f"b_{i}") for i in range(len(built.spec.terms))]


def random_effects_marginal(post, built, fixed, factors, rng, progress=False):
    """Exact conditional draws of b for each posterior draw."""
    spec = built.spec
    sigma = _stack(post, "sigma")
    beta = beta_draws(fixed, spec.fixed_names, sigma.shape)  # (c, d, p)
    if len(spec.terms) == 1 and spec.terms[0].p <= 2:
        Z = spec.Z
        Zty, ZtX = np.asarray(Z.T @ spec.y).ravel(), np.asarray(Z.T @ spec.X)
        return [_single_term_draws(spec, sigma, beta, factors[0], Zty, ZtX, rng)]
    return _blocked_draws(spec, sigma, beta, factors, rng, progress)


def _blocked_draws(spec, sigma, beta, factors, rng, progress):
    """Every model but one term with p <= 2: one draw per posterior draw through the blocked factor (no dense q x q)."""
    from ..core.blocks import cross_products
    from ..core.likelihood import conditional_effects
    from ..core.relcovar import lower_index
    from ..progress import Progress

    cp = cross_products(spec)
    chains, draws = sigma.shape
    out = [np.empty((chains, draws, t.n_levels, t.p)) for t in spec.terms]
    with Progress(chains * draws, "random effects", enabled=progress) as bar:
        for c in range(chains):
            for d in range(draws):
                s = sigma[c, d]
                theta = np.concatenate([L[c, d][lower_index(t.p)] / s for t, L in zip(spec.terms, factors)])
                b = conditional_effects(cp, beta[c, d], s, theta, rng)
                pos = 0
                for k, t in enumerate(spec.terms):
                    out[k][c, d] = b[pos : pos + t.q].reshape(t.n_levels, t.p)
                    pos += t.q
                bar.update()
    return out


def _single_term_draws(spec, sigma, beta, L, Zty, ZtX, rng):
    """One grouping factor: M is block-diagonal, one p x p block per level."""
    t = spec.terms[0]
    A = np.zeros((t.n_levels, t.p, t.p))
    Xt = t.design.matrix
    for a in range(t.p):
        for b in range(t.p):
            A[:, a, b] = np.bincount(t.codes, weights=Xt[:, a] * Xt[:, b], minlength=t.n_levels)
    chains, draws = sigma.shape
    out = np.empty((chains, draws, t.n_levels, t.p))
    eye = np.eye(t.p)
    for c in range(chains):
        for d in range(draws):
            s = sigma[c, d]
            Lam = L[c, d] / s
            M = eye + Lam.T @ A @ Lam
            R = np.linalg.cholesky(M)
            w = ((Zty - ZtX @ beta[c, d]).reshape(t.n_levels, t.p) @ Lam) / s
            mean = np.linalg.solve(M, w[..., None])[..., 0]
            eps = rng.standard_normal((t.n_levels, t.p, 1))
            u = mean + np.linalg.solve(np.swapaxes(R, 1, 2), eps)[..., 0]
            out[c, d] = (u @ Lam.T) * s
    return out


def random_effects_from_posterior(post, spec):
    """Per term, its (chain, draw, levels, p) slice of the named ``r_<group>`` variables."""
    out, used = [], {}
    for t in spec.terms:
        start = used.get(t.parameter_group, 0)
        out.append(post[f"r_{t.parameter_group}"].values[..., start : start + t.p])
        used[t.parameter_group] = start + t.p
    return out


def linear_predictor(spec, fixed, b_terms):
    """``X beta + Z b`` for every draw: (chain, draw, obs)."""
    beta = beta_draws(fixed, spec.fixed_names, b_terms[0].shape[:2])
    mu = np.einsum("np,cdp->cdn", spec.X, beta)
    for t, b in zip(spec.terms, b_terms):
        mu += np.einsum("nk,cdnk->cdn", t.design.matrix, b[:, :, t.codes, :])
    return mu


def named_posterior(post, built, b_terms, fixed, variances):
    """xarray Dataset with the shared names; random effects grouped by grouping factor.

    The terms on one factor share its ``r_<group>`` variable, except a term whose
    parameter names carry ``g.1`` (see :mod:`lmmcompare.params`): it has ``r_g.1``.
    """
    spec = built.spec
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
    data = {}
    for name, values in list(fixed.items()) + list(variances.items()):
        data[name] = xr.DataArray(values, dims=("chain", "draw"), coords=coords)
    by_group: dict = {}
    for t, b in zip(spec.terms, b_terms):
        by_group.setdefault(t.parameter_group, []).append((t, b))
    for group, parts in by_group.items():
        values = np.concatenate([b for _, b in parts], axis=-1)
        cols = [c for t, _ in parts for c in t.columns]
        lev_dim, coef_dim = parts[0][0].group, f"{group}__coef"
        data[f"r_{group}"] = xr.DataArray(values, dims=("chain", "draw", lev_dim, coef_dim),
                                          coords={**coords, lev_dim: list(parts[0][0].levels), coef_dim: cols})
    return xr.Dataset(data, attrs=post.attrs)
