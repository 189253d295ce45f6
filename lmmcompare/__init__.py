"""lmmcompare: one lme4 formula, a frequentist and a Bayesian fit, compared."""
from .datasets import list_datasets, load_dataset
from .errors import ArgumentError, DataError, DatasetNotFoundError, FormulaError, LmmError
from .spec import ModelSpec
from .freq import LmerFit, lmer
from .freq.anova import anova

__version__ = "0.1.0"

__all__ = ["ModelSpec", "lmer", "LmerFit", "anova", "load_dataset", "list_datasets", "LmmError", "FormulaError", "DataError",
           "ArgumentError", "DatasetNotFoundError", "__version__"]
