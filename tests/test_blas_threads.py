"""BLAS runs on one thread while a small model is optimised, and the thread counts come back.

Every test starts from the BLAS thread counts the process was given (OpenBLAS: one per
core, so 2 on CI) without a ``threadpool_limits`` block of its own around it: such a block
would make the test's thread the one that controls OpenBLAS (threadpoolctl >= 3.8), and
the limits under test would then do nothing while the counts still looked right.
"""
import threading

import numpy as np  # noqa: F401  (loads OpenBLAS, so threadpoolctl sees it)
import pytest

import lmmcompare as lc
from lmmcompare.core.threads import single_blas_thread
from lmmcompare.freq import fit as fit_module

threadpoolctl = pytest.importorskip("threadpoolctl")


def blas_threads():
    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture
def original_threads():
    """The BLAS thread counts outside any block; each test needs one above 1, or limiting shows nothing."""
    before = blas_threads()
    if not before:
        pytest.skip("threadpoolctl finds no BLAS library to limit")
    if max(before) < 2:
        pytest.skip(f"BLAS runs on {max(before)} thread here (one core or OPENBLAS_NUM_THREADS=1): "
                    "a limit to one thread cannot be told from no limit")
    yield before
    assert blas_threads() == before, "a test left the BLAS thread counts changed"


def test_block_limits_to_one_thread_and_restores(original_threads):
    with single_blas_thread():
        assert blas_threads() == [1] * len(original_threads)
        with single_blas_thread():  # nested: still one, and the outer block restores
            assert blas_threads() == [1] * len(original_threads)
        assert blas_threads() == [1] * len(original_threads)
    assert blas_threads() == original_threads
    with single_blas_thread(enabled=False):
        assert blas_threads() == original_threads


def test_block_restores_after_an_exception(original_threads):
    with pytest.raises(RuntimeError, match="inside"):
        with single_blas_thread():
            assert blas_threads() == [1] * len(original_threads)
            raise RuntimeError("inside")
    assert blas_threads() == original_threads


def test_concurrent_blocks_limit_once_and_restore_the_original_counts(original_threads):
    """OpenBLAS's limit is process-wide: while any thread is in a block the count is one,
    and when the last has left it is the original, whichever thread set the limit."""
    for _ in range(20):   # thread interleavings differ from round to round
        barrier = threading.Barrier(4)
        inside, errors = [], []

        def work():
            try:
                with single_blas_thread():
                    barrier.wait()
                    inside.append(blas_threads())   # every thread has entered, none has left
                    barrier.wait()
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert inside == [[1] * len(original_threads)] * 4
        assert blas_threads() == original_threads


def test_lmer_optimises_small_models_on_one_thread(original_threads, monkeypatch):
    seen = []
    optimize_theta = fit_module.optimize_theta

    def spy(*args, **kwargs):
        seen.append(blas_threads())
        return optimize_theta(*args, **kwargs)

    monkeypatch.setattr(fit_module, "optimize_theta", spy)
    fit = lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    assert fit.opt.converged and seen and all(s == [1] * len(original_threads) for s in seen)
    assert blas_threads() == original_threads
    monkeypatch.setattr(fit_module, "ONE_BLAS_THREAD_UP_TO", 0)  # a large model keeps its threads
    seen.clear()
    lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    assert seen and all(s == original_threads for s in seen)
