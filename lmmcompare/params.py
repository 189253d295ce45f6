"""The shared parameter names, read from the spec's parameter table (:mod:`lmmcompare.spec.parameters`).

Kept for the names' users outside the engines; the table defines them.
"""
from __future__ import annotations

from .spec.parameters import sd_cor_from_cov, term_labels

__all__ = ["sd_cor_from_cov", "term_parameter_names", "variance_parameter_names"]


def term_parameter_names(columns, group) -> list[str]:
    """Names of one term's sd/cor parameters in theta's order (:func:`lmmcompare.spec.parameters.term_labels`)."""
    return list(term_labels(columns, group))


def variance_parameter_names(spec) -> list[str]:
    """All sd/cor names of a spec in theta's order, then ``sigma``: the labels of ``spec.parameters.variance``."""
    return spec.parameters.variance_labels
