"""The comparison layer: tables, flags and checks of the two paradigms side by side."""
from .comparison import Comparison, compare, fit_both
from .table import FLAG_TEXT

__all__ = ["Comparison", "compare", "fit_both", "FLAG_TEXT"]
