"""Single-fit ANOVA tables (type III, II, I; Satterthwaite and Kenward-Roger) against lmerTest.

The numbers in ``REF`` are lmerTest 3.1-3's ``anova(m, type = ..., ddf = ...)``
(R 4.2.2, lme4 1.1-31, pbkrtest 0.5.2) printed by ``tests/data/anova_reference.R``::

    Rscript tests/data/anova_reference.R lmmcompare/datasets/data > anova_reference.json

on the CSVs shipped with lmmcompare (factor levels in schema.json's order, so
cake's ``temperature`` is unordered; ``cake_ordered`` is lme4's own coding, an
ordered factor with polynomial contrasts).  Each row is ``(F value, NumDF,
DenDF, Pr(>F), Mean Sq)``; ``NA`` marks lmerTest's NA row of an aliased term.
``theta`` and ``criterion`` are lme4's.  The tables are compared at lme4's
theta, where lmerTest computed them: Kenward-Roger then matches to 1e-8
(the reference's 10 digits), while at our own optimum the df move with the
last digits of theta (Orthodont: lme4 stopped short of the optimum by 1.3e-8
relative).  Satterthwaite's df use numerical derivatives, as lmerTest's do,
and match to 1e-3.
"""
import functools
import warnings

import numpy as np
import pandas as pd
import pytest

import lmmcompare as lc
from lmmcompare.datasets import load_dataset
from lmmcompare.errors import ArgumentError
from lmmcompare.freq import fit_at_theta, make_devfun
from lmmcompare.freq.inference.anova_contrasts import (
    MissingCellsWarning,
    anova_contrasts,
)

NA = float("nan")

REF = {
    'orthodont': {
        "theta": [1.83408305610916, -0.0916952173565279, 0.102451399170076], "criterion": 432.581667064601,
        'III Satterthwaite': {
            'age': (88.03727924, 1, 25.0112893, 1.136472232e-09, 151.1269961),
            'Sex': (0.418570171, 1, 25.0077912, 0.5235459419, 0.7185280274),
            'age:Sex': (5.120840451, 1, 25.0112893, 0.03257492662, 8.790562832),
        },
        'III Kenward-Roger': {
            'age': (88.03727924, 1, 25, 1.141359864e-09, 151.1269961),
            'Sex': (0.418570171, 1, 25, 0.5235477651, 0.7185280274),
            'age:Sex': (5.120840451, 1, 25, 0.03257912289, 8.790562832),
        },
        'II Satterthwaite': {
            'age': (99.48864983, 1, 25.01128924, 3.360649717e-10, 170.7847053),
            'Sex': (0.418570171, 1, 25.0077912, 0.5235459419, 0.7185280274),
            'age:Sex': (5.120840451, 1, 25.0112893, 0.03257492662, 8.790562832),
        },
        'II Kenward-Roger': {
            'age': (99.48864983, 1, 25, 3.376569157e-10, 170.7847053),
            'Sex': (0.418570171, 1, 25, 0.5235477651, 0.7185280274),
            'age:Sex': (5.120840451, 1, 25, 0.03257912289, 8.790562832),
        },
        'I Satterthwaite': {
            'age': (99.48864983, 1, 25.01128924, 3.360649717e-10, 170.7847053),
            'Sex': (9.292536391, 1, 25.00254528, 0.005373745065, 15.95180045),
            'age:Sex': (5.120840451, 1, 25.0112893, 0.03257492662, 8.790562832),
        },
        'I Kenward-Roger': {
            'age': (99.48864983, 1, 25, 3.376569157e-10, 170.7847053),
            'Sex': (9.292536391, 1, 25, 0.005374124401, 15.95180045),
            'age:Sex': (5.120840451, 1, 25, 0.03257912289, 8.790562832),
        },
    },
    'cake': {
        "theta": [1.42959163360359], "criterion": 1633.24618147233,
        'III Satterthwaite': {
            'recipe': (0.2487887725, 2, 41.99999981, 0.7808856157, 5.092929947),
            'temperature': (20.51986061, 5, 210.0000001, 1.153161811e-16, 420.0600034),
            'recipe:temperature': (1.006197985, 10, 210.0000001, 0.4392694367, 20.59777778),
        },
        'III Kenward-Roger': {
            'recipe': (0.2487887725, 2, 42, 0.7808856157, 5.092929947),
            'temperature': (20.51986061, 5, 210, 1.153161813e-16, 420.0600034),
            'recipe:temperature': (1.006197985, 10, 210, 0.4392694367, 20.59777778),
        },
        'II Satterthwaite': {
            'recipe': (0.2487887863, 2, 41.99999981, 0.780885605, 5.09293023),
            'temperature': (20.51986044, 5, 210.0000001, 1.153162121e-16, 420.06),
            'recipe:temperature': (1.006197985, 10, 210.0000001, 0.4392694367, 20.59777778),
        },
        'II Kenward-Roger': {
            'recipe': (0.2487887863, 2, 42, 0.780885605, 5.09293023),
            'temperature': (20.51986044, 5, 210, 1.153162123e-16, 420.06),
            'recipe:temperature': (1.006197985, 10, 210, 0.4392694367, 20.59777778),
        },
        'I Satterthwaite': {
            'recipe': (0.2487887863, 2, 41.99999981, 0.780885605, 5.09293023),
            'temperature': (20.51986044, 5, 210.0000001, 1.153162121e-16, 420.06),
            'recipe:temperature': (1.006197985, 10, 210.0000001, 0.4392694367, 20.59777778),
        },
        'I Kenward-Roger': {
            'recipe': (0.2487887863, 2, 42, 0.780885605, 5.09293023),
            'temperature': (20.51986044, 5, 210, 1.153162123e-16, 420.06),
            'recipe:temperature': (1.006197985, 10, 210, 0.4392694367, 20.59777778),
        },
    },
    'cake_unbalanced': {
        "theta": [1.48769415725494], "criterion": 1552.713871555,
        'III Satterthwaite': {
            'recipe': (0.2889551818, 2, 40.74422044, 0.7505679402, 5.561199789),
            'temperature': (23.03646381, 5, 199.8945285, 3.080208992e-18, 443.3572601),
            'recipe:temperature': (1.155735815, 10, 199.8899726, 0.3229459379, 22.24316495),
        },
        'III Kenward-Roger': {
            'recipe': (0.2889515334, 2, 41.00096628, 0.7505611878, 5.561129951),
            'temperature': (23.03364919, 5, 200.1517537, 3.060375797e-18, 443.3030972),
            'recipe:temperature': (1.155707527, 10, 200.1473977, 0.3229568701, 22.24262134),
        },
        'II Satterthwaite': {
            'recipe': (0.2816861588, 2, 40.73299378, 0.755968209, 5.421300969),
            'temperature': (23.12197076, 5, 199.8844487, 2.700195562e-18, 445.0029174),
            'recipe:temperature': (1.155735815, 10, 199.8899726, 0.3229459379, 22.24316495),
        },
        'II Kenward-Roger': {
            'recipe': (0.2816830263, 2, 40.98957009, 0.755961494, 5.421240996),
            'temperature': (23.11932888, 5, 200.1416631, 2.68191097e-18, 444.9520782),
            'recipe:temperature': (1.155707527, 10, 200.1473977, 0.3229568701, 22.24262134),
        },
        'I Satterthwaite': {
            'recipe': (0.3421643372, 2, 40.72691926, 0.7122534449, 6.585257367),
            'temperature': (23.12197076, 5, 199.8844487, 2.700195562e-18, 445.0029174),
            'recipe:temperature': (1.155735815, 10, 199.8902712, 0.3229459275, 22.24316495),
        },
        'I Kenward-Roger': {
            'recipe': (0.3421607088, 2, 40.98346972, 0.7122434508, 6.585187882),
            'temperature': (23.11932888, 5, 200.1416631, 2.68191097e-18, 444.9520782),
            'recipe:temperature': (1.155707527, 10, 200.1473977, 0.3229568701, 22.24262134),
        },
    },
    'cake_nested': {
        "theta": [1.4876941572664], "criterion": 1552.713871555,
        'III Satterthwaite': {
            'recipe': (0.1312555343, 2, 74.66055187, 0.8771955613, 2.526129641),
            'recipe:temperature': (8.496609941, 15, 199.8855897, 6.362080873e-15, 163.5248246),
        },
        'III Kenward-Roger': {
            'recipe': (0.1312442971, 2, 75.06742202, 0.8772042922, 2.525926677),
            'recipe:temperature': (8.495959879, 15, 200.1431783, 6.313126843e-15, 163.5123224),
        },
        'II Satterthwaite': {
            'recipe': (0.1312555343, 2, 74.66055187, 0.8771955613, 2.526129641),
            'recipe:temperature': (8.496609941, 15, 199.8855897, 6.362080873e-15, 163.5248246),
        },
        'II Kenward-Roger': {
            'recipe': (0.1312442971, 2, 75.06742202, 0.8772042922, 2.525926677),
            'recipe:temperature': (8.495959879, 15, 200.1431783, 6.313126843e-15, 163.5123224),
        },
        'I Satterthwaite': {
            'recipe': (0.3421643372, 2, 40.72691926, 0.7122534449, 6.585257367),
            'recipe:temperature': (8.496609941, 15, 199.8858548, 6.362012664e-15, 163.5248246),
        },
        'I Kenward-Roger': {
            'recipe': (0.3421607088, 2, 40.98346972, 0.7122434508, 6.585187882),
            'recipe:temperature': (8.495959879, 15, 200.1431783, 6.313126843e-15, 163.5123224),
        },
    },
    'cake_missing_cell': {
        "theta": [1.43423729505791], "criterion": 1532.86093488455,
        'III Satterthwaite': {
            'recipe': (0.3175948533, 2, 42.14553016, 0.7296244414, 6.140647641),
            'temperature': (18.77077307, 5, 195.9380246, 3.154422323e-15, 362.9300103),
            'recipe:temperature': (1.058007886, 9, 195.9380246, 0.3957128164, 20.45641975),
        },
        'III Kenward-Roger': {
            'recipe': (0.3175943536, 2, 42.20906407, 0.729622224, 6.140647641),
            'temperature': (18.77077307, 5, 196.0020558, 3.148095233e-15, 362.9300103),
            'recipe:temperature': (1.058007886, 9, 196.0020558, 0.3957111701, 20.45641975),
        },
        'II Satterthwaite': {
            'recipe': (0.3175948368, 2, 42.14624233, 0.7296244243, 6.140647323),
            'temperature': (18.77077254, 5, 195.9380246, 3.154425082e-15, 362.93),
            'recipe:temperature': (1.058007886, 9, 195.9380246, 0.3957128164, 20.45641975),
        },
        'II Kenward-Roger': {
            'recipe': (0.3175943372, 2, 42.20906407, 0.7296222359, 6.140647323),
            'temperature': (18.77077254, 5, 196.0020558, 3.148097987e-15, 362.93),
            'recipe:temperature': (1.058007886, 9, 196.0020558, 0.3957111701, 20.45641975),
        },
        'I Satterthwaite': {
            'recipe': (0.4889320562, 2, 41.94001947, 0.6167329193, 9.453426107),
            'temperature': (18.77077254, 5, 195.9380246, 3.154425082e-15, 362.93),
            'recipe:temperature': (1.058007886, 9, 195.9380246, 0.3957128164, 20.45641975),
        },
        'I Kenward-Roger': {
            'recipe': (0.4889317109, 2, 42.00344442, 0.61672798, 9.453426107),
            'temperature': (18.77077254, 5, 196.0020558, 3.148097987e-15, 362.93),
            'recipe:temperature': (1.058007886, 9, 196.0020558, 0.3957111701, 20.45641975),
        },
    },
    'cake_temp': {
        "theta": [1.41413893247999], "criterion": 1703.26748007549,
        'III Satterthwaite': {
            'recipe': (0.0956779646, 2, 254.0157694, 0.9087893549, 1.998341959),
            'temp': (94.16323223, 1, 222.0000048, 8.74683058e-19, 1966.705069),
            'recipe:temp': (0.04169244595, 2, 222.0000048, 0.9591722386, 0.8707936508),
        },
        'III Kenward-Roger': {
            'recipe': (0.0956779646, 2, 254.0157632, 0.9087893549, 1.998341959),
            'temp': (94.16323223, 1, 222, 8.746831779e-19, 1966.705069),
            'recipe:temp': (0.04169244595, 2, 222, 0.9591722386, 0.8707936508),
        },
        'II Satterthwaite': {
            'recipe': (0.0956779646, 2, 254.0157694, 0.9087893549, 1.998341959),
            'temp': (94.16323275, 1, 222.0000048, 8.746828984e-19, 1966.705079),
            'recipe:temp': (0.04169244595, 2, 222.0000048, 0.9591722386, 0.8707936508),
        },
        'II Kenward-Roger': {
            'recipe': (0.0956779646, 2, 254.0157632, 0.9087893549, 1.998341959),
            'temp': (94.16323275, 1, 222, 8.746830183e-19, 1966.705079),
            'recipe:temp': (0.04169244595, 2, 222, 0.9591722386, 0.8707936508),
        },
        'I Satterthwaite': {
            'recipe': (0.2487887361, 2, 41.99998742, 0.7808856441, 5.19623272),
            'temp': (94.16323275, 1, 222.0000048, 8.746828984e-19, 1966.705079),
            'recipe:temp': (0.04169244595, 2, 222.0000048, 0.9591722386, 0.8707936508),
        },
        'I Kenward-Roger': {
            'recipe': (0.2487887361, 2, 42, 0.7808856437, 5.19623272),
            'temp': (94.16323275, 1, 222, 8.746830183e-19, 1966.705079),
            'recipe:temp': (0.04169244595, 2, 222, 0.9591722386, 0.8707936508),
        },
    },
    'sleepstudy': {
        "theta": [0.966741773967412, 0.0151690588960361, 0.230909953207795], "criterion": 1743.62827195995,
        'III Satterthwaite': {
            'Days': (45.85296156, 1, 16.99998373, 3.26382447e-06, 30030.93902),
        },
        'III Kenward-Roger': {
            'Days': (45.85296156, 1, 17, 3.263808018e-06, 30030.93902),
        },
        'II Satterthwaite': {
            'Days': (45.85296156, 1, 16.99998373, 3.26382447e-06, 30030.93902),
        },
        'II Kenward-Roger': {
            'Days': (45.85296156, 1, 17, 3.263808018e-06, 30030.93902),
        },
        'I Satterthwaite': {
            'Days': (45.85296156, 1, 16.99998373, 3.26382447e-06, 30030.93902),
        },
        'I Kenward-Roger': {
            'Days': (45.85296156, 1, 17, 3.263808018e-06, 30030.93902),
        },
    },
    'sleepstudy_aliased': {
        "theta": [0.966741773967412, 0.0151690588960361, 0.230909953207795], "criterion": 1743.62827195995,
        'III Satterthwaite': {
            'Days': (45.85296156, 1, 16.99998373, 3.26382447e-06, 30030.93902),
            'Days2': (NA, NA, NA, NA, NA),
        },
        'III Kenward-Roger': {
            'Days': (45.85296156, 1, 17, 3.263808018e-06, 30030.93902),
            'Days2': (NA, NA, NA, NA, NA),
        },
        'II Satterthwaite': {
            'Days': (45.85296156, 1, 16.99998373, 3.26382447e-06, 30030.93902),
            'Days2': (NA, NA, NA, NA, NA),
        },
        'II Kenward-Roger': {
            'Days': (45.85296156, 1, 17, 3.263808018e-06, 30030.93902),
            'Days2': (NA, NA, NA, NA, NA),
        },
        'I Satterthwaite': {
            'Days': (45.85296156, 1, 16.99998373, 3.26382447e-06, 30030.93902),
            'Days2': (NA, NA, NA, NA, NA),
        },
        'I Kenward-Roger': {
            'Days': (45.85296156, 1, 17, 3.263808018e-06, 30030.93902),
            'Days2': (NA, NA, NA, NA, NA),
        },
    },
    'orthodont_centred': {
        "theta": [1.39715252441339, 0.0284185906377759, 0.134698002780731], "criterion": 432.581661502719,
        'III Satterthwaite': {
            'age_c': (87.99892565, 1, 25.00000529, 1.146259685e-09, 151.0242749),
            'Sex': (9.292103705, 1, 25.00001868, 0.005375042785, 15.94716315),
            'age_c:Sex': (5.118609548, 1, 25.00000529, 0.03261368163, 8.784587879),
        },
        'III Kenward-Roger': {
            'age_c': (87.99892565, 1, 25, 1.146261991e-09, 151.0242749),
            'Sex': (9.292103705, 1, 25, 0.00537504557, 15.94716315),
            'age_c:Sex': (5.118609548, 1, 25, 0.03261368359, 8.784587879),
        },
    },
    'cake_ordered': {
        'III Satterthwaite': {
            'recipe': (0.2487888123, 2, 41.99999981, 0.7808855849, 5.092930763),
            'temperature': (20.51986061, 5, 210.0000001, 1.153161811e-16, 420.0600034),
            'recipe:temperature': (1.006197985, 10, 210.0000001, 0.4392694367, 20.59777778),
        },
        'III Kenward-Roger': {
            'recipe': (0.2487888123, 2, 42, 0.7808855849, 5.092930763),
            'temperature': (20.51986061, 5, 210, 1.153161813e-16, 420.0600034),
            'recipe:temperature': (1.006197985, 10, 210, 0.4392694367, 20.59777778),
        },
    },
}


CAKE = "angle ~ recipe * temperature + (1 | recipe:replicate)"
FORMULAS = {
    "orthodont": "distance ~ age * Sex + (age | Subject)",
    "orthodont_centred": "distance ~ age_c * Sex + (age_c | Subject)",
    "cake": CAKE, "cake_unbalanced": CAKE, "cake_missing_cell": CAKE,
    "cake_nested": "angle ~ recipe + recipe:temperature + (1 | recipe:replicate)",
    "cake_temp": "angle ~ recipe * temp + (1 | recipe:replicate)",
    "sleepstudy": "Reaction ~ Days + (Days | Subject)",
    "sleepstudy_aliased": "Reaction ~ Days + Days2 + (Days | Subject)",
}
RTOL = {"Satterthwaite": 1e-3, "Kenward-Roger": 1e-6}


def dataset(case):
    """The data of each case, made as anova_reference.R makes it."""
    if case.startswith("orthodont"):
        o = load_dataset("Orthodont")
        return o if case == "orthodont" else o.assign(
            Sex=o["Sex"].cat.reorder_categories(["Female", "Male"]), age_c=o["age"] - 11)
    if case.startswith("sleepstudy"):
        s = load_dataset("sleepstudy")
        return s.assign(Days2=2 * s["Days"]) if case == "sleepstudy_aliased" else s
    cake = load_dataset("cake")
    rec, rep, tmp = cake["recipe"].astype(str), cake["replicate"].astype(str), cake["temperature"].astype(str)
    if case == "cake_missing_cell":
        return cake[~((rec == "C") & (tmp == "225"))].reset_index(drop=True)
    if case in ("cake_unbalanced", "cake_nested"):
        drop = (((rec == "A") & rep.isin(["1", "2"]) & tmp.isin(["175", "185"]))
                | ((rec == "B") & (rep == "3") & (tmp == "225")) | ((rec == "C") & (rep == "4")))
        return cake[~drop].reset_index(drop=True)
    return cake


@functools.cache
def fitted(case, formula=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lc.lmer(formula or FORMULAS[case], dataset(case))
    ref = REF.get(case, {})
    if formula is None and "criterion" in ref and fit.objective < ref["criterion"] * (1 - 1e-9):
        fit = fit_at_theta(make_devfun(fit.spec, True), ref["theta"])  # lme4 stopped short: use its theta
    return fit


@functools.cache
def at_lme4_theta(case, theta_of=None):
    """Our model of ``case`` at lme4's theta (of the case ``theta_of``, by default the same)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = lc.ModelSpec.from_formula(FORMULAS[case], dataset(case))
    return fit_at_theta(make_devfun(spec, True), REF[theta_of or case]["theta"])


def table(fit, type_, ddf):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingCellsWarning)
        return lc.anova(fit, type=type_, ddf=ddf.lower())


def assert_matches(ours, ref, rtol):
    assert list(ours.index) == list(ref)
    expected = pd.DataFrame(ref, index=["F value", "NumDF", "DenDF", "Pr(>F)", "Mean Sq"]).T
    expected["Sum Sq"] = expected["Mean Sq"] * expected["NumDF"]
    for col in expected.columns:
        np.testing.assert_allclose(ours[col].to_numpy(float), expected[col].to_numpy(float), rtol=rtol,
                                   err_msg=col)  # NaN rows must be NaN in both


CASES = [(case, key) for case in FORMULAS if case != "orthodont_centred" for key in REF[case]
         if key not in ("theta", "criterion")]


@pytest.mark.parametrize("case,key", CASES, ids=[f"{c}-{k.replace(' ', '-')}" for c, k in CASES])
def test_anova_matches_lmertest(case, key):
    type_, ddf = key.split()
    assert_matches(table(at_lme4_theta(case), type_, ddf), REF[case][key], RTOL[ddf])


def test_columns_heading_and_aliased_term_last():
    ours = table(fitted("sleepstudy_aliased"), "III", "Satterthwaite")
    assert list(ours.columns) == ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
    assert ours.attrs["heading"] == "Type III Analysis of Variance Table with Satterthwaite's method"
    assert list(ours.index) == ["Days", "Days2"] and ours.loc["Days2"].isna().all()
    assert ours.attrs["hypotheses"]["Days2"].shape == (0, 2)


def test_missing_cell_warns_as_lmertest_messages():
    with pytest.warns(MissingCellsWarning, match="recipe\\[C\\]:temperature\\[225\\]"):
        lc.anova(fitted("cake_missing_cell"))


@pytest.mark.parametrize("formula,data", [
    ("angle ~ recipe * temperature + (1 | recipe:replicate)", "relevelled"),
    ("angle ~ C(recipe, contr.sum()) * C(temperature, contr.sum()) + (1 | recipe:replicate)", None),
    ("angle ~ C(recipe, contr.helmert()) * C(temperature, contr.poly()) + (1 | recipe:replicate)", None),
], ids=["other-reference-levels", "sum", "helmert-poly"])
def test_tables_do_not_depend_on_the_contrast_coding(formula, data):
    """Type III (and II, I) test the same hypotheses under any coding of the factors (unbalanced cake)."""
    base = fitted("cake_unbalanced")
    d = dataset("cake_unbalanced")
    if data == "relevelled":
        d = d.assign(recipe=d["recipe"].cat.reorder_categories(["C", "B", "A"]),
                     temperature=d["temperature"].cat.reorder_categories(list(d["temperature"].cat.categories[::-1])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = lc.lmer(formula, d)
    for type_ in ("III", "II", "I"):
        for ddf in ("Satterthwaite", "Kenward-Roger"):
            a, b = table(base, type_, ddf), table(other, type_, ddf)
            for col in ("F value", "NumDF", "Sum Sq"):
                np.testing.assert_allclose(b[col], a[col], rtol=1e-8, err_msg=f"{type_} {ddf} {col}")
            # lmerTest's multi-df Satterthwaite df depend (slightly) on the basis of the hypothesis
            rtol = 1e-4 if ddf == "Satterthwaite" else 1e-8
            np.testing.assert_allclose(b["DenDF"], a["DenDF"], rtol=rtol)
            np.testing.assert_allclose(b["Pr(>F)"], a["Pr(>F)"], rtol=10 * rtol)


def test_type3_treatment_coding_matches_lmertest_polynomial_coding():
    """lme4's cake has an ordered temperature (contr.poly); our treatment coding gives lmerTest's table."""
    for ddf in ("Satterthwaite", "Kenward-Roger"):
        assert_matches(table(at_lme4_theta("cake"), "III", ddf), REF["cake_ordered"][f"III {ddf}"], RTOL[ddf])


def test_reference_level_of_sex_does_not_change_the_orthodont_tables():
    spec = lc.ModelSpec.from_formula("distance ~ age * Sex + (age | Subject)", dataset("orthodont_centred"))
    assert spec.fixed_names == ["(Intercept)", "age", "SexMale", "age:SexMale"]  # Female first
    fit = fit_at_theta(make_devfun(spec, True), REF["orthodont"]["theta"])  # where lme4 stopped
    for key in ("III Satterthwaite", "II Satterthwaite", "I Satterthwaite"):
        assert_matches(table(fit, key.split()[0], "Satterthwaite"), REF["orthodont"][key], 1e-3)


def test_type3_depends_on_the_origin_of_a_covariate_as_in_lmertest():
    """Sex is not contained in age:Sex (a numeric variable differs): its type III test is at age 0."""
    for ddf in ("Satterthwaite", "Kenward-Roger"):
        assert_matches(table(at_lme4_theta("orthodont_centred"), "III", ddf), REF["orthodont_centred"][f"III {ddf}"],
                       RTOL[ddf])
    fit = fitted("orthodont_centred")
    uncentred = table(fitted("orthodont"), "III", "Satterthwaite")
    centred = table(fit, "III", "Satterthwaite")
    assert centred.loc["Sex", "F value"] > 20 * uncentred.loc["Sex", "F value"]
    assert centred.loc["age_c:Sex", "F value"] == pytest.approx(uncentred.loc["age:Sex", "F value"], rel=1e-3)


def test_hypotheses_give_the_same_test_through_contrast():
    fit = fitted("cake_unbalanced")
    for ddf in ("satterthwaite", "kenward-roger"):
        tab = lc.anova(fit, ddf=ddf)
        L = tab.attrs["hypotheses"]["recipe"]
        assert L.shape == (2, 18) and list(L.columns) == fit.spec.fixed_names
        one = fit.contrast(L.to_numpy(), ddf=ddf)
        for col in ("F value", "DenDF", "Pr(>F)"):
            assert one[col].iloc[0] == pytest.approx(tab.loc["recipe", col], rel=1e-10)


def test_type3_of_numeric_terms_tests_each_coefficient():
    o = load_dataset("Orthodont")
    fit = lc.lmer("distance ~ age + age2 + (1 | Subject)", o.assign(age2=o["age"] ** 2))
    coefs = fit.coef_table()
    tab = lc.anova(fit)
    np.testing.assert_allclose(tab["F value"], coefs.loc[["age", "age2"], "t"] ** 2, rtol=1e-10)
    np.testing.assert_allclose(tab["DenDF"], coefs.loc[["age", "age2"], "df"], rtol=1e-8)
    assert lc.anova(fit, type="I").loc["age", "F value"] != pytest.approx(tab.loc["age", "F value"], rel=1e-3)
    L = anova_contrasts(fit.spec, "III")
    np.testing.assert_array_equal(L["age"], [[0.0, 1.0, 0.0]])


def test_intercept_only_model_has_an_empty_table():
    tab = lc.anova(lc.lmer("Yield ~ 1 + (1 | Batch)", "Dyestuff"))
    assert tab.shape == (0, 6)


def test_type_argument():
    fit = fitted("orthodont")
    base = lc.anova(fit)
    for alias in ("3", 3, "III"):
        pd.testing.assert_frame_equal(lc.anova(fit, type=alias), base)
    pd.testing.assert_frame_equal(lc.anova(fit, type=1), lc.anova(fit, type="I"))
    for bad in ("IV", "iii", True, None, 3.0):
        with pytest.raises(ArgumentError, match="type must be one of III, II, I"):
            lc.anova(fit, type=bad)
    with pytest.raises(ArgumentError, match="type must be one of"):
        lc.anova(fit, fit, type="IV")
    with pytest.raises(ArgumentError, match="ddf must be one of"):
        lc.anova(fit, ddf="KR")
