"""Two random-effects terms on one grouping factor that share a column: ``(Days | Subject) + (1 | Subject)``.

How the intercept variance splits between the two terms is not identifiable (lme4 fits it and
reports a degenerate Hessian).  lmmcompare warns, and keeps the two terms apart under distinct
names everywhere: lme4's VarCorr labels (``Subject.1``, from tests/data/syntax_reference.json),
the shared parameter names (``sd_(Intercept)|Subject.1``, where lme4's confint repeats the name),
profiles, random effects, posterior and comparison tables.
"""
import json
import pathlib
import warnings

import numpy as np
import pytest

import lmmcompare as lc
from conftest import prior_fit
from lmmcompare.errors import FormulaError, UnidentifiableTermsWarning

REF = {c["id"]: c for c in json.loads((pathlib.Path(__file__).parent / "data" / "syntax_reference.json").read_text())}
TWO = "Reaction ~ Days + (Days | Subject) + (1 | Subject)"
NAMES = ["sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject", "sd_Days|Subject", "sd_(Intercept)|Subject.1",
         "sigma"]


@pytest.fixture(scope="module")
def two_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnidentifiableTermsWarning)
        return lc.lmer(TWO, "sleepstudy")


def test_the_split_is_reported_as_unidentifiable():
    with pytest.warns(UnidentifiableTermsWarning, match=r"\(\(Intercept\) \+ Days \| Subject\) and "
                      r"\(\(Intercept\) \| Subject\) both have the column\(s\) \(Intercept\).*labelled '\|Subject.1'"):
        lc.ModelSpec.from_formula(TWO, "sleepstudy")
    # a factor coded by all its levels spans the intercept too, without sharing its name
    with pytest.warns(UnidentifiableTermsWarning, match="a combination of the columns of one"):
        lc.ModelSpec.from_formula("angle ~ temp + (1 | replicate) + (0 + recipe | replicate)", "cake")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnidentifiableTermsWarning)   # (x || g): columns that span nothing in common
        spec = lc.ModelSpec.from_formula("Reaction ~ Days + (Days || Subject)", "sleepstudy")
    assert spec.parameters.variance_labels == ["sd_(Intercept)|Subject", "sd_Days|Subject", "sigma"]
    with pytest.raises(FormulaError, match=r"\(\(Intercept\) \+ Days \| Subject\) appears twice"):
        lc.ModelSpec.from_formula("Reaction ~ Days + (1 + Days | Subject) + (Days + 1 | Subject)", "sleepstudy")


def test_labels_and_criterion_match_lme4(two_fit):
    """lme4's VarCorr rows and printed groups; the REML criterion equals lme4's and that of the single
    term (Days | Subject), whose intercept variance is the sum of the two terms' (the identifiable part)."""
    ref, one = REF["two_intercepts"], REF["one_intercept"]
    vc = two_fit.varcorr
    assert list(vc["grp"]) == ref["varcorr"]["grp"] == ["Subject", "Subject", "Subject", "Subject.1", "Residual"]
    assert [v if isinstance(v, str) else None for v in vc["var1"]] == ref["varcorr"]["var1"]
    assert [v if isinstance(v, str) else None for v in vc["var2"]] == ref["varcorr"]["var2"]
    assert two_fit.objective <= ref["criterion"] * (1 + 1e-6)
    np.testing.assert_allclose(two_fit.objective, ref["criterion"], rtol=1e-6)
    np.testing.assert_allclose(ref["criterion"], one["criterion"], rtol=1e-9)
    total = vc["vcov"][0] + vc["vcov"][3]
    np.testing.assert_allclose([total, vc["vcov"][1], vc["vcov"][2], vc["vcov"][4]], one["varcorr"]["vcov"],
                               rtol=2e-4)
    text = str(two_fit.summary())
    block = text[text.index("Random effects:"):text.index("Number of obs")].splitlines()[2:]
    assert [line.split()[0] for line in block if line.strip() and not line.startswith("  ")] == ref["printed_groups"]


def test_every_frequentist_name_is_distinct(two_fit):
    params = two_fit.variance_parameters()
    assert list(params.index) == NAMES
    np.testing.assert_allclose(params["sd_(Intercept)|Subject.1"], np.sqrt(two_fit.varcorr["vcov"][3]))
    wald = two_fit.confint("wald", progress=False)
    assert list(wald.index) == NAMES + ["(Intercept)", "Days"]
    modes = two_fit.ranef()
    assert {g: list(f.columns) for g, f in modes.items()} == {"Subject": ["(Intercept)", "Days"],
                                                             "Subject.1": ["(Intercept)"]}
    b = np.concatenate([modes["Subject"].to_numpy().ravel(), modes["Subject.1"].to_numpy().ravel()])
    np.testing.assert_allclose(b, two_fit.b)   # term by term, level-major as Z's columns


def test_profile_of_the_second_term_is_its_own():
    """The ML profile of sd_(Intercept)|Subject.1 passes through its own estimate at zeta = 0 (it used to
    repeat the first term's trace, through 6.8)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnidentifiableTermsWarning)
        ml = lc.lmer(TWO, "sleepstudy", reml=False)
    name = "sd_(Intercept)|Subject.1"
    prof = ml.profile(which=[name])
    estimate = ml.variance_parameters()[name]
    assert prof.estimates[name] == pytest.approx(estimate, rel=1e-9)
    assert abs(estimate - ml.variance_parameters()["sd_(Intercept)|Subject"]) > 10
    trace = prof.traces[name]
    assert np.interp(estimate, trace["value"], trace["zeta"]) == pytest.approx(0.0, abs=1e-6)


def test_bayesian_names_and_comparison_tables_keep_the_terms_apart(two_fit):
    bayes_fit, prior = prior_fit(two_fit.spec, draws=40)
    post = bayes_fit.idata.posterior
    assert bayes_fit.parameter_names == ["(Intercept)", "Days"] + NAMES
    np.testing.assert_array_equal(post["sd_(Intercept)|Subject.1"], prior["sd_1_0"])   # term 1's own sd
    np.testing.assert_array_equal(post["sd_(Intercept)|Subject"], prior["L_0"][..., 0, 0])
    summary = bayes_fit.summary(include_ranef=False)
    assert list(summary.index) == bayes_fit.parameter_names
    assert len(bayes_fit.summary()) == 7 + 18 * 3 == len(set(bayes_fit.summary().index))
    np.testing.assert_array_equal(post["r_Subject.1"].values, prior["b_1"].values)
    means = bayes_fit.ranef()
    assert {g: list(f.columns) for g, f in means.items()} == {"Subject": ["(Intercept)", "Days"],
                                                             "Subject.1": ["(Intercept)"]}
    # the linear predictor reads each term's draws back from its own variable
    mu = bayes_fit.linear_predictor()
    X, (t0, t1) = two_fit.spec.X, two_fit.spec.terms
    beta = np.stack([post["(Intercept)"].values, post["Days"].values], axis=-1)
    expected = (np.einsum("np,cdp->cdn", X, beta)
                + np.einsum("nk,cdnk->cdn", t0.design.matrix, prior["b_0"].values[:, :, t0.codes, :])
                + prior["b_1"].values[:, :, t1.codes, 0])
    np.testing.assert_allclose(mu, expected, rtol=1e-10)

    cmp = lc.compare(two_fit, bayes_fit)
    table = cmp.table("wald")
    assert list(table.index) == ["(Intercept)", "Days"] + NAMES
    assert table.loc["sd_(Intercept)|Subject.1", "estimate"] == pytest.approx(np.sqrt(two_fit.varcorr["vcov"][3]))
    assert table.loc["sd_(Intercept)|Subject.1", "post_median"] == pytest.approx(np.median(prior["sd_1_0"]))
    ranef = cmp.ranef_table()
    assert len(ranef) == 18 * 3 and not ranef.duplicated(["group", "level", "coef"]).any()
    second = ranef[ranef.group == "Subject.1"].set_index("level")
    np.testing.assert_allclose(second["mode"], two_fit.ranef()["Subject.1"]["(Intercept)"].loc[second.index])
