"""The parameter table (lmmcompare.spec.parameters) is the one source of every parameter's name and place.

For several specs, the frequentist names (variance parameters, confint rows), the PyMC
variables, the posterior's variables and the comparison table's rows are the table's
labels in the table's order, and each row's (term, i, j) locates its value: the sd/cor
of entry (i, j) of that term's covariance, in the fit and in the posterior draws.
"""
import warnings

import numpy as np
import pytest

import lmmcompare as lc
from conftest import prior_fit
from lmmcompare.errors import UnidentifiableTermsWarning
from lmmcompare.spec.parameters import lower_index

FORMULAS = [
    "Reaction ~ Days + (Days | Subject)",
    "Reaction ~ Days + (Days || Subject)",
    "Reaction ~ Days + (Days | Subject) + (1 | Subject)",
    "Reaction ~ 0 + Days + (1 + Days + I(Days^2) | Subject)",
]


def _spec(formula):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnidentifiableTermsWarning)
        return lc.ModelSpec.from_formula(formula, "sleepstudy")


def test_the_table_of_sleepstudy_has_lme4s_names_in_thetas_order():
    table = _spec(FORMULAS[0]).parameters
    assert [(r.kind, r.label, r.term, r.i, r.j, r.theta, r.pymc_name) for r in table.rows] == [
        ("fixed", "(Intercept)", None, 0, 0, None, "alpha"),
        ("fixed", "Days", None, 1, 1, None, "beta_0"),
        ("sd", "sd_(Intercept)|Subject", 0, 0, 0, 0, "sd_0_0"),
        ("cor", "cor_Days.(Intercept)|Subject", 0, 1, 0, 1, None),
        ("sd", "sd_Days|Subject", 0, 1, 1, 2, "sd_0_1"),
        ("sigma", "sigma", None, 0, 0, None, "sigma"),
    ]


@pytest.mark.parametrize("formula", FORMULAS)
def test_rows_follow_theta_and_the_frequentist_names_are_the_tables(formula):
    spec = _spec(formula)
    table = spec.parameters
    assert spec.parameters is table   # built once per spec
    varying = [r for r in table.variance if r.kind != "sigma"]
    assert [r.theta for r in varying] == list(range(spec.n_theta))
    for k, t in enumerate(spec.terms):
        rows, cols = lower_index(t.p)
        assert [(r.i, r.j) for r in table.of_term(k)] == list(zip(rows, cols))
    assert spec.parameters.variance_labels == [r.label for r in table.variance]
    assert table.fixed_labels == spec.fixed_names
    assert len(set(r.label for r in table.rows)) == len(table.rows)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnidentifiableTermsWarning)
        fit = lc.lmer(spec)
    values = fit.variance_parameters()
    assert list(values.index) == [r.label for r in table.variance]
    covs = fit.term_covariances()
    for r in varying:
        cov = covs[r.term]
        expected = np.sqrt(cov[r.i, r.i]) if r.kind == "sd" else cov[r.i, r.j] / np.sqrt(cov[r.i, r.i] * cov[r.j, r.j])
        assert values[r.label] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert values["sigma"] == fit.sigma
    assert list(fit.confint("wald").index) == [r.label for r in table.variance] + table.fixed_labels


@pytest.mark.parametrize("formula", FORMULAS[:3])
def test_posterior_and_comparison_rows_are_the_tables(formula):
    spec = _spec(formula)
    table = spec.parameters
    bayes_fit, prior = prior_fit(spec)
    post = bayes_fit.idata.posterior
    labels = [r.label for r in table.rows]
    assert bayes_fit.parameter_names == labels
    assert [v for v in post.data_vars if not v.startswith("r_")] == labels
    assert sorted(v for v in post.data_vars if v.startswith("r_")) == sorted({tv.ranef for tv in table.terms})
    # every PyMC variable a row names was sampled, and the posterior's value under the label comes from it
    for r in table.rows:
        if r.kind in ("sd", "sigma") and (r.kind == "sigma" or spec.terms[r.term].p == 1):
            np.testing.assert_array_equal(post[r.label].values, prior[r.pymc_name].values)
        elif r.kind in ("sd", "cor"):
            L = prior[table.terms[r.term].cholesky].values
            cov = L @ np.swapaxes(L, -1, -2)
            sd_i, sd_j = np.sqrt(cov[..., r.i, r.i]), np.sqrt(cov[..., r.j, r.j])
            expected = sd_i if r.kind == "sd" else cov[..., r.i, r.j] / (sd_i * sd_j)
            np.testing.assert_allclose(post[r.label].values, expected, rtol=1e-12)
    for tv in table.terms:   # each term's random effects sit in its r_<group> columns
        t = spec.terms[tv.term]
        part = post[tv.ranef].values[..., tv.coef_start : tv.coef_start + t.p]
        np.testing.assert_array_equal(part, prior[tv.effects].values)
        assert list(post[tv.ranef][tv.coef_dim].values[tv.coef_start : tv.coef_start + t.p]) == list(t.columns)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnidentifiableTermsWarning)
        cmp = lc.compare(lc.lmer(spec), bayes_fit)
    assert list(cmp.table("wald").index) == labels


def test_the_prior_table_credits_group_keys_to_every_term_they_set():
    """``sd_Subject`` and ``cor_Subject`` set the priors of both terms on Subject, the ``Subject.1`` one included,
    and the prior table says so (it used to rebuild the key from the label's ``Subject.1`` and call them default)."""
    spec = _spec(FORMULAS[2])
    priors = lc.bayesian.default_priors(spec, {"sd_Subject": ("half_normal", 30), "cor_Subject": ("lkj", 1.0)})
    table = priors.table().set_index("parameter")
    sd_rows = [r.label for r in spec.parameters.rows if r.kind == "sd"]
    assert list(table.loc[sd_rows, "prior"]) == ["half_normal(30)"] * 3
    assert list(table.loc[sd_rows, "source"]) == ["user"] * 3
    assert table.loc["(Intercept)+Days|Subject", ["prior", "source"]].tolist() == ["lkj(1)", "user"]
    assert set(table.loc[["(Intercept)", "Days", "sigma"], "source"]) == {"default"}
