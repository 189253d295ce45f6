
import numpy as np
import pandas as pd
import pytest

import lmmcompare as lc
from lmmcompare import DataError, FormulaError, ModelSpec
from lmmcompare.errors import DroppedRowsWarning

from conftest import REFERENCE


@pytest.mark.parametrize("case", REFERENCE, ids=[c["id"] for c in REFERENCE])
def test_spec_matches_lme4_names_nobs_and_groups(case):
    spec = ModelSpec.from_formula(case["formula"], case["data"])
    assert spec.fixed_names == list(case["fixef"])
    assert spec.n == case["nobs"]
    assert {name: f.n_levels for name, f in spec.factors.items()} == case["ngrps"]
    assert spec.n_theta == len(np.atleast_1d(case["theta"]))


def test_sleepstudy_design_by_hand():
    data = lc.load_dataset("sleepstudy")
    spec = ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)", data)
    np.testing.assert_array_equal(spec.y, data["Reaction"].to_numpy())
    np.testing.assert_array_equal(spec.X, np.column_stack([np.ones(180), data["Days"]]))
    (term,) = spec.terms
    assert term.columns == ("(Intercept)", "Days") and term.correlated and term.q == 36 == spec.q
    Z = term.Z.toarray()
    codes = data["Subject"].cat.codes.to_numpy()
    expected = np.zeros((180, 36))
    expected[np.arange(180), 2 * codes] = 1.0
    expected[np.arange(180), 2 * codes + 1] = data["Days"]
    np.testing.assert_array_equal(Z, expected)
    assert term.levels == tuple(data["Subject"].cat.categories)


def test_double_bar_expands_to_uncorrelated_terms():
    spec = ModelSpec.from_formula("Reaction ~ Days + (Days || Subject)", "sleepstudy")
    assert [t.columns for t in spec.terms] == [("(Intercept)",), ("Days",)]
    assert all(t.group == "Subject" and t.double_bar and not t.correlated for t in spec.terms)
    assert spec.q == 36 and spec.n_theta == 2


def test_zero_plus_slope_only_term():
    spec = ModelSpec.from_formula("Reaction ~ Days + (0 + Days | Subject)", "sleepstudy")
    assert spec.terms[0].columns == ("Days",)


def test_nested_grouping_gives_interaction_and_outer_factor():
    data = lc.load_dataset("Pastes")
    spec = ModelSpec.from_formula("strength ~ 1 + (1 | batch/cask)", data)
    inner, outer = spec.terms
    assert (inner.group, inner.n_levels, outer.group, outer.n_levels) == ("cask:batch", 30, "batch", 10)
    labels = np.array(inner.levels)[inner.codes]
    np.testing.assert_array_equal(labels, (data["cask"].astype(str) + ":" + data["batch"].astype(str)).to_numpy())
    assert inner.levels[:3] == ("a:A", "a:B", "a:C")  # first factor varies slowest, as R's a:b


def test_interaction_grouping_and_treatment_contrast_names():
    spec = ModelSpec.from_formula("angle ~ recipe * temp + (1 | recipe:replicate)", "cake")
    assert spec.fixed_names == ["(Intercept)", "recipeB", "recipeC", "temp", "recipeB:temp", "recipeC:temp"]
    assert spec.terms[0].group == "recipe:replicate" and spec.terms[0].levels[:2] == ("A:1", "A:2")


def test_categorical_inside_random_term():
    full = ModelSpec.from_formula("angle ~ 1 + (0 + recipe | replicate)", "cake")
    assert full.terms[0].columns == ("recipeA", "recipeB", "recipeC")
    reduced = ModelSpec.from_formula("angle ~ 1 + (recipe | replicate)", "cake")
    assert reduced.terms[0].columns == ("(Intercept)", "recipeB", "recipeC")
    assert reduced.terms[0].n_theta == 6


def test_terms_sorted_by_decreasing_levels_whatever_the_written_order():
    spec = ModelSpec.from_formula("diameter ~ 1 + (1 | sample) + (1 | plate)", "Penicillin")
    assert [t.group for t in spec.terms] == ["plate", "sample"]


def test_numeric_grouping_column_is_a_factor_in_numeric_order():
    data = pd.DataFrame({"y": [1.0, 2.5, 0.3, 4.1, 2.2, 3.3, 1.9, 0.7],
                         "g": [10, 2, 2, 10, 3, 3, 10, 2]})
    spec = ModelSpec.from_formula("y ~ 1 + (1 | g)", data)
    assert spec.terms[0].levels == ("2", "3", "10")
    np.testing.assert_array_equal(spec.terms[0].codes, [2, 0, 0, 2, 1, 1, 2, 0])


def test_no_intercept_and_I_terms_are_named_like_lme4():
    spec = ModelSpec.from_formula("Reaction ~ 0 + Days + I(Days^2) + (1 | Subject)", "sleepstudy")
    assert spec.fixed_names == ["Days", "I(Days^2)"]
    np.testing.assert_allclose(spec.X[:, 1], spec.X[:, 0] ** 2)
    minus = ModelSpec.from_formula("Reaction ~ Days - 1 + (1 | Subject)", "sleepstudy")
    assert minus.fixed_names == ["Days"]


def test_missing_rows_dropped_with_count_and_data_untouched():
    data = lc.load_dataset("sleepstudy")
    data.loc[[3, 50], "Reaction"] = np.nan
    data.loc[7, "Days"] = np.nan
    before = data.copy()
    with pytest.warns(DroppedRowsWarning, match="dropped 3 of 180 rows"):
        spec = ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)", data)
    assert spec.n == 177 and spec.n_dropped == 3
    pd.testing.assert_frame_equal(data, before)


def test_unused_levels_are_dropped():
    data = lc.load_dataset("sleepstudy")
    data = data[data["Subject"] != "308"]  # the category stays in the dtype
    spec = ModelSpec.from_formula("Reaction ~ Days + (1 | Subject)", data)
    assert spec.terms[0].n_levels == 17 and "308" not in spec.terms[0].levels


def test_with_response_keeps_the_design():
    spec = ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    other = spec.with_response(spec.y * 2)
    np.testing.assert_array_equal(other.y, spec.y * 2)
    np.testing.assert_array_equal(other.X, spec.X)
    assert other.terms is spec.terms and other.fixed_names == spec.fixed_names
    assert (other.Z != spec.Z).nnz == 0 and other.n == spec.n
    np.testing.assert_array_equal(spec.y, lc.load_dataset("sleepstudy")["Reaction"])   # the original kept its y
    with pytest.raises(DataError, match=r"new response has shape \(179,\), the spec has \(180,\)"):
        spec.with_response(spec.y[1:])


def test_repr_says_what_the_spec_holds():
    text = repr(ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)", "sleepstudy"))
    assert "180 observations of 'Reaction'" in text
    assert "(Intercept), Days" in text
    assert "'Subject': 18 levels x 2 [(Intercept), Days], correlated" in text


# ---- errors a user can act on ----------------------------------------------------------
SLEEP = lc.load_dataset("sleepstudy")


@pytest.mark.parametrize("formula, message", [
    ("Reaction Days + (1 | Subject)", "exactly one '~'"),
    ("Reaction ~ Days + (1 | Subject", "unbalanced parentheses"),
    ("Reaction ~ Days + Days | Subject", "'|' outside parentheses"),
    ("Reaction ~ Days - (1 | Subject)", "must be added to the formula with '+'"),
    ("~ Days + (1 | Subject)", "no response"),
    ("Reaction ~ Days", "no random-effects term"),
    ("Reaction ~ Dayz + (1 | Subject)", "unknown column 'Dayz' in fixed part; did you mean 'Days'"),
    ("Reaction ~ Days + (1 | Subjekt)", "unknown column 'Subjekt'"),
    ("Reaction ~ Days + (1 | )", "no grouping factor"),
    ("Reaction ~ Days + (1 | Subject) + (1 | Subject)", "appears twice"),
])
def test_formula_errors(formula, message):
    with pytest.raises(FormulaError, match=None) as err:
        ModelSpec.from_formula(formula, SLEEP)
    assert isinstance(err.value, ValueError)
    assert message in str(err.value)


def test_response_not_numeric():
    data = SLEEP.assign(Reaction=SLEEP["Reaction"].astype(str) + "ms")
    with pytest.raises(DataError, match="response 'Reaction' is not numeric"):
        ModelSpec.from_formula("Reaction ~ Days + (1 | Subject)", data)


def test_response_constant():
    with pytest.raises(DataError, match="response 'Reaction' is constant"):
        ModelSpec.from_formula("Reaction ~ Days + (1 | Subject)", SLEEP.assign(Reaction=1.0))


def test_single_level_grouping_factor():
    with pytest.raises(DataError, match="grouping factor 'g' has a single level"):
        ModelSpec.from_formula("Reaction ~ Days + (1 | g)", SLEEP.assign(g="only"))


def test_no_rows_left_after_missing_values():
    with pytest.raises(DataError, match="no rows left.*'Reaction'"):
        ModelSpec.from_formula("Reaction ~ Days + (1 | Subject)", SLEEP.assign(Reaction=np.nan))


def test_empty_and_non_dataframe_data():
    with pytest.raises(DataError, match="data is empty"):
        ModelSpec.from_formula("Reaction ~ Days + (1 | Subject)", SLEEP.iloc[:0])
    with pytest.raises(DataError, match="must be a pandas DataFrame"):
        ModelSpec.from_formula("Reaction ~ Days + (1 | Subject)", SLEEP.to_numpy())


def test_formula_must_be_a_string():
    with pytest.raises(FormulaError, match="formula must be a string"):
        ModelSpec.from_formula(42, SLEEP)


def test_levels_not_fewer_than_observations():
    data = SLEEP.assign(row=np.arange(180))
    with pytest.raises(DataError, match="number of levels of each grouping factor must be < the number of observations"):
        ModelSpec.from_formula("Reaction ~ Days + (1 | row)", data)


def test_parsed_formulas_are_cached_and_errors_are_not():
    """parse_formula caches its immutable result per string; a malformed formula raises every time."""
    from lmmcompare.spec.formula import parse_formula

    first = parse_formula("Reaction ~ Days + (Days | Subject)")
    assert parse_formula("Reaction ~ Days + (Days | Subject)") is first
    assert first.response == "Reaction" and first.fixed == "Days" and first.bars[0].group == ("Subject",)
    for _ in range(2):
        with pytest.raises(FormulaError, match="unbalanced parentheses"):
            parse_formula("y ~ x + (1 | g")
