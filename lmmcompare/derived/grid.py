"""The reference grid of emmeans (Lenth): every level of every factor, covariates at their means.

For a fit with factors ``A, B`` and covariate ``x``, the grid is every
combination ``(a, b)`` with ``x = mean(x)`` (or the values ``at`` gives), and
its rows of the fixed-effects design are ``X_g``.  The estimated marginal
mean of level ``a`` of ``specs = A`` is ``l_a' beta`` with ``l_a`` the
weighted mean of the rows of ``X_g`` with ``A = a``: equal weights over the
levels of the other factors by default (emmeans' ``weights = "equal"``), or
the frequencies of their combinations in the data (``"proportional"``).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ArgumentError
from ..spec.design import rebuild_design

WEIGHTINGS = ("equal", "proportional")


def parse_specs(specs, by=None) -> tuple[list[str], list[str]]:
    """``"recipe"``, ``["recipe", "temp"]``, ``"recipe * temperature"`` or ``"~ recipe | temperature"``
    -> (factors of the means, by-factors)."""
    if isinstance(specs, str):
        text = specs.strip().removeprefix("~").strip()
        main, _, after = text.partition("|")
        names = [n.strip() for n in main.replace("*", "+").replace(":", "+").split("+") if n.strip()]
        by_names = [n.strip() for n in after.replace("*", "+").split("+") if n.strip()]
    elif isinstance(specs, (list, tuple)) and all(isinstance(s, str) for s in specs):
        names, by_names = list(specs), []
    else:
        raise ArgumentError(f"specs must be a factor name, a list of them or a formula such as '~ recipe | temp', "
                            f"got {specs!r}")
    if by is not None:
        by_names += [by] if isinstance(by, str) else list(by)
    return names, by_names


@dataclass(frozen=True)
class Grid:
    """The reference grid and the linear functions of the means.

    Attributes
    ----------
    levels : DataFrame
        One row per mean: the levels of the ``specs`` and ``by`` factors.
    L : ndarray (means, p)
        ``emmean = L beta``.
    by : list of str
        The by-factors (pairs and contrasts are taken within each of their combinations).
    names : list of str
        The factors of the means.
    """

    levels: pd.DataFrame
    L: np.ndarray
    names: list
    by: list


def factors_of(spec) -> dict[str, list]:
    """The fixed part's factors and their levels (in the design's order), by column name."""
    out = {}
    for column in spec.predictors:
        col = spec.frame[column]
        if column in spec.fixed.categorical or isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object:
            levels = list(col.cat.categories) if isinstance(col.dtype, pd.CategoricalDtype) else sorted(col.unique())
            out[column] = levels
    return out


def reference_grid(spec, specs, by=None, at=None, weights: str = "equal") -> Grid:
    """The grid of ``spec`` and the ``L`` of the means of ``specs`` (module docstring)."""
    names, by_names = parse_specs(specs, by)
    if weights not in WEIGHTINGS:
        raise ArgumentError(f"weights must be one of {', '.join(map(repr, WEIGHTINGS))}, got {weights!r}")
    at = {} if at is None else dict(at)
    factors = factors_of(spec)
    for name in names + by_names:
        if name not in factors:
            raise ArgumentError(f"{name!r} is not a factor of the fixed part (factors: "
                                f"{', '.join(factors) or 'none'}); numeric covariates are set with at=")
    for name in at:
        if name not in spec.predictors:
            raise ArgumentError(f"at names {name!r}, which is not a predictor of the fixed part "
                                f"({', '.join(spec.predictors)})")
    values = {}
    for column in spec.predictors:
        if column in factors:
            values[column] = list(at.get(column, factors[column]))
        else:
            given = at.get(column, float(pd.to_numeric(spec.frame[column]).mean()))
            values[column] = list(np.atleast_1d(given))
    columns = list(values)
    rows = list(itertools.product(*values.values()))
    frame = pd.DataFrame(rows, columns=columns)
    for column in factors:
        frame[column] = pd.Categorical(frame[column], categories=factors[column])
    X = rebuild_design(spec.fixed, frame, "the reference grid")[:, list(spec.keep_fixed)]
    keys = names + by_names
    if weights == "proportional":
        others = [c for c in factors if c not in keys]
        counts = spec.frame.groupby(others, observed=False).size() if others else None
        w = (np.ones(len(frame)) if counts is None
             else counts.reindex(pd.MultiIndex.from_frame(frame[others]) if len(others) > 1
                                 else frame[others[0]]).to_numpy(dtype=float))
    else:
        w = np.ones(len(frame))
    means = frame[keys].drop_duplicates()
    # emmeans' order: the first factor varies fastest, the by-factors slowest
    order = list(reversed(by_names)) + list(reversed(names))
    means = means.sort_values(order, kind="stable", key=lambda s: s.cat.codes if hasattr(s, "cat") else s)
    L = []
    for _, level in means.iterrows():
        rows_of = np.all([frame[k].to_numpy() == level[k] for k in keys], axis=0)
        share = w * rows_of
        L.append(share @ X / share.sum())
    return Grid(levels=means.reset_index(drop=True), L=np.array(L), names=names, by=by_names)
