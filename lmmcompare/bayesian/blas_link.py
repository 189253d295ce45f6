"""Link PyTensor's C BLAS Ops to the OpenBLAS that scipy's wheel ships, before PyTensor compiles anything.

After a ``pip install``, PyTensor finds no BLAS library to link its C code to:
it prints "could not link to a BLAS installation ... severely degraded" and
runs its BLAS Ops (``Dot22``, ``Gemv``, ``Ger``) through NumPy's C-API
instead.  scipy's manylinux wheel carries a 32-bit-integer OpenBLAS
(``scipy.libs/libscipy_openblas*.so``), already loaded by the time lmmcompare
is imported; its symbols are the reference BLAS names with a ``scipy_``
prefix (``scipy_dgemm_``).  :func:`configure` hands PyTensor that library and
one ``-D<name>=scipy_<name>`` define per BLAS routine its C code calls, so the
generated code calls the prefixed symbols.  (numpy's bundled OpenBLAS uses
64-bit integers and does not match PyTensor's ``int`` arguments.)

Measured on sleepstudy's noncentred model (2 cores, PyTensor 2.38): a 50 x 50
``dot`` plus a matrix-vector product, 46 us per call through NumPy, 26 us
linked; no warning in either the parent or the sampling processes.

Where the library is missing (another platform, a scipy built against a
system BLAS) PyTensor's own search runs; if it finds nothing, one warning of
ours (:class:`lmmcompare.errors.SamplingWarning`) says what that costs and
how to fix it, in place of PyTensor's.  A user's own ``blas__ldflags``
(``PYTENSOR_FLAGS`` or a ``.pytensorrc``) is always left as it is.
"""
from __future__ import annotations

import configparser
import ctypes
import glob
import logging
import os
import sys
import warnings

from ..errors import SamplingWarning

STATE = "unset"   # what configure() did: "user", "scipy", "already" or "absent"
PREFIX = "scipy_"
ENV = "PYTENSOR_FLAGS"
# every reference BLAS routine PyTensor's C code declares (pytensor/tensor/blas_headers.py)
_ROUTINES = ("axpy copy dot gbmv gemm gemv ger rot rotg rotm rotmg sbmv scal spmv spr swap symm symv syr "
             "syr2 syr2k spr2 syrk tbmv tbsv tpmv tpsv trmm trmv trsm trsv").split()
ROUTINES = tuple(f"{t}{r}_" for t in "sd" for r in _ROUTINES)
NO_BLAS_MESSAGE = ("PyTensor has no BLAS library to link to, so its matrix products run through NumPy "
                   "(slower gradients, above all for the noncentred and centred forms). Fix: install "
                   "scipy from its wheel (pip install --force-reinstall scipy), or set "
                   "PYTENSOR_FLAGS='blas__ldflags=-lopenblas' to a BLAS on this machine.")


def scipy_openblas() -> str | None:
    """Path of scipy's bundled 32-bit OpenBLAS if it is there and exports ``scipy_dgemm_``, else None."""
    import scipy

    libs = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas*.so"))):
        if "openblas64" in os.path.basename(path):
            continue
        try:
            lib = ctypes.CDLL(path)
            getattr(lib, PREFIX + "dgemm_")
            getattr(lib, PREFIX + "dgemv_")
        except (OSError, AttributeError):
            continue
        return path
    return None


def ldflags(library: str) -> str:
    """``blas__ldflags`` for ``library``: the library itself (kept although linked first) and the renames.

    ``--no-as-needed`` because PyTensor puts these flags before the source file
    on the compiler's command line, where an as-needed linker would drop a
    library no earlier object uses.
    """
    folder = os.path.dirname(library)
    defines = " ".join(f"-D{name}={PREFIX}{name}" for name in ROUTINES)
    return f"-Wl,--no-as-needed {library} -Wl,-rpath,{folder} {defines}"


def _user_set(pytensor_config=None) -> bool:
    """Whether the user chose ``blas__ldflags`` (environment or ``.pytensorrc``)."""
    if "blas__ldflags" in os.environ.get(ENV, ""):
        return True
    if pytensor_config is not None:
        try:
            pytensor_config.fetch_val_for_key("blas__ldflags")
            return True
        except KeyError:
            return False
    rc_files = os.environ.get("PYTENSORRC", os.path.expanduser("~/.pytensorrc")).split(os.pathsep)
    parser = configparser.ConfigParser()
    try:
        parser.read([f for f in rc_files if os.path.isfile(f)])
    except configparser.Error:
        return True   # a file we cannot read is the user's to mind: leave PyTensor to it
    return parser.has_option("blas", "ldflags") or parser.has_option("global", "blas__ldflags")


def configure() -> str:
    """Point PyTensor at scipy's OpenBLAS unless the user chose a BLAS; returns what was done.

    ``"user"``: the user's setting stands; ``"scipy"``: linked to scipy's
    OpenBLAS; ``"already"``: PyTensor had settled its flags before this call;
    ``"absent"``: no bundled library here (PyTensor searches the system itself
    when it first compiles; :func:`warn_if_unlinked` replaces its warning).
    Before PyTensor is imported this sets ``PYTENSOR_FLAGS``, which PyTensor
    reads on import; after, its config directly (and the environment too, for
    sampling processes started by spawn or forkserver).
    """
    global STATE
    STATE = _configure()
    return STATE


def _configure() -> str:
    pytensor = sys.modules.get("pytensor")
    config = getattr(pytensor, "config", None)
    param = type(config).__dict__.get("blas__ldflags") if config is not None else None
    library = scipy_openblas()
    flags = ldflags(library) if library else None
    current = os.environ.get(ENV, "")
    if flags and flags in current:
        return "scipy"   # set by an lmmcompare in the process that started this one
    if _user_set(config):
        return "user"
    if hasattr(param, "val"):
        return "already"
    if flags is None:
        return "absent"
    os.environ[ENV] = f'{current},blas__ldflags="{flags}"' if current else f'blas__ldflags="{flags}"'
    if param is not None:
        config.blas__ldflags = flags
    return "scipy"


def warn_if_unlinked() -> None:
    """Where no bundled library was found: run PyTensor's own search quietly; if it finds nothing, warn in our words."""
    if STATE != "absent":
        return
    import pytensor

    param = type(pytensor.config).__dict__.get("blas__ldflags")
    if hasattr(param, "val"):
        return
    from pytensor.link.c.cmodule import default_blas_ldflags

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flags = default_blas_ldflags()
    pytensor.config.blas__ldflags = flags
    if not flags and pytensor.config.cxx:
        logging.getLogger("pytensor.tensor.blas").setLevel(logging.ERROR)   # its "NumPy C-API" line says it again
        warnings.warn(NO_BLAS_MESSAGE, SamplingWarning, stacklevel=3)
