"""Inference on models with structured covariances and sigma_by (issue 22).

Satterthwaite's df uses the model's free variance parameters (phi, sigma):
checked by invariance (``diag`` is ``||``; a two-column ``cs`` is ``us``) and, for
``sigma_by``, against a brute-force df from the dense-V REML likelihood in the
natural parameters (sd, sigma, ratio).  Kenward-Roger: a ``diag`` term equals
``||`` and ``cs(hom=True)`` equals ``(1 | g) + (1 | g:f)`` (the same span of
covariances); with ``sigma_by`` (a residual variance per level) it equals pbkrtest's
formulas written out with n x n matrices; terms nonlinear in their correlation raise.
"""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import lmmcompare as lc
from lmmcompare.errors import SingularFitWarning
from lmmcompare.freq import fit_at_theta, make_devfun
from structures_cases import FITS, dataset

REPEATED = FITS["rm_ar1_reml"]["data"]   # the repeated-measures data of the reference fits, by its name there


def orthodont():
    return lc.load_dataset("Orthodont")


def fit_at(formula, data, phi, reml=True):
    """The fit of ``formula`` at given parameters (no optimisation)."""
    return fit_at_theta(make_devfun(lc.ModelSpec.from_formula(formula, data), reml=reml), phi)


def assert_tables_equal(a, b, rtol):
    for column in ("estimate", "se", "df"):
        np.testing.assert_allclose(a[column].to_numpy(), b[column].to_numpy(), rtol=rtol, atol=0)


@pytest.mark.parametrize("formula, data", [("distance ~ age + {}(age | Subject)", "Orthodont"),
                                           ("Reaction ~ Days + {}(Days | Subject)", "sleepstudy")])
@pytest.mark.parametrize("reml", [True, False])
def test_diag_has_the_df_and_se_of_the_double_bar(formula, data, reml):
    """diag(x | g) at phi is (x || g) at theta = phi: the same likelihood, so the same Satterthwaite df."""
    diag = lc.lmer(formula.format("diag"), data, reml=reml)
    bars = fit_at(formula.format("").replace("(Days |", "(Days ||").replace("(age |", "(age ||"),
                  lc.load_dataset(data), diag.phi, reml)
    assert len(bars.spec.terms) == 2 and diag.phi.size == 2
    assert_tables_equal(diag.coef_table(), bars.coef_table(), rtol=1e-6)


def orthodont_centred():
    d = orthodont()
    return d.assign(age_c=d["age"] - 11)


@pytest.mark.parametrize("formula, data", [("Reaction ~ Days + {}(Days | Subject)", "sleepstudy"),
                                           ("distance ~ age * Sex + {}(age_c | Subject)", "orthodont_centred")])
def test_two_column_cs_has_the_df_of_us(formula, data):
    """A two-column cs term (s1, s2, rho) reparameterises us's theta: at the optimum the df agree."""
    data = orthodont_centred() if data == "orthodont_centred" else lc.load_dataset(data)
    cs = lc.lmer(formula.format("cs"), data)
    us = lc.lmer(formula.format(""), data)
    assert cs.objective == pytest.approx(us.objective, abs=1e-6)
    at_cs = fit_at(formula.format(""), data, cs.theta)   # us at the same point
    assert_tables_equal(cs.coef_table(), at_cs.coef_table(), rtol=1e-4)
    np.testing.assert_allclose(cs.coef_table()["df"], us.coef_table()["df"], rtol=1e-3)


def orthodont_subset():
    """11 subjects (6 boys, 5 girls): small enough for n x n matrices, unbalanced in Sex."""
    d = orthodont()
    keep = ["M01", "M02", "M03", "M04", "M05", "M06", "F01", "F02", "F03", "F04", "F05"]
    sub = d[d["Subject"].isin(keep)].copy()
    sub["Subject"] = sub["Subject"].cat.remove_unused_categories()
    return sub.reset_index(drop=True)


def brute_force_satterthwaite(X, y, V, psi):
    """Satterthwaite df of each coefficient from a dense ``V(psi)`` in the natural parameters psi:

        -2 l_R(psi) = log|V| + log|X'V^-1 X| + r'V^-1 r,
        df = 2 (l'Phi l)^2 / (g' A g),  A = 2 H^-1,  g_k = l' (d Phi / d psi_k) l,  Phi = (X'V^-1 X)^-1,

    H and d Phi / d psi by central differences (steps 1e-4 |psi|)."""
    def Phi(psi):
        return np.linalg.inv(X.T @ np.linalg.solve(V(psi), X))

    def reml(psi):
        Vi = np.linalg.inv(V(psi))
        beta = Phi(psi) @ X.T @ Vi @ y
        r = y - X @ beta
        return np.linalg.slogdet(V(psi))[1] - np.linalg.slogdet(Phi(psi))[1] + r @ Vi @ r

    k, h = psi.size, 1e-4 * np.abs(psi)
    E = np.diag(h)
    H = np.array([[(reml(psi + E[i] + E[j]) - reml(psi + E[i] - E[j]) - reml(psi - E[i] + E[j])
                    + reml(psi - E[i] - E[j])) / (4 * h[i] * h[j]) for j in range(k)] for i in range(k)])
    A = 2 * np.linalg.inv(H)
    dPhi = [(Phi(psi + E[i]) - Phi(psi - E[i])) / (2 * h[i]) for i in range(k)]
    out = []
    for l in np.eye(X.shape[1]):
        g = np.array([l @ D @ l for D in dPhi])
        out.append(2 * (l @ Phi(psi) @ l) ** 2 / (g @ A @ g))
    return np.array(out), Phi(psi)


def test_sigma_by_df_equals_the_brute_force_df():
    """y ~ age + (1 | Subject), a residual sd per Sex: psi = (sd, sigma, ratio)."""
    data = orthodont_subset()
    fit = lc.lmer("distance ~ age + (1 | Subject)", data, sigma_by="Sex")
    assert list(fit.variance_parameters().index) == ["sd_(Intercept)|Subject", "sigma", "sigma_ratio_Female|Sex"]
    Z = np.eye(data["Subject"].cat.categories.size)[data["Subject"].cat.codes]
    second = (data["Sex"] == fit.spec.sigma_by.levels[1]).to_numpy()

    def V(psi):
        sd, sigma, ratio = psi
        return sd**2 * Z @ Z.T + np.diag(np.where(second, sigma * ratio, sigma) ** 2)

    df, Phi = brute_force_satterthwaite(fit.spec.X, fit.spec.y, V, fit.variance_parameters().to_numpy())
    np.testing.assert_allclose(fit.vcov_beta, Phi, rtol=1e-10)
    np.testing.assert_allclose(fit.coef_table()["df"].to_numpy(), df, rtol=1e-4)


def test_ar1_with_sigma_by_df_equals_the_brute_force_df():
    """ar1(0 + occ | subj) with a residual sd per grp: psi = (sd, rho, sigma, ratio_B, ratio_C),
    V = [subj_i = subj_j] sd^2 rho^|occ_i - occ_j| + diag(sigma_i^2), on 12 subjects."""
    data = dataset(REPEATED)
    data = data[data["subj"].isin(data["subj"].cat.categories[:12])].reset_index(drop=True)
    data["subj"] = data["subj"].cat.remove_unused_categories()
    fit = lc.lmer("y ~ time + ar1(0 + occ | subj)", data, sigma_by="grp")
    psi = fit.variance_parameters()
    assert list(psi.index) == ["sd|subj", "rho|subj", "sigma", "sigma_ratio_B|grp", "sigma_ratio_C|grp"]
    same = data["subj"].cat.codes.to_numpy()[:, None] == data["subj"].cat.codes.to_numpy()[None, :]
    occ = data["occ"].cat.codes.to_numpy()
    lag = np.abs(occ[:, None] - occ[None, :])
    level = data["grp"].cat.codes.to_numpy()

    def V(psi):
        sd, rho, sigma, ratio_b, ratio_c = psi
        return same * sd**2 * rho**lag + np.diag((sigma * np.array([1.0, ratio_b, ratio_c])[level]) ** 2)

    df, Phi = brute_force_satterthwaite(fit.spec.X, fit.spec.y, V, psi.to_numpy())
    np.testing.assert_allclose(fit.vcov_beta, Phi, rtol=1e-9)
    np.testing.assert_allclose(fit.coef_table()["df"].to_numpy(), df, rtol=1e-4)


def test_kenward_roger_of_diag_equals_the_double_bar():
    diag = lc.lmer("distance ~ age + diag(age | Subject)", orthodont())
    bars = fit_at("distance ~ age + (age || Subject)", orthodont(), diag.phi)
    assert_tables_equal(diag.coef_table("kenward-roger"), bars.coef_table("kenward-roger"), rtol=1e-10)
    a, b = lc.freq.inference.kenward_roger_vcov(diag), lc.freq.inference.kenward_roger_vcov(bars)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-10)     # the adjusted covariance
    np.testing.assert_allclose(a[2], b[2], rtol=1e-8)      # W, the covariance of the components


def test_kenward_roger_of_homogeneous_cs_equals_nested_intercepts():
    """cs(0 + occ | subj, hom=True) spans {I, 11'} per subject, as (1 | subj) + (1 | subj:occ) does:
    at the same covariance (rho >= 0) KR's df and adjusted covariance agree."""
    data = dataset(REPEATED)
    cs = lc.lmer("y ~ time + cs(0 + occ | subj, hom=True)", data)
    s, rho = cs.phi
    assert rho > 0
    nested = fit_at("y ~ time + (1 | subj) + (1 | subj:occ)", data, [s * np.sqrt(1 - rho), s * np.sqrt(rho)])
    assert [t.group for t in nested.spec.terms] == ["subj:occ", "subj"]
    assert nested.objective == pytest.approx(cs.objective, abs=1e-8)
    assert_tables_equal(cs.coef_table("kenward-roger"), nested.coef_table("kenward-roger"), rtol=1e-8)
    L = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(cs.contrast(L, ddf="kenward-roger").to_numpy(float),
                               nested.contrast(L, ddf="kenward-roger").to_numpy(float), rtol=1e-8)


def test_emmeans_default_is_kenward_roger_for_every_structure():
    """emmeans' default df (pbkrtest's); a nonlinear ar1 term included (Kenward and Roger's R term,
    checked against the dense formula in test_kr_nonlinear.py), and with sigma_by."""
    from lmmcompare.freq.inference import kenward_roger_df

    ar1 = lc.lmer("y ~ time + grp + ar1(0 + occ | subj)", dataset(REPEATED))
    diag = lc.lmer("distance ~ age + Sex + diag(age | Subject)", orthodont(), sigma_by="Sex")
    for fit, factor in ((ar1, "grp"), (diag, "Sex")):
        means = lc.emmeans(fit, factor)
        assert means.ddf == "kenward-roger"
        np.testing.assert_allclose(means.table()["df"], [kenward_roger_df(fit, row[None, :]) for row in means.grid.L],
                                   rtol=1e-12)


def dense_kenward_roger(X, G, gamma):
    """pbkrtest's vcovAdj_internal with n x n matrices: ``Sigma = sum_r gamma_r G_r``."""
    Sinv = np.linalg.inv(sum(g * Gr for g, Gr in zip(gamma, G)))
    Phi = np.linalg.inv(X.T @ Sinv @ X)
    H = [Gr @ Sinv for Gr in G]
    O = [Hr @ X for Hr in H]
    k = len(G)
    P = [-(Or.T @ Sinv @ X) for Or in O]
    Q = {(r, s): O[r].T @ Sinv @ O[s] for r in range(k) for s in range(k)}
    info = np.array([[np.sum(H[r].T * H[s]) - 2 * np.sum(Phi * Q[(r, s)]) + np.sum((Phi @ P[r]) * (P[s] @ Phi))
                      for s in range(k)] for r in range(k)])
    W = 2 * np.linalg.inv(info)
    U = sum(W[r, s] * (Q[(r, s)] - P[r] @ Phi @ P[s]) for r in range(k) for s in range(k))
    return lc.freq.inference.KenwardRoger(vcov=Phi, vcov_adjusted=Phi + 2 * Phi @ U @ Phi, P=np.array(P), W=W)


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
@pytest.mark.parametrize("formula, weighted", [("distance ~ age + (1 | Subject)", False),
                                               ("distance ~ age + diag(age | Subject)", True),
                                               ("distance ~ age * Sex + (age | Subject)", False)])
def test_kenward_roger_with_sigma_by_equals_the_dense_formulas(formula, weighted, dense):
    """sigma_by: one residual component per level, sigma_k^2 D_k A^-1 (A the prior weights), beside the
    random-effects components Z E_r Z' of each term (diag: its column variances)."""
    data = orthodont_subset()
    weights = 1.0 + (np.arange(len(data)) % 3) if weighted else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        fit = lc.lmer(formula, data, sigma_by="Sex", weights=weights)
    spec = fit.spec
    a = np.ones(spec.n) if weights is None else weights
    G, gamma = [], []
    for term, cov in zip(spec.terms, fit.term_covariances()):
        pairs = ([(i, i) for i in range(term.p)] if term.structure.kind == "diag"
                 else [(i, j) for j in range(term.p) for i in range(j, term.p)])
        for i, j in pairs:
            E = np.zeros((term.p, term.p))
            E[i, j] = E[j, i] = 1.0
            G.append((term.Z @ sp.kron(sp.identity(term.n_levels), E) @ term.Z.T).toarray())
            gamma.append(cov[i, j])
    for level, sd in fit.residual_sd.items():
        G.append(np.diag((spec.sigma_by.codes == spec.sigma_by.levels.index(level)) / a))
        gamma.append(sd**2)
    brute = dense_kenward_roger(spec.X, G, gamma)
    ours = lc.freq.inference.kenward_roger(spec, fit.theta, fit.sigma, dense=dense)
    for x, y in [(ours.vcov, brute.vcov), (ours.vcov_adjusted, brute.vcov_adjusted), (ours.W, brute.W)]:
        assert np.max(np.abs(x - y)) <= 1e-9 * np.max(np.abs(y))
    for L in list(np.eye(spec.p)) + [np.eye(spec.p)[:2]]:
        assert ours.df(L) == pytest.approx(brute.df(L), rel=1e-9)
    table = fit.coef_table("kenward-roger")
    np.testing.assert_allclose(table["se"], np.sqrt(np.diag(brute.vcov_adjusted)), rtol=1e-9)


def test_kenward_roger_of_two_column_structures_equals_their_linear_twins():
    """A two-column cs spans every 2 x 2 covariance (us's components); a two-column ar1 spans
    {I, 11' - I}, as cs(hom=True): at the same covariance KR agrees."""
    sleep = lc.load_dataset("sleepstudy")
    cs = lc.lmer("Reaction ~ Days + cs(Days | Subject)", sleep)
    us = fit_at("Reaction ~ Days + (Days | Subject)", sleep, cs.theta)
    assert_tables_equal(cs.coef_table("kenward-roger"), us.coef_table("kenward-roger"), rtol=1e-10)
    data = dataset(REPEATED)
    data = data[data["occ"].isin(["t1", "t2"])].reset_index(drop=True)
    data["occ"] = data["occ"].cat.remove_unused_categories()
    ar1 = lc.lmer("y ~ time + ar1(0 + occ | subj)", data)
    hom = fit_at("y ~ time + cs(0 + occ | subj, hom=True)", data, ar1.phi)
    assert hom.objective == pytest.approx(ar1.objective, abs=1e-10)
    assert_tables_equal(ar1.coef_table("kenward-roger"), hom.coef_table("kenward-roger"), rtol=1e-10)
    assert ar1.phi[1] > 0     # (1 | subj) + (1 | subj:occ) reaches rho >= 0 only
    nested = fit_at("y ~ time + (1 | subj) + (1 | subj:occ)", data,
                    [ar1.phi[0] * np.sqrt(1 - ar1.phi[1]), ar1.phi[0] * np.sqrt(ar1.phi[1])])
    assert_tables_equal(ar1.coef_table("kenward-roger"), nested.coef_table("kenward-roger"), rtol=1e-8)


def test_homogeneous_diag_of_indicators_is_an_interaction_intercept():
    """diag(0 + occ | subj, hom=True) is v I per subject, the covariance of (1 | subj:occ): the same
    likelihood at s = theta, so the same Satterthwaite and Kenward-Roger df and se."""
    data = dataset(REPEATED)
    diag = lc.lmer("y ~ time + diag(0 + occ | subj, hom=True)", data)
    inter = fit_at("y ~ time + (1 | subj:occ)", data, diag.phi)
    assert diag.phi.size == 1 and inter.objective == pytest.approx(diag.objective, abs=1e-8)
    assert_tables_equal(diag.coef_table(), inter.coef_table(), rtol=1e-6)
    assert_tables_equal(diag.coef_table("kenward-roger"), inter.coef_table("kenward-roger"), rtol=1e-10)
