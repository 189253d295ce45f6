"""A residual sd per level of a factor (``sigma_by``): cross-products at the ratios, and slopes in them.

With ``sigma_by = f`` row ``i`` has weight ``w_i = a_i / delta_{f(i)}^2``
(:mod:`lmmcompare.spec.residual_groups`; ``a`` the prior weights), so the blocks of
``W^{1/2}[Z X y]`` change with ``delta``: :class:`RatioProducts` rebuilds them for each
new ``delta`` and keeps the last few.  Parameters are ``l_k = log delta_k`` (unbounded,
as glmmTMB's dispersion parameters).

Writing ``c_k = delta_k^{-2}``, the density depends on ``c_k`` through ``W`` only.  With
``A`` the matrix of the mixed-model equations (``Lambda'Z'WZ Lambda + I``, and with the X
rows and columns for REML), ``h_i = w_i v_i' A^{-1} v_i`` (``v_i = [Lambda'z_i; x_i]`` or
``Lambda'z_i``; :func:`row_leverages`) and ``e_i = sqrt(w_i)(y_i - x_i'beta - z_i'b)`` the
weighted residual at the penalised least-squares modes, the envelope theorem gives::

    d log|A| / d l_k = -2 sum_{i in k} h_i,   d r^2 / d l_k = -2 sum_{i in k} e_i^2,
    d sum_i log w_i / d l_k = -2 n_k

so the profiled criterion ``log|A| + dof log r^2 - sum log w`` has slope
``-2 [sum_k h_i + (dof / r^2) sum_k e_i^2 - n_k]`` (:func:`criterion_slope`) and the
log-likelihood at ``(beta, sigma)`` (``r^2`` at the modes for that beta, ``A`` without X)
``sum_k h_i + sum_k e_i^2 / sigma^2 - n_k`` (:func:`loglik_slope`).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .blocks import CrossProducts, cross_products
from .relcovar import apply_lambda
from .solve import inverse_quadratic_forms, rest_values_of, solve_modes

_KEPT = 4


class RatioProducts:
    """``at(log_delta)``: a spec with ``sigma_by`` at residual sd ratios ``exp(log_delta)``, and its blocks.

    ``size`` ratios (``K - 1``; 0 without ``sigma_by``, when ``at`` returns the spec and ``cp`` given).
    """

    def __init__(self, spec, cp: CrossProducts | None = None):
        self.spec = spec
        self.cp = cp
        self.size = 0 if spec.sigma_by is None else spec.sigma_by.n_levels - 1
        self._kept: OrderedDict = OrderedDict()
        if self.size and cp is not None:
            ratios = spec.residual_ratios if spec.residual_ratios is not None else np.ones(self.size)
            self._kept[np.log(np.asarray(ratios, float)).tobytes()] = (spec, cp)

    def at(self, log_delta) -> tuple:
        """``(spec, cp)``: the spec with residual sd ratios ``exp(log_delta)`` and its cross-products."""
        if not self.size:
            return self.spec, self.cp
        log_delta = np.asarray(log_delta, dtype=float)
        key = log_delta.tobytes()
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key]
        spec = self.spec.with_residual_ratios(np.exp(log_delta))
        self._kept[key] = (spec, cross_products(spec))
        while len(self._kept) > _KEPT:
            self._kept.popitem(last=False)
        return self._kept[key]


def criterion_slope(spec, f, reml: bool) -> np.ndarray:
    """``d criterion / d log delta_k``, k = 2..K, of the profiled criterion at the factor ``f`` of ``spec``."""
    cp = f.cp
    u, beta = solve_modes(f)
    dof = cp.n - cp.p if reml else cp.n
    per_row = row_leverages(spec, f, include_X=reml) + dof / f.r2 * weighted_residuals(spec, f, u, beta) ** 2
    return -2.0 * _by_level(spec, per_row)


def loglik_slope(spec, f, beta, sigma: float) -> np.ndarray:
    """``d log p(y | beta, sigma, theta, delta) / d log delta_k``, k = 2..K, at the factor ``f`` of ``spec``."""
    u, _ = solve_modes(f, np.asarray(beta, dtype=float))
    resid = weighted_residuals(spec, f, u, beta)
    return _by_level(spec, row_leverages(spec, f, include_X=False) + resid * resid / (sigma * sigma))


def _by_level(spec, per_row) -> np.ndarray:
    """``sum_{i in k} per_row_i - n_k`` for k = 2..K."""
    codes, K = spec.sigma_by.codes, spec.sigma_by.n_levels
    return (np.bincount(codes, weights=per_row, minlength=K) - np.bincount(codes, minlength=K))[1:]


def weighted_residuals(spec, f, u, beta) -> np.ndarray:
    """``W^{1/2}(y - offset - X beta - Z Lambda u)``: the residuals of the row-scaled model."""
    b = apply_lambda(u, f.Ts, [t.n_levels for t in spec.terms])
    resid = spec.y - spec.working_offset - spec.X @ beta - spec.Z @ b
    w = spec.row_weights
    return resid if w is None else np.sqrt(w) * resid


def row_leverages(spec, f, include_X: bool, chunk_entries: int = 4_000_000) -> np.ndarray:
    """``h_i = w_i v_i' A^{-1} v_i`` for every row (module docstring), in chunks of rows (no n x q array)."""
    cp = f.cp
    root = np.sqrt(spec.row_weights) if spec.row_weights is not None else np.ones(spec.n)
    X = spec.X * root[:, None]
    out = np.empty(spec.n)
    step = max(1, chunk_entries // cp.largest_dense_block)
    for start in range(0, spec.n, step):
        sl = slice(start, min(spec.n, start + step))
        first_values, entries = None, []
        for i, (t, T) in enumerate(zip(spec.terms, f.Ts)):
            v = (t.design.matrix[sl] @ T) * root[sl, None]        # (Lambda'z)' per row: z' T_i
            if i == 0:
                first_values = v
                continue
            cols = cp.rest_offsets[i - 1] + t.codes[sl][:, None] * t.p + np.arange(t.p)
            entries.append((np.arange(v.shape[0]), cols, v))
        rest = rest_values_of(cp, X[sl], entries)
        out[sl] = inverse_quadratic_forms(f, spec.terms[0].codes[sl], first_values, rest, include_X=include_X)
    return out
