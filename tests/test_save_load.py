"""fit.save(path) / lc.load(path) of LmerFit, BayesFit and Comparison.

Every value a saved result returns must be returned bit for bit by the loaded one
(np.array_equal, assert_frame_equal with check_exact=True, == on floats and text), and
loading must not optimise, sample or compile.  The file format itself (values, frames,
datasets, refused files) is tested in test_save_format.py.
"""
from __future__ import annotations

import dataclasses
import pathlib
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import lmmcompare as lc

assert_frame = dict(check_exact=True)


def _fit(formula, data, reml=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lc.lmer(formula, data, reml=reml)


def _odd_data() -> pd.DataFrame:
    """sleepstudy with every kind of column a model frame can hold, a labelled index and a missing row."""
    data = lc.load_dataset("sleepstudy")
    rng = np.random.default_rng(3)
    out = pd.DataFrame({
        "Reaction": data["Reaction"].to_numpy(),
        "Days": data["Days"].to_numpy(dtype=np.int32),
        "Subject": data["Subject"].astype(str).to_numpy(dtype=object),          # text held as objects
        "flag": rng.random(len(data)) < 0.5,                                     # numpy bool
        "dose": pd.Categorical(rng.choice(["high", "low", "mid"], len(data)),     # ordered, not alphabetical
                               categories=["low", "mid", "high"], ordered=True),
        "batch": pd.Categorical(rng.choice([30, 10, 20], len(data)), categories=[30, 10, 20]),  # int levels
        "unused": np.arange(len(data)),
    }, index=pd.Index([f"r{i}" for i in range(len(data))], name="row"))
    out.loc["r5", "Reaction"] = np.nan
    return out


LMER_CASES = {
    "sleepstudy_reml": ("Reaction ~ Days + (Days | Subject)", "sleepstudy", True),
    "penicillin_crossed": ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", True),
    "cake_factors": ("angle ~ recipe * temperature + (1 | recipe:replicate)", "cake", True),
    "pastes_nested_ml": ("strength ~ 1 + (1 | batch/cask)", "Pastes", False),
    "frame_dtypes_ml": ("Reaction ~ Days + flag + dose + (1 | Subject) + (1 | batch)", _odd_data(), False),
}


@pytest.fixture(scope="module", params=list(LMER_CASES), ids=list(LMER_CASES))
def saved_lmer(request, tmp_path_factory):
    formula, data, reml = LMER_CASES[request.param]
    fit = _fit(formula, data, reml)
    path = tmp_path_factory.mktemp("lmer") / f"{request.param}.lmm"
    assert fit.save(path) == str(path)
    return fit, lc.load(path)


def _same_fields(a, b, skip=()):
    """Every dataclass field of a and b equal exactly (arrays, sparse matrices, lists of arrays)."""
    for f in dataclasses.fields(a):
        if f.name in skip:
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if sp.issparse(x):
            assert x.shape == y.shape and (x != y).nnz == 0, f.name
        elif isinstance(x, (list, tuple)) and x and isinstance(x[0], np.ndarray):
            assert len(x) == len(y) and all(np.array_equal(u, v) for u, v in zip(x, y)), f.name
        elif isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
        else:
            assert type(x) is type(y) and x == y, f.name


def _round_trip(result):
    """``lc.load(result.save(path))`` through a file in a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        return lc.load(result.save(pathlib.Path(folder) / "result.lmm"))


def test_lmer_fit_values_spec_and_factor_round_trip_exactly(saved_lmer):
    fit, back = saved_lmer
    assert type(back) is lc.LmerFit
    pd.testing.assert_frame_equal(back.spec.frame, fit.spec.frame, **assert_frame)
    for name in ("formula", "response", "n_dropped", "data_name", "dropped_fixed", "keep_fixed", "predictors"):
        assert getattr(back.spec, name) == getattr(fit.spec, name), name
    assert np.array_equal(back.spec.y, fit.spec.y) and np.array_equal(back.spec.X, fit.spec.X)
    assert back.spec.fixed_names == fit.spec.fixed_names
    assert [(t.label, list(t.levels)) for t in back.spec.terms] == [(t.label, list(t.levels)) for t in fit.spec.terms]
    assert (back.spec.Z != fit.spec.Z).nnz == 0
    _same_fields(fit, back, skip=("spec", "opt", "cp", "factor", "derived"))
    _same_fields(fit.opt, back.opt, skip=("log",))
    assert len(back.opt.log) == len(fit.opt.log) and all(
        np.array_equal(t1, t2) and v1 == v2 for (t1, v1), (t2, v2) in zip(fit.opt.log, back.opt.log))
    _same_fields(fit.cp, back.cp)
    _same_fields(fit.factor, back.factor, skip=("cp",))


def test_lmer_fit_public_results_round_trip_exactly(saved_lmer):
    fit, back = saved_lmer
    for name in ("loglik", "aic", "bic", "npar", "nobs", "df_resid", "converged", "n_evals", "fit_seconds",
                 "sigma", "objective", "singular", "reml"):
        assert getattr(back, name) == getattr(fit, name), name
    for name in ("fixef", "se"):
        pd.testing.assert_series_equal(getattr(back, name), getattr(fit, name), **assert_frame)
    pd.testing.assert_series_equal(back.variance_parameters(), fit.variance_parameters(), **assert_frame)
    for name in ("vcov", "varcorr"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(fit, name), **assert_frame)
    for condsd in (False, True):
        got, want = back.ranef(condsd=condsd), fit.ranef(condsd=condsd)
        assert list(got) == list(want)
        for g in want:
            pd.testing.assert_frame_equal(got[g], want[g], **assert_frame)
    assert np.array_equal(back.fitted(), fit.fitted()) and np.array_equal(back.residuals(), fit.residuals())
    new = fit.spec.frame.iloc[::7]
    for re in (True, False):
        assert np.array_equal(back.predict(re=re), fit.predict(re=re))
        assert np.array_equal(back.predict(new, re=re), fit.predict(new, re=re))
    pd.testing.assert_frame_equal(back.simulate(3, seed=5), fit.simulate(3, seed=5), **assert_frame)
    assert back.summary() == fit.summary() and repr(back) == repr(fit)
    pd.testing.assert_frame_equal(back.coef_table(), fit.coef_table(), **assert_frame)
    pd.testing.assert_frame_equal(back.confint("wald"), fit.confint("wald"), **assert_frame)
    pd.testing.assert_frame_equal(lc.anova(back), lc.anova(fit), **assert_frame)


def test_profile_and_kenward_roger_of_a_loaded_fit_equal_the_original():
    """What inference derives from the re-evaluated factor (profiles, KR's adjusted covariance) is unchanged."""
    fit = _fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    back = _round_trip(fit)
    pd.testing.assert_frame_equal(back.confint("profile", progress=False), fit.confint("profile", progress=False),
                                  **assert_frame)
    pd.testing.assert_frame_equal(back.coef_table("kenward-roger"), fit.coef_table("kenward-roger"), **assert_frame)
    ml, ml_back = fit.by_criterion(False), back.by_criterion(False)   # refit by ML from the loaded cross-products
    assert ml_back.objective == ml.objective and np.array_equal(ml_back.theta, ml.theta)


def test_a_fit_to_a_new_response_keeps_its_response():
    """A spec made by with_response (a bootstrap refit) has a y that is not the frame's: it is saved."""
    spec = lc.ModelSpec.from_formula("Reaction ~ Days + (1 | Subject)", "sleepstudy")
    y = spec.y + np.random.default_rng(1).normal(0, 10, spec.n)
    fit = _fit(spec.with_response(y), None)
    back = _round_trip(fit)
    assert np.array_equal(back.spec.y, y) and back.objective == fit.objective
    assert np.array_equal(back.fitted(), fit.fitted())


def test_loading_an_lmer_fit_does_not_optimise(tmp_path, monkeypatch):
    fit = _fit("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    path = fit.save(tmp_path / "fit.lmm")

    def refuse(*args, **kwargs):
        raise AssertionError("loading optimised")

    import lmmcompare.freq.fit
    import lmmcompare.freq.optimize

    monkeypatch.setattr(lmmcompare.freq.optimize.scipy.optimize, "minimize", refuse)
    monkeypatch.setattr(lmmcompare.freq.fit, "optimize_theta", refuse)
    back = lc.load(path)
    assert np.array_equal(back.theta, fit.theta) and back.objective == fit.objective


# ---- Bayesian fits and comparisons (one small sampling run) -------------------------------------
@pytest.fixture(scope="module")
def comparison():
    """A small run: '/' in a coefficient name (netCDF cannot hold it in a variable name), every idata
    group (posterior_predictive too), the 'auto' form (forms filled), kept Wald intervals."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = lc.fit_both("Reaction ~ I(Days/7) + (I(Days/7) | Subject)", "sleepstudy", draws=50, tune=50, chains=2,
                          seed=1, progressbar=False, posterior_predictive=True, parameterization="auto")
        cmp.table(ci="wald")
    return cmp


def _same_idata(a, b):
    import xarray as xr

    assert a.groups() == b.groups() and a.attrs == b.attrs
    for g in a.groups():
        xr.testing.assert_identical(a[g], b[g])
        for name, variable in a[g].variables.items():
            got = b[g][name].values   # bit for bit, NaN included
            assert variable.dtype == got.dtype and variable.shape == got.shape, (g, name)
            assert variable.values.tobytes() == got.tobytes(), (g, name)
            assert b[g][name].attrs == variable.attrs
        assert b[g].attrs == a[g].attrs
        assert {k: type(v) for k, v in b[g].attrs.items()} == {k: type(v) for k, v in a[g].attrs.items()}


def _same_bayes(fit, back):
    assert type(back) is type(fit)
    _same_idata(fit.idata, back.idata)
    assert back.priors == fit.priors
    pd.testing.assert_frame_equal(back.prior_summary(), fit.prior_summary(), **assert_frame)
    for name in ("parameterization", "sampler", "seed", "seconds", "forms", "sampled_as", "parameter_names"):
        assert getattr(back, name) == getattr(fit, name), name
    pd.testing.assert_frame_equal(back.spec.frame, fit.spec.frame, **assert_frame)
    pd.testing.assert_frame_equal(back.summary(), fit.summary(), **assert_frame)
    pd.testing.assert_frame_equal(back.diagnostics(), fit.diagnostics(), **assert_frame)
    pd.testing.assert_frame_equal(back.sampler_stats(), fit.sampler_stats(), **assert_frame)
    for g, frame in fit.ranef().items():
        pd.testing.assert_frame_equal(back.ranef()[g], frame, **assert_frame)
    assert np.array_equal(back.linear_predictor(), fit.linear_predictor())
    assert "/" in "".join(fit.idata.posterior.data_vars)   # the case the netCDF renaming is for


def test_bayes_fit_round_trips_exactly(comparison):
    fit = comparison.bayes
    back = _round_trip(fit)
    _same_bayes(fit, back)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert back.loo().elpd_loo == fit.loo().elpd_loo


def test_comparison_round_trips_exactly_with_its_kept_intervals(comparison, tmp_path, monkeypatch):
    path = comparison.save(tmp_path / "cmp.lmm")
    back = lc.load(path)
    assert type(back) is lc.Comparison
    _same_bayes(comparison.bayes, back.bayes)
    assert np.array_equal(back.freq.theta, comparison.freq.theta) and back.freq.summary() == comparison.freq.summary()
    assert back.freq.spec is back.bayes.spec   # one model, stored and rebuilt once
    assert list(back._intervals) == [("wald", 0.95)]

    def refuse(*args, **kwargs):
        raise AssertionError("intervals recomputed")

    monkeypatch.setattr(lc.LmerFit, "confint", refuse)   # the table's intervals come from the file
    pd.testing.assert_frame_equal(back.table(ci="wald"), comparison.table(ci="wald"), **assert_frame)
    pd.testing.assert_frame_equal(back.ranef_table(), comparison.ranef_table(), **assert_frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pd.testing.assert_frame_equal(back.fit_statistics(), comparison.fit_statistics(), **assert_frame)


def test_loading_a_bayes_fit_imports_neither_pymc_nor_pytensor(comparison, tmp_path):
    """No sampling and no compilation: the loading process never imports PyMC or PyTensor."""
    path = comparison.save(tmp_path / "cmp.lmm")
    script = ("import sys, lmmcompare as lc\n"
              f"cmp = lc.load({str(path)!r})\n"
              "print(float(cmp.bayes.idata.posterior['sigma'].mean()), 'pymc' in sys.modules, 'pytensor' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         cwd=pathlib.Path(__file__).resolve().parents[1]).stdout.split()
    assert float(out[0]) == float(comparison.bayes.idata.posterior["sigma"].mean())
    assert out[1:] == ["False", "False"]


@pytest.mark.skipif(not hasattr(lc.ModelSpec, "build_arguments"),
                    reason="weights, offset, contrasts and subset arrive with ModelSpec.build_arguments")
def test_weights_offset_contrasts_and_subset_are_saved_with_the_model():
    """The spec's build arguments (arrays, a contrast matrix, a subset) rebuild the same weighted model."""
    data = lc.load_dataset("sleepstudy")
    data["w"] = 1.0 + data["Days"] % 3
    cake = lc.load_dataset("cake")
    fits = [lc.lmer("Reaction ~ Days + (Days | Subject)", data, weights="w"),
            lc.lmer("Reaction ~ Days + offset(Days) + (1 | Subject)", data, offset=np.arange(len(data)) / 100),
            lc.lmer("angle ~ recipe + temperature + (1 | replicate)", cake,
                    contrasts={"recipe": "sum", "temperature": np.eye(6)[:, 1:]}),
            lc.lmer("Reaction ~ Days + (1 | Subject)", data, subset=data["Days"] > 1)]
    for fit in fits:
        back = _round_trip(fit)
        assert back.summary() == fit.summary() and np.array_equal(back.fitted(), fit.fitted())
        pd.testing.assert_frame_equal(back.coef_table(), fit.coef_table(), **assert_frame)
        for name in ("weights", "offset"):
            want, got = getattr(fit.spec, name), getattr(back.spec, name)
            assert (want is None and got is None) or np.array_equal(want, got), name
