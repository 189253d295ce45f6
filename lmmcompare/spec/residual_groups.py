"""A residual sd per level of a factor: ``sigma_by="f"`` (nlme's ``varIdent(~ 1 | f)``).

Row ``i`` in level ``k = f(i)`` has residual sd ``sigma delta_k``, ``delta_1 = 1`` for
the first level (glmmTMB's and brms' reference), so the model is the weighted one
of :mod:`.inputs` with weights ``w_i = a_i / delta_k^2`` (``a_i`` the prior
weights): the criterion gains ``-sum_i log w_i`` and the rows of ``[Z X y]`` are
scaled by ``sqrt(w_i)``.  The ratios ``delta_2..delta_K`` are parameters of both
engines (:class:`lmmcompare.spec.parameters.ParameterTable`, kind ``"sigma_ratio"``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError
from .design import GroupingFactor, grouping_factor


def residual_factor(name, frame: pd.DataFrame) -> GroupingFactor:
    """The factor of ``sigma_by``: a categorical column with two or more levels, each on two or more rows."""
    if not isinstance(name, str):
        raise DataError(f"sigma_by must name a factor column of data (a str), got {type(name).__name__}")
    if name not in frame.columns:
        raise DataError(f"sigma_by names column {name!r}, which data does not have; "
                        f"columns are {', '.join(map(str, frame.columns[:12]))}")
    column = frame[name]
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if numeric and not isinstance(column.dtype, pd.CategoricalDtype):
        raise DataError(f"sigma_by column {name!r} is numeric; a residual sd per level needs a factor: "
                        f"convert it with data[{name!r}].astype('category')")
    if column.nunique() < 2:
        raise DataError(f"sigma_by column {name!r} has one level in the model's rows, so there is no second "
                        "residual sd to estimate: drop sigma_by")
    factor = grouping_factor((name,), frame)
    counts = np.bincount(factor.codes, minlength=factor.n_levels)
    if counts.min() < 2:
        level = factor.levels[int(np.argmin(counts))]
        raise DataError(f"sigma_by column {name!r}: level {level!r} holds {counts.min()} row, too few to estimate "
                        "its residual sd; merge it with another level or drop those rows")
    return factor


def level_scales(ratios) -> np.ndarray:
    """``(1, delta_2, ..., delta_K)`` along the last axis: every level's residual sd over the first level's,
    from the ratios ``(..., K - 1)`` (one set, or one per posterior draw)."""
    ratios = np.asarray(ratios, dtype=float)
    return np.concatenate([np.ones(ratios.shape[:-1] + (1,)), ratios], axis=-1)


def row_scales(factor: GroupingFactor, ratios) -> np.ndarray:
    """``delta_{f(i)}`` for every row (last axis), from the ratios of levels 2..K (level 1: 1)."""
    return level_scales(ratios)[..., factor.codes]
