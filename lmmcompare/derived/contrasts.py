"""Contrasts of marginal means as emmeans writes them: coefficients, labels and families.

A contrast ``c`` of the means ``L beta`` is ``(c'L) beta``.  The methods are
emmeans' ``pairwise`` (every ``i < j``: ``"A - B"``), ``trt.vs.ctrl`` (each level
against the first), ``consec`` (each level against the one before) and ``poly``
(orthogonal polynomials over the level order, scaled to small integers, as
emmeans' ``poly.emmc``), or a dict of weight vectors; each family is the means
of one by-group.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..arguments import check_choice
from ..errors import ArgumentError
from .grid import Grid

POLY_NAMES = ["linear", "quadratic", "cubic", "quartic"] + [f"degree {d}" for d in range(5, 21)]
METHOD_ADJUST = {"pairwise": "tukey", "trt.vs.ctrl": "dunnettx", "consec": "mvt", "poly": "none"}


def _numeric(values) -> bool:
    try:
        [float(v) for v in values]
    except (TypeError, ValueError):
        return False
    return True


def labels(levels: pd.DataFrame, names: list) -> list[str]:
    """emmeans' labels of the means in contrasts: the levels of ``names`` joined by spaces, a factor with
    numeric levels named before them (``temperature175``), parenthesised when they hold an operator."""
    parts = [[f"{n}{v}" for v in levels[n]] if _numeric(levels[n]) else [str(v) for v in levels[n]] for n in names]
    joined = [" ".join(p) for p in zip(*parts)]
    return [f"({s})" if any(op in s for op in "-+/*") else s for s in joined]


def contrast_matrix(method, means: list[str]) -> tuple[np.ndarray, list[str], str]:
    """``(C, names, default adjustment)`` of emmeans' contrast ``method`` over ``means`` (one family)."""
    k = len(means)
    if isinstance(method, dict):
        C = np.array([np.asarray(v, float) for v in method.values()])
        if C.ndim != 2 or C.shape[1] != k:
            raise ArgumentError(f"each contrast needs {k} weights (one per mean: {', '.join(means)})")
        return C, list(method), "none"
    check_choice("method", method, tuple(METHOD_ADJUST))
    rows, names = [], []
    if method == "pairwise":
        for i in range(k):
            for j in range(i + 1, k):
                rows.append(np.eye(k)[i] - np.eye(k)[j])
                names.append(f"{means[i]} - {means[j]}")
    elif method == "trt.vs.ctrl":
        for i in range(1, k):
            rows.append(np.eye(k)[i] - np.eye(k)[0])
            names.append(f"{means[i]} - {means[0]}")
    elif method == "consec":
        for i in range(k - 1):
            rows.append(np.eye(k)[i + 1] - np.eye(k)[i])
            names.append(f"{means[i + 1]} - {means[i]}")
    else:   # poly: orthogonal polynomials scaled to small integers (emmeans' poly.emmc)
        x = np.arange(1, k + 1, dtype=float)
        Q = np.linalg.qr(np.vander(x - x.mean(), min(6, k - 1) + 1, increasing=True))[0][:, 1:]
        for j in range(Q.shape[1]):
            con = Q[:, j] * np.sign(Q[-1, j])
            con = con / con[con > 0.01].min()
            z = np.abs(con - np.round(con)).max()
            while z > 0.05:
                con, z = con / z, np.abs(con / z - np.round(con / z)).max()
            rows.append(np.round(con))
            names.append(POLY_NAMES[j])
    return np.array(rows), names, METHOD_ADJUST[method]


def families(grid: Grid) -> list:
    """``(by-levels, rows of the means)`` of each family: every mean, or those of one by-group."""
    if not grid.by:
        return [((), np.arange(len(grid.levels)))]
    groups = grid.levels.groupby(grid.by, sort=False, observed=True).indices
    return [((k,) if not isinstance(k, tuple) else k, rows) for k, rows in groups.items()]
