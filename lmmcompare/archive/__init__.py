"""Saving results to one file of data (a zip of JSON, NPY and netCDF) and reading them back.

See :mod:`.container` for the format; :meth:`lmmcompare.LmerFit.save`,
:meth:`lmmcompare.BayesFit.save`, :meth:`lmmcompare.Comparison.save` and
:func:`lmmcompare.load` are the public entry points.
"""
from .container import FORMAT_VERSION, ArchiveReader, ArchiveWriter, open_archive, save_archive

__all__ = ["FORMAT_VERSION", "ArchiveReader", "ArchiveWriter", "open_archive", "save_archive"]
