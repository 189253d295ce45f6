"""What Python's garbage collector walks while a Bayesian fit runs.

With PyMC, PyTensor, numba, arviz and xarray loaded the collector tracks some
440,000 objects, nearly all of them modules' functions, classes and constants
that live until the process ends.  Compiling a model and sampling it create
many short-lived objects and so trigger collections, and each full collection
walks all of them.  During ``lc.bayes`` the objects alive when it starts are
moved to the collector's permanent generation (``gc.freeze()``) and given back
when it ends (``gc.unfreeze()``), so collections walk only what the fit
creates; garbage that existed before is collected as usual afterwards.
Sleepstudy, 4 x (1000 + 1000), fresh process: 7.43 -> 6.92 s (medians of five
runs, paired).  A process whose own code has frozen objects
(``gc.get_freeze_count() > 0``) is left as it is.

Not done: freezing at exit as well.  The exit's last collection then skips
those objects, which shortened the same process's exit from 1.2 s to 0.2 s, but
it also changes the order in which module globals are finalised: a user's
object with a ``__del__`` that used a module printed "Exception ignored in ...
'NoneType' object has no attribute 'write'" at exit.
"""
from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def frozen_while_fitting():
    """Inside the block the objects alive at its start are frozen (module docstring); unfrozen at its end,
    whatever happens.  Does nothing where something else has frozen objects already."""
    if gc.get_freeze_count() > 0:
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
