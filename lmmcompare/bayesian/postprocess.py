"""From the sampler's internal variables to an InferenceData with the shared names.

``(Intercept)``, slopes, ``sd_col|group``, ``cor_ci.cj|group``, ``sigma`` and, per
grouping factor, ``r_group`` with dims (group levels, coefficient).  For the
marginal parameterisation the random effects are drawn afterwards from their
exact Gaussian conditional (``u | y, beta, sigma, Sigma ~ N(M^{-1} w, M^{-1})``,
``b = Lambda u``, notation of :mod:`.model`).
"""
from __future__ import annotations

import os

import numpy as np
import xarray as xr

from ..core.relcovar import lower_index
from .fixed_reparam import intercept_draws
from .marginal import level_sums, prior_weighted


def _stack(post, name):
    return post[name].values  # (chain, draw, ...)


def fixed_effects(post, built):
    """Fixed-effect draws by name; ``(Intercept)`` moved back from the centred predictors (``alpha - sum xbar_j beta_j``).
    Where the model sampled alpha as ``z`` (``built.intercept_z``), alpha's draws come from it first."""
    rows = built.spec.parameters.fixed
    slopes = [_stack(post, r.pymc_name) for r in rows if r.label != "(Intercept)"]
    out = {}
    for r in rows:
        if r.label == "(Intercept)":
            shift = sum(m * s for m, s in zip(built.x_means, slopes)) if slopes else 0.0
            alpha = _intercept_from_z(post, built, slopes, r.pymc_name) if built.intercept_z else \
                _stack(post, r.pymc_name)
            out[r.label] = alpha - shift
        else:
            out[r.label] = _stack(post, r.pymc_name)
    return out


def _intercept_from_z(post, built, slopes, name):
    """alpha's draws from ``z`` (:func:`.fixed_reparam.intercept_draws`)."""
    sigma = _stack(post, built.spec.parameters["sigma"].pymc_name)
    slope_draws = np.stack(slopes, axis=-1) if slopes else None
    return intercept_draws(built.spec, _stack(post, name + "_z"), sigma, covariance_factors(post, built)[0],
                           slope_draws, built.slope_index, built.x_means)


def beta_draws(fixed, names, draw_shape):
    """The fixed effects ``names`` stacked along a last axis: (chain, draw, p), p = 0 when there are none."""
    if not names:  # y ~ 0 + (x | g): lme4 fits it too
        return np.zeros(tuple(draw_shape) + (0,))
    return np.stack([fixed[n] for n in names], axis=-1)


def posterior_beta(post, spec) -> np.ndarray:
    """The fixed effects of every draw of a BayesFit's posterior, (chain, draw, p), in the spec's column order."""
    return beta_draws({n: post[n].values for n in spec.fixed_names}, spec.fixed_names, post["sigma"].shape)


def term_sd_cor_draws(post, spec, i: int) -> tuple[np.ndarray, np.ndarray]:
    """``(sd (..., p), cor (..., p, p))`` of term ``i`` for every draw, from a BayesFit's posterior rows.

    An unstructured term's ``sd_*`` and ``cor_*`` rows fill them entry by entry; a
    structured one's sds and common correlation or rho give them through
    ``Structure.implied_sd_cor`` (``lmmcompare.spec.structures``) (a common sd on
    every column, ``rho`` or ``rho^|i-j|`` off the diagonal).
    """
    t, rows = spec.terms[i], spec.parameters.of_term(i)
    shape = post["sigma"].shape
    if t.structured:
        values = np.stack([post[r.label].values for r in rows], axis=-1).reshape(-1, len(rows))
        pairs = [t.structure.implied_sd_cor(v, t.p) for v in values]
        return (np.stack([sd for sd, _ in pairs]).reshape(shape + (t.p,)),
                np.stack([cor for _, cor in pairs]).reshape(shape + (t.p, t.p)))
    sd = np.zeros(shape + (t.p,))
    cor = np.broadcast_to(np.eye(t.p), shape + (t.p, t.p)).copy()
    for r in rows:
        if r.kind == "sd":
            sd[..., r.i] = post[r.label].values
        elif r.kind == "cor":
            cor[..., r.i, r.j] = cor[..., r.j, r.i] = post[r.label].values
    return sd, cor


def term_covariance_draws(post, spec) -> list[np.ndarray]:
    """Per term, ``Sigma_t = diag(sd) R diag(sd)`` for every draw, (chain, draw, p, p) (:func:`term_sd_cor_draws`)."""
    out = []
    for i in range(len(spec.terms)):
        sd, cor = term_sd_cor_draws(post, spec, i)
        out.append(sd[..., :, None] * cor * sd[..., None, :])
    return out


def covariance_factors(post, built):
    """Per term, the Cholesky factor L_i of Sigma_i for every draw: (chain, draw, p, p)."""
    table = built.spec.parameters
    return [_stack(post, table.sds(i)[0].pymc_name)[..., None, None] if t.p == 1
            else _stack(post, table.terms[i].cholesky) for i, t in enumerate(built.spec.terms)]


def variance_parameters(post, built, factors):
    """Draws of every row of the parameter table: ``sd`` and ``cor`` from ``L_i L_i'``, the rest as sampled.

    A structured term's common correlation or rho, ``sigma`` and the ``sigma_by``
    ratios are read from their PyMC variables (``pymc_name``).
    """
    covs = [L @ np.swapaxes(L, -1, -2) for L in factors]
    sds = [np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1)) for cov in covs]
    out = {}
    for r in built.spec.parameters.variance:
        if r.kind == "sd":
            out[r.label] = sds[r.term][..., r.i]
        elif r.kind == "cor":
            sd = sds[r.term]
            out[r.label] = covs[r.term][..., r.i, r.j] / (sd[..., r.i] * sd[..., r.j])
        else:
            out[r.label] = _stack(post, r.pymc_name)
    return out


def random_effects_sampled(post, built):
    """Per term, the sampled ``b_i`` (noncentered and centered parameterisations)."""
    return [_stack(post, tv.effects) for tv in built.spec.parameters.terms]


def random_effects_marginal(post, built, fixed, factors, rng, progress=False):
    """Exact conditional draws of b for each posterior draw."""
    spec = built.spec
    sigma = _stack(post, spec.parameters["sigma"].pymc_name)
    beta = beta_draws(fixed, spec.fixed_names, sigma.shape)  # (c, d, p)
    spec = prior_weighted(spec)
    ratio_rows = [r for r in spec.parameters.variance if r.kind == "sigma_ratio"]
    ratios = np.stack([_stack(post, r.pymc_name) for r in ratio_rows], axis=-1) if ratio_rows else None
    if len(spec.terms) == 1 and spec.terms[0].p <= 2:
        return [_single_term_draws(spec, sigma, beta, factors[0], ratios, rng)]
    return _blocked_draws(spec, sigma, beta, factors, ratios, rng, progress)


def _blocked_draws(spec, sigma, beta, factors, ratios, rng, progress):
    """Every model but one term with p <= 2: one draw per posterior draw through the blocked factor (no dense q x q);
    with ``sigma_by`` the cross-products are those at the draw's ratios.

    The chains run in threads (the factor's LAPACK calls release the GIL), each
    with its own stream of normals spawned from ``rng``, and a draw whose
    parameters repeat the one before (a rejected Metropolis proposal) reuses its
    factor: InstEval's 26 ms per draw is mostly that factor.
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from ..core.blocks import cross_products
    from ..core.factor import factorize
    from ..core.likelihood import conditional_effects
    from ..core.residual_ratios import RatioProducts
    from ..progress import Progress

    products = RatioProducts(spec, cross_products(spec) if ratios is None else None)   # the blocks at each ratio
    chains, draws = sigma.shape
    out = [np.empty((chains, draws, t.n_levels, t.p)) for t in spec.terms]
    cache_lock = threading.Lock()   # RatioProducts keeps its recent cross-products in one ordered dict

    def chain(c, chain_rng, bar):
        last = None   # (the draw's theta and ratios, their cross-products and factor)
        for d in range(draws):
            s = sigma[c, d]
            theta = np.concatenate([L[c, d][lower_index(t.p)] / s for t, L in zip(spec.terms, factors)])
            key = theta if ratios is None else np.concatenate([theta, ratios[c, d]])
            if last is None or not np.array_equal(last[0], key):
                with cache_lock:
                    _, cp = products.at(None if ratios is None else np.log(ratios[c, d]))
                last = (key, cp, factorize(cp, theta))
            b = conditional_effects(last[1], beta[c, d], s, theta, chain_rng, factor=last[2])
            pos = 0
            for k, t in enumerate(spec.terms):
                out[k][c, d] = b[pos : pos + t.q].reshape(t.n_levels, t.p)
                pos += t.q
            bar.update()

    with Progress(chains * draws, "random effects", enabled=progress) as bar:
        with ThreadPoolExecutor(max_workers=min(chains, os.cpu_count() or 1)) as pool:
            for job in [pool.submit(chain, c, r, bar) for c, r in enumerate(rng.spawn(chains))]:
                job.result()
    return out


DRAW_BLOCK_ENTRIES = 2_000_000   # per-draw blocks held at once by _single_term_draws (16 MB of float64)


def _single_term_draws(spec, sigma, beta, L, ratios, rng):
    """One grouping factor: M is block-diagonal, one p x p block per level.

    The cross-products of the row-scaled model (prior weights, and with ``sigma_by``
    ``1 / delta_k^2`` per level) are ``sum_k c_k`` times their level-``k`` parts
    (:func:`.marginal.level_sums`), combined per draw.
    """
    t = spec.terms[0]
    sums = level_sums(spec, spec.X)
    A_parts, Zty_parts, ZtX_parts = sums["A"], sums["Zty"], sums["ZtC"]
    chains, draws = sigma.shape
    flat = chains * draws
    c = np.ones((flat, 1)) if ratios is None else np.concatenate(
        [np.ones((flat, 1)), 1.0 / ratios.reshape(flat, -1) ** 2], axis=-1)
    sig, Ls, betas = sigma.reshape(flat), L.reshape(flat, t.p, t.p), beta.reshape(flat, -1)
    out = np.empty((flat, t.n_levels, t.p))
    chunk = max(1, DRAW_BLOCK_ENTRIES // (t.n_levels * t.p * max(t.p, ZtX_parts.shape[-1])))
    for start in range(0, flat, chunk):   # blocks of draws at once; the normals come in the same order
        rows = slice(start, min(start + chunk, flat))
        A = np.tensordot(c[rows], A_parts, axes=1)                                 # (m, levels, p, p)
        resid = c[rows] @ Zty_parts - np.einsum("mqk,mk->mq", np.tensordot(c[rows], ZtX_parts, axes=1),
                                                betas[rows])
        s = sig[rows][:, None, None]
        Lam = Ls[rows] / s                                                         # (m, p, p)
        M = np.eye(t.p) + np.swapaxes(Lam, 1, 2)[:, None] @ A @ Lam[:, None]
        R = np.linalg.cholesky(M)
        w = np.einsum("mlp,mpk->mlk", resid.reshape(-1, t.n_levels, t.p), Lam) / s
        mean = np.linalg.solve(M, w[..., None])[..., 0]
        eps = rng.standard_normal((len(mean), t.n_levels, t.p, 1))
        u = mean + np.linalg.solve(np.swapaxes(R, -1, -2), eps)[..., 0]
        out[rows] = np.einsum("mlp,mkp->mlk", u, Lam) * s
    return out.reshape(chains, draws, t.n_levels, t.p)


def random_effects_from_posterior(post, spec):
    """Per term, its (chain, draw, levels, p) slice of the named ``r_<group>`` variables."""
    return [post[tv.ranef].values[..., tv.coef_start : tv.coef_start + t.p]
            for t, tv in zip(spec.terms, spec.parameters.terms)]


def linear_predictor(spec, fixed, b_terms):
    """``offset + X beta + Z b`` for every draw: (chain, draw, obs)."""
    beta = beta_draws(fixed, spec.fixed_names, b_terms[0].shape[:2])
    mu = np.einsum("np,cdp->cdn", spec.X, beta) + spec.working_offset
    for t, b in zip(spec.terms, b_terms):
        mu += np.einsum("nk,cdnk->cdn", t.design.matrix, b[:, :, t.codes, :])
    return mu


def named_posterior(post, built, b_terms, fixed, variances):
    """xarray Dataset with the shared names; random effects grouped by grouping factor.

    The terms on one factor share its ``r_<group>`` variable, except a term whose
    parameter names carry ``g.1`` (see :mod:`lmmcompare.spec.parameters`): it has ``r_g.1``.
    """
    spec = built.spec
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
    data = {}
    for name, values in list(fixed.items()) + list(variances.items()):
        data[name] = xr.DataArray(values, dims=("chain", "draw"), coords=coords)
    for ranef, parts in spec.parameters.ranef_variables().items():
        values = np.concatenate([b_terms[tv.term] for tv in parts], axis=-1)
        cols = [c for tv in parts for c in spec.terms[tv.term].columns]
        lev_dim, coef_dim = parts[0].group, parts[0].coef_dim
        data[ranef] = xr.DataArray(values, dims=("chain", "draw", lev_dim, coef_dim),
                                   coords={**coords, lev_dim: list(spec.terms[parts[0].term].levels), coef_dim: cols})
    return xr.Dataset(data, attrs=post.attrs)
