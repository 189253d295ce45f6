"""Prior weights, offsets, contrasts, subsets and missing values (issue 19), frequentist engine.

Against lme4 1.1-31 and lmerTest (tests/data/inputs_reference.R/.json): at lme4's
theta every quantity derived from the factor equals R's to rounding, and our own
optimum matches R's criterion (1e-6), fixed effects (1e-5), SEs and sds (1e-4) and
Satterthwaite df (1e-4).  Then the properties that hold whatever R says: constant
weights, theta = 0 as weighted least squares, an offset as a shifted response, a
contrast matrix as its named coding, and weighted Kenward-Roger against the dense
``Z G Z' + sigma^2 W^{-1}`` formulas (pbkrtest ignores prior weights).
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import lmmcompare as lc
from lmmcompare.errors import ArgumentError, DataError, DroppedRowsWarning
from lmmcompare.freq import fit_at_theta, make_devfun
from lmmcompare.freq.inference import kenward_roger

from inputs_cases import FITS, INPUTS, SUM3, case_arguments, input_values
from test_kenward_roger import dense_kenward_roger


def quiet_lmer(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lc.lmer(**kwargs)


@pytest.fixture(scope="module")
def fits():
    return {cid: quiet_lmer(**case_arguments(cid)) for cid in FITS}


def test_weights_and_offsets_are_rebuilt_from_the_data_as_r_built_them():
    for key, entry in INPUTS["inputs"].items():
        data = {"dye": "Dyestuff", "dye2": "Dyestuff2", "sleep": "sleepstudy", "orth": "Orthodont"}[key.split("_")[0]]
        np.testing.assert_allclose(input_values(data, entry["column"]), entry["values"], rtol=1e-14)


def _varcorr_sds(fit):
    vc = fit.varcorr
    return vc["sdcor"].to_numpy()


@pytest.mark.parametrize("cid", list(FITS))
def test_at_lme4_theta_every_quantity_equals_r(cid, fits):
    case, fit = FITS[cid], fits[cid]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # Dyestuff2 is singular, as in R
        at = fit_at_theta(make_devfun(fit.spec, case["reml"]), case["theta"])
    assert at.objective == pytest.approx(case["criterion"], rel=1e-12)
    assert at.loglik == pytest.approx(case["logLik"], rel=1e-12)
    assert list(at.fixef.index) == case["fixef_names"]
    np.testing.assert_allclose(at.fixef.values, case["fixef"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(at.se.values, case["se"], rtol=1e-10)
    assert at.sigma == pytest.approx(case["sigma"], rel=1e-12)
    ref_sd = np.array([np.nan if v is None else v for v in case["varcorr"]["sdcor"]], float)
    np.testing.assert_allclose(_varcorr_sds(at), ref_sd, rtol=1e-9, atol=1e-12)
    assert at.nobs == case["nobs"]
    df = at.coef_table("satterthwaite")["df"].to_numpy()
    np.testing.assert_allclose(df, case["satterthwaite"]["df"], rtol=1e-6)
    kr = case.get("kenward_roger", {})
    if "df" in kr:   # unweighted REML fits only: pbkrtest ignores prior weights
        table = at.coef_table("kenward-roger")
        np.testing.assert_allclose(table["df"], kr["df"], rtol=1e-8)
        np.testing.assert_allclose(table["se"], kr["se"], rtol=1e-8)


@pytest.mark.parametrize("cid", list(FITS))
def test_our_optimum_matches_lme4(cid, fits):
    case, fit = FITS[cid], fits[cid]
    assert fit.objective <= case["criterion"] + 1e-6 * abs(case["criterion"])
    assert fit.objective == pytest.approx(case["criterion"], rel=1e-6)
    np.testing.assert_allclose(fit.fixef.values, case["fixef"], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(fit.se.values, case["se"], rtol=1e-4)
    ref_sd = np.array([np.nan if v is None else v for v in case["varcorr"]["sdcor"]], float)
    np.testing.assert_allclose(_varcorr_sds(fit), ref_sd, rtol=1e-4, atol=1e-3 * (ref_sd[~np.isnan(ref_sd)].max()))
    np.testing.assert_allclose(fit.coef_table("satterthwaite")["df"], case["satterthwaite"]["df"], rtol=1e-4)


@pytest.mark.parametrize("c", [4.0, 0.3])
@pytest.mark.parametrize("reml", [True, False])
def test_constant_weights_change_only_sigma(c, reml):
    """Weights all c: residual variance sigma^2 / c, so sigma scales by sqrt(c); the criterion (with its
    -sum log w term, as lme4's) and everything else stay (lme4: 25.59 -> 51.18 for c = 4)."""
    plain = lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy", reml=reml)
    weighted = lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy", reml=reml, weights=np.full(180, c))
    assert weighted.objective == pytest.approx(plain.objective, rel=1e-9)
    assert weighted.sigma == pytest.approx(plain.sigma * np.sqrt(c), rel=1e-5)
    np.testing.assert_allclose(weighted.fixef, plain.fixef, rtol=1e-6)
    np.testing.assert_allclose(weighted.se, plain.se, rtol=1e-5)
    sds = lambda f: f.varcorr.query("grp == 'Subject' and var2 != var2")["sdcor"].to_numpy()   # noqa: E731
    np.testing.assert_allclose(sds(weighted), sds(plain), rtol=1e-4)
    if reml and c == 4.0:
        ref = FITS["sleepstudy_w4_reml"]
        assert weighted.sigma == pytest.approx(ref["sigma"], rel=1e-5)
        # R's two optimisations stop 4e-11 apart
        assert ref["criterion"] == pytest.approx(FITS["sleepstudy_reml"]["criterion"], rel=1e-10)


def test_at_theta_zero_the_weighted_fit_is_weighted_least_squares():
    d = lc.load_dataset("Dyestuff2")
    w = input_values("Dyestuff2", "w")
    fit = quiet_lmer(formula="Yield ~ 1 + (1 | Batch)", data=d, weights=w)
    assert fit.theta[0] == 0.0
    y, X = d["Yield"].to_numpy(), np.ones((len(d), 1))
    XtW = X.T * w
    beta = np.linalg.solve(XtW @ X, XtW @ y)
    r = y - X @ beta
    sigma = np.sqrt(np.sum(w * r**2) / (len(d) - 1))
    se = sigma * np.sqrt(np.diag(np.linalg.inv(XtW @ X)))
    np.testing.assert_allclose(fit.fixef, beta, rtol=1e-12)
    assert fit.sigma == pytest.approx(sigma, rel=1e-10)
    np.testing.assert_allclose(fit.se, se, rtol=1e-10)
    wls = INPUTS["wls"]
    np.testing.assert_allclose([beta[0], sigma, se[0]], [wls["coef"][0], wls["sigma"], wls["se"][0]], rtol=1e-10)


def test_an_offset_is_the_same_fit_as_subtracting_it_from_the_response():
    d = lc.load_dataset("sleepstudy")
    off = np.sin(d["Days"].to_numpy()) * 7.0
    with_offset = lc.lmer("Reaction ~ Days + (Days | Subject)", d, offset=off)
    shifted = lc.lmer("y ~ Days + (Days | Subject)", d.assign(y=d["Reaction"] - off))
    np.testing.assert_allclose(with_offset.theta, shifted.theta, rtol=1e-12)
    np.testing.assert_allclose(with_offset.fixef, shifted.fixef, rtol=1e-12)
    assert with_offset.objective == pytest.approx(shifted.objective, rel=1e-14)
    np.testing.assert_allclose(with_offset.fitted(), shifted.fitted() + off, rtol=1e-12)
    np.testing.assert_allclose(with_offset.residuals(), shifted.residuals(), atol=1e-9)
    np.testing.assert_allclose(with_offset.predict(re=False), off + with_offset.spec.X @ with_offset.beta)


def test_formula_offsets_are_evaluated_on_new_data_and_an_argument_offset_must_be_given():
    d = lc.load_dataset("sleepstudy")
    fit = lc.lmer("Reaction ~ Days + offset(2 * Days) + (Days | Subject)", d)
    new = d.iloc[:5]
    np.testing.assert_allclose(fit.predict(new), fit.fitted()[:5], rtol=1e-12)
    by_argument = lc.lmer("Reaction ~ Days + (Days | Subject)", d, offset=2.0 * d["Days"].to_numpy())
    with pytest.raises(ArgumentError, match="offset"):
        by_argument.predict(new)
    np.testing.assert_allclose(by_argument.predict(new, offset=2.0 * new["Days"].to_numpy()),
                               fit.fitted()[:5], rtol=1e-10)


def test_a_contrast_matrix_equal_to_contr_sum_is_the_sum_coding(fits):
    named, matrix = fits["cake_sum_reml"], fits["cake_summatrix_reml"]
    assert list(named.fixef.index) == list(matrix.fixef.index) == FITS["cake_sum_reml"]["fixef_names"]
    np.testing.assert_allclose(named.fixef, matrix.fixef, rtol=1e-12)
    np.testing.assert_allclose(named.vcov, matrix.vcov, rtol=1e-12)


def test_type3_anova_is_invariant_to_the_coding_as_lmertest(fits):
    for cid, key in (("cake_sum_reml", "cake_sum_reml"), ("cake_default_reml", "cake_default_reml")):
        table = lc.anova(fits[cid])
        ref = INPUTS["anova_type3"][key]["satterthwaite"]
        np.testing.assert_allclose(table.loc[ref["terms"], "F value"], ref["F"], rtol=1e-4)
        np.testing.assert_allclose(table.loc[ref["terms"], "DenDF"], ref["DenDF"], rtol=1e-4)


def test_the_package_default_coding_is_a_setting():
    old = lc.set_default_contrasts("sum")
    try:
        by_default = lc.lmer("angle ~ recipe * temp + (1 | recipe:replicate)", "cake")
    finally:
        lc.set_default_contrasts(**old)
    assert list(by_default.fixef.index) == FITS["cake_sum_reml"]["fixef_names"]
    np.testing.assert_allclose(by_default.fixef, FITS["cake_sum_reml"]["fixef"], rtol=1e-5)
    ordered = lc.load_dataset("cake").assign(
        temperature=lambda d: d["temperature"].cat.as_ordered())
    poly = lc.lmer("angle ~ recipe * temperature + (1 | recipe:replicate)", ordered)
    assert list(poly.fixef.index) == FITS["cake_poly_reml"]["fixef_names"]    # R: ordered factors are contr.poly


@pytest.mark.parametrize("formula,data,column", [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "w"),
    ("Yield ~ 1 + (1 | Batch)", "Dyestuff", "w"),
])
def test_weighted_kenward_roger_equals_the_dense_formulas_with_w_inverse(formula, data, column):
    w = input_values(data, column)
    spec = lc.ModelSpec.from_formula(formula, data, weights=w)
    theta, sigma = (np.array([0.9, -0.1, 0.25]), 24.0) if spec.p > 1 else (np.array([0.7]), 40.0)
    Phi, PhiA, P, W = dense_kenward_roger(spec, theta, sigma, weights=w)
    kr = kenward_roger(spec, theta, sigma)
    for ours, brute in [(kr.vcov, Phi), (kr.vcov_adjusted, PhiA), (kr.W, W)]:
        assert np.max(np.abs(ours - brute)) <= 1e-10 * np.max(np.abs(brute))


def test_zero_weights_drop_their_rows_with_a_warning_and_fit_the_rest(fits):
    d = lc.load_dataset("sleepstudy")
    w0 = input_values("sleepstudy", "w0")
    with pytest.warns(DroppedRowsWarning, match="72 of 180 rows with weight 0"):
        fit = lc.lmer("Reaction ~ Days + (Days | Subject)", d, weights=w0)
    ref = FITS["sleepstudy_w0_positive_reml"]
    assert fit.nobs == ref["nobs"] == 108
    assert fit.objective == pytest.approx(ref["criterion"], rel=1e-6)
    np.testing.assert_allclose(fit.fixef, fits["sleepstudy_w0_positive_reml"].fixef, rtol=1e-8)


def test_simulated_noise_has_variance_sigma_squared_over_w():
    d = lc.load_dataset("Dyestuff")
    w = input_values("Dyestuff", "w")
    fit = quiet_lmer(formula="Yield ~ 1 + (1 | Batch)", data=d, weights=w)
    sims = fit.simulate(nsim=20000, seed=3).to_numpy()
    first, second = np.flatnonzero(d["Batch"] == d["Batch"].iloc[0])[:2]    # same batch: b cancels
    diff = sims[first] - sims[second]
    expected = fit.sigma**2 * (1 / w[first] + 1 / w[second])
    assert diff.var() == pytest.approx(expected, rel=4 * np.sqrt(2 / 20000))


def test_subset_as_mask_or_query_and_na_action():
    d = lc.load_dataset("sleepstudy")
    by_query = lc.lmer("Reaction ~ Days + (Days | Subject)", d, subset="Days >= 2")
    by_mask = lc.lmer("Reaction ~ Days + (Days | Subject)", d, subset=(d["Days"] >= 2).to_numpy())
    direct = lc.lmer("Reaction ~ Days + (Days | Subject)", d[d["Days"] >= 2])
    assert by_query.nobs == by_mask.nobs == 144
    np.testing.assert_allclose([by_query.objective, by_mask.objective], direct.objective, rtol=1e-14)
    holes = d.assign(Reaction=d["Reaction"].where(d.index % 17 != 0))
    with pytest.warns(DroppedRowsWarning, match="Reaction: 11"):
        omitted = lc.lmer("Reaction ~ Days + (Days | Subject)", holes)
    assert omitted.nobs == 169
    with pytest.raises(DataError, match=r"na_action='fail'.*Reaction: 11"):
        lc.lmer("Reaction ~ Days + (Days | Subject)", holes, na_action="fail")
    weights = np.where(d.index % 17 == 0, np.nan, 1.0)   # a missing weight drops its row, as R's na.omit
    with pytest.warns(DroppedRowsWarning, match=r"\(weights\): 11"):
        assert lc.lmer("Reaction ~ Days + (Days | Subject)", d, weights=weights).nobs == 169


@pytest.mark.parametrize("kwargs,error,fragments", [
    ({"weights": np.ones(10)}, DataError, ["weights has 10 values", "data has 180 rows"]),
    ({"weights": "nope"}, DataError, ["weights='nope' names no column"]),
    ({"weights": -np.ones(180)}, DataError, ["must be finite and non-negative", "180 are not"]),
    ({"weights": np.full(180, np.inf)}, DataError, ["must be finite and non-negative"]),
    ({"offset": np.array(["a"] * 180)}, DataError, ["offset must be numeric"]),
    ({"contrasts": {"Days": "sum"}}, ArgumentError, ["'Days', which is a numeric column, not a factor"]),
    ({"contrasts": {"Subject": "sum"}}, ArgumentError, ["not a factor of the fixed part"]),
    ({"contrasts": {"f": "sideways"}}, ArgumentError, ["'sideways' is not a coding", "treatment, sum, helmert, poly"]),
    ({"contrasts": {"f": np.ones((2, 2))}}, ArgumentError, ["shape (2, 2)", "3 levels", "3 rows"]),
    ({"contrasts": {"f": np.array([[1.0], [1.0], [1.0]])}}, ArgumentError, ["linearly independent"]),
    ({"contrasts": ["sum"]}, ArgumentError, ["contrasts must be a dict"]),
    ({"subset": "Days > 99"}, DataError, ["leaves no rows"]),
    ({"subset": np.ones(3, bool)}, ArgumentError, ["boolean mask of 180 values"]),
    ({"subset": "Days >"}, ArgumentError, ["subset='Days >' is not a query"]),
    ({"na_action": "exclude"}, ArgumentError, ["na_action must be one of 'omit', 'fail'"]),
])
def test_bad_inputs_are_typed_errors_that_name_the_argument(kwargs, error, fragments):
    d = lc.load_dataset("sleepstudy").assign(f=lambda x: pd.Categorical(np.arange(180) % 3))
    with pytest.raises(error) as info:
        lc.lmer("Reaction ~ Days + f + (Days | Subject)", d, **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_a_spec_with_inputs_is_refused_beside_a_spec():
    spec = lc.ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    with pytest.raises(ArgumentError, match="weights is part of the spec"):
        lc.lmer(spec, weights=np.ones(180))


@pytest.mark.parametrize("new,expected", [
    (". ~ . - Days", "Reaction ~ (Days | Subject)"),
    (". ~ . + I(Days^2)", "Reaction ~ Days + (Days | Subject) + I(Days^2)"),
    ("log(.) ~ .", "log(Reaction) ~ Days + (Days | Subject)"),
    (". ~ . - (Days | Subject) + (1 | Subject)", "Reaction ~ Days + (1 | Subject)"),
    (". ~ . - 1", "Reaction ~ Days + (Days | Subject) - 1"),
    (". ~ . + Days", "Reaction ~ Days + (Days | Subject)"),
])
def test_update_formula_is_r_update_formula(new, expected):
    from lmmcompare.spec.update import update_formula

    assert update_formula("Reaction ~ Days + (Days | Subject)", new) == expected


def test_update_refits_as_r_update():
    fit = lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    for key, updated in (("minus_days", fit.update(". ~ . - Days")), ("ml", fit.update(reml=False))):
        ref = INPUTS["update"][key]
        assert updated.spec.formula == ref["formula"]
        assert updated.reml == bool(ref["reml"])
        assert updated.objective == pytest.approx(ref["criterion"], rel=1e-6)
        np.testing.assert_allclose(updated.fixef, ref["fixef"], rtol=1e-5)
    weighted = fit.update(weights=input_values("sleepstudy", "w"))
    assert weighted.objective == pytest.approx(FITS["sleepstudy_w_reml"]["criterion"], rel=1e-6)
    np.testing.assert_array_equal(weighted.update(". ~ . - Days").spec.weights, weighted.spec.weights)   # carried over
    with pytest.raises(ArgumentError, match="weights was an array for its own rows"):
        weighted.update(data=lc.load_dataset("sleepstudy"))
    with pytest.raises(ArgumentError, match="unknown keyword argument 'draws' for update"):
        fit.update(draws=10)


def test_bayesfit_update_keeps_the_fits_settings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = lc.bayes("Reaction ~ Days + (Days | Subject)", "sleepstudy", draws=60, tune=60, chains=2, seed=3,
                        progressbar=False, priors={"sigma": ("half_normal", 40)})
        smaller = post.update(". ~ . - Days", draws=30, progressbar=False, priors=None)
    assert smaller.spec.formula == "Reaction ~ (Days | Subject)"
    assert dict(smaller.idata.posterior.sizes)["draw"] == 30 and smaller.seed == 3
    assert smaller.idata.sample_stats.attrs["tuning_steps"] == 60
    assert "Days" not in smaller.idata.posterior and smaller.priors.user == ()
    with pytest.raises(ArgumentError, match="set by hand"):
        post.update(". ~ . - Days")


def test_cli_takes_weights_offset_and_subset_columns(tmp_path):
    import subprocess
    import sys

    d = lc.load_dataset("sleepstudy")
    d["w"], d["off"] = input_values("sleepstudy", "w"), input_values("sleepstudy", "off")
    path = tmp_path / "sleep.csv"
    d.to_csv(path, index=False, float_format="%.17g")
    out = subprocess.run([sys.executable, "-m", "lmmcompare.cli", "fit", "Reaction ~ Days + (Days | Subject)",
                          "--data", str(path), "--weights", "w", "--offset", "off", "--subset", "Days >= 1"],
                         capture_output=True, text=True)
    expected = lc.lmer("Reaction ~ Days + (Days | Subject)", d, weights="w", offset="off", subset="Days >= 1")
    assert out.returncode == 0, out.stderr
    assert f"REML criterion at convergence: {expected.objective:.1f}" in out.stdout


def test_the_report_states_the_model_inputs():
    from lmmcompare.spec.inputs import describe_inputs

    cake = lc.load_dataset("cake")
    spec = lc.ModelSpec.from_formula("angle ~ recipe * temp + offset(0.1 * temp) + (1 | recipe:replicate)", cake,
                                     weights=np.linspace(1, 3, 270), contrasts={"recipe": "sum"})
    assert describe_inputs(spec) == ["prior weights (residual variance sigma^2 / w): from 1 to 3",
                                     "offset: offset(0.1 * temp)", "contrasts: recipe: sum"]
    assert describe_inputs(lc.ModelSpec.from_formula("angle ~ recipe + (1 | replicate)", cake)) == []


def test_profile_intervals_with_constant_weights_scale_only_sigma():
    plain = lc.lmer("Yield ~ 1 + (1 | Batch)", "Dyestuff")
    weighted = lc.lmer("Yield ~ 1 + (1 | Batch)", "Dyestuff", weights=np.full(30, 4.0))
    a, b = plain.confint(method="profile"), weighted.confint(method="profile")
    np.testing.assert_allclose(b.loc["sigma"], 2.0 * a.loc["sigma"], rtol=1e-4)
    np.testing.assert_allclose(b.drop("sigma"), a.drop("sigma"), rtol=1e-4)
