"""Centred or noncentred: how much the data say about the levels of each term.

For a Gaussian level effect with prior variance ``Sigma`` and data precision
``P_j``, the Gibbs-type coupling between ``b_j`` and ``Sigma`` is weak in the
centred form exactly when the data dominate the prior, and weak in the
noncentred form when the prior dominates (Papaspiliopoulos, Roberts & Skold
2007, Sec. 2; Betancourt & Girolami 2015).  The fraction of a level's
posterior variance that the prior leaves,

    kappa_j = tr((I + Sigma P_j)^{-1}) / p,

is 1 for a level the data say nothing about and 0 for one they pin down.
:func:`term_forms` takes ``Sigma`` and ``P_j = C_j^{-1} - Sigma^{-1}`` (``C_j``
the conditional covariance of ``b_j``) from the REML fit of the same spec and
averages kappa over a term's levels with ``Sigma`` shrunk to the low end of
its own uncertainty.  That low end is
the 10% quantile of the one-way ANOVA picture for ``l`` levels: the spread of
the level estimates, ``Sigma + V`` (``V`` their noise variance), is known to
``chi^2_{l-1} / (l-1)``, so ``Sigma`` is known less well the noisier the levels.
With ``kappa_1`` the mean kappa at the fit, ``V / Sigma = kappa_1 / (1 - kappa_1)``
and the shrink factor is ``q - (1 - q) V / Sigma``, ``q = chi^2_{l-1, 0.1} / (l-1)``.
A term whose sd may well be near 0 (a shrink of 0, or a singular fit) counts
as uninformed (kappa 1): a funnel there is the centred form's failure.

The model is centred when every term's kappa is below 0.25, else noncentred.
Measured at 4 chains x (1000 + 1000), PyMC's NUTS at target_accept 0.9:

* Penicillin (kappa 0.16 and 0.03): noncentred, 1-4 divergences on each of
  seeds 1-4 (and 1 on seed 3 at target_accept 0.95); centred, none.
* sleepstudy ``(Days | Subject)`` (0.31): centred, bulk ESS 303 and R-hat 1.03;
  noncentred, 922 and 1.01.  Hence 0.25, not the Gibbs break-even of 0.5.
* Pastes ``(1 | batch/cask)`` (0.23 and 1): centring the casks alone gave 387
  divergences against the noncentred model's 75, so the choice is made for the
  model as a whole, never term by term.  Mixed forms did no better on
  Penicillin either: samples centred and plates not, R-hat 1.02 on seed 3;
  plates centred and samples not, 4 and 5 divergences (seeds 1 and 11).
  Centred throughout: no divergences and R-hat <= 1.01 on seeds 1-5 and 11
  (bulk ESS 390-528; the lowest tail ESS, 291, on seed 11).
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from ..spec import ModelSpec

CENTRE_BELOW = 0.25      # largest kappa of a centred model (module docstring)
SD_LOW_QUANTILE = 0.10   # how far down its uncertainty a term's variance is shrunk


def prior_fractions(spec: ModelSpec, fit) -> list[float]:
    """Per term, the mean over levels of kappa at the shrunk covariance (inf for a singular term).

    Parameters
    ----------
    spec : ModelSpec
    fit : LmerFit
        The REML fit of ``spec`` (the caller fits it: this engine does not
        import the frequentist one); read through ``term_covariances()`` and
        ``cond_blocks``.
    """
    out = []
    for term, Sigma, C in zip(spec.terms, fit.term_covariances(), fit.cond_blocks):
        try:
            np.linalg.cholesky(Sigma)
            P = np.linalg.inv(C) - np.linalg.inv(Sigma)       # data precision of each level (levels, p, p)
        except np.linalg.LinAlgError:
            out.append(float("inf"))
            continue
        dof = max(term.n_levels - 1, 1)
        q = stats.chi2.ppf(SD_LOW_QUANTILE, dof) / dof
        kappa_fit = _mean_kappa(Sigma, P)
        shrink = q - (1.0 - q) * kappa_fit / (1.0 - kappa_fit) if kappa_fit < 1.0 else 0.0
        out.append(_mean_kappa(shrink * Sigma, P) if shrink > 0 else 1.0)
    return out


def _mean_kappa(Sigma, P) -> float:
    p = Sigma.shape[0]
    M = np.eye(p) + np.einsum("ab,jbc->jac", Sigma, P)
    return float(np.mean(np.trace(np.linalg.inv(M), axis1=1, axis2=2)) / p)


def term_forms(spec: ModelSpec, fit) -> list[str]:
    """``"centered"`` or ``"noncentered"`` for each term of ``spec``, the same for all (module docstring)."""
    fractions = prior_fractions(spec, fit)
    form = "centered" if fractions and max(fractions) < CENTRE_BELOW else "noncentered"
    return [form] * len(spec.terms)
