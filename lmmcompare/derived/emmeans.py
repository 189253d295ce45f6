"""Estimated marginal means and their contrasts, as R's emmeans, for both paradigms.

``lc.emmeans(fit, "recipe")`` builds the reference grid (:mod:`.grid`): each
mean is ``l' beta``.  For an :class:`~lmmcompare.LmerFit` its se is
``sqrt(l' V l)`` with ``V`` the Kenward-Roger adjusted covariance of beta
(pbkrtest's ``vcovAdj``, as emmeans' default) or ``vcov(beta)`` for
Satterthwaite and asymptotic df, and its df that of the one-row contrast
``l`` (pbkrtest's ``Lb_ddf`` or lmerTest's Satterthwaite); intervals are
``est +- t_{df} se``.  Contrasts ``c`` of the means are ``(c'L) beta`` and are
tested the same way, with the family's multiplicity adjustment
(:mod:`.adjust`).  For a :class:`~lmmcompare.BayesFit` the same ``L`` is
applied to every posterior draw (:mod:`.emmeans_bayes`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.stats

from ..arguments import check_choice, check_level
from .adjust import ADJUSTMENTS, adjusted_p, critical_values
from .contrasts import contrast_matrix, families, labels
from .grid import Grid, reference_grid

DDFS = ("kenward-roger", "satterthwaite", "asymptotic")
ROW_LIMITS = {"kenward-roger": 3000, "satterthwaite": 3000}   # emmeans' pbkrtest.limit and lmerTest.limit


def emmeans(fit, specs, by=None, at=None, ddf: str = "kenward-roger", level: float = 0.95, weights: str = "equal",
            hdi: bool = False):
    """Estimated marginal means of ``specs`` (emmeans' ``emmeans(fit, specs, by, at)``).

    Parameters
    ----------
    fit : LmerFit or BayesFit
    specs : str or list of str
        The factors whose means are wanted: ``"recipe"``, ``["recipe", "temperature"]``,
        ``"~ recipe | temperature"`` (means of recipe within each temperature).
    by : str or list of str, optional
        Factors within whose levels the means are compared.
    at : dict, optional
        Values of covariates (default: their means) or a subset of a factor's levels.
    ddf : {"kenward-roger", "satterthwaite", "asymptotic"}
        As emmeans' ``lmer.df``; beyond ``ROW_LIMITS`` rows (3,000, as
        emmeans) the df are asymptotic.  Ignored for a BayesFit.
    level : float
    weights : {"equal", "proportional"}
        How the grid rows are averaged over the other factors.
    hdi : bool
        BayesFit: highest-density intervals in place of equal-tailed ones.

    An offset of the model is not part of the means (``L beta`` alone), where
    emmeans adds the offset evaluated on the grid.

    Returns
    -------
    EMMeans or BayesEMMeans
    """
    level = check_level("level", level)
    grid = reference_grid(fit.spec, specs, by, at, weights)
    if hasattr(fit, "idata"):
        from .emmeans_bayes import BayesEMMeans   # reads the posterior: only for a Bayesian fit

        return BayesEMMeans(fit=fit, grid=grid, level=level, hdi=hdi)
    check_choice("ddf", ddf, DDFS)
    if ddf != "asymptotic" and fit.nobs > ROW_LIMITS[ddf]:
        ddf = "asymptotic"
    return EMMeans(fit=fit, grid=grid, ddf=ddf, level=level)


@dataclass(frozen=True, eq=False)
class EMMeans:
    """Estimated marginal means of an :class:`~lmmcompare.LmerFit` (:func:`lmmcompare.emmeans`)."""

    fit: object
    grid: Grid
    ddf: str
    level: float

    @property
    def vcov(self) -> np.ndarray:
        """``L V L'``: the covariance of the means (Kenward-Roger adjusted with ``ddf="kenward-roger"``)."""
        return self.grid.L @ self._beta_vcov() @ self.grid.L.T

    def _beta_vcov(self) -> np.ndarray:
        if self.ddf == "kenward-roger":
            from ..freq.inference import kenward_roger_vcov

            return kenward_roger_vcov(self.fit)[0]
        return self.fit.vcov_beta

    def _df(self, L: np.ndarray) -> np.ndarray:
        if self.ddf == "asymptotic":
            return np.full(L.shape[0], np.inf)
        from ..freq.inference import kenward_roger_df, satterthwaite_df

        df_of = kenward_roger_df if self.ddf == "kenward-roger" else satterthwaite_df
        return np.array([df_of(self.fit, row[None, :]) for row in L])

    def _rows(self, L: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        V = self._beta_vcov()
        return L @ self.fit.beta, np.sqrt(np.einsum("ij,jk,ik->i", L, V, L)), self._df(L)

    def _index(self) -> pd.Index:
        levels = self.grid.levels[self.grid.by + self.grid.names]
        return pd.MultiIndex.from_frame(levels) if levels.shape[1] > 1 else pd.Index(levels.iloc[:, 0])

    def table(self) -> pd.DataFrame:
        """``emmean, se, df, lower, upper`` per mean (no multiplicity adjustment, as emmeans)."""
        est, se, df = self._rows(self.grid.L)
        half = scipy.stats.t.ppf(0.5 + self.level / 2, df) * se
        return pd.DataFrame({"emmean": est, "se": se, "df": df, "lower": est - half, "upper": est + half},
                            index=self._index())

    def pairs(self, adjust: str = "tukey", level: float | None = None) -> pd.DataFrame:
        """Every pairwise difference within each by-group (emmeans' ``pairs``), labelled ``"A - B"``."""
        return self.contrast("pairwise", adjust, level)

    def contrast(self, method="pairwise", adjust: str | None = None, level: float | None = None) -> pd.DataFrame:
        """Contrasts of the means within each by-group: ``"pairwise"``, ``"trt.vs.ctrl"``, ``"consec"``,
        ``"poly"`` or a dict of weight vectors, with emmeans' default adjustment unless ``adjust`` is given.

        Returns ``estimate, se, df, t, p, lower, upper``.
        """
        level = self.level if level is None else check_level("level", level)
        if adjust is not None:
            check_choice("adjust", adjust, ADJUSTMENTS)
        frames = []
        for key, rows in families(self.grid):
            means = labels(self.grid.levels.iloc[rows], self.grid.names)
            C, names, default = contrast_matrix(method, means)
            how = default if adjust is None else adjust
            frames.append(self._family(C @ self.grid.L[rows], names, how, level, key,
                                       len(means) if method == "pairwise" else None))
        return pd.concat(frames)

    def _family(self, L, names, adjust, level, key, pairwise_means):
        est, se, df = self._rows(L)
        t = est / se
        V = self._beta_vcov()
        cov = L @ V @ L.T
        corr = cov / np.outer(np.sqrt(np.diag(cov)), np.sqrt(np.diag(cov)))
        p = adjusted_p(t, df, adjust, pairwise_means, corr)
        half = critical_values(level, df, adjust, pairwise_means, corr) * se
        index = (pd.MultiIndex.from_tuples([(*key, n) for n in names], names=[*self.grid.by, "contrast"])
                 if key else pd.Index(names, name="contrast"))
        return pd.DataFrame({"estimate": est, "se": se, "df": df, "t": t, "p": p, "lower": est - half,
                             "upper": est + half}, index=index)
