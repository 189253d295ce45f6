"""A Comparison as data in a saved file, and back (the file format is :mod:`lmmcompare.archive`).

Both fits (:mod:`lmmcompare.freq.persist`, :mod:`lmmcompare.bayesian.persist`; their
shared spec is stored once) and the intervals the comparison has computed and kept, so
profile or bootstrap intervals are not computed again after loading.
"""
from __future__ import annotations

from ..freq.persist import lmer_fit_content, lmer_fit_fields
from ..freq.result import LmerFit


def comparison_content(writer, comparison) -> dict:
    """The JSON tree of a ``Comparison``."""
    from ..bayesian.persist import bayes_fit_content   # the Bayesian engine loads ArviZ: only when saving one

    return {"freq": lmer_fit_content(writer, comparison.freq), "bayes": bayes_fit_content(writer, comparison.bayes),
            "intervals": writer.encode(comparison._intervals, "the comparison's intervals")}


def comparison_fields(reader, node) -> dict:
    """The keyword arguments of ``Comparison`` from :func:`comparison_content`'s tree."""
    from ..bayesian.persist import bayes_fit_fields
    from ..bayesian.result import BayesFit

    return {"freq": LmerFit(**lmer_fit_fields(reader, node["freq"])),
            "bayes": BayesFit(**bayes_fit_fields(reader, node["bayes"])),
            "_intervals": reader.decode(node["intervals"])}
