"""Structured covariances and sigma_by: invariances, gradients and bad input (issue 22).

The references (glmmTMB, nlme) are in test_structures_reference.py; here the
identities the issue names: ``us`` is lme4's term exactly, ``diag`` over numeric
columns is ``||``, ``cs`` with its correlation fixed at 0 is ``diag``, and
``sigma_by`` with every ratio 1 is the homoscedastic model.
"""
import numpy as np
import pandas as pd
import pytest

import lmmcompare as lc
from lmmcompare.core.structures import relative_factor
from lmmcompare.errors import DataError, FormulaError
from lmmcompare.freq.fit import make_devfun
from lmmcompare.spec import ModelSpec
from lmmcompare.spec.structures import Structure

from structures_cases import dataset

SLEEP = "Reaction ~ Days + {}(Days | Subject)"


@pytest.fixture(scope="module")
def repeated():
    data = dataset("RepeatedMeasures")
    return data[data.subj.cat.codes < 30].assign(subj=lambda d: d.subj.cat.remove_unused_categories())


def test_us_is_lme4s_term_exactly():
    ours, lme4 = lc.lmer(SLEEP.format("us"), "sleepstudy"), lc.lmer(SLEEP.format(""), "sleepstudy")
    np.testing.assert_array_equal(ours.theta, lme4.theta)
    np.testing.assert_array_equal(ours.beta, lme4.beta)
    assert ours.objective == lme4.objective
    pd.testing.assert_series_equal(ours.variance_parameters(), lme4.variance_parameters())


@pytest.mark.parametrize("reml", [True, False])
def test_diag_equals_double_bar_for_numeric_columns(reml):
    """The same criterion at every point (exact), so the same optimum up to the optimizer's stopping."""
    diag_f = make_devfun(ModelSpec.from_formula(SLEEP.format("diag"), "sleepstudy"), reml=reml)
    split_f = make_devfun(ModelSpec.from_formula("Reaction ~ Days + (Days || Subject)", "sleepstudy"), reml=reml)
    for sds in ([1.0, 0.2], [0.5, 0.0], [2.0, 1.5]):
        assert diag_f(np.array(sds)) == pytest.approx(split_f(np.array(sds)), abs=1e-10)
    diag = lc.lmer(SLEEP.format("diag"), "sleepstudy", reml=reml)
    split = lc.lmer("Reaction ~ Days + (Days || Subject)", "sleepstudy", reml=reml)
    assert diag.objective == pytest.approx(split.objective, abs=1e-8)
    np.testing.assert_allclose(diag.beta, split.beta, rtol=1e-7)
    np.testing.assert_allclose(diag.se, split.se, rtol=1e-5)
    assert list(diag.variance_parameters().index) == list(split.variance_parameters().index)
    np.testing.assert_allclose(diag.variance_parameters(), split.variance_parameters(), rtol=1e-5)


@pytest.mark.parametrize("hom", [False, True])
def test_cs_with_zero_correlation_is_diag(repeated, hom):
    cs = make_devfun(ModelSpec.from_formula(f"y ~ time + cs(0 + occ | subj, hom={hom})", repeated))
    diag = make_devfun(ModelSpec.from_formula(f"y ~ time + diag(0 + occ | subj, hom={hom})", repeated))
    rng = np.random.default_rng(1)
    for _ in range(3):
        sds = rng.uniform(0.3, 2.0, 1 if hom else 6)
        assert cs(np.append(sds, 0.0)) == pytest.approx(diag(sds), abs=1e-10)


def test_sigma_by_with_unit_ratios_is_the_homoscedastic_model():
    by = make_devfun(ModelSpec.from_formula("distance ~ age + (age | Subject)", "Orthodont", sigma_by="Sex"))
    plain = make_devfun(ModelSpec.from_formula("distance ~ age + (age | Subject)", "Orthodont"))
    for theta in ([1.0, 0.0, 1.0], [0.8, -0.05, 0.1], [2.0, 0.3, 0.0]):
        assert by(np.append(theta, 0.0)) == pytest.approx(plain(np.array(theta)), abs=1e-10)   # log ratio 0


@pytest.mark.parametrize("structure, phi", [
    (Structure("cs"), [0.5, 1.2, 0.8, 0.3]), (Structure("cs", True), [1.1, -0.2]),
    (Structure("ar1"), [0.9, 0.6]), (Structure("ar1"), [0.9, -0.7]), (Structure("diag"), [0.4, 0.0, 2.0])])
def test_relative_factor_is_the_cholesky_factor_of_the_structure(structure, phi):
    p = 3
    T = relative_factor(structure, phi, p)
    k = structure.n_sds(p)
    sd, cor = structure.implied_sd_cor(phi, p)
    np.testing.assert_allclose(T @ T.T, np.outer(sd, sd) * cor, atol=1e-14)
    assert np.allclose(T, np.tril(T)) and np.all(np.diag(T) >= 0)
    assert sd.size == p and k == (1 if structure.common_sd(p) else p)


@pytest.mark.parametrize("formula, sigma_by", [
    ("y ~ time + cs(0 + occ | subj)", None), ("y ~ time + cs(0 + occ | subj, hom=True)", None),
    ("y ~ time + ar1(0 + occ | subj)", None), ("y ~ time + diag(0 + occ | subj)", "grp"),
    ("y ~ time + (1 | subj)", "grp"), ("y ~ time + (time | subj) + cs(0 + occ | grp)", "grp"),
    ("Penicillin: diameter ~ 1 + (1 | plate) + (1 | sample)", "sample")])
@pytest.mark.parametrize("reml", [True, False])
def test_gradient_in_phi_matches_differences(repeated, formula, sigma_by, reml):
    """Analytic in every direction: theta's chain rule through T(phi), and log delta's leverages and residuals."""
    data = repeated
    if ":" in formula:
        name, formula = formula.split(": ")
        data = lc.load_dataset(name)
    devfun = make_devfun(ModelSpec.from_formula(formula, data, sigma_by=sigma_by), reml=reml)
    rng = np.random.default_rng(7)
    phi = devfun.start + rng.uniform(-0.3, 0.3, devfun.start.size)
    phi = np.clip(phi, devfun.lower + 0.05, devfun.upper - 0.05)
    value, grad = devfun.with_gradient(phi)
    assert value == pytest.approx(devfun(phi), abs=1e-10)
    h = 1e-5
    numeric = [(devfun(phi + h * e) - devfun(phi - h * e)) / (2 * h) for e in np.eye(phi.size)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5)


def test_sigma_by_fit_has_residual_sds_by_level_and_the_reference_level_is_the_first():
    fit = lc.lmer("distance ~ age + (1 | Subject)", "Orthodont", sigma_by="Sex")
    assert list(fit.residual_sd.index) == ["Male", "Female"]
    assert fit.residual_sd["Male"] == fit.sigma
    ratio = fit.variance_parameters()["sigma_ratio_Female|Sex"]
    assert fit.residual_sd["Female"] == pytest.approx(fit.sigma * ratio, rel=1e-14)
    rows = fit.varcorr[fit.varcorr.grp == "Residual"]
    np.testing.assert_allclose(rows.sdcor, fit.residual_sd.to_numpy())
    assert fit.npar == 2 + 1 + 1 + 1      # beta, theta, sigma, one ratio (nlme's df = 5)


def test_varcorr_lists_every_implied_correlation(repeated):
    fit = lc.lmer("y ~ time + ar1(0 + occ | subj)", repeated)
    rho = fit.variance_parameters()["rho|subj"]
    cors = fit.varcorr.dropna(subset=["var2"])
    assert len(cors) == 15
    lags = [int(b[-1]) - int(a[-1]) for a, b in zip(cors.var1, cors.var2)]
    np.testing.assert_allclose(cors.sdcor, rho ** np.array(lags, float), rtol=1e-10)


@pytest.mark.parametrize("formula, sigma_by, error, words", [
    ("Reaction ~ Days + cs(1 | Subject)", None, FormulaError, ["cs(1 | Subject)", "one column"]),
    ("Reaction ~ Days + ar1(1 | Subject)", None, FormulaError, ["ar1(1 | Subject)", "one column"]),
    ("Reaction ~ Days + ar1(0 + Days + I(Days**2) | Subject)", None, FormulaError, ["ar1(", "categorical"]),
    ("Reaction ~ Days + ar1(Days | Subject)", None, FormulaError, ["ar1(Days | Subject)", "0 +"]),
    ("Reaction ~ Days + ar1(Days | Subject, hom=True)", None, FormulaError, ["hom=", "diag() and cs()"]),
    ("Reaction ~ Days + cs(Days | Subject, sigma=2)", None, FormulaError, ["hom=True", "sigma=2"]),
    ("Reaction ~ Days + diag(Days || Subject)", None, FormulaError, ["one '|'"]),
    ("Reaction ~ Days + (Days | Subject)", "Days", DataError, ["sigma_by", "'Days'", "numeric", "category"]),
    ("Reaction ~ Days + (Days | Subject)", "Nope", DataError, ["sigma_by", "'Nope'"]),
    ("Reaction ~ Days + (Days | Subject)", 3, DataError, ["sigma_by", "int"]),
])
def test_bad_input_names_the_term_or_argument(formula, sigma_by, error, words):
    with pytest.raises(error) as info:
        lc.lmer(formula, "sleepstudy", sigma_by=sigma_by)
    for word in words:
        assert word in str(info.value)


def test_sigma_by_level_with_one_row_is_refused():
    data = lc.load_dataset("sleepstudy")
    data["batch"] = pd.Categorical(np.where(np.arange(len(data)) == 0, "first", "rest"))
    with pytest.raises(DataError, match="level 'first' holds 1 row"):
        lc.lmer("Reaction ~ Days + (Days | Subject)", data, sigma_by="batch")
    data["one"] = "a"
    with pytest.raises(DataError, match="one level"):
        lc.lmer("Reaction ~ Days + (Days | Subject)", data, sigma_by="one")


def test_cli_and_report_inputs_take_sigma_by():
    import subprocess
    import sys

    from lmmcompare.spec.inputs import describe_inputs

    out = subprocess.run([sys.executable, "-m", "lmmcompare.cli", "fit", "distance ~ age + cs(age | Subject)",
                          "--data", "Orthodont", "--sigma-by", "Sex"], capture_output=True, text=True)
    expected = lc.lmer("distance ~ age + cs(age | Subject)", "Orthodont", sigma_by="Sex")
    assert out.returncode == 0, out.stderr
    assert f"REML criterion at convergence: {expected.objective:.1f}" in out.stdout
    assert describe_inputs(expected.spec)[-1] == ("residual sd by level of Sex (2 levels): sigma is level Male's, "
                                                  "sigma_ratio_<level> the others' over it")


def test_save_load_and_update_keep_the_structure_and_the_ratios(tmp_path, repeated):
    fit = lc.lmer("y ~ time + ar1(0 + occ | subj)", repeated, sigma_by="grp")
    fit.save(tmp_path / "fit.lmm")
    back = lc.load(tmp_path / "fit.lmm")
    assert back.objective == fit.objective
    np.testing.assert_array_equal(back.phi, fit.phi)
    pd.testing.assert_series_equal(back.residual_sd, fit.residual_sd)
    pd.testing.assert_series_equal(back.variance_parameters(), fit.variance_parameters())
    ml = fit.update(reml=False)
    direct = lc.lmer("y ~ time + ar1(0 + occ | subj)", repeated, sigma_by="grp", reml=False)
    assert ml.objective == pytest.approx(direct.objective, abs=1e-8)
    assert fit.update(sigma_by=None).spec.sigma_by is None


def test_r2_residual_variance_with_sigma_by_is_the_mean_row_variance():
    fit = lc.lmer("distance ~ age + (1 | Subject)", "Orthodont", sigma_by="Sex")
    rows = fit.spec.frame["Sex"].map(fit.residual_sd.to_dict()).to_numpy(float)
    r2 = lc.r2(fit)
    assert r2.variances.var_residual == pytest.approx(np.mean(rows**2), rel=1e-12)


def test_two_column_cs_finds_the_unstructured_optimum_from_a_zero_sd():
    """cs(age | Subject) on Orthodont is us's model; L-BFGS-B first stops with the intercept's sd at 0
    (445.086), where the correlation's sign is not identified, and must step back in with it flipped."""
    cs = lc.lmer("distance ~ age + cs(age | Subject)", "Orthodont")
    us = lc.lmer("distance ~ age + (age | Subject)", "Orthodont")
    assert cs.objective == pytest.approx(us.objective, abs=1e-6)
    np.testing.assert_allclose(cs.variance_parameters().to_numpy()[[0, 1, 2, 3]],
                               us.variance_parameters().to_numpy()[[0, 2, 1, 3]], rtol=1e-4)
