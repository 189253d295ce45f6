"""Sphinx configuration for the lmmcompare documentation.

Build with ``python -m sphinx -b html docs docs/_build/html`` from the repository
root; ``tests/test_docs.py`` builds it with ``-W`` (warnings are errors) and runs
the ``>>>`` examples of every Markdown page.
"""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))  # the package itself, installed or not

project = "lmmcompare"
author = "lmmcompare contributors"
copyright = "2026, lmmcompare contributors"

import lmmcompare  # noqa: E402

release = version = lmmcompare.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",   # MathJax 3 from the package, copied to _static/mathjax: no CDN, works offline
    "numpydoc",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Markdown: $...$ and $$...$$ maths, ::: fences, definition lists, anchors on headings
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# API reference from the numpy-style docstrings
autodoc_typehints = "none"            # the docstrings give the types
autodoc_member_order = "bysource"
autodoc_default_options = {"show-inheritance": False}
numpydoc_show_class_members = False   # autodoc lists the members itself
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()    # warnings-as-errors covers rendering; style is reviewed by hand

# every cross-reference must resolve (the theory page names the implementing functions)
nitpicky = True
nitpick_ignore_regex = [(r"py:class", r"pymc\..*")]   # PyMC's own classes (a step's base class): no inventory of theirs here

# every code block in the Markdown pages is Python unless marked otherwise
highlight_language = "python3"
pygments_style = "sphinx"

html_theme = "alabaster"
html_title = f"lmmcompare {release}"
html_theme_options = {
    "description": "One lme4 formula, two fits, compared",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "250px",
}
html_static_path = []
