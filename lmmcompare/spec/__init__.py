"""Formula parsing, data checks and the frozen model spec."""
from .design import GroupingFactor
from .formula import parse_formula
from .model_spec import ModelSpec, RandomTerm, as_spec

__all__ = ["ModelSpec", "as_spec", "RandomTerm", "GroupingFactor", "parse_formula"]
