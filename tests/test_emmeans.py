"""Estimated marginal means and contrasts against R's emmeans (tests/data/derived_reference.R/.json).

emmeans 1.x with lme4 1.1-31, pbkrtest and lmerTest, evaluated on our own REML fits
(which match lme4's to 1e-6): emmean 1e-6, se 1e-4, df 1e-3, interval ends and Tukey
p-values 1e-3, as the issue asks.  The ``mvt`` adjustment is randomised in R (Genz-Bretz,
abseps 1e-3 on the probability) and here (seeded quasi-Monte Carlo, 2^17 points): p-values
agree to 2e-3; the critical values, whose error is the probability's divided by the density
of max|T| (about 0.1 near the 95% quantile), to 0.01, so interval ends to 0.01 se.
The Bayesian grid is the same ``L`` on every draw: checked against the draws directly, and
its medians against the frequentist means within half a posterior sd on three models.
"""
import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

import lmmcompare as lc
from lmmcompare.errors import ArgumentError

REF = json.loads((pathlib.Path(__file__).parent / "data" / "derived_reference.json").read_text())
DDF = {"kenward_roger": "kenward-roger", "satterthwaite": "satterthwaite", "asymptotic": "asymptotic"}
SPECS = {"~ recipe": "recipe", "~ temperature": "temperature", "~ recipe * temperature": "recipe * temperature",
         "~ recipe | temperature": "~ recipe | temperature", "~ Sex": "Sex", "~ sample": "sample"}
AT = {None: None, "list(age = 14)": {"age": 14}}


@pytest.fixture(scope="module")
def fits():
    return {k: lc.lmer(m["formula"], m["data"]) for k, m in REF["models"].items()}


def grid_means(fits, grid, ddf):
    g = REF["grids"][grid]
    return lc.emmeans(fits[g["model"]], SPECS[g["spec"]], at=AT[g["at"]], ddf=DDF[ddf])


@pytest.mark.parametrize("ddf", list(DDF))
@pytest.mark.parametrize("grid", list(REF["grids"]))
def test_marginal_means_match_emmeans(fits, grid, ddf):
    ref = REF["grids"][grid][ddf]["table"]
    ours = grid_means(fits, grid, ddf).table()
    np.testing.assert_allclose(ours["emmean"], ref["emmean"], rtol=1e-6)
    np.testing.assert_allclose(ours["se"], ref["SE"], rtol=1e-4)
    ref_df = np.array([np.inf if v is None else v for v in ref["df"]], float)
    np.testing.assert_allclose(ours["df"], ref_df, rtol=1e-3)
    lower, upper = ("asymp.LCL", "asymp.UCL") if "asymp.LCL" in ref else ("lower.CL", "upper.CL")
    np.testing.assert_allclose(ours["lower"], ref[lower], rtol=1e-3)
    np.testing.assert_allclose(ours["upper"], ref[upper], rtol=1e-3)
    names = [c for c in REF["grids"][grid][ddf]["columns"] if c not in ("emmean", "SE", "df", lower, upper)]
    by = REF["grids"][grid][ddf].get("by_vars", [])
    index = ours.index.to_frame(index=False)
    for name in names:
        assert list(index[name].astype(str)) == ref[name], name
    assert list(index.columns) == by + [n for n in names if n not in by]


def close_ends(ours, lower, upper, mvt: bool, tol: float):
    """Interval ends to ``tol`` relative, or for mvt to 0.01 se (the module docstring says why)."""
    for got, expected in ((ours["lower"], lower), (ours["upper"], upper)):
        if mvt:
            assert np.all(np.abs(got.to_numpy() - np.asarray(expected, float)) <= 0.01 * ours["se"].to_numpy())
        else:
            np.testing.assert_allclose(got, expected, rtol=tol)


def _pairs_cases():
    for grid, by_ddf in REF["pairs"].items():
        for ddf, by_adjust in by_ddf.items():
            for adjust in by_adjust:
                yield grid, ddf, adjust


@pytest.mark.parametrize("grid,ddf,adjust", list(_pairs_cases()))
def test_pairs_match_emmeans_for_every_adjustment(fits, grid, ddf, adjust):
    case = REF["pairs"][grid][ddf][adjust]
    tests, intervals = case["tests"]["table"], case["intervals"]["table"]
    lower, upper = ("asymp.LCL", "asymp.UCL") if "asymp.LCL" in intervals else ("lower.CL", "upper.CL")
    ours = grid_means(fits, grid, ddf).pairs(adjust)
    assert list(ours.index.get_level_values("contrast")) == tests["contrast"]
    np.testing.assert_allclose(ours["estimate"], tests["estimate"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours["se"], tests["SE"], rtol=1e-4)
    statistic = "t.ratio" if "t.ratio" in tests else "z.ratio"
    np.testing.assert_allclose(ours["t"], tests[statistic], rtol=1e-4, atol=1e-9)
    tol = 2e-3 if adjust == "mvt" else 1e-3
    np.testing.assert_allclose(ours["p"], tests["p.value"], rtol=tol, atol=tol)
    close_ends(ours, intervals[lower], intervals[upper], adjust == "mvt", tol)


@pytest.mark.parametrize("name", list(REF["contrasts"]))
def test_contrasts_match_emmeans_with_their_default_adjustments(fits, name):
    case = REF["contrasts"][name]
    grid = REF["grids"][case["grid"]]
    method = {"trt.vs.ctrl": "trt.vs.ctrl", "consec": "consec", "poly": "poly"}.get(case["call"].split('"')[1]
                                                                                if '"' in case["call"] else "",
                                                                                {"AvsBC": [1, -0.5, -0.5]})
    for ddf in ("kenward_roger", "satterthwaite"):
        tests, intervals = case[ddf]["tests"]["table"], case[ddf]["intervals"]["table"]
        ours = grid_means(fits, case["grid"], ddf).contrast(method)
        assert list(ours.index) == tests["contrast"]
        np.testing.assert_allclose(ours["estimate"], tests["estimate"], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(ours["se"], tests["SE"], rtol=1e-4)
        np.testing.assert_allclose(ours["df"], tests["df"], rtol=1e-3)
        tol = 2e-3 if case["default_adjust"] == "mvt" else 1e-3
        np.testing.assert_allclose(ours["p"], tests["p.value"], rtol=tol, atol=tol)
        close_ends(ours, intervals["lower.CL"], intervals["upper.CL"], case["default_adjust"] == "mvt", tol)
    assert grid["model"] in REF["models"]


def test_the_kenward_roger_covariance_of_the_means_is_emmeans_vcov(fits):
    ref = REF["vcov"]
    for ddf, entry in ref["by_df"].items():
        ours = grid_means(fits, ref["grid"], ddf).vcov
        expected = np.array(entry["vcov"], float)
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())


def test_df_become_asymptotic_beyond_the_row_limit_as_emmeans(fits):
    from lmmcompare.derived import emmeans as module

    assert module.ROW_LIMITS == {"kenward-roger": REF["emmeans_options"]["pbkrtest.limit"],
                                 "satterthwaite": REF["emmeans_options"]["lmerTest.limit"]}
    old = dict(module.ROW_LIMITS)
    module.ROW_LIMITS["kenward-roger"] = 100
    try:
        means = lc.emmeans(fits["cake"], "recipe")
    finally:
        module.ROW_LIMITS.update(old)
    assert means.ddf == "asymptotic" and np.all(np.isinf(means.table()["df"]))


@pytest.fixture(scope="module")
def posteriors():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {k: lc.bayes(m["formula"], m["data"], draws=400, tune=400, chains=2, seed=7, progressbar=False)
                for k, m in REF["models"].items()}


@pytest.mark.parametrize("model,specs", [("cake", "recipe"), ("orthodont", "Sex"), ("penicillin", "sample")])
def test_posterior_means_agree_with_the_frequentist_ones(fits, posteriors, model, specs):
    freq = lc.emmeans(fits[model], specs).table()
    post = lc.emmeans(posteriors[model], specs)
    table, draws = post.table(), post.draws()
    assert list(table.index) == list(freq.index)
    assert np.all(np.abs(table["emmean"] - freq["emmean"]) < 0.5 * table["se"])
    beta = np.stack([posteriors[model].idata.posterior[n].values.ravel() for n in fits[model].spec.fixed_names], 1)
    np.testing.assert_allclose(draws.to_numpy(), beta @ post.grid.L.T, rtol=1e-12)
    np.testing.assert_allclose(table["emmean"], np.median(draws, axis=0), rtol=1e-12)
    pairs = post.pairs()
    first = draws.iloc[:, 0] - draws.iloc[:, 1]
    assert pairs["pd"].iloc[0] == pytest.approx(max((first > 0).mean(), (first < 0).mean()))


def test_the_comparison_puts_the_means_side_by_side(fits, posteriors):
    cmp = lc.compare(fits["cake"], posteriors["cake"])
    table = cmp.emmeans("recipe")
    freq = lc.emmeans(fits["cake"], "recipe").table()
    np.testing.assert_allclose(table["estimate"], freq["emmean"])
    np.testing.assert_allclose(table["shift"], (table["post_median"] - table["estimate"]) / table["se"])
    pairs = cmp.pairs("recipe")
    assert list(pairs.index) == ["A - B", "A - C", "B - C"] and {"p", "pd", "flag"} <= set(pairs.columns)


@pytest.mark.parametrize("call,error,fragment", [
    (lambda f: lc.emmeans(f, "temp"), ArgumentError, "'temp' is not a factor of the fixed part"),
    (lambda f: lc.emmeans(f, "recipe", ddf="kr"), ArgumentError, "ddf"),
    (lambda f: lc.emmeans(f, "recipe", weights="cells"), ArgumentError, "weights must be one of"),
    (lambda f: lc.emmeans(f, "recipe").pairs("scheffe"), ArgumentError, "adjust"),
    (lambda f: lc.emmeans(f, "recipe").contrast({"x": [1, -1]}), ArgumentError, "3 weights"),
    (lambda f: lc.emmeans(f, "recipe", at={"nope": 1}), ArgumentError, "at names 'nope'"),
])
def test_bad_arguments_are_typed_errors(fits, call, error, fragment):
    with pytest.raises(error, match=fragment):
        call(fits["cake"])


def test_comparison_predict_and_r2_put_both_answers_side_by_side(fits, posteriors):
    cmp = lc.compare(fits["cake"], posteriors["cake"])
    new = lc.load_dataset("cake").iloc[:4]
    table = cmp.predict(new)
    freq = fits["cake"].predict(new, se_fit=True, interval="confidence")
    np.testing.assert_allclose(table[["estimate", "se", "lower", "upper"]].to_numpy(),
                               freq[["fit", "se", "lower", "upper"]].to_numpy())
    draws = posteriors["cake"].predict(new, summary=False).values.reshape(-1, 4)
    np.testing.assert_allclose(table["post_median"], np.median(draws, axis=0), rtol=1e-12)
    population = cmp.predict(new, re=False)
    beta = np.stack([posteriors["cake"].idata.posterior[n].values.ravel() for n in fits["cake"].spec.fixed_names], 1)
    np.testing.assert_allclose(population["post_median"], np.median(beta @ fits["cake"].spec.X[:4].T, axis=0),
                               rtol=1e-12)
    r2 = cmp.r2()
    assert r2.loc["R2 marginal", "estimate"] == pytest.approx(lc.r2(fits["cake"]).marginal)
    assert r2.loc["ICC adjusted", "post_median"] == pytest.approx(np.median(lc.icc(posteriors["cake"]).adjusted))
    assert r2.loc["Bayes R2 conditional", "post_median"] == pytest.approx(
        np.median(lc.r2(posteriors["cake"], kind="bayes").conditional))


def test_report_and_markdown_gain_the_derived_sections_when_asked(fits, posteriors, tmp_path):
    cmp = lc.compare(fits["cake"], posteriors["cake"])
    markdown = cmp.to_markdown(ci="wald", emmeans="recipe", r2=True)
    assert "**Estimated marginal means of recipe**" in markdown and "| A - B |" in markdown
    assert "**R² and intraclass correlation**" in markdown
    assert "Estimated marginal means" not in cmp.to_markdown(ci="wald")
    html = (tmp_path / "r.html")
    cmp.report(html, ci="wald", emmeans="recipe", r2=True)
    text = html.read_text()
    assert "<h2>Estimated marginal means of recipe</h2>" in text and "<h2>Pairwise differences of recipe</h2>" in text
    assert f"{lc.emmeans(fits['cake'], 'recipe').table()['emmean'].iloc[0]:.4g}" in text


def test_cli_refuses_an_emmeans_spec_that_is_no_factor_before_fitting():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "lmmcompare.cli", "compare", "angle ~ recipe + temp + (1 | replicate)",
                          "--data", "cake", "--emmeans", "temp"], capture_output=True, text=True)
    assert out.returncode == 2 and "'temp' is not a factor of the fixed part" in out.stderr
    assert "fitting" not in out.stderr
