"""lmmcompare: one lme4 formula, a frequentist and a Bayesian fit, compared."""
from ._version import __version__

from .datasets import list_datasets, load_dataset
from .errors import ArgumentError, DataError, DatasetNotFoundError, FileFormatError, FormulaError, LmmError
from .spec import ModelSpec
from .spec.contrasts import set_default_contrasts
from .freq import LmerFit, lmer
from .freq.anova import anova
from .derived import icc, r2
from .compare import Comparison, compare
from .derived.emmeans import emmeans
from .frontend import bayes, fit_both
from .loading import load
from . import validate  # lc.validate.coverage(...) without a second import; it imports PyMC only when it samples

__all__ = ["ModelSpec", "set_default_contrasts", "lmer", "LmerFit", "anova", "r2", "icc", "emmeans", "bayes",
           "BayesFit", "compare", "fit_both", "Comparison", "validate", "load", "load_dataset", "list_datasets",
           "LmmError", "FormulaError",
           "DataError", "ArgumentError", "DatasetNotFoundError", "FileFormatError", "__version__"]


def __getattr__(name):
    # the Bayesian engine imports PyMC and ArviZ, which take seconds: load it on first use
    if name in ("BayesFit", "bayesian"):
        import importlib

        bayesian = importlib.import_module(f"{__name__}.bayesian")  # not "from . import": it would recurse here
        return bayesian if name == "bayesian" else getattr(bayesian, name)
    raise AttributeError(f"module 'lmmcompare' has no attribute {name!r}")
