"""The garbage collector's freeze around a Bayesian fit (``lmmcompare.bayesian.collector``).

Checked by what Python does, not by timing: inside a fit the objects alive at its start are
frozen and are given back at its end, also when the fit fails; a freeze of the caller's own
is left alone; and garbage made before the fit is still collected after it.
"""
import gc
import pytest

from lmmcompare.bayesian import collector


def test_objects_alive_at_the_start_are_frozen_inside_and_given_back():
    assert gc.get_freeze_count() == 0
    alive = [object()]   # a list is tracked by the collector
    with collector.frozen_while_fitting():
        assert gc.get_freeze_count() >= 1
        assert gc.is_tracked(alive)
    assert gc.get_freeze_count() == 0


def test_a_callers_own_freeze_is_left_alone():
    gc.freeze()
    try:
        count = gc.get_freeze_count()
        with collector.frozen_while_fitting():
            assert gc.get_freeze_count() == count
        assert gc.get_freeze_count() == count
    finally:
        gc.unfreeze()


def test_frozen_objects_are_given_back_when_the_fit_fails():
    with pytest.raises(RuntimeError):
        with collector.frozen_while_fitting():
            raise RuntimeError("sampling failed")
    assert gc.get_freeze_count() == 0


def test_garbage_made_before_the_fit_is_collected_after_it():
    import weakref

    class Node:
        pass

    enabled = gc.isenabled()
    gc.disable()                   # no automatic collection before the block starts
    try:
        node = Node()
        node.self = node           # a cycle: only the collector frees it
        ref = weakref.ref(node)
        del node
        with collector.frozen_while_fitting():
            gc.collect()
            assert ref() is not None   # frozen with everything alive at the start
        gc.collect()
        assert ref() is None
    finally:
        if enabled:
            gc.enable()
