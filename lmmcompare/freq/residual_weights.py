"""The cross-products of a ``sigma_by`` model at its residual sd ratios, and the objective's slope in them.

With ``sigma_by = f`` row ``i`` has weight ``w_i = a_i / delta_{f(i)}^2``
(:mod:`lmmcompare.spec.residual_groups`), so the blocks of ``W^{1/2}[Z X y]``
change with ``delta``: they are rebuilt for each new ``delta`` and the last few
are kept.  The optimizer works on ``l_k = log delta_k`` (unbounded, as glmmTMB's
dispersion parameters).  Writing ``c_k = delta_k^{-2}``, the criterion
``log|A| + dof log r^2 - sum_i log w_i`` (``A`` the mixed-model equations' matrix,
``Lambda'Z'WZ Lambda + I`` for ML and with the X rows and columns for REML, ``dof``
``n`` or ``n - p``) depends on ``c_k`` through ``W`` only, and by the envelope
theorem for ``r^2``::

    d/dl_k = -2 [ sum_{i in k} h_i + (dof / r^2) sum_{i in k} e_i^2 - n_k ]

with ``h_i = w_i v_i' A^{-1} v_i`` (``v_i = [Lambda'z_i; x_i]``, or ``Lambda'z_i`` for ML:
:func:`lmmcompare.core.solve.inverse_quadratic_forms`) and ``e_i`` the weighted
residual ``sqrt(w_i)(y_i - x_i'beta - z_i'b)`` at the penalised least-squares solution.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..core.blocks import CrossProducts, cross_products
from ..core.relcovar import apply_lambda
from ..core.solve import inverse_quadratic_forms, solve_modes

_KEPT = 4


class WeightedProducts:
    """``at(log_delta)``: the cross-products for a spec with ``sigma_by`` (``size`` ratios); ``cp`` without."""

    def __init__(self, spec, cp: CrossProducts):
        self.spec, self.cp = spec, cp
        self.size = 0 if spec.sigma_by is None else spec.sigma_by.n_levels - 1
        self._kept: OrderedDict = OrderedDict()
        if self.size:
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

    def ratio_gradient(self, spec, f, reml: bool) -> np.ndarray:
        """``d criterion / d log delta_k``, k = 2..K, at the factor ``f`` of ``spec`` (module docstring)."""
        cp = f.cp
        u, beta = solve_modes(f)
        b = apply_lambda(u, f.Ts, [t.n_levels for t in spec.terms])
        resid = spec.working_response - spec.weighted_rows(spec.X) @ beta - spec.weighted_rows(spec.Z) @ b
        dof = cp.n - cp.p if reml else cp.n
        per_row = row_leverages(spec, f, include_X=reml) + dof / f.r2 * resid * resid
        codes = spec.sigma_by.codes
        K = spec.sigma_by.n_levels
        per_level = np.bincount(codes, weights=per_row, minlength=K) - np.bincount(codes, minlength=K)
        return -2.0 * per_level[1:]


def row_leverages(spec, f, include_X: bool, chunk_entries: int = 4_000_000) -> np.ndarray:
    """``h_i = w_i v_i' A^{-1} v_i`` for every row (module docstring), in chunks of rows (no n x q array)."""
    cp = f.cp
    root = np.sqrt(spec.row_weights) if spec.row_weights is not None else np.ones(spec.n)
    X = spec.X * root[:, None]
    out = np.empty(spec.n)
    step = max(1, chunk_entries // cp.m)
    for start in range(0, spec.n, step):
        sl = slice(start, min(spec.n, start + step))
        rest = np.zeros((sl.stop - sl.start, cp.m - 1))
        rest[:, cp.q_rest :] = X[sl]
        first_values = None
        for i, (t, T) in enumerate(zip(spec.terms, f.Ts)):
            v = (t.design.matrix[sl] @ T) * root[sl, None]        # (Lambda'z)' per row: z' T_i
            if i == 0:
                first_values = v
                continue
            cols = cp.rest_offsets[i - 1] + t.codes[sl][:, None] * t.p + np.arange(t.p)
            rest[np.arange(v.shape[0])[:, None], cols] = v
        out[sl] = inverse_quadratic_forms(f, spec.terms[0].codes[sl], first_values, rest, include_X=include_X)
    return out
