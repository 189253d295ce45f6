"""The comparison layer: tables, flags and checks of the two paradigms side by side."""
from .comparison import Comparison, compare
from .table import FLAG_TEXT

__all__ = ["Comparison", "compare", "FLAG_TEXT"]
