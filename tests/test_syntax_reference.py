"""Formula syntax and column names read as lme4 reads them.

References: lme4 1.1-31 in R 4.2 (tests/data/syntax_reference.R -> syntax_reference.json):
the fixed-effects model matrix (column names and values), fixef and the REML criterion of
``x %in% f`` (R's ``x:f``, not formulaic's nesting ``f + f:x``), of products written in another
order than their variables first appear (R names ``f + x:f``'s columns ``fa:x``), and of a data
column named ``Intercept`` (R: a coefficient ``Intercept`` beside ``(Intercept)``).  R's %in% beyond
one name a side: ``(x + z) %in% f`` is ``x:f + z:f``, ``x %in% (f + h)`` the single term ``x:f:h``.
"""
import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

import lmmcompare as lc
from lmmcompare import DataError, FormulaError, ModelSpec
from lmmcompare.freq import make_devfun

REF = {c["id"]: c for c in json.loads((pathlib.Path(__file__).parent / "data" / "syntax_reference.json").read_text())}


def reference_data(name):
    if name == "sleepstudy_named":  # as the R script: a column Intercept = sin(1..n)
        data = lc.load_dataset("sleepstudy")
        return data.assign(Intercept=np.sin(np.arange(1, len(data) + 1)))
    return lc.load_dataset(name)


@pytest.mark.parametrize("case_id", ["in_alone", "in_nested_slopes", "in_with_main_effect", "in_cake",
                                     "in_compound_left", "in_compound_right", "in_random", "colon_reversed",
                                     "colon_reversed_call", "intercept_column", "intercept_column_slope"])
def test_model_matrix_and_fit_equal_lme4(case_id):
    ref = REF[case_id]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lc.errors.SingularFitWarning)
        fit = lc.lmer(ref["formula"], reference_data(ref["data"]))
    assert fit.spec.fixed_names == ref["columns"]
    np.testing.assert_allclose(fit.spec.X, np.column_stack(ref["X"]), rtol=1e-14, atol=1e-14)
    # the same model: our criterion at lme4's theta is lme4's, and our optimum is no worse
    np.testing.assert_allclose(make_devfun(fit.spec, True)(np.array(ref["theta"], ndmin=1)), ref["criterion"],
                               rtol=1e-10)
    assert fit.objective <= ref["criterion"] * (1 + 1e-6)
    if fit.objective > ref["criterion"] * (1 - 1e-6):   # else lme4 stopped short (in_random) and its fixef differ
        np.testing.assert_allclose(fit.fixef, ref["fixef"], rtol=1e-5)
    assert [v if isinstance(v, str) else None for v in fit.varcorr["var1"]] == ref["varcorr"]["var1"]


def test_reversed_products_are_one_term():
    """``f:x`` and ``x:f`` are one term in R: written both ways, it is used once, with a warning."""
    with pytest.warns(lc.errors.DuplicateTermWarning, match="written more than once"):
        spec = ModelSpec.from_formula("angle ~ recipe + temp:recipe + recipe:temp + (1 | replicate)", "cake")
    assert spec.fixed_names == REF["colon_reversed"]["columns"]


def test_intercept_column_built_by_formulaic_is_a_typed_error():
    """formulaic names the intercept ``Intercept`` and would put the data column in its place."""
    data = reference_data("sleepstudy_named").assign(f=lambda d: np.where(d["Days"] < 5, "early", "late"))
    for formula in ("Reaction ~ Intercept + log(Days + 1) + (1 | Subject)", "Reaction ~ Intercept + f + (1 | Subject)"):
        with pytest.raises(FormulaError, match=r"data column 'Intercept' .* rename the column"):
            lc.lmer(formula, data)


def test_a_column_named_1_is_a_typed_error_not_an_intercept():
    data = lc.load_dataset("sleepstudy").assign(**{"1": np.cos(np.arange(180))})
    for formula, where in [("Reaction ~ Days + `1` + (1 | Subject)", "the fixed part"),
                           ("Reaction ~ Days + (`1` | Subject)", r"random term \(`1` \| Subject\)"),
                           ("Reaction ~ Days + `1`:Days + (1 | Subject)", "the fixed part")]:
        with pytest.raises(FormulaError, match=rf"column named 1 \(written `1`\) in {where} cannot be used.*rename"):
            ModelSpec.from_formula(formula, data)
    # inside a call formulaic reads it as the column: I(`1`^2) is the square of the column
    spec = ModelSpec.from_formula("Reaction ~ I(`1`^2) + (1 | Subject)", data)
    np.testing.assert_array_equal(spec.X[:, 1], data["1"] ** 2)


def test_non_string_column_labels_are_a_typed_error_naming_the_column():
    data = lc.load_dataset("sleepstudy")
    data[0] = np.cos(np.arange(180))
    data[7] = data["Subject"]
    before = data.copy()
    for formula, where in [("Reaction ~ `0` + (1 | Subject)", "fixed part"),
                           ("Reaction ~ Days + (1 | `7`)", r"random term \(1 \| `7`\)"),
                           ("`0` ~ Days + (1 | Subject)", "the response")]:
        with pytest.raises(DataError, match=rf"column 0 of data \(named '0' in {where}\)|column 7 of data "
                                            rf"\(named '7' in {where}\).*type int, not str.*rename\(columns=str\)"):
            ModelSpec.from_formula(formula, data)
    pd.testing.assert_frame_equal(data, before)
    # unused non-string labels are no obstacle; renamed, the columns fit as any other
    spec = ModelSpec.from_formula("Reaction ~ `0` + (1 | `7`)", data.rename(columns=str))
    np.testing.assert_array_equal(spec.X[:, 1], data[0])
    assert ModelSpec.from_formula("Reaction ~ Days + (1 | Subject)", data).p == 2
