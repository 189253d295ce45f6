"""Multiplicity adjustments of a family of t-tests and intervals, as emmeans' ``summary`` makes them.

For ``m`` estimates ``t_i = est_i / se_i`` with ``df_i`` (a family: the
contrasts within one ``by`` group), two-sided:

* ``none``: ``p = 2 P(T > |t|)``, interval ``est +- t_{df, 1-a/2} se``;
* ``bonferroni``: ``min(1, m p)``, intervals at ``1 - a/m``; ``holm``: Holm's
  step-down p-values with Bonferroni intervals (emmeans);
* ``sidak``: ``1 - (1 - p)^m``, intervals at level ``(1 - a)^{1/m}``;
* ``tukey`` (pairwise comparisons of ``k`` means): ``P(Q_{k,df} > sqrt(2) |t|)``
  with ``Q`` the studentized range, critical value ``q_{k,df}(1-a) / sqrt(2)``;
* ``dunnettx``: emmeans' approximation to Dunnett's distribution,
  ``F(x) = w Tukey(sqrt(2) x; k') + (1 - w) F_{1,df}(x^2)^m`` with
  ``k' = (1 + sqrt(1 + 8 m)) / 2`` and ``w = (m - 1)/m``;
* ``mvt``: the exact distribution of ``max |T_i|`` for a multivariate t with
  the estimates' correlation and ``floor(df + 1/4)`` degrees of freedom
  (emmeans' ``.my.pmvt``), by seeded quasi-Monte Carlo (R's mvtnorm uses
  Genz-Bretz, also randomised): both are accurate to about 1e-3.
"""
from __future__ import annotations

import numpy as np
import scipy.optimize
import scipy.special
import scipy.stats
import scipy.stats.qmc

from ..errors import ArgumentError

ADJUSTMENTS = ("tukey", "holm", "bonferroni", "sidak", "mvt", "dunnettx", "none")
MVT_SEED = 20130925   # the quasi-Monte Carlo of mvt is seeded: the same call gives the same p-values


def _tukey_family(m: int) -> float:
    return (1 + np.sqrt(1 + 8 * m)) / 2


def _pdunnx(x, m, df):
    k = _tukey_family(m)
    tukey = scipy.stats.studentized_range.cdf(np.sqrt(2) * x, k, df)
    sidak = scipy.stats.f.cdf(x**2, 1, df) ** m
    w = (m - 1) / m
    return w * tukey + (1 - w) * sidak


def _mvt_df(df) -> float:
    d = float(np.mean(df))
    return np.inf if not np.isfinite(d) or d > 9999 else float(np.floor(max(1.0, d) + 0.25))


MVT_POINTS = 2**17


def _max_abs_t(corr: np.ndarray, df: float) -> np.ndarray:
    """Sorted quasi-Monte Carlo draws of ``max_i |T_i|`` for a multivariate t (normal for df = inf).

    ``T = Z / sqrt(chi2_df / df)`` with ``Z = U diag(sqrt(lambda)) e`` from the
    eigenvectors of ``corr``, so singular correlations (every pairwise difference
    of k means has rank k - 1) are exact; scrambled Sobol points, seeded.
    """
    lam, U = np.linalg.eigh(corr)
    keep = lam > 1e-10 * lam.max()
    root = U[:, keep] * np.sqrt(lam[keep])
    r = int(keep.sum())
    u = scipy.stats.qmc.Sobol(r + 1, scramble=True, seed=MVT_SEED).random(MVT_POINTS)
    u = np.clip(u, 1e-15, 1 - 1e-15)
    z = scipy.special.ndtri(u[:, :r]) @ root.T
    if np.isfinite(df):
        z /= np.sqrt(scipy.stats.chi2.ppf(u[:, r], df) / df)[:, None]
    return np.sort(np.abs(z).max(axis=1))


def _max_abs_t_cdf(x, corr: np.ndarray, df: float) -> np.ndarray:
    """``P(max_i |T_i| <= x)`` (:func:`_max_abs_t`)."""
    draws = _max_abs_t(corr, df)
    return np.searchsorted(draws, np.asarray(x, float), side="right") / draws.size


def adjusted_p(t, df, adjust: str, pairwise_means: int | None = None, corr=None) -> np.ndarray:
    """Two-sided p-values of one family, adjusted (module docstring).

    ``pairwise_means`` is the number of means compared when the family is every
    pair of them (Tukey's ``k``); without it, Tukey becomes Sidak, as in emmeans.
    """
    t, df = np.abs(np.asarray(t, float)), np.broadcast_to(np.asarray(df, float), np.shape(t))
    m = t.size
    raw = 2 * scipy.stats.t.sf(t, df)
    if m == 1 or adjust == "none":
        return raw
    if adjust == "tukey" and pairwise_means is None:
        adjust = "sidak"
    if adjust == "bonferroni":
        return np.minimum(1.0, m * raw)
    if adjust == "holm":
        order = np.argsort(raw)
        stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * raw[order]))
        out = np.empty(m)
        out[order] = stepped
        return out
    if adjust == "sidak":
        return 1 - (1 - raw) ** m
    if adjust == "tukey":
        return scipy.stats.studentized_range.sf(np.sqrt(2) * t, pairwise_means, df)
    if adjust == "dunnettx":
        return 1 - _pdunnx(t, m, df)
    if adjust == "mvt":
        return 1 - _max_abs_t_cdf(t, corr, _mvt_df(df))
    raise ArgumentError(f"adjust must be one of {', '.join(ADJUSTMENTS)}, got {adjust!r}")


def critical_values(level: float, df, adjust: str, pairwise_means: int | None = None, corr=None) -> np.ndarray:
    """Multipliers of the se for two-sided intervals of one family at ``level`` (module docstring).

    Holm's intervals are Bonferroni's, as in emmeans.
    """
    df = np.asarray(df, float)
    m = df.size
    alpha = 1 - level
    if m == 1 or adjust == "none":
        return scipy.stats.t.ppf(1 - alpha / 2, df)
    if adjust == "tukey" and pairwise_means is None:
        adjust = "sidak"
    if adjust in ("bonferroni", "holm"):
        return scipy.stats.t.ppf(1 - alpha / (2 * m), df)
    if adjust == "sidak":
        return scipy.stats.t.ppf(1 - (1 - level ** (1 / m)) / 2, df)
    if adjust == "tukey":
        return scipy.stats.studentized_range.ppf(level, pairwise_means, df) / np.sqrt(2)
    if adjust == "dunnettx":
        out = []
        for d in df:
            low = scipy.stats.studentized_range.ppf(level, _tukey_family(m), d) / np.sqrt(2)
            high = np.sqrt(scipy.stats.f.ppf(level ** (1 / m), 1, d))
            lo, hi = min(low, high), max(low, high)
            out.append(lo if hi - lo < 5e-4 else
                       scipy.optimize.brentq(lambda x: _pdunnx(x, m, d) - level, lo, hi, xtol=5e-4))
        return np.array(out)
    if adjust == "mvt":
        return np.full(m, np.quantile(_max_abs_t(corr, _mvt_df(df)), level))
    raise ArgumentError(f"adjust must be one of {', '.join(ADJUSTMENTS)}, got {adjust!r}")
