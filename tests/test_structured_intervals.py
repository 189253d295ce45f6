"""Intervals, simulation, prediction and display of models with structured terms or sigma_by (issue 22).

Profiles: a diag term's intervals are the double bar's (two code paths: the
structured scale and lme4's sd/cor scale); at each end of a profile interval of
rho, a common correlation or a residual sd ratio, the ML deviance minimised with
that parameter held (a brute-force refit) is the minimum + qchisq(0.95, 1).
Bootstrap replicates equal direct refits of the simulated responses; simulated
noise and prediction intervals carry each level's residual sd.
"""
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.optimize
import scipy.stats

import lmmcompare as lc
from lmmcompare.errors import DataError
from lmmcompare.freq import make_devfun
from lmmcompare.freq.inference import bootstrap
from structures_cases import FITS, dataset

REPEATED = FITS["rm_ar1_reml"]["data"]   # the repeated-measures data of the reference fits, by its name there

CHI2_95 = scipy.stats.chi2.ppf(0.95, 1)   # 3.841459


def orthodont():
    return lc.load_dataset("Orthodont")


def test_profile_intervals_of_diag_equal_the_double_bar():
    diag = lc.lmer("distance ~ age + diag(age | Subject)", orthodont())
    bars = lc.lmer("distance ~ age + (age || Subject)", orthodont())
    a, b = diag.confint(progress=False), bars.confint(progress=False)
    assert list(a.index) == ["sd_(Intercept)|Subject", "sd_age|Subject", "sigma", "(Intercept)", "age"]
    assert set(a.index) == set(b.index)
    np.testing.assert_allclose(a.to_numpy(), b.loc[a.index].to_numpy(), rtol=1e-4)


def held_deviance(fit_ml, position, value):
    """Brute force: the ML deviance (sigma profiled) minimised over phi with ``phi[position] = value``."""
    devfun = make_devfun(fit_ml.spec, reml=False)
    free = np.flatnonzero(np.arange(fit_ml.phi.size) != position)

    def full(x):
        phi = fit_ml.phi.copy()
        phi[free], phi[position] = x, value
        return phi

    def f(x):
        v, g = devfun.with_gradient(full(x))
        return v, g[free]

    bounds = list(zip(devfun.lower[free], devfun.upper[free]))
    best = scipy.optimize.minimize(f, fit_ml.phi[free], jac=True, method="L-BFGS-B", bounds=bounds,
                                   options=dict(ftol=1e-14, gtol=1e-9, maxiter=2000))
    return best.fun


@pytest.mark.parametrize("formula, data, sigma_by, label", [
    ("y ~ time + ar1(0 + occ | subj)", REPEATED, None, "rho|subj"),
    ("y ~ time + cs(0 + occ | subj, hom=True)", REPEATED, None, "cor|subj"),
    ("distance ~ age + (1 | Subject)", "Orthodont", "Sex", "sigma_ratio_Female|Sex"),
])
def test_profile_interval_ends_are_where_the_held_refit_deviance_rises_by_the_chi2_quantile(
        formula, data, sigma_by, label):
    fit = lc.lmer(formula, dataset(data), sigma_by=sigma_by, reml=False)
    interval = fit.profile(which=label).intervals.loc[label]
    row = fit.spec.parameters[label]
    estimate = fit.variance_parameters()[label]
    assert interval["lower"] < estimate < interval["upper"]
    for end in interval:
        value = np.log(end) if row.kind == "sigma_ratio" else end   # phi holds log delta
        assert held_deviance(fit, row.phi, value) - fit.objective == pytest.approx(CHI2_95, abs=1e-3)


def test_wald_intervals_name_the_structured_parameters():
    fit = lc.lmer("y ~ time + ar1(0 + occ | subj)", dataset(REPEATED), sigma_by="grp")
    ci = fit.confint(method="wald")
    assert list(ci.index) == ["sd|subj", "rho|subj", "sigma", "sigma_ratio_B|grp", "sigma_ratio_C|grp",
                              "(Intercept)", "time"]
    assert ci.iloc[:5].isna().all().all()
    z = scipy.stats.norm.ppf(0.975)
    np.testing.assert_allclose(ci.loc["time"], fit.fixef["time"] + np.array([-z, z]) * fit.se["time"], rtol=1e-12)


@pytest.mark.parametrize("formula, sigma_by, reml", [("distance ~ age + (1 | Subject)", "Sex", True),
                                                     ("distance ~ age + diag(age | Subject)", "Sex", False)])
def test_bootstrap_replicates_are_refits_of_the_simulated_responses(formula, sigma_by, reml):
    data = orthodont()
    fit = lc.lmer(formula, data, sigma_by=sigma_by, reml=reml)
    draws = bootstrap(fit, nsim=4, seed=11, progress=False)
    sims = fit.simulate(4, seed=11)
    assert list(draws.columns) == fit.spec.parameters.variance_labels + fit.spec.fixed_names
    for k in range(4):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", lc.errors.SingularFitWarning)
            direct = lc.lmer(formula, data.assign(distance=sims.iloc[:, k].to_numpy()), sigma_by=sigma_by, reml=reml)
        expected = pd.concat([direct.variance_parameters(), direct.fixef])
        np.testing.assert_allclose(draws.iloc[k].to_numpy(), expected.loc[draws.columns].to_numpy(),
                                   rtol=2e-4, atol=1e-6)


def test_simulated_noise_has_each_levels_residual_sd():
    """Within a subject, y_i - y_j = (x_i - x_j)'beta + e_i - e_j: variance 2 sigma_k^2 for two rows of level k."""
    data = orthodont()
    fit = lc.lmer("distance ~ age + (1 | Subject)", data, sigma_by="Sex")
    sims = fit.simulate(4000, seed=5).to_numpy()
    first = data.groupby("Subject", observed=True).head(2).index.to_numpy().reshape(-1, 2)
    mean = fit.spec.X @ fit.beta
    differences = (sims[first[:, 0]] - sims[first[:, 1]]) - (mean[first[:, 0]] - mean[first[:, 1]])[:, None]
    sex = data["Sex"].to_numpy()[first[:, 0]]
    for level, sd in fit.residual_sd.items():
        variance = np.mean(differences[sex == level] ** 2) / 2
        n = differences[sex == level].size
        assert variance == pytest.approx(sd**2, rel=4 * np.sqrt(2 / n))   # 4 standard errors
    assert fit.residual_sd["Female"] < 0.5 * fit.residual_sd["Male"]


def test_prediction_intervals_use_the_rows_residual_sd():
    data = orthodont()
    fit = lc.lmer("distance ~ age + (1 | Subject)", data, sigma_by="Sex")
    rows = data.iloc[[0, 70]]
    table = fit.predict(rows, interval="prediction")
    z = scipy.stats.norm.ppf(0.975)
    sd = fit.residual_sd[rows["Sex"].astype(str)].to_numpy()
    half = z * np.sqrt(table["se"].to_numpy() ** 2 + sd**2)
    np.testing.assert_allclose(table["upper"] - table["fit"], half, rtol=1e-12)
    np.testing.assert_allclose(table["fit"] - table["lower"], half, rtol=1e-12)
    frame = fit.predict(interval="prediction")              # the model frame's rows, the same rule
    np.testing.assert_allclose(frame.loc[[0, 70], "upper"] - frame.loc[[0, 70], "fit"], half, rtol=1e-12)
    with pytest.raises(DataError, match="lacks column 'Sex'"):
        fit.predict(rows.drop(columns="Sex"), interval="prediction")
    np.testing.assert_allclose(fit.predict(rows.drop(columns="Sex")), table["fit"], rtol=1e-12)
    other = rows.assign(Sex=pd.Categorical(["Other", "Male"]))
    with pytest.raises(DataError, match="not one of the fit's levels"):
        fit.predict(other, interval="prediction")


def test_summary_shows_the_structure_and_residual_sd_per_level():
    fit = lc.lmer("y ~ time + ar1(0 + occ | subj) + diag(1 + time | grp)", dataset(REPEATED),
                  sigma_by="grp")
    text = fit.summary()
    params = fit.variance_parameters()
    assert text.count("rho = ") == 1 and f"(ar1) rho = {params['rho|subj']:.2f}" in text
    assert text.count("(diag)") == 1
    lines = text.splitlines()
    start = lines.index("Random effects:")
    residual = [line for line in lines[start:] if "grp: " in line]
    assert len(residual) == 3 and residual[0].split()[0] == "Residual"
    for line, (level, sd) in zip(residual, fit.residual_sd.items()):
        assert f"grp: {level}" in line and line.split()[-1] == f"{sd:.5g}"


def test_profile_lists_parameters_in_the_tables_order():
    """sigma before the ratios, as every table names them (the scale keeps sigma last internally)."""
    fit = lc.lmer("distance ~ age + (1 | Subject)", orthodont(), sigma_by="Sex")
    prof = fit.profile()
    names = ["sd_(Intercept)|Subject", "sigma", "sigma_ratio_Female|Sex", "(Intercept)", "age"]
    assert list(prof.traces) == names and list(prof.estimates.index) == names
    fit_ml = fit.by_criterion(False)
    np.testing.assert_allclose(prof.estimates.to_numpy(),
                               np.r_[fit_ml.variance_parameters().to_numpy(), fit_ml.beta], rtol=1e-12)
    assert prof.lower["sigma_ratio_Female|Sex"] == 0 and prof.upper["sigma_ratio_Female|Sex"] == np.inf
