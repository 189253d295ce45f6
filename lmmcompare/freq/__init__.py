"""Frequentist engine: profiled deviance / REML criterion, blocked Cholesky, LmerFit."""
from .fit import Devfun, lmer, make_devfun, make_fit, optimize_lmer
from .optimize import OptSummary
from .result import LmerFit

__all__ = ["lmer", "make_devfun", "optimize_lmer", "make_fit", "Devfun", "LmerFit", "OptSummary"]
