"""Results are values: what a fit, a spec or the cross-products return never depends on
what was computed before, and nothing recomputes what a fit already holds (issue 17)."""
import dataclasses
import importlib
import threading

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import lmmcompare as lc
from lmmcompare.core import blocks
from lmmcompare.core.blocks import cross_products
from lmmcompare.core.factor import factorize, objective
from lmmcompare.core.gradient import deviance_pieces, objective_and_gradient
from lmmcompare.freq import fit as fit_module
from lmmcompare.freq import make_devfun

from lmmcompare.freq.inference.kenward_roger import RefitREMLWarning

profile_module = importlib.import_module("lmmcompare.freq.inference.profile")  # the name profile is the function

SLEEP = "Reaction ~ Days + (Days | Subject)"
CROSSED = "diameter ~ 1 + (1 | plate) + (1 | sample)"


def test_a_factor_outlives_later_evaluations_on_the_same_cross_products():
    """Cross-products hold no scratch arrays: a factor is not overwritten by the next evaluation."""
    spec = lc.ModelSpec.from_formula(SLEEP, "sleepstudy")
    cp = cross_products(spec)
    theta1, theta2 = np.array([0.9, 0.05, 0.2]), np.array([0.4, -0.1, 0.3])
    f1, _, _ = deviance_pieces(cp, theta1, include_X=True)
    L22 = f1.L22.copy()
    objective(cp, theta2, True)
    objective_and_gradient(cp, theta2, True)
    np.testing.assert_array_equal(f1.L22, L22)
    assert f1.r2 == factorize(cp, theta1).r2
    with pytest.raises(dataclasses.FrozenInstanceError):
        cp.A22 = np.zeros_like(cp.A22)


def test_one_devfun_evaluated_from_threads_gives_the_sequential_values():
    """A devfun's workspace is per thread: concurrent evaluations equal sequential ones exactly."""
    devfun = make_devfun(lc.ModelSpec.from_formula(CROSSED, "Penicillin"), reml=True)
    rng = np.random.default_rng(3)
    thetas = rng.uniform(0.2, 3.0, size=(40, 2))
    expected = [devfun.with_gradient(t) for t in thetas]
    results = {}
    barrier = threading.Barrier(4)

    def work(k):
        barrier.wait()
        results[k] = [devfun.with_gradient(t) for t in thetas]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        for (v, g), (v0, g0) in zip(results[k], expected):
            assert v == v0
            np.testing.assert_array_equal(g, g0)


def test_inference_on_a_fit_reuses_the_cross_products_it_was_fitted_from(monkeypatch):
    ml = lc.lmer(SLEEP, "sleepstudy", reml=False)
    calls = []

    def counting(spec):
        calls.append(spec)
        return cross_products(spec)

    monkeypatch.setattr(blocks, "cross_products", counting)
    monkeypatch.setattr(fit_module, "cross_products", counting)
    ml.coef_table("satterthwaite")
    with pytest.warns(RefitREMLWarning):
        ml.coef_table("kenward-roger")
    with pytest.warns(lc.freq.anova.RefitMLWarning):
        lc.anova(ml.by_criterion(reml=True), ml)
    # never again the fit's own cross-products; the centred-and-scaled columns the REML refit is
    # optimised on (lmmcompare.core.standardize) are, for a model this small, the fit's own dense
    # criterion transformed (lmmcompare.core.small_dense), so no cross-products are built at all
    assert all(spec is not ml.spec for spec in calls)
    assert not calls
    assert ml.by_criterion(reml=True).cp is ml.cp
    assert ml.by_criterion(reml=True) is ml.by_criterion(reml=True)   # refitted once per fit
    assert ml.by_criterion(reml=False) is ml


def test_the_refit_by_the_other_criterion_is_the_fit_lmer_gives():
    reml = lc.lmer(SLEEP, "sleepstudy")
    ml = lc.lmer(SLEEP, "sleepstudy", reml=False)
    refit = reml.by_criterion(reml=False)
    assert refit.objective == ml.objective and not refit.reml
    np.testing.assert_array_equal(refit.theta, ml.theta)
    np.testing.assert_array_equal(refit.beta, ml.beta)


def test_kept_values_do_not_change_what_a_fit_returns():
    """Inference twice on one fit, and once on a fresh fit, gives the same numbers bit for bit,
    and leaves every field of the fit as it was."""
    fit = lc.lmer(SLEEP, "sleepstudy")
    fields = {f.name: getattr(fit, f.name) for f in dataclasses.fields(fit)}
    copies = {k: np.copy(v) for k, v in fields.items() if isinstance(v, np.ndarray)}
    first = fit.coef_table()
    kr = fit.coef_table("kenward-roger")
    pd.testing.assert_frame_equal(fit.coef_table(), first, check_exact=True)
    pd.testing.assert_frame_equal(fit.coef_table("kenward-roger"), kr, check_exact=True)
    fresh = lc.lmer(SLEEP, "sleepstudy")
    pd.testing.assert_frame_equal(fresh.coef_table(), first, check_exact=True)
    pd.testing.assert_frame_equal(fresh.coef_table("kenward-roger"), kr, check_exact=True)
    for name, value in fields.items():
        assert getattr(fit, name) is value, name
    for name, value in copies.items():
        np.testing.assert_array_equal(getattr(fit, name), value)
    other = dataclasses.replace(fit)   # a new value keeps nothing derived from the old one
    assert "varpar covariance" in fit.derived and "varpar covariance" not in other.derived


def test_spec_Z_is_built_once_and_is_the_stacked_terms():
    spec = lc.ModelSpec.from_formula(CROSSED, "Penicillin")
    assert spec.Z is spec.Z and spec.terms[0].Z is spec.terms[0].Z
    expected = sp.hstack([t.Z for t in spec.terms], format="csc")
    assert (spec.Z != expected).nnz == 0 and spec.Z.shape == (spec.n, spec.q)


def test_a_profile_is_made_once_per_fit_and_level_and_each_call_gets_its_own_copy(monkeypatch):
    """A report's profile intervals and profile plots share one profile (issue 17: it profiled twice)."""
    fit = lc.lmer("Yield ~ 1 + (1 | Batch)", "Dyestuff")
    first = fit.profile()
    traced = []
    real = profile_module._trace
    monkeypatch.setattr(profile_module, "_trace", lambda *a, **k: traced.append(1) or real(*a, **k))
    intervals = fit.confint(progress=False)
    second = fit.profile()
    assert traced == []
    pd.testing.assert_frame_equal(intervals[["lower", "upper"]], first.confint(0.95).loc[intervals.index],
                                  check_exact=True, check_names=False)
    for name, trace in first.traces.items():
        pd.testing.assert_frame_equal(second.traces[name], trace, check_exact=True)
        trace.iloc[:] = 0.0   # a caller's edit reaches neither the kept profile nor later calls
    assert not (fit.profile().traces["sigma"]["value"] == 0).all()
    fit.profile(level=0.9)
    assert traced   # another level is another profile
