"""PyTensor links its C BLAS Ops to scipy's OpenBLAS, so a plain pip install prints no BLAS warning.

Each check runs in a fresh interpreter (the link is configured once, before
PyTensor compiles anything) and reads what that process wrote to stderr.
"""
import os
import subprocess
import sys
import textwrap

import pytest

from lmmcompare.bayesian import blas_link

PYTENSOR_WARNING = "could not link to a BLAS installation"


def run_fresh(code: str) -> subprocess.CompletedProcess:
    """``code`` in a new interpreter whose environment has no PyTensor flags (this process set some)."""
    env = {k: v for k, v in os.environ.items() if k != blas_link.ENV}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=600, env=env)


DOT_CHECK = """
    import numpy as np
    import pytensor
    import pytensor.tensor as pt
    A, B, v = pt.dmatrix(), pt.dmatrix(), pt.dvector()
    f = pytensor.function([A, B, v], [pt.dot(A, B), pt.dot(A, v)])
    ops = [type(n.op).__name__ for n in f.maker.fgraph.toposort()]
    rng = np.random.default_rng(0)
    a, b, x = rng.random((7, 5)), rng.random((5, 3)), rng.random(5)
    ab, ax = f(a, b, x)
    print("OPS", ",".join(ops))
    print("ERR", float(np.max(np.abs(ab - a @ b))), float(np.max(np.abs(ax - a @ x))))
"""


@pytest.mark.skipif(blas_link.scipy_openblas() is None, reason="this scipy carries no bundled OpenBLAS")
def test_products_link_to_scipys_openblas_without_a_warning():
    """Dot22 and the C Gemv (CGemv, only built when a BLAS is linked) give numpy's products to 1e-14."""
    out = run_fresh("import lmmcompare\nimport lmmcompare.bayesian.blas_link as b\nprint('STATE', b.STATE)\n"
                    + textwrap.dedent(DOT_CHECK))
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if line[:3] in ("OPS", "ERR", "STA"))
    assert lines["STATE"] == "scipy"
    assert "CGemv" in lines["OPS"] and "Dot22" in lines["OPS"]
    assert max(float(e) for e in lines["ERR"].split()) < 1e-14
    assert "BLAS" not in out.stderr and "warn" not in out.stderr.lower()


@pytest.mark.skipif(blas_link.scipy_openblas() is None, reason="this scipy carries no bundled OpenBLAS")
def test_a_bayesian_fit_prints_nothing_about_blas():
    """The noncentred sleepstudy model, sampled in two processes: stderr has no BLAS warning in either."""
    out = run_fresh("""
        import lmmcompare as lc
        fit = lc.bayes("Reaction ~ Days + (Days | Subject)", "sleepstudy", parameterization="noncentered",
                       draws=30, tune=30, chains=2, cores=2, seed=1, progressbar=False)
        print("DRAWS", fit.idata.posterior.sizes["draw"])
    """)
    assert out.returncode == 0, out.stderr
    assert "DRAWS 30" in out.stdout
    assert "BLAS" not in out.stderr and PYTENSOR_WARNING not in out.stderr


def test_a_users_own_blas_setting_is_left_alone():
    out = run_fresh("""
        import os
        os.environ["PYTENSOR_FLAGS"] = 'blas__ldflags=""'
        import lmmcompare.bayesian.blas_link as b
        import pytensor
        print("STATE", b.STATE, repr(pytensor.config.blas__ldflags))
    """)
    assert out.returncode == 0, out.stderr
    assert "STATE user ''" in out.stdout


def test_without_a_bundled_library_one_warning_of_ours_replaces_pytensors():
    """No bundled OpenBLAS (hidden here) and no system BLAS found: our one-line warning, not PyTensor's."""
    out = run_fresh("""
        import glob
        real_glob = glob.glob
        glob.glob = lambda pattern, *a, **k: [] if "scipy.libs" in pattern else real_glob(pattern, *a, **k)
        import lmmcompare as lc
        import lmmcompare.bayesian.blas_link as b
        import pytensor.link.c.cmodule as cmodule
        cmodule.default_blas_ldflags = lambda: ""    # as on a machine with no BLAS to find
        print("STATE", b.STATE)
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            spec = lc.ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)", "sleepstudy")
            from lmmcompare.bayesian.model import build_model
            build_model(spec, lc.bayesian.default_priors(spec), "noncentered")
            build_model(spec, lc.bayesian.default_priors(spec), "noncentered")
        ours = [w for w in caught if issubclass(w.category, lc.errors.SamplingWarning)]
        print("OURS", len(ours), "PYTENSOR", sum("could not link" in str(w.message) for w in caught))
    """)
    assert out.returncode == 0, out.stderr
    assert "STATE absent" in out.stdout and "OURS 1 PYTENSOR 0" in out.stdout
    assert PYTENSOR_WARNING not in out.stderr


def test_the_flags_rename_every_routine_to_the_prefixed_symbol():
    flags = blas_link.ldflags("/opt/lib/libscipy_openblas-x.so").split()
    assert flags[:2] == ["-Wl,--no-as-needed", "/opt/lib/libscipy_openblas-x.so"]
    assert "-Ddgemm_=scipy_dgemm_" in flags and "-Dsgemv_=scipy_sgemv_" in flags
    assert len([f for f in flags if f.startswith("-D")]) == len(blas_link.ROUTINES)


def test_every_real_blas_routine_pytensor_declares_is_renamed():
    """Read from PyTensor's own header text: a routine it calls but we do not rename would not link."""
    import re
    from pathlib import Path

    import pytensor

    text = (Path(pytensor.__file__).parent / "tensor" / "blas_headers.py").read_text()
    declared = set(re.findall(r"\b([sd][a-z0-9]+_)\s*\(", text))
    assert {"dgemm_", "dgemv_", "dger_", "ddot_"} <= declared
    assert declared <= set(blas_link.ROUTINES)
