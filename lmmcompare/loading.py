"""``lmmcompare.load``: a saved LmerFit, BayesFit or Comparison, read back without refitting.

The file's ``kind`` says which; each is rebuilt from data alone (:mod:`lmmcompare.archive`).
A BayesFit or Comparison loads ArviZ (for ``idata``), never PyMC.
"""
from __future__ import annotations

from .archive import open_archive
from .errors import FileFormatError

KINDS = ("LmerFit", "BayesFit", "Comparison")


def load(path):
    """Read a fit or comparison saved by ``.save(path)``.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :meth:`LmerFit.save`, :meth:`BayesFit.save` or :meth:`Comparison.save`.

    Returns
    -------
    LmerFit, BayesFit or Comparison
        The type that was saved, equal in every value: no optimisation, sampling or
        compilation is run (the cross-products and factor of an LmerFit are evaluated at
        its saved theta).

    Raises
    ------
    FileFormatError
        The file is not an lmmcompare file, is damaged, holds a pickle (refused, never
        loaded), or was written by a newer lmmcompare (upgrade to read it).
    ArgumentError
        ``path`` is not a file name or no file is there.
    """
    with open_archive(path) as reader:
        kind = reader.kind
        if kind == "LmerFit":
            from .freq.persist import lmer_fit_fields
            from .freq.result import LmerFit

            return LmerFit(**lmer_fit_fields(reader, reader.content))
        if kind == "BayesFit":
            from .bayesian.persist import bayes_fit_fields
            from .bayesian.result import BayesFit

            return BayesFit(**bayes_fit_fields(reader, reader.content))
        if kind == "Comparison":
            from .compare.comparison import Comparison
            from .compare.persist import comparison_fields

            return Comparison(**comparison_fields(reader, reader.content))
        raise FileFormatError(f"{reader.path!r} holds a {kind!r}, which this lmmcompare cannot load (it loads "
                              f"{', '.join(KINDS)}): a newer lmmcompare may")
