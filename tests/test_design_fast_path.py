"""The direct model matrices of plain formulas (lmmcompare.spec.terms) equal formulaic's.

Every case builds the same one-sided formula twice, directly and through
formulaic, and requires the same matrix (exactly), lme4 names, term labels and
columns, term variables and factor coding; formulas the direct path does not
certainly reproduce must fall back to formulaic.  Whole models are then fitted
both ways: estimates, predictions for new data and the type III, II and I
tables must agree.
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import lmmcompare as lc
from lmmcompare.spec import design as design_module
from lmmcompare.spec.design import build_design, formulaic_design


def _synthetic(n=48, seed=1):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "y": rng.normal(size=n),
        "x": rng.normal(size=n),
        "z": np.arange(n) % 5,
        "b": np.arange(n) % 3 == 0,
        "s": np.array(["q", "p", "r"] * (n // 3), dtype=object),
        "t": pd.Series(["v", "u", "w", "u"] * (n // 4), dtype="str"),
        "f": pd.Categorical(["c2", "c1", "c3", "c1"] * (n // 4), categories=["c3", "c1", "c2", "unused"]),
        "o": pd.Categorical(["lo", "hi", "mid"] * (n // 3), categories=["lo", "mid", "hi"], ordered=True),
        "ci": pd.Categorical([30, 10, 20, 10] * (n // 4)),
        "cf": pd.Categorical([1.5, 2.0, 2.5] * (n // 3)),
        "g": np.repeat([f"g{i}" for i in range(8)], n // 8),
        "one": pd.Categorical(["only"] * n),
    })


DATA = {"Orthodont": lambda: lc.load_dataset("Orthodont"), "cake": lambda: lc.load_dataset("cake"),
        "sleepstudy": lambda: lc.load_dataset("sleepstudy"), "synthetic": _synthetic}

DIRECT = [
    ("Orthodont", "age * Sex"), ("Orthodont", "age"), ("Orthodont", "Sex + age + Sex:age"),
    ("cake", "recipe * temperature"), ("cake", "recipe * temp"), ("cake", "0 + temp"),
    ("sleepstudy", "Days"), ("sleepstudy", "1 + Days"),
    ("synthetic", "f"),  # a categorical with an unused level: formulaic keeps its (zero) column
    ("synthetic", "x * b"), ("synthetic", "b * f"),  # a bool column is numeric (0/1)
    ("synthetic", "s * x"), ("synthetic", "t + x"), ("synthetic", "x * t * s"),  # object and str text columns
    ("synthetic", "o + x"), ("synthetic", "ci * x"), ("synthetic", "cf"),  # ordered, integer, float levels
    ("synthetic", "x * z"), ("synthetic", "x:z"), ("synthetic", "0 + x + z"), ("synthetic", "z:x + x"),
    ("synthetic", "s:f + f + s"), ("synthetic", "x * f + s"), ("synthetic", "f * x + f:x"),
    ("synthetic", "x * one + s"),  # a factor with one level has no columns and no term
]

FALLBACK = [
    ("synthetic", "x:f"), ("synthetic", "x + x:f"), ("synthetic", "f:x + f"),  # f coded by all its levels
    ("synthetic", "0 + f"), ("synthetic", "0 + x * f"),  # no intercept: full dummy coding
    ("synthetic", "I(x^2) + f"), ("synthetic", "log(z + 1) * s"), ("synthetic", "x + f - 1"),
    ("synthetic", "(x + f)^2"), ("synthetic", "f:s + s:f + f + s"), ("synthetic", "x + 1"),
    ("synthetic", "C(z) + x"), ("synthetic", "x * s + t:s"),
    ("synthetic", "x + b:f"),  # bool is numeric: f is coded by all its levels
]


def assert_same_design(fast, ref):
    np.testing.assert_array_equal(fast.matrix, ref.matrix)
    assert fast.names == ref.names
    assert fast.term_columns == ref.term_columns
    assert fast.term_variables == ref.term_variables
    assert fast.categorical == ref.categorical


@pytest.mark.parametrize("name, expr", DIRECT, ids=[f"{d}:{e}" for d, e in DIRECT])
def test_direct_design_equals_formulaic(name, expr):
    frame = DATA[name]()
    fast = build_design(expr, frame, "test")
    assert fast.direct
    assert_same_design(fast, formulaic_design(expr, frame, "test"))


@pytest.mark.parametrize("name, expr", FALLBACK, ids=[f"{d}:{e}" for d, e in FALLBACK])
def test_other_formulas_fall_back_to_formulaic(name, expr):
    frame = DATA[name]()
    design = build_design(expr, frame, "test")
    assert not design.direct
    assert_same_design(design, formulaic_design(expr, frame, "test"))


def test_orthodont_design_by_hand():
    data = lc.load_dataset("Orthodont")
    design = build_design("age * Sex", data, "test")
    female = (data["Sex"] == "Female").to_numpy(dtype=float)
    age = data["age"].to_numpy(dtype=float)
    np.testing.assert_array_equal(design.matrix, np.column_stack([np.ones(len(data)), age, female, age * female]))
    assert design.names == ("(Intercept)", "age", "SexFemale", "age:SexFemale")
    assert design.term_columns == (("1", (0,)), ("age", (1,)), ("Sex", (2,)), ("age:Sex", (3,)))


def test_formulaic_spec_of_a_direct_design_is_built_once_on_demand():
    design = build_design("age * Sex", lc.load_dataset("Orthodont"), "test")
    assert "model_spec" not in design.__dict__
    spec = design.model_spec
    assert design.model_spec is spec
    assert [str(t) for t in spec.term_slices] == ["1", "age", "Sex", "age:Sex"]


MODELS = [
    ("Orthodont", "distance ~ age * Sex + (age | Subject)"),
    ("cake", "angle ~ recipe * temperature + (1 | recipe:replicate)"),
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
    ("synthetic", "y ~ x * s + b + t + (1 | g)"),
]


def _fit_both(name, formula, monkeypatch):
    data = DATA[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = lc.lmer(formula, data)
        with monkeypatch.context() as m:
            m.setattr(design_module, "direct_columns", lambda *args, **kwargs: None)
            slow = lc.lmer(formula, data)
    assert fast.spec.fixed.direct and not slow.spec.fixed.direct
    return data, fast, slow


def _newdata(data):
    """Half the rows, shuffled, with factors as text labels (not the fit's categoricals)."""
    new = data.sample(frac=0.5, random_state=3).copy()
    for c in new.columns:
        if isinstance(new[c].dtype, pd.CategoricalDtype):
            new[c] = new[c].astype(object)
    return new


@pytest.mark.parametrize("name, formula", MODELS, ids=[m[0] for m in MODELS])
def test_models_on_the_direct_design_equal_formulaic_ones(name, formula, monkeypatch):
    data, fast, slow = _fit_both(name, formula, monkeypatch)
    np.testing.assert_array_equal(fast.spec.X, slow.spec.X)
    assert fast.spec.fixed_names == slow.spec.fixed_names
    np.testing.assert_allclose(fast.theta, slow.theta, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fast.fixef, slow.fixef, rtol=1e-12)
    new = _newdata(data)
    for re in (True, False):
        predicted = fast.predict(new, re=re)
        assert np.isfinite(predicted).all()
        np.testing.assert_allclose(predicted, slow.predict(new, re=re), rtol=1e-12)
    np.testing.assert_allclose(fast.predict(data), fast.fitted(), rtol=1e-10)


@pytest.mark.parametrize("name, formula", MODELS, ids=[m[0] for m in MODELS])
def test_anova_on_the_direct_design_equals_formulaic(name, formula, monkeypatch):
    _, fast, slow = _fit_both(name, formula, monkeypatch)
    for kind in ("III", "II", "I"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours, ref = lc.anova(fast, type=kind), lc.anova(slow, type=kind)
        assert len(ours) == len(fast.spec.fixed.term_columns) - 1
        pd.testing.assert_frame_equal(ours, ref, rtol=1e-10)
    assert "model_spec" not in fast.spec.fixed.__dict__  # the tables need no formulaic spec


def test_orthodont_prediction_by_hand():
    data = lc.load_dataset("Orthodont")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lc.lmer("distance ~ age * Sex + (age | Subject)", data)
    new = pd.DataFrame({"age": [8.0, 14.0, 11.0], "Sex": ["Male", "Female", "Female"]})
    b = fit.fixef
    expected = [b["(Intercept)"] + 8 * b["age"],
                b["(Intercept)"] + b["SexFemale"] + 14 * (b["age"] + b["age:SexFemale"]),
                b["(Intercept)"] + b["SexFemale"] + 11 * (b["age"] + b["age:SexFemale"])]
    np.testing.assert_allclose(fit.predict(new, re=False), expected, rtol=1e-12)
