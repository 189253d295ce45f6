"""Per-core forked sampling (:mod:`lmmcompare.bayesian.chains`) gives PyMC's own draws.

``sample_chains`` splits the chains into one forked process per core; each
process gets the random streams PyMC would give its chains, so the draws equal
``pm.sample(cores=1)``'s exactly: with a step handed in (the Laplace start of
sleepstudy's marginal model) and without one (PyMC's jittered start, computed
before forking, on Dyestuff).  A process's exception is raised again in the
caller with its type; a process that dies gives a typed error.
"""
import os
import sys

import numpy as np
import pytest

import lmmcompare as lc
from lmmcompare.bayesian import chains
from lmmcompare.bayesian.fit import _sampling_options, compile_mode
from lmmcompare.bayesian.priors import default_priors
from lmmcompare.bayesian.reuse import built_model
from lmmcompare.errors import SamplingProcessError
from lmmcompare.spec import as_spec

pm = pytest.importorskip("pymc")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-core forking is Linux-only")


def _sampling(formula, dataset, draws=60, tune=60, chains_=3, cores=2, seed=11):
    """The built model and the ``pm.sample`` keywords lc.bayes would use."""
    spec = as_spec(formula, lc.load_dataset(dataset))
    built = built_model(spec, default_priors(spec, None), "marginal")
    with compile_mode(built), built.model:
        _, kwargs = _sampling_options(built, draws, tune, chains_, cores, seed, False, 0.9, "auto", "auto")
    return built, kwargs


def _same_draws(a, b):
    assert list(a.posterior.data_vars) == list(b.posterior.data_vars)
    for name in a.posterior.data_vars:
        np.testing.assert_array_equal(a.posterior[name].values, b.posterior[name].values)
    np.testing.assert_array_equal(a.sample_stats["tree_depth"].values, b.sample_stats["tree_depth"].values)


@pytest.mark.parametrize("formula, dataset, has_step", [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", True),   # the Laplace start: a step handed in
    ("Yield ~ 1 + (1 | Batch)", "Dyestuff", False),               # PyMC's start, computed before forking
])
def test_forked_draws_equal_pymc_draws(formula, dataset, has_step):
    built, kwargs = _sampling(formula, dataset)
    assert ("step" in kwargs) == has_step
    assert chains.forks_per_core(kwargs)
    with compile_mode(built), built.model:
        forked = chains.sample_chains(built.model, kwargs)
        pymc_own = pm.sample(**dict(kwargs, cores=1))
    assert forked.posterior.sizes["chain"] == 3 and forked.posterior.sizes["draw"] == 60
    np.testing.assert_array_equal(forked.posterior["chain"].values, [0, 1, 2])
    _same_draws(forked, pymc_own)


def test_chain_groups_are_contiguous_and_balanced():
    assert [list(g) for g in chains.chain_groups(4, 2)] == [[0, 1], [2, 3]]
    assert [list(g) for g in chains.chain_groups(5, 3)] == [[0, 1], [2, 3], [4]]
    assert [list(g) for g in chains.chain_groups(2, 4)] == [[0], [1]]
    assert [list(g) for g in chains.chain_groups(7, 2)] == [[0, 1, 2, 3], [4, 5, 6]]


def test_group_seed_continues_pymc_streams():
    """The process sampling chains k, k+1, ... spawns PyMC's k-th, (k+1)-th, ... child of the seed."""
    full = [child.integers(2**30, size=4) for child in np.random.default_rng(123).spawn(5)]
    tail = [child.integers(2**30, size=4) for child in chains._group_seed(123, 3).spawn(2)]
    np.testing.assert_array_equal(tail, full[3:])


def test_when_it_forks(monkeypatch):
    base = dict(chains=4, cores=2)
    assert chains.forks_per_core(base)
    assert not chains.forks_per_core(dict(base, cores=1))
    assert not chains.forks_per_core(dict(base, chains=1))
    assert not chains.forks_per_core(dict(base, nuts_sampler="nutpie"))
    monkeypatch.setattr(chains.multiprocessing.current_process(), "daemon", True, raising=False)
    assert not chains.forks_per_core(base)


def test_an_exception_in_a_process_is_raised_with_its_type():
    built, kwargs = _sampling("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    bad = [dict(point) for point in kwargs["initvals"]]
    bad[2] = {name: np.full_like(np.asarray(value, dtype=float), np.nan) for name, value in bad[2].items()}
    with compile_mode(built), built.model, pytest.raises(pm.exceptions.SamplingError) as raised:
        chains.sample_chains(built.model, dict(kwargs, initvals=bad))
    assert any("chains 2-2 in a forked process" in note for note in raised.value.__notes__)


def test_a_process_that_dies_gives_a_typed_error():
    built, kwargs = _sampling("Reaction ~ Days + (Days | Subject)", "sleepstudy")

    def die(trace, draw):
        os._exit(3)

    with compile_mode(built), built.model, pytest.raises(SamplingProcessError, match="exit code 3"):
        chains.sample_chains(built.model, dict(kwargs, callback=die))


def test_repeated_chains_are_refused():
    built, kwargs = _sampling("Reaction ~ Days + (Days | Subject)", "sleepstudy", draws=5, tune=5)
    with compile_mode(built), built.model:
        idata = pm.sample(**dict(kwargs, cores=1))
    copied = idata.posterior.copy(deep=True)
    for name in copied.data_vars:
        copied[name].values[1] = copied[name].values[0]
    idata.posterior = copied
    with pytest.raises(SamplingProcessError, match="random streams coincide"):
        chains._check_distinct_chains(idata)


def test_progress_counts_every_draw(capsys):
    built, kwargs = _sampling("Reaction ~ Days + (Days | Subject)", "sleepstudy", draws=40, tune=30)
    with compile_mode(built), built.model:
        chains.sample_chains(built.model, dict(kwargs, progressbar=True))
    shown = capsys.readouterr().err.split("\r")
    assert "sampling 3 chains" in shown[-1] and "210/210" in shown[-1]
