"""Bayesian engine: the same ModelSpec as a PyMC model, sampled and named like LmerFit."""
from .fit import bayes
from .priors import Prior, PriorSet, default_priors
from .result import BayesFit

__all__ = ["bayes", "BayesFit", "Prior", "PriorSet", "default_priors"]
