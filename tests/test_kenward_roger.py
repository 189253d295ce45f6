"""Kenward-Roger without n x n matrices (lmmcompare.freq.inference.kenward_roger).

Checked three ways: against pbkrtest's own dense formulas written out here with
n x n matrices (small models, any theta and sigma, both the sparse and the dense
path); against pbkrtest 0.5.2 / lmerTest 3.1-3 on nlme's MathAchieve (7,185 rows,
numbers and data written by tests/data/kr_reference.R, evaluated at lme4's theta);
and against the exact df and se of a balanced nested design too large for n x n.
"""
import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import lmmcompare as lc
from lmmcompare.errors import ArgumentError
from lmmcompare.freq import fit_at_theta, make_devfun
from lmmcompare.freq.inference import KenwardRoger, kenward_roger, kenward_roger_vcov
from lmmcompare.freq.inference.kenward_roger import RefitREMLWarning
from lmmcompare.freq.inference.marginal_inverse import marginal_inverse
from lmmcompare.core.relcovar import theta_to_T

DATA = pathlib.Path(__file__).parent / "data"
KR_REFERENCE = json.loads((DATA / "kr_reference.json").read_text())
RTOL_PBKRTEST = 1e-8  # observed: 2e-14 (MathAchieve), 1.4e-12 (the lme4_reference cases)


def dense_kenward_roger(spec, theta, sigma, weights=None):
    """pbkrtest's vcovAdj_internal with n x n Sigma and G_r, for small models only; with prior
    ``weights`` the residual part of Sigma (and its G_r) is ``sigma^2 W^{-1}``."""
    n, X = spec.n, spec.X
    residual = np.eye(n) if weights is None else np.diag(1.0 / np.asarray(weights, float))
    G, Sigma = [], sigma**2 * residual
    Ts = theta_to_T(np.asarray(theta, float), [t.p for t in spec.terms])
    for term, T in zip(spec.terms, Ts):
        cov = sigma**2 * T @ T.T
        for b in range(term.p):
            for a in range(b, term.p):
                E = np.zeros((term.p, term.p))
                E[a, b] = E[b, a] = 1.0
                Gr = (term.Z @ sp.kron(sp.identity(term.n_levels), E) @ term.Z.T).toarray()
                G.append(Gr)
                Sigma += cov[a, b] * Gr
    G.append(residual)
    Sinv = np.linalg.inv(Sigma)
    Phi = np.linalg.inv(X.T @ Sinv @ X)
    H = [Gr @ Sinv for Gr in G]
    O = [Hr @ X for Hr in H]
    k = len(G)
    P = [-(Or.T @ Sinv @ X) for Or in O]
    Q = {(r, s): O[r].T @ Sinv @ O[s] for r in range(k) for s in range(r, k)}
    info = np.empty((k, k))
    for r in range(k):
        for s in range(r, k):
            info[r, s] = info[s, r] = (np.sum(H[r].T * H[s]) - 2 * np.sum(Phi * Q[(r, s)])
                                       + np.sum((Phi @ P[r]) * (P[s] @ Phi)))
    W = 2 * np.linalg.inv(info)
    U = sum(W[r, s] * (Q[(r, s)] - P[r] @ Phi @ P[s]) for r in range(k) for s in range(r + 1, k))
    U = U + U.T + sum(W[r, r] * (Q[(r, r)] - P[r] @ Phi @ P[r]) for r in range(k))
    return Phi, Phi + 2 * Phi @ U @ Phi, np.array(P), W


def data_for(name):
    if name == "orthodont_centred":
        o = lc.load_dataset("Orthodont")
        return o.assign(age_c=o["age"] - 11)
    return crossed_slopes() if name is None else name


def crossed_slopes():
    rng = np.random.default_rng(7)
    a, b, x = rng.integers(0, 12, 150), rng.integers(0, 5, 150), rng.standard_normal(150)
    y = 1 + x + rng.standard_normal(12)[a] * (1 + 0.5 * x) + rng.standard_normal(5)[b] + rng.standard_normal(150)
    return pd.DataFrame({"y": y, "x": x, "a": pd.Categorical(a), "b": pd.Categorical(b)})


# (formula, data, theta, sigma): theta and sigma away from any optimum, and on the boundary
SMALL = {
    "slopes": ("Reaction ~ Days + (Days | Subject)", "sleepstudy", [0.9, -0.2, 0.3], 24.0),
    "uncorrelated": ("Reaction ~ Days + (Days || Subject)", "sleepstudy", [1.1, 0.2], 26.0),
    "crossed": ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", [1.2, 3.0], 0.6),
    "nested": ("strength ~ 1 + (1 | batch/cask)", "Pastes", [2.0, 1.2], 0.9),
    "factor_fixed": ("angle ~ recipe * temp + (1 | recipe:replicate)", "cake", [1.3], 4.5),
    # centred: with age^2 up to 196 the information of the six components has a condition
    # number near 1e10 and both computations differ from exact arithmetic in the 10th digit
    "three_by_three": ("distance ~ age * Sex + (age_c + I(age_c^2) | Subject)", "orthodont_centred",
                       [2.0, -0.3, 0.1, 0.2, 0.05, 0.1], 1.3),
    "crossed_slopes": ("y ~ x + (x | a) + (1 | b)", None, [0.8, 0.3, 0.4, 0.6], 1.1),
    "singular": ("Yield ~ 1 + (1 | Batch)", "Dyestuff2", [0.0], 3.7),
}


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
@pytest.mark.parametrize("case", list(SMALL))
def test_woodbury_path_equals_the_dense_n_by_n_formulas(case, dense):
    formula, data, theta, sigma = SMALL[case]
    spec = lc.ModelSpec.from_formula(formula, data_for(data))
    Phi, PhiA, P, W = dense_kenward_roger(spec, theta, sigma)
    kr = kenward_roger(spec, theta, sigma, dense=dense)
    for ours, brute in [(kr.vcov, Phi), (kr.vcov_adjusted, PhiA), (kr.W, W)] + list(zip(kr.P, P)):
        assert np.max(np.abs(ours - brute)) <= 1e-10 * np.max(np.abs(brute))  # normwise
    brute_force = KenwardRoger(vcov=Phi, vcov_adjusted=PhiA, P=P, W=W)
    for L in list(np.eye(spec.p)) + ([np.eye(spec.p)[:2]] if spec.p > 1 else []):
        assert kr.df(L) == pytest.approx(brute_force.df(L), rel=1e-10)
        assert kr.df_scaling(L)[1] == pytest.approx(brute_force.df_scaling(L)[1], rel=1e-10)


def test_sparse_and_dense_products_agree():
    """Z'SZ, Z'SX, X'S^kX and tr(S^2) do not depend on how C^{-1} is held."""
    spec = lc.ModelSpec.from_formula(SMALL["crossed_slopes"][0], crossed_slopes())
    a = marginal_inverse(spec, SMALL["crossed_slopes"][2], 1.1, dense=False)
    b = marginal_inverse(spec, SMALL["crossed_slopes"][2], 1.1, dense=True)
    np.testing.assert_allclose(a.ZSZ.toarray(), b.ZSZ, atol=1e-13)
    np.testing.assert_allclose(a.ZS2X, b.ZS2X, atol=1e-13)
    for x, y in zip(a.XSX, b.XSX):
        np.testing.assert_allclose(x, y, rtol=1e-12)
    assert a.trace_S2 == pytest.approx(b.trace_S2, rel=1e-12)


def mathachieve():
    frame = pd.read_csv(DATA / "MathAchieve.csv.gz", dtype={"School": str})
    return frame.assign(School=frame["School"].astype("category"))


@pytest.fixture(scope="module")
def mathachieve_at_lme4_theta():
    case = KR_REFERENCE[0]
    spec = lc.ModelSpec.from_formula(case["formula"], mathachieve())
    return case, fit_at_theta(make_devfun(spec, True), case["theta"])


def test_mathachieve_matches_pbkrtest_and_lmertest(mathachieve_at_lme4_theta):
    """7,185 rows (above the old n = 6000 limit): se, df, the 2-row F-test and the anova row."""
    case, fit = mathachieve_at_lme4_theta
    assert fit.spec.n == case["nobs"] == 7185
    assert fit.sigma == pytest.approx(case["sigma"], rel=1e-12)
    table = fit.coef_table("kenward-roger")
    names = list(case["kr_df"])
    np.testing.assert_allclose(table.loc[names, "estimate"], list(case["fixef"].values()), rtol=1e-10)
    np.testing.assert_allclose(table.loc[names, "df"], list(case["kr_df"].values()), rtol=RTOL_PBKRTEST)
    np.testing.assert_allclose(table.loc[names, "df"], list(case["lmertest_kr_df"].values()), rtol=RTOL_PBKRTEST)
    np.testing.assert_allclose(table.loc[names, "se"], list(case["kr_se"].values()), rtol=RTOL_PBKRTEST)
    np.testing.assert_allclose(kenward_roger_vcov(fit)[0], case["kr_vcov"], rtol=RTOL_PBKRTEST)
    both = fit.contrast(case["contest_identity"]["L"], ddf="kenward-roger")
    for col, key in [("F value", "F"), ("DenDF", "DenDF"), ("Pr(>F)", "p")]:
        assert both[col].iloc[0] == pytest.approx(case["contest_identity"][key], rel=RTOL_PBKRTEST)
    assert both["DenDF"].iloc[0] == pytest.approx(case["krmodcomp_identity"]["ddf"], rel=RTOL_PBKRTEST)
    _, scaling = kenward_roger(fit.spec, fit.theta, fit.sigma).df_scaling(np.eye(2))
    assert scaling == pytest.approx(case["krmodcomp_identity"]["F_scaling"], rel=RTOL_PBKRTEST)
    terms = lc.anova(fit, ddf="kenward-roger")
    assert terms.loc["SES", "DenDF"] == pytest.approx(case["kr_df"]["SES"], rel=RTOL_PBKRTEST)
    assert terms.loc["SES", "F value"] == pytest.approx(table.loc["SES", "t"] ** 2, rel=1e-12)


def test_ml_fit_is_refitted_by_reml_as_pbkrtest_does():
    ml = lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy", reml=False)
    reml = lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    with pytest.warns(RefitREMLWarning, match="refitting the model by REML"):
        table = ml.coef_table("kenward-roger")
    pd.testing.assert_frame_equal(table, reml.coef_table("kenward-roger"), rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refitted once per fit: no second warning
        np.testing.assert_allclose(kenward_roger_vcov(ml)[0], kenward_roger_vcov(reml)[0], rtol=1e-12)
        one = ml.contrast([[0, 1]], ddf="kenward-roger")
        F = lc.anova(ml, ddf="kenward-roger")
    assert one["DenDF"].iloc[0] == pytest.approx(table.loc["Days", "df"], rel=1e-12)
    assert F.loc["Days", "Mean Sq"] == pytest.approx(table.loc["Days", "t"] ** 2 * reml.sigma**2, rel=1e-10)
    assert ml.coef_table("satterthwaite")["estimate"].tolist() == ml.beta.tolist()  # other methods stay ML


def test_balanced_nested_design_beyond_n_by_n_has_the_anova_df():
    """18,000 rows, 12,000 random effects in 3,000 independent blocks: for a balanced nested
    design Kenward-Roger gives the ANOVA df (schools - 1) and leaves the se unchanged, at any
    theta and sigma (Pastes: 8.99999999999937 in pbkrtest)."""
    rng = np.random.default_rng(3)
    schools, classes, pupils = 3000, 3, 2
    school = np.repeat(np.arange(schools), classes * pupils)
    cls = np.tile(np.repeat(np.arange(classes), pupils), schools)
    data = pd.DataFrame({"y": rng.standard_normal(school.size), "school": pd.Categorical(school),
                         "cls": pd.Categorical(cls)})
    spec = lc.ModelSpec.from_formula("y ~ 1 + (1 | school/cls)", data)
    assert spec.q == 12000
    for theta, sigma in [([1.0, 1.0], 1.0), ([0.3, 2.0], 0.7)]:
        kr = kenward_roger(spec, theta, sigma)
        assert kr.df([1.0]) == pytest.approx(schools - 1, rel=1e-9)
        np.testing.assert_allclose(kr.vcov_adjusted, kr.vcov, rtol=1e-9)


def test_too_large_a_connected_block_is_refused():
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"y": rng.standard_normal(20000), "a": pd.Categorical(rng.integers(0, 4500, 20000)),
                         "b": pd.Categorical(rng.integers(0, 4500, 20000))})
    spec = lc.ModelSpec.from_formula("y ~ 1 + (1 | a) + (1 | b)", data)
    with pytest.raises(ArgumentError, match="too large to hold dense; use ddf='satterthwaite'"):
        kenward_roger(spec, [1.0, 1.0], 1.0)
