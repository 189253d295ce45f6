"""The Bayesian engine: names shared with LmerFit, agreement with REML, the marginal
parameterisation against the noncentered one, priors and diagnostics.

Draws are kept small so CI stays fast; criteria use the Monte Carlo standard
errors ArviZ reports, not loosened tolerances.
"""
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lmmcompare as lc
from conftest import unrounded_summary
from lmmcompare.errors import ArgumentError, SamplingWarning

SLEEP = "Reaction ~ Days + (Days | Subject)"
SAMPLING = dict(draws=500, tune=500, chains=2, progressbar=False)


def run(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return lc.bayes(formula, data, **{**SAMPLING, **kw})


@pytest.fixture(scope="module")
def sleep_nc():
    return run(SLEEP, "sleepstudy", seed=1, parameterization="noncentered")


@pytest.fixture(scope="module")
def sleep_marginal():
    return run(SLEEP, "sleepstudy", seed=2)   # the default parameterisation, marginal


@pytest.fixture(scope="module")
def sleep_reml():
    return lc.lmer(SLEEP, "sleepstudy")


def test_the_default_integrates_the_random_effects_out(sleep_marginal):
    """parameterization="marginal" is the default: NUTS samples no level effects, which are drawn afterwards."""
    assert sleep_marginal.parameterization == "marginal" and sleep_marginal.sampled_as == "marginal"
    post = sleep_marginal.idata.posterior
    assert post["r_Subject"].shape[2:] == (18, 2)    # drawn b | theta, y, one per posterior draw
    assert np.all(post["r_Subject"].std(("chain", "draw")).values > 0)
    assert not any(name.startswith(("z_", "c_")) for name in post.data_vars)


def test_posterior_uses_the_frequentist_names(sleep_nc, sleep_reml):
    post = sleep_nc.idata.posterior
    expected = ["(Intercept)", "Days", "sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject",
                "sd_Days|Subject", "sigma"]
    assert sleep_nc.parameter_names == expected
    assert list(sleep_reml.variance_parameters().index) + list(sleep_reml.fixef.index) == expected[2:] + expected[:2]
    for name in expected:
        assert post[name].dims == ("chain", "draw")
    r = post["r_Subject"]
    assert list(r.coords["Subject"].values) == list(sleep_reml.ranef()["Subject"].index)
    assert list(r.coords["Subject__coef"].values) == ["(Intercept)", "Days"]
    summary = sleep_nc.summary()
    assert set(expected) <= set(summary.index) and "r_Subject[308, Days]" in summary.index
    assert set(sleep_nc.idata.groups()) >= {"posterior", "log_likelihood", "sample_stats", "observed_data"}


def test_posterior_agrees_with_reml_on_sleepstudy(sleep_nc, sleep_marginal, sleep_reml):
    for fit in (sleep_nc, sleep_marginal):
        post = fit.idata.posterior
        for name in ["(Intercept)", "Days"]:
            draws = post[name].values.ravel()
            assert abs(np.median(draws) - sleep_reml.fixef[name]) < 0.5 * draws.std()
            assert abs(draws.std() / sleep_reml.se[name] - 1) < 0.30


@pytest.mark.parametrize("formula, data", [
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin"),
    ("distance ~ age * Sex + (age | Subject)", "Orthodont"),
])
def test_posterior_agrees_with_reml(formula, data):
    fit = run(formula, data, seed=3, parameterization="marginal")
    reml = lc.lmer(formula, data)
    post = fit.idata.posterior
    for name in reml.spec.fixed_names:
        draws = post[name].values.ravel()
        assert abs(np.median(draws) - reml.fixef[name]) < 0.5 * draws.std(), name
        assert abs(draws.std() / reml.se[name] - 1) < 0.30, name


def test_marginal_and_noncentered_give_the_same_posterior(sleep_nc, sleep_marginal):
    """Posterior means agree within 4 combined Monte Carlo standard errors."""
    a = unrounded_summary(sleep_nc)
    b = unrounded_summary(sleep_marginal)
    for name in a.index:
        bound = 4 * np.hypot(a.loc[name, "mcse_mean"], b.loc[name, "mcse_mean"])
        assert abs(a.loc[name, "mean"] - b.loc[name, "mean"]) < bound, name
    # random effects drawn from their exact conditional agree too
    ra, rb = sleep_nc.ranef()["Subject"], sleep_marginal.ranef()["Subject"]
    sd = sleep_nc.ranef(sd=True)["Subject"]
    assert np.all(np.abs(ra - rb) < 0.5 * sd)


def test_ranef_layout_matches_lmerfit_and_shrinks_like_the_blups(sleep_nc, sleep_reml):
    bayes_re, blup = sleep_nc.ranef()["Subject"], sleep_reml.ranef()["Subject"]
    pd.testing.assert_index_equal(bayes_re.index, blup.index)
    assert list(bayes_re.columns) == list(blup.columns)
    sd = sleep_nc.ranef(sd=True)["Subject"]
    assert np.all(np.abs(bayes_re - blup) < sd)
    assert np.corrcoef(bayes_re["Days"], blup["Days"])[0, 1] > 0.98


def test_loo_and_posterior_predictive(sleep_nc):
    loo = sleep_nc.loo(pointwise=True)
    assert loo.loo_i.shape == (180,) and float(loo.loo_i.sum()) == pytest.approx(loo.elpd_loo, rel=1e-12)
    # p_loo = lppd - elpd_loo, lppd = sum_i log mean_s p(y_i | theta_s) from the stored pointwise log-likelihood
    import scipy.special

    loglik = sleep_nc.idata.log_likelihood["y"].values.reshape(-1, 180)
    lppd = float(np.sum(scipy.special.logsumexp(loglik, axis=0) - np.log(loglik.shape[0])))
    assert lppd - loo.elpd_loo == pytest.approx(loo.p_loo, rel=1e-6)
    assert 2 < loo.p_loo < 2 + 36 + 4   # fixed effects + shrunken subject effects + variance parameters
    yrep = sleep_nc.posterior_predictive(seed=5)
    assert yrep.shape == (2, 500, 180)
    # replicated data have about the observed spread
    assert abs(float(yrep.std()) / np.std(sleep_nc.spec.y) - 1) < 0.2


def test_posterior_predictive_leaves_the_fit_as_it_was(sleep_nc):
    """Drawn replicates are returned, not written into the fit's idata: the fit is a value,
    and each call draws from its own seed, ``y_rep = X beta + Z b + sigma e``."""
    groups = list(sleep_nc.idata.groups())
    yrep = sleep_nc.posterior_predictive(seed=11)
    assert list(sleep_nc.idata.groups()) == groups
    e = np.random.default_rng(11).standard_normal(yrep.shape)
    expected = sleep_nc.linear_predictor() + sleep_nc.idata.posterior["sigma"].values[..., None] * e
    np.testing.assert_allclose(yrep.values, expected, rtol=1e-12)
    np.testing.assert_array_equal(sleep_nc.posterior_predictive(seed=11).values, yrep.values)
    assert not np.array_equal(sleep_nc.posterior_predictive(seed=12).values, yrep.values)


def test_default_priors_are_scaled_to_the_data_and_overridable():
    spec = lc.ModelSpec.from_formula(SLEEP, "sleepstudy")
    sy = float(np.std(spec.y, ddof=1))
    table = lc.bayesian.default_priors(spec).table()
    assert table.loc[table.parameter == "sigma", "prior"].item() == f"half_student_t(3, {sy:.4g})"
    days_sd = float(np.std(spec.X[:, 1], ddof=1))
    assert table.loc[table.parameter == "Days", "prior"].item() == f"normal(0, {2.5 * sy / days_sd:.4g})"
    assert table.loc[table["class"] == "cor", "prior"].item() == "lkj(2)"
    user = lc.bayesian.default_priors(spec, {"b": ("normal", 0, 5), "sd_Subject": ("half_normal", 30),
                                              "cor": ("lkj", 1.0), "sigma": ("exponential", 0.05)}).table()
    assert user.loc[user.parameter == "Days", "prior"].item() == "normal(0, 5)"
    assert set(user.loc[user["class"] == "sd", "prior"]) == {"half_normal(30)"}
    assert (user.loc[user["class"] != "Intercept", "source"] == "user").all()


@pytest.mark.parametrize("priors, message", [
    ({"slope": ("normal", 0, 1)}, "unknown prior key"),
    ({"sigma": ("normal", 0, 1)}, "must be on positive values"),
    ({"b": ("gamma", 1, 1)}, "unknown prior family"),
    ({"cor": ("normal", 0, 1)}, "must be \\('lkj', eta\\)"),
])
def test_bad_priors_are_typed_errors(priors, message):
    spec = lc.ModelSpec.from_formula(SLEEP, "sleepstudy")
    with pytest.raises(ArgumentError, match=message):
        lc.bayesian.default_priors(spec, priors)


@pytest.mark.parametrize("kwargs, message", [
    (dict(parameterization="centred"), "parameterization must be one of"),
    (dict(sampler="stan"), "sampler must be one of"),
    (dict(draws=0), "draws must be an integer >= 1"),
    (dict(chains=1.5), "chains must be an integer >= 1"),
    (dict(init="map"), "init must be one of"),
    (dict(init="laplace", sampler="nutpie"), "init='laplace' is a start for PyMC's NUTS: use it with sampler='pymc'"),
    (dict(init="adapt_diag", sampler="independence"), "sampler='independence' starts from the Laplace approximation"),
    (dict(sampler="mh"), "sampler must be one of"),
    (dict(sampler="independence", parameterization="noncentered"), "sampler='independence' needs parameterization='marginal'"),
    (dict(log_likelihood="no"), "log_likelihood must be"),
])
def test_bad_sampling_arguments(kwargs, message):
    with pytest.raises(ArgumentError, match=message):
        lc.bayes(SLEEP, "sleepstudy", **kwargs)


def test_diagnostics_warn_naming_the_parameters(sleep_nc):
    """Shift one chain of sigma: R-hat for sigma must flag, and the warning must name it."""
    import dataclasses

    idata = sleep_nc.idata.copy()
    idata.posterior["sigma"].values[1] += 10 * float(idata.posterior["sigma"].std())
    broken = dataclasses.replace(sleep_nc, idata=idata)
    with pytest.warns(SamplingWarning, match=r"R-hat > 1.01 for [^;]*sigma"):
        table = broken.diagnostics(warn=True)
    assert table.loc["sigma", "r_hat"] > 1.01


def test_laplace_start_is_the_mode_and_inverse_hessian():
    """Mode: the gradient vanishes there; covariance: inverse of the Hessian of the log density by
    Richardson-extrapolated second differences of its values (numDeriv's method).  PyTensor cannot
    differentiate the kernel's partials again, and says so rather than returning a wrong Hessian."""
    from pymc.blocking import DictToArrayBijection, RaveledVars
    from pytensor.gradient import NullTypeGradError

    from lmmcompare.bayesian.model import build_model
    from lmmcompare.bayesian.start import laplace_start
    from lmmcompare.freq.inference import numderiv

    spec = lc.ModelSpec.from_formula(SLEEP, "sleepstudy")
    built = build_model(spec, lc.bayesian.default_priors(spec), "marginal")
    start = laplace_start(built.model, 3, np.random.default_rng(0), 0.9)
    info = DictToArrayBijection.map(built.model.initial_point()).point_map_info
    point = DictToArrayBijection.rmap(RaveledVars(start.mode, info))
    grad = built.model.compile_dlogp()(point)
    logp = built.model.compile_logp()
    hess = -numderiv.hessian(lambda x: float(logp(DictToArrayBijection.rmap(RaveledVars(x, info)))), start.mode)
    with pytest.raises(NullTypeGradError):
        built.model.compile_d2logp()
    assert np.max(np.abs(grad)) < 1e-3 * np.max(np.abs(hess))
    np.testing.assert_allclose(start.cov, np.linalg.inv(hess), rtol=1e-4, atol=1e-8 * np.abs(start.cov).max())
    sigmas = [iv["sigma"] for iv in start.initvals]
    assert len(set(np.round(sigmas, 12))) == 3 and min(sigmas) > 0


def test_diagonal_laplace_start_keeps_the_mode_and_the_laplace_variances():
    """``dense=False``: the same mode and Laplace variances (the diagonal of the inverse Hessian) as the dense
    start, a diagonal mass matrix holding them, and starts spread by their square roots."""
    from lmmcompare.bayesian.model import build_model
    from lmmcompare.bayesian.start import laplace_start

    spec = lc.ModelSpec.from_formula(SLEEP, "sleepstudy")
    built = build_model(spec, lc.bayesian.default_priors(spec), "marginal")
    dense = laplace_start(built.model, 2, np.random.default_rng(0), 0.9)
    diagonal = laplace_start(built.model, 2, np.random.default_rng(0), 0.9, dense=False)
    np.testing.assert_allclose(diagonal.mode, dense.mode, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.diag(diagonal.cov), np.diag(dense.cov), rtol=1e-6)
    assert np.count_nonzero(diagonal.cov - np.diag(np.diag(diagonal.cov))) == 0
    potential = diagonal.step.potential
    np.testing.assert_allclose(potential._var, np.diag(dense.cov), rtol=1e-6)


def test_auto_init_by_design():
    """init='auto': dense Laplace for sleepstudy, PyMC's start for Dyestuff (6 batches), the diagonal Laplace
    start for a marginal model with a three-column term, nothing of it for the noncentred form."""
    from lmmcompare.bayesian.fit import laplace_by_default, laplace_diagonal_by_default
    from lmmcompare.bayesian.model import build_model

    def rules(formula, data, parameterization="marginal"):
        spec = lc.ModelSpec.from_formula(formula, data)
        built = build_model(spec, lc.bayesian.default_priors(spec), parameterization)
        return laplace_by_default(built), laplace_diagonal_by_default(built)

    assert rules(SLEEP, "sleepstudy") == (True, False)
    assert rules("Yield ~ 1 + (1 | Batch)", "Dyestuff") == (False, False)
    wide = "Reaction ~ Days + (1 + Days + I(Days**2) | Subject)"
    assert rules(wide, "sleepstudy") == (False, True)
    assert rules(wide, "sleepstudy", "noncentered") == (False, False)


def test_laplace_init_samples_the_same_posterior(sleep_marginal):
    """init='laplace' changes only where NUTS starts: means within 4 combined MCSE of the default start."""
    fit = run(SLEEP, "sleepstudy", seed=4, parameterization="marginal", init="laplace", log_likelihood=False)
    assert "log_likelihood" not in fit.idata.groups()
    with pytest.raises(ArgumentError, match="log_likelihood=True"):
        fit.loo()
    a, b = unrounded_summary(sleep_marginal), unrounded_summary(fit)
    for name in a.index:
        bound = 4 * np.hypot(a.loc[name, "mcse_mean"], b.loc[name, "mcse_mean"])
        assert abs(a.loc[name, "mean"] - b.loc[name, "mean"]) < bound, name


def test_every_fit_stamps_the_software_version_that_made_it(sleep_marginal, tmp_path):
    """``idata.attrs["lmmcompare_version"]`` is the package's version (pyproject's), and survives a save."""
    import re

    import arviz as az

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    assert lc.__version__ == version
    assert sleep_marginal.idata.attrs["lmmcompare_version"] == version
    sleep_marginal.idata.to_netcdf(tmp_path / "fit.nc")
    assert az.from_netcdf(tmp_path / "fit.nc").attrs["lmmcompare_version"] == version


def test_diagnostics_report_tree_depth_and_gradients_per_draw(sleep_marginal):
    """Per chain and overall, from PyMC's own counts: a tree of depth d takes at most 2^d - 1 leapfrog steps."""
    stats = sleep_marginal.idata.sample_stats
    depth, steps = stats["tree_depth"].values, stats["n_steps"].values
    assert np.all(steps <= 2.0**depth - 1) and np.all(steps >= 1)
    per_chain = sleep_marginal.sampler_stats()
    np.testing.assert_allclose(per_chain["gradients_per_draw"], steps.mean(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(per_chain["max_tree_depth"], depth.max(axis=1))
    attrs = sleep_marginal.diagnostics().attrs
    assert attrs["gradients_per_draw"] == pytest.approx(steps.mean(), rel=1e-12)
    assert attrs["max_depth_hits"] == int(stats["reached_max_treedepth"].values.sum())
    assert attrs["divergences"] == int(per_chain["divergences"].sum())


def test_laplace_mass_matrix_draws_the_momentum_pymc_draws():
    """``LaplaceFullAdapt.random`` (LAPACK's trtrs) gives PyMC's ``QuadPotentialFullAdapt.random`` to rounding,
    from the same generator state, before and after the matrix adapts."""
    import warnings

    from pymc.step_methods.hmc.quadpotential import QuadPotentialFullAdapt

    from lmmcompare.bayesian.start import LaplaceFullAdapt

    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 4))
    cov, mean = A @ A.T + 4 * np.eye(4), rng.normal(size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = (cls(4, mean, cov, initial_weight=40, adaptation_window=20) for cls in
                        (LaplaceFullAdapt, QuadPotentialFullAdapt))
    for potential in (ours, theirs):
        potential.set_rng(np.random.default_rng(5))
    samples = rng.normal(size=(60, 4)) @ A.T
    for x in samples:
        np.testing.assert_allclose(ours.random(), theirs.random(), rtol=1e-12, atol=1e-12)
        for potential in (ours, theirs):
            potential.update(x, None, tune=True)
