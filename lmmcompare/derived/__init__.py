"""Quantities derived from a fit of either engine: marginal means and their contrasts, R² and the ICC.

A layer above the two engines: it reads an :class:`~lmmcompare.LmerFit` or a
:class:`~lmmcompare.BayesFit` and imports the Bayesian engine only when it is
handed a BayesFit.  Marginal means and their contrasts are linear functions
``L beta`` of the fixed effects: the frequentist answer takes ``L``'s estimate,
standard error and df from the fit (Kenward-Roger or Satterthwaite), the
Bayesian one applies ``L`` to every posterior draw.
"""
from .r2 import ICC, R2, icc, r2
from .variances import VarianceComponents
