"""Bayesian engine: the same ModelSpec as a PyMC model, sampled and named like LmerFit."""
from . import blas_link
from .fit import bayes
from .priors import Prior, PriorSet, default_priors
from .result import BayesFit

blas_link.configure()   # before PyTensor compiles anything (blas_link's docstring)

__all__ = ["bayes", "BayesFit", "Prior", "PriorSet", "default_priors"]
