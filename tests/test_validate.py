"""Validation studies: the REML/posterior identity, coverage, SBC (issue 7)."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats

import lmmcompare as lc
from lmmcompare.bayesian.priors import default_priors
from lmmcompare.errors import ArgumentError
from lmmcompare.validate import coverage, reml_posterior_identity, sbc
from lmmcompare.validate.sbc import prior_draws

SLEEP = "Reaction ~ Days + (Days | Subject)"
TINY_BAYES = {"draws": 100, "tune": 150, "chains": 1}


def test_validate_is_an_attribute_of_the_package():
    """``import lmmcompare as lc; lc.validate.coverage(...)`` works as ``lc.bayes`` does, in a fresh
    interpreter (here another test's import would have set the attribute), without importing PyMC."""
    script = ("import sys, lmmcompare as lc\n"
              "functions = lc.validate.coverage, lc.validate.sbc, lc.validate.reml_posterior_identity\n"
              "print(sorted(m for m in ('pymc', 'pytensor', 'arviz') if m in sys.modules))\n"
              "from lmmcompare.validate import coverage, reml_posterior_identity, sbc\n"   # only after the access
              "assert functions == (coverage, sbc, reml_posterior_identity)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("case, formula, data", [
    ("sleepstudy_reml", SLEEP, "sleepstudy"),
    ("penicillin_reml", "diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin"),
])
def test_reml_equals_marginal_posterior(case, formula, data):
    from conftest import REFERENCE

    table = reml_posterior_identity(formula, data)
    assert len(table) == 4 * 4   # 4 thetas x (REML profiled, ML profiled, 2 sigmas)
    assert table["relative"].max() < 1e-8
    # the first theta is the REML estimate: its REML criterion is lme4's
    first = table[table["criterion"] == "REML criterion (sigma profiled)"].iloc[0]
    reference = next(c for c in REFERENCE if c["id"] == case)
    assert first["frequentist"] == pytest.approx(reference["criterion"], rel=1e-6)


def test_identity_checks_both_engines_at_user_theta():
    # at theta = 0 (no random effects) the REML criterion is that of the linear model, by hand
    spec = lc.ModelSpec.from_formula(SLEEP, "sleepstudy")
    table = reml_posterior_identity(spec, thetas=[np.zeros(3)], sigma_scales=(1.0,))
    X, y = spec.X, spec.y
    n, p = X.shape
    rss = np.sum((y - X @ np.linalg.lstsq(X, y, rcond=None)[0]) ** 2)
    by_hand = np.linalg.slogdet(X.T @ X)[1] + (n - p) * (1 + np.log(2 * np.pi * rss / (n - p)))
    reml = table[table["criterion"] == "REML criterion (sigma profiled)"].iloc[0]
    assert reml["frequentist"] == pytest.approx(by_hand, rel=1e-12)
    assert reml["bayesian"] == pytest.approx(by_hand, rel=1e-10)
    with pytest.raises(ArgumentError, match="theta"):
        reml_posterior_identity(spec, thetas=[np.array([-1.0, 0.0, 1.0])])


@pytest.fixture(scope="module")
def sleep_fit():
    return lc.lmer(SLEEP, "sleepstudy")


def test_wald_coverage_of_fixed_effects_is_nominal(sleep_fit, tmp_path):
    res = coverage(sleep_fit, nsim=120, methods="wald", seed=11, progress=False)
    table = res.table()
    # Wald intervals exist for the fixed effects only (NA for variance parameters, as lme4)
    assert set(table.index.get_level_values("parameter")) == {"(Intercept)", "Days"}
    for name in ("(Intercept)", "Days"):
        row = table.loc[(name, "wald")]
        assert row["n"] == 120 and row["n_failed"] == 0
        assert row["truth"] == pytest.approx(sleep_fit.fixef[name], rel=1e-12)
        mc_se = np.sqrt(0.95 * 0.05 / 120)
        assert abs(row["coverage"] - 0.95) < 3.5 * mc_se
        # mean width is about 2 z se: the se of a refit varies little around the fit's
        assert row["mean_width"] == pytest.approx(2 * 1.959964 * sleep_fit.se[name], rel=0.15)
    # the figure: coverage +- 2 MC se per parameter, a line at the nominal level
    fig = res.plot()
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["(Intercept)", "Days"]
    line, _, (bars,) = ax.containers[0].lines
    np.testing.assert_allclose(np.asarray(line.get_xdata(), float), table["coverage"], rtol=1e-12)
    segments = np.array(bars.get_segments())
    np.testing.assert_allclose(segments[:, 1, 0] - segments[:, 0, 0], 4 * table["mc_se"], rtol=1e-9)
    assert [list(l.get_xdata()) for l in ax.lines if l.get_linestyle() == "--"] == [[0.95, 0.95]]
    html = open(res.report(tmp_path / "coverage.html"), encoding="utf-8").read()
    assert "Coverage study" in html and "data:image/png;base64," in html
    assert f"{table.loc[('Days', 'wald'), 'coverage']:.4g}" in html
    reps = res.replicates
    inside = (reps["lower"] <= reps["truth"]) & (reps["truth"] <= reps["upper"])
    assert np.array_equal(reps["covered"].to_numpy(), inside.astype(float).to_numpy())


def test_coverage_all_methods_resume_and_reproduce(sleep_fit, tmp_path):
    opts = dict(methods=("wald", "profile", "boot", "bayes"), seed=5, boot_nsim=40, bayes_options=TINY_BAYES,
                progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = coverage(sleep_fit, nsim=2, directory=tmp_path, **opts)
        reps = first.replicates
        truth = pd.concat([sleep_fit.variance_parameters(), sleep_fit.fixef])
        assert set(reps["method"]) == {"wald", "profile", "boot", "bayes"}
        assert (reps["error"] == "").all()
        for method, part in reps.groupby("method"):
            names = truth.index if method != "wald" else sleep_fit.fixef.index
            assert part.groupby("replicate").size().tolist() == [len(names)] * 2
            assert (part["upper"] > part["lower"]).all()
        np.testing.assert_allclose(reps.set_index(["replicate", "method", "parameter"])["truth"]
                                   .xs(0).xs("bayes").loc[truth.index], truth, rtol=1e-12)
        assert sorted(os.listdir(tmp_path)) == ["replicate_00000.csv", "replicate_00001.csv", "study.json"]
        # an interrupted study resumes: drop one replicate, ask for one more; the others are reloaded as they were
        os.remove(tmp_path / "replicate_00001.csv")
        resumed = coverage(sleep_fit, nsim=3, directory=tmp_path, **opts)
    again = resumed.replicates[resumed.replicates["replicate"] < 2].reset_index(drop=True)
    pd.testing.assert_frame_equal(again, reps)
    assert resumed.replicates["replicate"].nunique() == 3
    with pytest.raises(ArgumentError, match="other settings"):
        coverage(sleep_fit, nsim=3, directory=tmp_path, **{**opts, "level": 0.9})


def test_coverage_parallel_and_dask_give_the_same_replicates(sleep_fit):
    pytest.importorskip("dask.distributed")
    serial = coverage(sleep_fit, nsim=4, methods=("wald",), seed=3, progress=False).replicates
    joblib_run = coverage(sleep_fit, nsim=4, methods=("wald",), seed=3, n_jobs=2, progress=False).replicates
    pd.testing.assert_frame_equal(serial, joblib_run)
    from dask.distributed import Client

    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None):
        dask_run = coverage(sleep_fit, nsim=4, methods=("wald",), seed=3, backend="dask", n_jobs=2,
                            progress=False).replicates
    pd.testing.assert_frame_equal(serial, dask_run)


@pytest.mark.parametrize("kwargs, match", [
    ({"methods": ("wald", "jackknife")}, "methods"),
    ({"nsim": 0}, "nsim"),
    ({"level": 1.5}, "level"),
    ({"backend": "spark"}, "backend"),
    ({"bayes_options": {"draw": 10}}, "bayes_options"),
    ({"n_jobs": 0}, "n_jobs"),
])
def test_coverage_arguments(sleep_fit, kwargs, match):
    with pytest.raises(ArgumentError, match=match):
        coverage(sleep_fit, **{"nsim": 2, "progress": False, **kwargs})
    with pytest.raises(ArgumentError, match="LmerFit"):
        coverage("Reaction ~ Days + (1 | Subject)")


DYESTUFF = "Yield ~ 1 + (1 | Batch)"
SBC_RUN = dict(nsim=20, draws=60, tune=150, chains=1, thin=2, seed=4, progress=False)


def run_sbc(spec):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sbc(spec, **SBC_RUN)


@pytest.fixture(scope="module")
def dyestuff_sbc():
    spec = lc.ModelSpec.from_formula(DYESTUFF, "Dyestuff")
    return spec, run_sbc(spec)


def test_sbc_ranks_are_in_range_and_the_test_is_the_chi_square(dyestuff_sbc):
    spec, res = dyestuff_sbc
    assert res.n_draws == 30
    assert list(res.ranks.columns) == ["sd_(Intercept)|Batch", "sigma", "(Intercept)"]
    assert res.ranks.shape == (20, 3)
    assert ((res.ranks >= 0) & (res.ranks <= 30)).all().all()
    # the prior draws are reproducible and are the ones the data came from
    truth, ys = prior_draws(spec, default_priors(spec), 20, 4)
    pd.testing.assert_frame_equal(truth, res.truth)
    assert (truth["sigma"] > 0).all() and (truth["sd_(Intercept)|Batch"] > 0).all()
    assert ys.shape == (20, spec.n)
    # the uniformity test is Pearson's chi-square on equal bins of 0..L, computed by hand here
    table = res.uniformity(bins=2)
    counts = np.histogram(res.ranks["sigma"], bins=np.linspace(0, 31, 3))[0]
    chi2 = ((counts - 10) ** 2 / 10).sum()
    assert table.loc["sigma", "chi2"] == pytest.approx(chi2)
    assert table.loc["sigma", "p_value"] == pytest.approx(scipy.stats.chi2.sf(chi2, 1))


def test_sbc_of_the_calibrated_model_gives_uniform_ranks(dyestuff_sbc):
    """Data simulated from the priors the model is fit with: no parameter's ranks depart from uniform
    (4 bins of 20 ranks; seed 4 gives p = 0.75, 0.36, 0.11, seed 7 gives 0.16, 0.16, 0.85)."""
    spec, res = dyestuff_sbc
    table = res.uniformity()
    assert table["df"].tolist() == [3, 3, 3]
    assert (table["p_value"] > 0.01).all(), table
    assert ((table["mean_rank_fraction"] - 0.5).abs() < 0.15).all(), table
    assert "no parameter's ranks depart from uniform" in res.html_section()


def test_sbc_detects_a_posterior_fit_with_another_prior(dyestuff_sbc, monkeypatch):
    """Miscalibration: the data come from a prior with batch sd ~ HalfNormal(1) (Yield's sd is 62),
    the fits use the default HalfStudentT(3, 63). The posterior sits above the true sd, so the
    ranks pile up at 0: seed 4 gives p = 6e-13 and a mean rank of 0.03 L, seed 7 p = 7e-10, 0.10 L."""
    import importlib

    spec, calibrated = dyestuff_sbc
    sbc_module = importlib.import_module("lmmcompare.validate.sbc")   # lmmcompare.validate.sbc is the function
    real_prior_draws = sbc_module.prior_draws
    small_sd = default_priors(spec, {"sd": ("half_normal", 1.0)})
    fitted_with = []

    def draws_from_another_prior(spec, prior_set, nsim, seed):
        fitted_with.append(prior_set)
        return real_prior_draws(spec, small_sd, nsim, seed)

    monkeypatch.setattr(sbc_module, "prior_draws", draws_from_another_prior)
    res = run_sbc(spec)
    assert fitted_with == [default_priors(spec)]
    assert res.truth["sd_(Intercept)|Batch"].max() < 5 < calibrated.truth["sd_(Intercept)|Batch"].median()
    table = res.uniformity()
    assert table.loc["sd_(Intercept)|Batch", "p_value"] < 1e-6, table
    assert table.loc["sd_(Intercept)|Batch", "mean_rank_fraction"] < 0.2, table
    assert "ranks depart from uniform (p < 0.01) for sd_(Intercept)|Batch" in res.html_section()


def test_sbc_plot_shows_the_rank_histograms(dyestuff_sbc):
    _, res = dyestuff_sbc
    fig = res.plot()
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == list(res.ranks.columns)
    edges = np.linspace(0, 31, 5)   # 20 fits: 4 bins of 0..L
    lo, hi = scipy.stats.binom.ppf([0.005, 0.995], 20, 1 / 4)
    for ax, name in zip(visible, res.ranks.columns):
        bars = ax.containers[0]
        assert [b.get_height() for b in bars] == np.histogram(res.ranks[name], bins=edges)[0].tolist()
        np.testing.assert_allclose([b.get_x() for b in bars], edges[:-1])
        band = ax.patches[0]   # the 99% band of a uniform histogram, drawn first
        band_y = band.get_patch_transform().transform(band.get_path().vertices)[:, 1]
        assert (band_y.min(), band_y.max()) == pytest.approx((lo, hi))
    assert "SBC ranks (20 fits, L = 30)" in fig._suptitle.get_text()
