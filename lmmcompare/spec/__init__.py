"""Formula parsing, data checks and the frozen model spec."""
from .design import GroupingFactor
from .formula import parse_formula
from .model_spec import ModelSpec, RandomTerm

__all__ = ["ModelSpec", "RandomTerm", "GroupingFactor", "parse_formula"]
