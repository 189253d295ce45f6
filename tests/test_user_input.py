"""Issue 16: the first release tried as a user would.

Crashes that were raw tracebacks, and messages that did not name the culprit or say
what to do.  Each case asserts the error type and the words of the message (the
column, term or argument, and the advice), or the numbers that come back: lme4
1.1-31's from ``tests/data/issue16_reference.R`` (output ``issue16_reference.json``,
data ``issue16_data.csv`` and ``issue16_small.csv``).
"""
import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import lmmcompare as lc
from lmmcompare.bayesian import Prior, default_priors
from lmmcompare.errors import ArgumentError, DataError, FormulaError, LmmWarning, SamplingWarning
from conftest import DATA, unrounded_summary

REFERENCE = json.loads((DATA / "issue16_reference.json").read_text())
FRAME = pd.read_csv(DATA / "issue16_data.csv")
SMALL = pd.read_csv(DATA / "issue16_small.csv")


def _lmer(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LmmWarning)
        return lc.lmer(formula, data, **kw)


@pytest.fixture(scope="module")
def fit():
    return _lmer("y ~ C(f, contr.sum) * x + (1 | g)", FRAME)


# ---- lme4's numbers for what used to fail ---------------------------------------------------
@pytest.mark.parametrize("case", REFERENCE["fits"], ids=[c["formula"][0] for c in REFERENCE["fits"]])
def test_formulas_that_failed_fit_as_lme4_does(case):
    """poly(x, 2) and scale(x) (x was left out of the model frame), contr.sum / contr.helmert
    (formulaic was handed `contr.sum` as a column), y ~ 0 + (x | g), and a crossed model with
    q = n (refused by a total-q check that lme4 does not make: it checks each term)."""
    formula = case["formula"][0]
    fit = _lmer(formula, SMALL if "(1 | a)" in formula else FRAME)
    assert list(fit.fixef.index) == list(case["fixef_names"])
    assert abs(fit.objective - case["reml"][0]) < 1e-6
    np.testing.assert_allclose(fit.theta, case["theta"], atol=2e-5)
    np.testing.assert_allclose(fit.beta, np.asarray(case["fixef"], dtype=float), atol=1e-6)
    assert abs(fit.sigma - case["sigma"][0]) < 1e-5


def test_observations_not_more_than_random_effects_names_the_term_as_lme4():
    refused = REFERENCE["refused"]
    with pytest.raises(DataError) as info:
        lc.lmer(refused["formula"][0], SMALL)
    assert str(info.value).startswith(refused["message"][0])   # lme4's words, then what to do
    assert "simplify the term" in str(info.value)


def test_model_without_fixed_effects_has_no_fixed_effects_section():
    text = _lmer("y ~ 0 + (x | g)", FRAME).summary()
    assert "Fixed effects" not in text and "Correlation of Fixed Effects" not in text
    assert "REML criterion at convergence: 206.9" in text   # lme4: 206.9018 (issue16_reference.json)


# ---- anova ------------------------------------------------------------------------------------
@pytest.mark.parametrize("second, fragments", [
    ("x", ["argument 2 of anova is the string 'x', not an LmerFit", "type= one of III, II, I",
           "ddf= one of satterthwaite"]),
    ("II", ["argument 2 of anova is the string 'II'", "anova(fit, type='II')"]),
    ("Kenward-Roger", ["anova(fit, ddf='kenward-roger')"]),
    (3, ["argument 2 of anova is a int, not an LmerFit"]),
])
def test_anova_with_a_non_fit_positional_is_a_typed_error(fit, second, fragments):
    with pytest.raises(ArgumentError) as info:   # was TypeError: 'str' object is not callable
        lc.anova(fit, second)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_anova_type_by_name_still_works(fit):
    table = lc.anova(fit, type="II")
    by_number = lc.anova(fit, type=np.int64(2))
    pd.testing.assert_frame_equal(table, by_number)
    with pytest.raises(ArgumentError, match=r"type must be one of III, II, I \(or 3, 2, 1\), got 5$"):
        lc.anova(fit, type=np.int64(5))   # printed np.int64(5) before


# ---- predict on zero rows -----------------------------------------------------------------------
@pytest.mark.parametrize("formula", ["y ~ x + (1 | g/f)", "y ~ x + (1 | g:f)", "y ~ C(f) * x + (1 | g) + (x | f)"])
def test_predict_on_zero_rows_is_empty_and_on_rows_is_the_fitted_values(formula):
    fit = _lmer(formula, FRAME)
    for kw in ({}, {"re": False}, {"allow_new_levels": True}):
        out = fit.predict(FRAME.iloc[:0], **kw)   # an IndexError for two or more grouping columns
        assert isinstance(out, np.ndarray) and out.shape == (0,) and out.dtype == float
    np.testing.assert_allclose(fit.predict(FRAME.iloc[:7]), fit.fitted()[:7], rtol=1e-12)
    np.testing.assert_allclose(fit.predict(FRAME.iloc[:7], re=False), (fit.spec.X @ fit.beta)[:7], rtol=1e-12)


# ---- priors -------------------------------------------------------------------------------------
SPEC = lc.ModelSpec.from_formula("y ~ x + (x | g)", FRAME)


@pytest.mark.parametrize("priors, fragments", [
    ({"b": ("normal", 0, None)}, ["prior for 'b'", "sigma of prior normal(mu, sigma)", "> 0, got None"]),
    ({"b": ("normal", 0, -10)}, ["sigma of prior normal(mu, sigma) must be a finite number > 0, got -10"]),
    ({"b": ("normal", np.nan, 1)}, ["mu of prior normal(mu, sigma) must be a finite number, got nan"]),
    ({"sd": ("exponential", 0)}, ["prior for 'sd'", "lam of prior exponential(lam)", "got 0"]),
    ({"cor": ("lkj", -1)}, ["prior for 'cor'", "eta of prior lkj(eta) must be a finite number > 0, got -1"]),
    ({"b": ("student_t", 0, 0, 1)}, ["nu of prior student_t(nu, mu, sigma) must be a finite number > 0, got 0"]),
    ({"sigma": ("half_student_t", 0, 1)}, ["nu of prior half_student_t(nu, sigma)", "got 0"]),
    ({"sigma": ("half_normal", np.float64(-2.0))}, ["sigma of prior half_normal(sigma)", "got -2.0"]),
    ({"sigma": ("half_normal", 1, 2)}, ["prior half_normal(sigma) takes 1 parameter(s), got 2"]),
])
def test_bad_prior_parameters_are_refused_naming_the_parameter(priors, fragments):
    with pytest.raises(ArgumentError) as info:   # None was a TypeError; the others failed inside PyMC
        default_priors(SPEC, priors)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_prior_objects_are_checked_when_built_and_take_numpy_numbers():
    with pytest.raises(ArgumentError, match=r"sigma of prior normal\(mu, sigma\) must be a finite number > 0"):
        Prior("normal", (0.0, -10.0))
    with pytest.raises(ArgumentError, match=r"must be a tuple of 1 number\(s\), e.g. Prior\('half_normal', \(1.0,\)\)"):
        Prior("half_normal", 10)
    prior = Prior("normal", (np.float32(1.5), np.int64(3)))
    assert prior.params == (1.5, 3.0) and all(type(v) is float for v in prior.params)
    table = default_priors(SPEC, {"b": prior}).table()
    assert table.loc[table.parameter == "x", "prior"].item() == "normal(1.5, 3)"


def test_a_prior_set_of_another_model_names_what_does_not_match(monkeypatch):
    other = default_priors(lc.ModelSpec.from_formula("y ~ 1 + (1 | f)", FRAME))
    with pytest.raises(ArgumentError) as info:   # was KeyError inside the model build
        default_priors(SPEC, other)
    text = str(info.value)
    assert "PriorSet made for another model" in text
    assert "it lacks cor of (Intercept)+x|g, sd_(Intercept)|g, sd_x|g, x" in text
    assert "it has sd_(Intercept)|f, which this model does not" in text
    assert "default_priors(spec, ...)" in text
    own = default_priors(SPEC, {"sigma": ("half_normal", 3)})
    assert default_priors(SPEC, own) is own

    import lmmcompare.bayesian.fit as bayes_fit

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built before the priors were checked")

    monkeypatch.setattr(bayes_fit, "built_model", no_model)
    with pytest.raises(ArgumentError, match="PriorSet made for another model"):
        lc.bayes(SPEC, priors=other)


def test_numpy_target_accept_is_accepted(monkeypatch):
    import lmmcompare.bayesian.fit as bayes_fit

    class Reached(Exception):
        pass

    def reached(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(bayes_fit, "built_model", reached)
    with pytest.raises(Reached):   # the arguments passed their checks
        lc.bayes(SPEC, target_accept=np.float32(0.9))
    with pytest.raises(ArgumentError, match=r"target_accept must be a finite number > 0.0 and < 1.0, got 1.5$"):
        lc.bayes(SPEC, target_accept=np.float64(1.5))


# ---- formula messages ---------------------------------------------------------------------------
@pytest.mark.parametrize("formula, fragments", [
    ("y ~ poly(z, 2) + (1 | g)", ["unknown column 'z' in fixed part", "(columns: y, x, f, g)"]),
    ("y ~ poly(xx, 2) + (1 | g)", ["unknown column 'xx'", "did you mean 'x'?"]),
    ("y ~ scale(xx) + (1 | g)", ["unknown column 'xx'", "did you mean 'x'?"]),
    ("y ~ center(xx) + (1 | g)", ["unknown column 'xx'", "did you mean 'x'?"]),
    ("y ~ factor(x) + (1 | g)", ["factor(x) in the fixed part", "data['x'] = data['x'].astype('category')",
                                 "or write C(x)"]),
    ("y ~ as.factor(x) + (1 | g)", ["as.factor(x)", "astype('category')"]),
    ("y ~ x + (1 + offset(x) | g)", ["offset(x) in random term", "a term of its own in the fixed part",
                                     "or the offset= argument"]),
    ("y ~ x:offset(x) + (1 | g)", ["offset(x) in the fixed part 'x:offset(x)'", "a term of its own"]),
    ("y ~ x + weights(x) + (1 | g)", ["weights(x)", "prior weights are the weights= argument",
                                      "lmer(formula, data, weights='x')"]),
    ("y ~ . + (1 | g)", ["'.' (all other columns) in the fixed part '.' is not supported",
                         "list the columns explicitly", "(columns: f, g, x, y)"]),
    ("y ~ x + (. | g)", ["'.' (all other columns) in random term"]),
    ("y ~ foo(x) + (1 | g)", ["unknown function 'foo' in the fixed part 'foo(x)'", "compute the column"]),
    ("y ~ x*** + (1 | g)", ["Operator `***` has insufficient arguments", "(at '***' in 'x***')"]),
    ("y ~ x ^ + (1 | g)", ["Operator `^`", "(at '^' in 'x ^')"]),
])
def test_formula_errors_name_the_term_and_say_what_to_do(formula, fragments):
    with pytest.raises(FormulaError) as info:
        lc.lmer(formula, FRAME)
    text = str(info.value)
    assert "\x1b" not in text and "\n" not in text and "formulaic" not in text
    for fragment in fragments:
        assert fragment in text


def test_formulaic_names_are_reported_in_the_users_spelling():
    from lmmcompare.spec.formula_checks import formula_error

    error = formula_error("cannot build the fixed part from", "C(f, contr.summ)",
                          NameError("name 'contr_summ' is not defined"), FRAME.columns)
    assert isinstance(error, FormulaError)
    assert "'contr.summ' is neither a column of the data nor a known function" in str(error)
    assert "contr_summ" not in str(error)


def test_a_trailing_comment_is_dropped_as_r_does():
    plain = _lmer("y ~ x + (1 | g)", FRAME)
    commented = _lmer("y ~ x + (1 | g)  # random intercepts, with x", FRAME)
    assert commented.spec.formula == "y ~ x + (1 | g)"
    assert commented.objective == plain.objective
    np.testing.assert_array_equal(commented.beta, plain.beta)


def test_constant_response_prints_a_plain_number():
    with pytest.raises(DataError, match=r"every value is 2\.5\)"):   # was np.float64(2.5)
        lc.lmer("y ~ x + (1 | g)", FRAME.assign(y=2.5))


@pytest.mark.parametrize("call, fragment", [
    (lambda: lc.lmer("y ~ x + (1 | g)", FRAME, REML=False), "unknown keyword argument 'REML' for lmer; "
                                                              "did you mean 'reml'?"),
    (lambda: lc.lmer("y ~ x + (1 | g)", FRAME, Reml=False), "'Reml' for lmer; did you mean 'reml'?"),
    (lambda: lc.lmer("y ~ x + (1 | g)", FRAME, ftoll=1e-9), "did you mean 'ftol'?"),
    (lambda: lc.fit_both("y ~ x + (1 | g)", FRAME, REML=False), "'REML' for fit_both; did you mean 'reml'?"),
    (lambda: lc.fit_both("y ~ x + (1 | g)", FRAME, Draws=10), "did you mean 'draws'?"),
])
def test_wrong_case_keywords_get_a_suggestion(call, fragment):
    with pytest.raises(ArgumentError) as info:
        call()
    assert fragment in str(info.value)


# ---- command line -------------------------------------------------------------------------------
def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "lmmcompare.cli", *args], capture_output=True, text=True)


def test_cli_checks_the_report_folder_and_flags_before_fitting(tmp_path):
    missing = tmp_path / "no" / "such" / "report.html"
    out = run_cli("compare", "Yield ~ 1 + (1 | Batch)", "--data", "Dyestuff", "--report", str(missing))
    assert out.returncode == 2 and "Traceback" not in out.stderr and "fitting" not in out.stderr
    assert f"the folder '{missing.parent}' does not exist; create it first" in out.stderr
    out = run_cli("compare", "Yield ~ 1 + (1 | Batch)", "--data", "Dyestuff", "--report", str(tmp_path))
    assert out.returncode == 2 and "is a folder; give a file name" in out.stderr
    out = run_cli("compare", "Yield ~ 1 + (1 | Batch)", "--data", "Dyestuff", "--draws", "0")
    assert out.returncode == 2 and "--draws must be an integer >= 1, got 0" in out.stderr
    assert "fitting" not in out.stderr


def test_cli_errors_have_no_colour_codes():
    out = run_cli("fit", "Reaction ~ Days*** + (1 | Subject)", "--data", "sleepstudy")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "\x1b" not in out.stderr and "(at '***' in 'Days***')" in out.stderr


@pytest.mark.parametrize("sep, decimal, note", [(";", ",", "separated by semicolons with decimal commas"),
                                                ("\t", ".", "separated by tabs")])
def test_cli_reads_semicolon_and_tab_separated_files(tmp_path, sep, decimal, note):
    from lmmcompare.cli import _load

    path = tmp_path / "data.csv"
    FRAME.to_csv(path, sep=sep, decimal=decimal, index=False, float_format="%.17g")
    frame, name = _load(str(path))
    pd.testing.assert_frame_equal(frame, FRAME)
    out = run_cli("fit", "y ~ x + (1 | g)", "--data", str(path))
    assert out.returncode == 0 and note in out.stderr
    assert f"REML criterion at convergence: {_lmer('y ~ x + (1 | g)', FRAME).objective:.1f}" in out.stdout


# ---- the Bayesian engine without fixed effects --------------------------------------------------
@pytest.fixture(scope="module")
def no_fixed():
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        for form in ("auto", "marginal"):   # auto chooses the noncentred form here; marginal is the default
            out[form] = lc.bayes("y ~ 0 + (x | g)", FRAME, draws=400, tune=400, chains=2, seed=16,
                                 parameterization=form, progressbar=False)
    return out


def test_bayes_without_fixed_effects_samples_the_sds(no_fixed):
    """It crashed after sampling; now the likelihood stored is N(y | Z b, sigma) with no X beta."""
    fit = no_fixed["auto"]
    assert fit.parameter_names == ["sd_(Intercept)|g", "cor_x.(Intercept)|g", "sd_x|g", "sigma"]
    post = fit.idata.posterior
    r = post["r_g"].values                                         # (chain, draw, level, coef)
    codes = fit.spec.terms[0].codes
    mu = r[:, :, codes, 0] + r[:, :, codes, 1] * FRAME["x"].to_numpy()
    sigma = post["sigma"].values[..., None]
    expected = -0.5 * np.log(2 * np.pi * sigma**2) - 0.5 * ((FRAME["y"].to_numpy() - mu) / sigma) ** 2
    np.testing.assert_allclose(fit.idata.log_likelihood["y"].values, expected, rtol=1e-10)


def test_bayes_without_fixed_effects_marginal_agrees_with_auto(no_fixed):
    a = unrounded_summary(no_fixed["auto"])
    b = unrounded_summary(no_fixed["marginal"])
    assert list(a.index) == list(b.index)
    for name in a.index:
        bound = 4 * np.hypot(a.loc[name, "mcse_mean"], b.loc[name, "mcse_mean"])
        assert abs(a.loc[name, "mean"] - b.loc[name, "mean"]) < bound, name
