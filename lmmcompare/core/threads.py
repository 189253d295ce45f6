"""One BLAS thread while a small model is optimised.

SciPy's L-BFGS-B (C since SciPy 1.15) calls BLAS and LAPACK on tiny vectors
and matrices.  With a multi-threaded OpenBLAS this costs little on an idle
machine but tens of milliseconds per fit when other processes keep the cores
busy (scipy/scipy#22438, #23191; OpenMathLib/OpenBLAS#5383): an Orthodont fit
took 80-100 ms instead of 22 ms with a second job running on two cores.  The
objective of a model with a small trailing block gains nothing from BLAS
threads either, so :func:`single_blas_thread` limits BLAS to one thread for
the duration with ``threadpoolctl`` (nothing happens where it is missing).
Its rules apply: OpenBLAS's limit is process-wide, so only one Python thread
at a time sets it and fits in other threads run with the counts as they are;
the original counts are restored when the block ends.

The Bayesian engine samples under the same limit: the blocked marginal
likelihood of a maximal crossed design (trailing block 133 x 133) took 18 ms
per evaluation with two OpenBLAS threads and 3.2 ms with one, on the same
idle machine (PyMC's worker processes limit themselves to one thread each;
chains sampled in the calling process did not).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

_LOCK = threading.Lock()
_CONTROLLER = {}
_HOLDER = threading.Lock()   # held by the one block whose limit is in force


def _blas_libraries() -> list:
    """threadpoolctl's controllers of the BLAS libraries loaded when first asked (kept; empty where
    threadpoolctl is missing or cannot inspect a library: the threads are then left alone)."""
    with _LOCK:
        if "blas" not in _CONTROLLER:
            try:
                from threadpoolctl import ThreadpoolController

                _CONTROLLER["blas"] = [lib for lib in ThreadpoolController().lib_controllers
                                       if lib.user_api == "blas"]
            except Exception:  # threadpoolctl missing, or a library it cannot inspect: the threads are left alone
                _CONTROLLER["blas"] = []
        return _CONTROLLER["blas"]


@contextmanager
def single_blas_thread(enabled: bool = True):
    """Limit BLAS to one thread inside the block (when ``enabled``).

    One block at a time holds the limit: it saves the counts, sets one thread
    and restores the saved counts when it ends.  A block entered while another
    holds it (nested, or in another Python thread) changes nothing, so no block
    can save the limited count of another and restore that as the original.

    Parameters
    ----------
    enabled : bool
        False makes the block run with the thread counts as they are.
    """
    libraries = _blas_libraries() if enabled else []
    if not libraries or not _HOLDER.acquire(blocking=False):
        yield
        return
    try:
        # each library's own get/set calls: threadpoolctl's ``limit`` re-selects the libraries and costs
        # 31 us an entry, these 13 us (a small model's fit enters twice; a profile enters once for all its refits)
        counts = [lib.num_threads for lib in libraries]
        for lib in libraries:
            lib.set_num_threads(1)
        try:
            yield
        finally:
            for lib, count in zip(libraries, counts):
                lib.set_num_threads(count)
                # OpenBLAS without OpenMP: let the next block's thread set the count (as ``limit`` does)
                getattr(lib, "clear_controlling_thread", lambda: None)()
    finally:
        _HOLDER.release()
