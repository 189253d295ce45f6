"""Human-readable reports of a Comparison: one self-contained HTML file, or Markdown."""
from .html import write_report
from .markdown import comparison_markdown

__all__ = ["write_report", "comparison_markdown"]
