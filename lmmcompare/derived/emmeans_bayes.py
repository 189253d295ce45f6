"""Estimated marginal means of a Bayesian fit: the grid's ``L`` applied to every posterior draw.

Each mean ``l' beta`` and each contrast ``(c'L) beta`` has a posterior (one
value per draw); tables summarise it by its median, sd and equal-tailed (or
highest-density) interval, and contrasts report the probability of direction
``pd = max(P(est > 0), P(est < 0))`` where the frequentist table has a p-value.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..arguments import check_level
from .contrasts import contrast_matrix, families, labels
from .grid import Grid


def direction_probability(draws: np.ndarray) -> np.ndarray:
    """``pd = max(P(est > 0), P(est < 0))`` per column of ``draws`` (draws x quantities)."""
    return np.maximum((draws > 0).mean(axis=0), (draws < 0).mean(axis=0))


@dataclass(frozen=True, eq=False)
class BayesEMMeans:
    """Estimated marginal means of a :class:`~lmmcompare.BayesFit` (:func:`~lmmcompare.emmeans`)."""

    fit: object
    grid: Grid
    level: float
    hdi: bool = False

    def _beta(self) -> np.ndarray:
        """The fixed effects of every draw, chains stacked: (draws, p)."""
        from ..bayesian.postprocess import posterior_beta   # a BayesFit: the Bayesian engine is loaded

        beta = posterior_beta(self.fit.idata.posterior, self.fit.spec)
        return beta.reshape(-1, beta.shape[-1])

    def draws(self) -> pd.DataFrame:
        """The posterior draws of the means: one row per draw (chains stacked), one column per mean."""
        values = self._beta() @ self.grid.L.T
        return pd.DataFrame(values, columns=self._index())

    def _index(self) -> pd.Index:
        levels = self.grid.levels[self.grid.by + self.grid.names]
        return pd.MultiIndex.from_frame(levels) if levels.shape[1] > 1 else pd.Index(levels.iloc[:, 0])

    def _interval(self, values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        if self.hdi:
            import arviz as az

            bounds = np.array([az.hdi(values[:, j], hdi_prob=level) for j in range(values.shape[1])])
            return bounds[:, 0], bounds[:, 1]
        tail = (1 - level) / 2
        return np.quantile(values, tail, axis=0), np.quantile(values, 1 - tail, axis=0)

    def table(self) -> pd.DataFrame:
        """``emmean`` (posterior median), ``se`` (posterior sd), ``lower, upper`` per mean."""
        values = self.draws().to_numpy()
        lower, upper = self._interval(values, self.level)
        return pd.DataFrame({"emmean": np.median(values, axis=0), "se": values.std(axis=0, ddof=1),
                             "lower": lower, "upper": upper}, index=self._index())

    def pairs(self, level: float | None = None) -> pd.DataFrame:
        """The posterior of every pairwise difference within each by-group, labelled ``"A - B"``."""
        return self.contrast("pairwise", level)

    def contrast_draws(self, method="pairwise") -> pd.DataFrame:
        """The posterior draws of contrasts of the means within each by-group (draws x contrasts)."""
        beta = self._beta()
        frames = []
        for key, rows in families(self.grid):
            C, names, _ = contrast_matrix(method, labels(self.grid.levels.iloc[rows], self.grid.names))
            index = (pd.MultiIndex.from_tuples([(*key, n) for n in names], names=[*self.grid.by, "contrast"])
                     if key else pd.Index(names, name="contrast"))
            frames.append(pd.DataFrame(beta @ (C @ self.grid.L[rows]).T, columns=index))
        return pd.concat(frames, axis=1)

    def contrast(self, method="pairwise", level: float | None = None) -> pd.DataFrame:
        """Posterior of contrasts of the means (methods as :meth:`lmmcompare.derived.emmeans.EMMeans.contrast`):
        ``estimate`` (median), ``se`` (sd), ``lower``, ``upper`` and ``pd``."""
        level = self.level if level is None else check_level("level", level)
        draws = self.contrast_draws(method)
        values = draws.to_numpy()
        lower, upper = self._interval(values, level)
        return pd.DataFrame({"estimate": np.median(values, axis=0), "se": values.std(axis=0, ddof=1),
                             "lower": lower, "upper": upper,
                             "pd": direction_probability(values)},
                            index=draws.columns)
