"""Leave-one-group-out: each group's exact marginal log-likelihood for every posterior draw.

The stored pointwise log-likelihood ``log p(y_i | beta, b, sigma)`` is conditional on
the random effects; leaving out one row of a group moves that group's ``b`` a lot,
so PSIS-LOO's Pareto k is often above 0.7 on ordinary models.  Integrating ``b``
out gives the likelihood of a whole group instead.  It factorizes over the levels
``g`` of a grouping factor ``G`` when every term's grouping factor nests in ``G``
(each of its levels lies within one level of ``G``: one factor, or the coarsest
factor of a nested design)::

    p(y | beta, sigma, Sigma) = prod_g N(y_g; X_g beta, V_g),   V_g = sigma^2 W_g^{-1} + Z_g Sigma Z_g'

with ``Z_g`` the columns of the levels inside ``g`` (``q_g`` of them) and ``Sigma``
block-diagonal, ``Sigma_t`` per level of term ``t``.  With ``T_g`` block-diagonal,
``T_t T_t' = Sigma_t``, ``r = y_g - X_g beta`` and ``n_g`` rows, Woodbury and the
determinant lemma give, without an ``n_g x n_g`` matrix::

    M_g = sigma^2 I + T_g' Z_g'W_g Z_g T_g,   w = T_g' Z_g' W_g r
    log p(y_g | theta) = -1/2 [n_g log 2 pi + (n_g - q_g) log sigma^2 - log|W_g| + log|M_g|
                               + (r'W_g r - w' M_g^{-1} w) / sigma^2]

with ``W_g`` the row weights ``a_i / delta_f(i)^2`` (prior weights ``a``, the ``sigma_by``
ratios ``delta`` of the draw; the identity without either).

Given ``theta = (beta, sigma, Sigma)`` the groups are independent, so
``p(y_g | y_-g) = E[p(y_g | theta) | y_-g]``, which PSIS estimates from the full
posterior (Vehtari, Gelman and Gabry 2017) with ratios ``1 / p(y_g | theta_s)``.
Only the draws of beta, sigma and the sd/cor rows are read, so every
parameterisation gives it.  Crossed factors have no such ``G``; the conditional
form ``p(y_g | y_-g, theta)`` of Bürkner, Gabry and Vehtari (2021) is not
implemented, and :func:`loo_grouping_factor` raises
:class:`~lmmcompare.errors.CrossedGroupingError`.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from ..errors import CrossedGroupingError
from ..spec import ModelSpec
from ..spec.residual_groups import level_scales
from .postprocess import term_sd_cor_draws
from .residual import ratio_draws

LOG_2PI = float(np.log(2 * np.pi))
CHUNK_ENTRIES = 1 << 22   # draws per pass: at most this many entries in the per-draw arrays (32 MiB of float64)


def nests_in(inner, outer) -> bool:
    """Whether every level of factor ``inner`` lies within one level of factor ``outer`` (rows are aligned)."""
    outer_of_level = np.empty(inner.n_levels, dtype=np.int64)
    outer_of_level[inner.codes] = outer.codes   # some row's outer level per inner level
    return bool(np.array_equal(outer_of_level[inner.codes], outer.codes))


def loo_grouping_factor(spec: ModelSpec):
    """The factor ``G`` whose levels the marginal likelihood factorizes over.

    The coarsest grouping factor of ``spec`` in which every term's factor nests
    (``(1 | batch/cask)``: ``batch``, although the engine orders ``cask:batch``
    first).  Raises :class:`~lmmcompare.errors.CrossedGroupingError` when there
    is none (crossed factors).
    """
    factors = list(spec.factors.values())
    fits = [F for F in factors if all(nests_in(t.factor, F) for t in spec.terms)]
    if fits:
        return min(fits, key=lambda F: F.n_levels)
    spans = "; ".join(f"{next(o.name for o in factors if not nests_in(o, F))} is not nested in {F.name}"
                      for F in factors)
    raise CrossedGroupingError(
        f"group-level LOO is not available for crossed grouping factors ({', '.join(f.name for f in factors)}): "
        f"{spans}, so the rows of one level of any of them share random effects with rows of other levels and "
        "the marginal likelihood does not factorize over the levels of any one factor. "
        "Use the observation-level loo() or K-fold cross-validation instead; if one factor's levels are only "
        "labelled within another's (the same labels reused in each), write the nesting, e.g. (1 | outer/inner)")


def covariance_roots(posterior, spec: ModelSpec) -> list[np.ndarray]:
    """Per term, ``T_t`` with ``T_t T_t' = Sigma_t`` for every draw, (draws, p, p), from the sd and cor rows.

    ``Sigma_t = diag(sd) R diag(sd)`` (a structured term's ``R`` from its common
    correlation or rho, :func:`.postprocess.term_sd_cor_draws`); for p > 1
    ``T_t = Q diag(sqrt(lambda))`` from its eigendecomposition, which also holds
    at a singular ``Sigma_t``.
    """
    roots = []
    for i, term in enumerate(spec.terms):
        sd, cor = term_sd_cor_draws(posterior, spec, i)
        sd, cor = sd.reshape(-1, term.p), cor.reshape(-1, term.p, term.p)
        if term.p == 1:
            roots.append(sd[:, :, None])
            continue
        lam, Q = np.linalg.eigh(sd[:, :, None] * cor * sd[:, None, :])
        roots.append(Q * np.sqrt(np.clip(lam, 0.0, None))[:, None, :])
    return roots


def _flat(da) -> np.ndarray:
    return np.asarray(da.values, dtype=float).reshape(-1)


def _group_design(spec: ModelSpec, rows: np.ndarray):
    """``Z_g`` (dense, n_g x q_g) and, per column block, (term, p): the levels of each term inside the group."""
    blocks, parts = [], []
    for k, term in enumerate(spec.terms):
        levels, local = np.unique(term.codes[rows], return_inverse=True)
        Zt = np.zeros((rows.size, levels.size * term.p))
        Zt[np.arange(rows.size)[:, None], local[:, None] * term.p + np.arange(term.p)] = term.design.matrix[rows]
        parts.append(Zt)
        blocks += [(k, term.p)] * levels.size
    return np.hstack(parts), blocks


def group_log_density(y_g, X_g, Z_g, blocks, beta, sigma, roots, weights=None) -> np.ndarray:
    """``log N(y_g; X_g beta_s, sigma_s^2 W_s^{-1} + Z_g Sigma_s Z_g')`` for each draw s (module docstring).

    Parameters
    ----------
    y_g, X_g, Z_g : arrays (n_g,), (n_g, p), (n_g, q_g)
    blocks : list of (term, p)
        The diagonal blocks of ``T_g`` in the column order of ``Z_g``.
    beta, sigma : arrays (S, p), (S,)
    roots : list of arrays (S, p_t, p_t)
        ``T_t`` per term (:func:`covariance_roots`).
    weights : array (S, n_g), optional
        Row weights ``w_i`` (residual variance ``sigma^2 / w_i``: prior weights over
        ``delta_f(i)^2``); the cross-products are then ``Z'WZ``, ``Z'W r`` and ``r'W r``,
        and the density gains ``sum_i log w_i / 2``.  None: all 1.
    """
    n_g, q_g = Z_g.shape
    S = sigma.size
    T = np.zeros((S, q_g, q_g))
    at = 0
    for term, p in blocks:
        T[:, at : at + p, at : at + p] = roots[term]
        at += p
    r = y_g - beta @ X_g.T                                    # (S, n_g)
    s2 = sigma**2
    if weights is None:
        ZtZ, Wr, log_w = Z_g.T @ Z_g, r, 0.0
    else:
        ZtZ, Wr, log_w = np.einsum("ni,sn,nj->sij", Z_g, weights, Z_g), weights * r, np.log(weights).sum(axis=1)
    M = s2[:, None, None] * np.eye(q_g) + np.swapaxes(T, 1, 2) @ ZtZ @ T
    w = np.einsum("sji,sj->si", T, Wr @ Z_g)
    logdet = 2.0 * np.log(np.diagonal(np.linalg.cholesky(M), axis1=1, axis2=2)).sum(axis=1)
    quad = np.einsum("si,si->s", w, np.linalg.solve(M, w[:, :, None])[:, :, 0])
    return -0.5 * (n_g * LOG_2PI + (n_g - q_g) * np.log(s2) + logdet + (np.einsum("sn,sn->s", Wr, r) - quad) / s2
                   - log_w)


def group_log_likelihood(spec: ModelSpec, posterior) -> xr.DataArray:
    """``log p(y_g | beta_s, sigma_s, Sigma_s)``, b integrated out, for every draw and level g of G.

    Parameters
    ----------
    spec : ModelSpec
    posterior : xarray.Dataset
        The fit's posterior under the parameter table's names (``BayesFit.idata.posterior``).

    Returns
    -------
    xarray.DataArray
        Dims ``(chain, draw, G)``, ``G`` the name of :func:`loo_grouping_factor`'s
        factor, its levels as coordinates.

    Notes
    -----
    Per group, ``O(S q_g^3 + S n_g q_g)`` for ``S`` draws: a dense ``M_g`` per draw,
    meant for groups with few random effects each (not a sparse factor).
    """
    G = loo_grouping_factor(spec)
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    sigma = _flat(posterior[spec.parameters["sigma"].label])
    beta = (np.stack([_flat(posterior[n]) for n in spec.fixed_names], axis=-1) if spec.fixed_names
            else np.zeros((sigma.size, 0)))
    roots = covariance_roots(posterior, spec)
    order = np.argsort(G.codes, kind="stable")
    bounds = np.searchsorted(G.codes[order], np.arange(G.n_levels + 1))
    out = np.empty((sigma.size, G.n_levels))
    response = spec.y - spec.working_offset
    # row weights a_i / delta_f(i)^2 (prior weights a, sigma_by ratios delta of each draw): residual sd sigma / sqrt(w_i)
    a = np.ones(spec.n) if spec.weights is None else spec.weights
    ratios = ratio_draws(posterior, spec)
    for g in range(G.n_levels):
        rows = order[bounds[g] : bounds[g + 1]]
        Z_g, blocks = _group_design(spec, rows)
        step = max(1, CHUNK_ENTRIES // (Z_g.shape[1] ** 2 + Z_g.shape[1] * rows.size + rows.size))
        for lo in range(0, sigma.size, step):
            part = slice(lo, lo + step)
            if ratios is None:
                w = None if spec.weights is None else np.broadcast_to(a[rows], (sigma[part].size, rows.size))
            else:
                delta = level_scales(ratios.reshape(sigma.size, -1)[part])
                w = a[rows] / delta[:, spec.sigma_by.codes[rows]] ** 2
            out[part, g] = group_log_density(response[rows], spec.X[rows], Z_g, blocks, beta[part], sigma[part],
                                             [R[part] for R in roots], w)
    return xr.DataArray(out.reshape(chains, draws, G.n_levels), dims=("chain", "draw", G.name),
                        coords={"chain": posterior.chain.values, "draw": posterior.draw.values,
                                G.name: list(G.levels)})
