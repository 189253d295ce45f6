"""BLAS runs on one thread while a small model is optimised, and the thread counts come back."""
import threading

import pytest

import lmmcompare as lc
from lmmcompare.freq import fit as fit_module
from lmmcompare.freq.threads import single_blas_thread

threadpoolctl = pytest.importorskip("threadpoolctl")


def blas_threads():
    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture
def two_blas_threads():
    """At least two BLAS threads outside the block (one-core machines included)."""
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        if not before or max(before) < 2:
            pytest.skip("no multi-threaded BLAS to limit")
        yield before


def test_block_limits_to_one_thread_and_restores(two_blas_threads):
    with single_blas_thread():
        assert set(blas_threads()) == {1}
        with single_blas_thread():  # nested: still one, and the outer block restores
            assert set(blas_threads()) == {1}
        assert set(blas_threads()) == {1}
    assert blas_threads() == two_blas_threads
    with single_blas_thread(enabled=False):
        assert blas_threads() == two_blas_threads


def test_concurrent_blocks_restore_the_original_counts(two_blas_threads):
    """OpenBLAS's limit is process-wide: whichever thread sets it, the counts come back."""
    barrier = threading.Barrier(4)
    errors = []

    def work():
        try:
            with single_blas_thread():
                barrier.wait()
                assert set(blas_threads()) <= {1, 2}
                barrier.wait()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert blas_threads() == two_blas_threads


def test_lmer_optimises_small_models_on_one_thread(two_blas_threads, monkeypatch):
    seen = []
    optimize_theta = fit_module.optimize_theta

    def spy(*args, **kwargs):
        seen.append(set(blas_threads()))
        return optimize_theta(*args, **kwargs)

    monkeypatch.setattr(fit_module, "optimize_theta", spy)
    fit = lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    assert fit.opt.converged and seen and all(s == {1} for s in seen)
    assert blas_threads() == two_blas_threads
    monkeypatch.setattr(fit_module, "ONE_BLAS_THREAD_UP_TO", 0)  # a large model keeps its threads
    seen.clear()
    lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    assert seen and all(max(s) == 2 for s in seen)
