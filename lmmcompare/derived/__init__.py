"""Quantities derived from a fit of either engine: R² and the intraclass correlation.

A layer above the two engines: it reads an :class:`~lmmcompare.LmerFit` or a
:class:`~lmmcompare.BayesFit` and imports the Bayesian engine only when it is
handed a BayesFit.
"""
from .r2 import ICC, R2, icc, r2
from .variances import VarianceComponents

__all__ = ["r2", "icc", "R2", "ICC", "VarianceComponents"]
