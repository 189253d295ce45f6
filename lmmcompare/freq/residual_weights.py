"""The cross-products of a ``sigma_by`` model at its residual sd ratios, and the objective's slope in them.

With ``sigma_by = f`` row ``i`` has weight ``w_i = a_i / delta_{f(i)}^2``
(:mod:`lmmcompare.spec.residual_groups`), so the blocks of ``W^{1/2}[Z X y]``
change with ``delta``: they are rebuilt for each new ``delta`` and the last few
are kept (an optimizer step evaluates at one ``delta``, its difference
quotients at ``2 (K - 1)`` more).  The optimizer works on ``log delta``
(unbounded, as glmmTMB's dispersion parameters), and the derivative of the
criterion in ``log delta`` is taken by central differences,
``(f(l + h e_k) - f(l - h e_k)) / 2h`` with ``h = 1e-6`` (error ``O(h^2)``, far
below the optimizer's tolerances), theta held fixed.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..core.blocks import CrossProducts, cross_products
from ..core.factor import objective

_KEPT = 8


class WeightedProducts:
    """``cp_at(delta)`` for a spec with ``sigma_by`` (``size`` ratios); nothing for one without."""

    def __init__(self, spec, cp: CrossProducts):
        self.spec, self.cp = spec, cp
        self.size = 0 if spec.sigma_by is None else spec.sigma_by.n_levels - 1
        self._kept: OrderedDict = OrderedDict()
        if self.size:
            ratios = spec.residual_ratios if spec.residual_ratios is not None else np.ones(self.size)
            self._kept[np.log(np.asarray(ratios, float)).tobytes()] = cp

    def at(self, log_delta) -> CrossProducts:
        """The cross-products of the spec with residual sd ratios ``exp(log_delta)``."""
        if not self.size:
            return self.cp
        log_delta = np.asarray(log_delta, dtype=float)
        key = log_delta.tobytes()
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key]
        cp = cross_products(self.spec.with_residual_ratios(np.exp(log_delta)))
        self._kept[key] = cp
        while len(self._kept) > _KEPT:
            self._kept.popitem(last=False)
        return cp

    def ratio_gradient(self, theta, log_delta, reml: bool, workspace=None) -> np.ndarray:
        """``d objective / d log delta`` at ``(theta, log delta)`` by central differences (module docstring)."""
        out = np.empty(self.size)
        for k in range(self.size):
            h = 1e-6
            up, down = log_delta.copy(), log_delta.copy()
            up[k] += h
            down[k] -= h
            out[k] = (objective(self.at(up), theta, reml, workspace)
                      - objective(self.at(down), theta, reml, workspace)) / (2 * h)
        return out
