"""Frequentist engine: profiled deviance / REML criterion, blocked Cholesky, LmerFit."""
from .build import fit_at_theta, lmer, make_fit
from .fit import Devfun, make_devfun, optimize_lmer
from .optimize import OptSummary
from .result import LmerFit

__all__ = ["lmer", "fit_at_theta", "make_devfun", "optimize_lmer", "make_fit", "Devfun", "LmerFit", "OptSummary"]
