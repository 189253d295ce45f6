"""Typed errors and warnings raised by lmmcompare.

Every error a user can cause by passing wrong input is a subclass of
:class:`ValueError`, so ``except ValueError`` catches all of them, and its
message names the offending column, term or argument and what to do.
"""


class LmmError(ValueError):
    """Base class of every input error raised by lmmcompare."""


class FormulaError(LmmError):
    """The model formula is malformed or refers to something that does not exist."""


class DataError(LmmError):
    """The data cannot support the model (missing, constant, empty, wrong type)."""


class ArgumentError(LmmError):
    """A keyword argument has the wrong type or an unsupported value."""


class DatasetNotFoundError(LmmError, KeyError):
    """An unknown dataset name was passed to :func:`lmmcompare.load_dataset`."""

    def __str__(self):  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class CrossedGroupingError(ArgumentError):
    """Group-level LOO was asked of a model whose grouping factors are crossed: no factor has
    every other nested in it, so the likelihood does not factorize over the levels of any one."""


class FileFormatError(LmmError):
    """A file given to :func:`lmmcompare.load` is not a saved lmmcompare result, is damaged, holds
    something other than data (a pickle), or was written by a newer lmmcompare."""


class NewLevelError(LmmError):
    """Prediction data holds a grouping level the model was not fitted on."""


class SamplingProcessError(RuntimeError):
    """A process sampling chains (:mod:`lmmcompare.bayesian.chains`) ended without sending its draws:
    killed, out of memory, or its result could not be read."""


class LmmWarning(UserWarning):
    """Base class of lmmcompare's warnings."""


class DroppedRowsWarning(LmmWarning):
    """Rows with missing values were removed before fitting."""


class DuplicateTermWarning(LmmWarning):
    """A fixed-effect term was written more than once; it is used once (as R does)."""


class RankDeficiencyWarning(LmmWarning):
    """Aliased fixed-effect columns were dropped (as lme4 does)."""


class UnidentifiableTermsWarning(LmmWarning):
    """Two random-effects terms on one grouping factor share a column (``(x | g) + (1 | g)``):
    how a variance splits between them is not identifiable."""


class ConvergenceWarning(LmmWarning):
    """The optimizer stopped at a point whose gradient is not small."""


class PrecisionWarning(LmmWarning):
    """The criterion cannot be evaluated to full precision in the model's own columns."""


class SingularFitWarning(LmmWarning):
    """The fit is at the boundary of the parameter space (isSingular)."""


class SamplingWarning(LmmWarning):
    """MCMC diagnostics (R-hat, ESS, divergences) indicate a problem."""

