"""Validation studies on both engines: the REML/posterior identity, coverage, SBC."""
from .coverage import CoverageResult, coverage
from .identity import reml_posterior_identity
from .sbc import SBCResult, sbc

__all__ = ["reml_posterior_identity", "coverage", "CoverageResult", "sbc", "SBCResult"]
