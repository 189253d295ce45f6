"""Standard errors and intervals of predictions (issue 20): LmerFit.predict(se_fit, interval), BayesFit.predict.

No R reference: lme4 here is 1.1-31, whose predict.merMod has no se.fit (added in 1.1-35).
The reference is lme4 1.1-35's own definition, computed densely: the covariance of
(b, beta) given theta is sigma^2 B M^{-1} B' with M the (q+p) x (q+p) mixed-model
equations matrix [[Lam'Z'ZLam + I, Lam'Z'X], [X'ZLam, X'X]] (prior weights in Z, X) and
B = blockdiag(Lambda, I); a new level's column of Z is zero (lme4 pads its covariance with zeros).
"""
import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.stats

import lmmcompare as lc
from lmmcompare.core.blocks import cross_products
from lmmcompare.errors import ArgumentError, NewLevelError, SamplingWarning
from lmmcompare.freq.estimates import values_at
from lmmcompare.freq.fit import Devfun
from lmmcompare.core.relcovar import lambda_matrix

SLEEP = "Reaction ~ Days + (Days | Subject)"


def sleep_weighted():
    d = lc.load_dataset("sleepstudy")
    return d.assign(w=1.0 + d["Days"] % 3)


def dense_cov_b_beta(fit) -> np.ndarray:
    """sigma^2 B M^{-1} B' (module docstring), dense."""
    spec = fit.spec
    Z, X = spec.weighted_rows(spec.Z), spec.weighted_rows(spec.X)
    Z = Z.toarray() if sp.issparse(Z) else np.asarray(Z)
    Lam = lambda_matrix(spec, fit.theta).toarray()
    U = Z @ Lam
    M = np.block([[U.T @ U + np.eye(spec.q), U.T @ X], [X.T @ U, X.T @ X]])
    B = sp.block_diag([Lam, np.eye(spec.p)]).toarray()
    return fit.sigma**2 * B @ np.linalg.inv(M) @ B.T


def z_rows(fit, newdata, design) -> np.ndarray:
    """Dense Z of newdata's rows: per term, the design row ``design(term, row)`` at the level's
    columns, zero for a level not in the fit."""
    out = np.zeros((len(newdata), fit.spec.q))
    pos = 0
    for t in fit.spec.terms:
        levels = list(map(str, t.levels))
        for i, (_, row) in enumerate(newdata.iterrows()):
            label = str(row[t.group])
            if label in levels:
                j = levels.index(label)
                out[i, pos + j * t.p: pos + (j + 1) * t.p] = design(t, row)
        pos += t.q
    return out


CASES = {   # formula, data, weights, new rows, design row of a term for one new row
    "sleepstudy": (SLEEP, "sleepstudy", None,
                   pd.DataFrame({"Days": [0.0, 4.5, 9.0, 3.0], "Subject": ["308", "335", "372", "new"]}),
                   lambda t, r: [1.0, r["Days"]]),
    "penicillin crossed": ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", None,
                           pd.DataFrame({"plate": ["a", "k", "x", "zz"], "sample": ["A", "F", "new", "C"]}),
                           lambda t, r: [1.0]),
    "sleepstudy weighted": (SLEEP, sleep_weighted(), "w",
                            pd.DataFrame({"Days": [1.0, 7.0, 2.0], "Subject": ["309", "351", "new"]}),
                            lambda t, r: [1.0, r["Days"]]),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    formula, data, weights, new, design = CASES[request.param]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lc.errors.SingularFitWarning)
        fit = lc.lmer(formula, data, weights=weights)
    return fit, new, design


def test_population_se_is_the_fixed_effects_covariance_quadratic(case):
    fit, new, _ = case
    X = fit.spec.X[[0, 5, 17]]
    frame = fit.spec.frame.iloc[[0, 5, 17]]
    got = fit.predict(frame, re=False, se_fit=True)
    np.testing.assert_allclose(got["se"], np.sqrt(np.einsum("ip,pq,iq->i", X, fit.vcov.to_numpy(), X)),
                               rtol=1e-10, atol=0)
    np.testing.assert_allclose(got["fit"], fit.predict(frame, re=False), rtol=1e-14)


def test_conditional_se_equals_the_dense_mixed_model_equations(case):
    """Model frame and new rows (a new level adds nothing, as in lme4): 1e-8 of the dense inverse."""
    fit, new, design = case
    C = dense_cov_b_beta(fit)
    Z = fit.spec.Z.toarray() if sp.issparse(fit.spec.Z) else np.asarray(fit.spec.Z)
    V = np.hstack([Z, fit.spec.X])
    frame_se = fit.predict(se_fit=True)
    np.testing.assert_allclose(frame_se["se"], np.sqrt(np.einsum("ij,jk,ik->i", V, C, V)), rtol=1e-8)
    np.testing.assert_allclose(frame_se["fit"], fit.fitted(), rtol=1e-13)
    got = fit.predict(new, allow_new_levels=True, se_fit=True)
    Xnew = np.ones((len(new), 1)) if fit.spec.p == 1 else np.column_stack([np.ones(len(new)), new["Days"]])
    Vn = np.hstack([z_rows(fit, new, design), Xnew])
    np.testing.assert_allclose(got["se"], np.sqrt(np.einsum("ij,jk,ik->i", Vn, C, Vn)), rtol=1e-8)
    np.testing.assert_allclose(got["fit"], fit.predict(new, allow_new_levels=True), rtol=1e-14)
    assert list(got.index) == list(new.index)


def test_confidence_interval_is_normal_quantiles_of_the_se():
    fit = lc.lmer(SLEEP, "sleepstudy")
    new = pd.DataFrame({"Days": [2.0, 8.0], "Subject": ["308", "new"]}, index=["a", "b"])
    got = fit.predict(new, allow_new_levels=True, interval="confidence", level=0.9)
    z = scipy.stats.norm.ppf(0.95)
    np.testing.assert_allclose(got["upper"] - got["fit"], z * got["se"], rtol=1e-14)
    np.testing.assert_allclose(got["fit"] - got["lower"], z * got["se"], rtol=1e-14)
    assert list(got.columns) == ["fit", "se", "lower", "upper"] and list(got.index) == ["a", "b"]


def test_prediction_interval_covers_new_observations_at_95_percent():
    """Seeded simulation at the fitted (beta, theta, sigma) of a weighted fit: b ~ N(0, Sigma), y, then
    the predictions of the code at that theta (linear in y, so built from the code's predictions for the
    n unit responses) and a new observation per row: a model-frame row (variance sigma^2 / w_i), a new
    row of a seen subject (w = 1) and one of a new subject (its effect drawn too).  Each row's coverage
    of the 95% prediction interval is within 3 Monte Carlo SE of 0.95 (4000 simulations)."""
    fit = lc.lmer(SLEEP, sleep_weighted(), weights="w")
    spec = fit.spec
    frame_rows = [2, 40, 100]                                 # weights 3, 2, 2
    new = pd.DataFrame({"Days": [4.0, 6.0], "Subject": ["330", "new"]})
    width_frame = fit.predict(interval="prediction")
    width_new = fit.predict(new, allow_new_levels=True, interval="prediction")
    half = np.concatenate([(width_frame["upper"] - width_frame["fit"]).to_numpy()[frame_rows],
                           (width_new["upper"] - width_new["fit"]).to_numpy()])

    def predictions(y):
        s = spec.with_response(y)
        values = values_at(Devfun(spec=s, cp=cross_products(s), reml=True), fit.theta)
        moved = dataclasses.replace(fit, beta=values["beta"], b=values["b"])
        return np.concatenate([moved.predict()[frame_rows], moved.predict(new, allow_new_levels=True)])

    H = np.column_stack([predictions(e) for e in np.eye(spec.n)])
    rng = np.random.default_rng(20)
    nsim = 4000
    Sigma = fit.term_covariances()[0]
    b = rng.multivariate_normal(np.zeros(2), Sigma, size=(nsim, 18))          # subjects in the fit
    b_new = rng.multivariate_normal(np.zeros(2), Sigma, size=nsim)
    t = spec.terms[0]
    mean = spec.X @ fit.beta
    y = mean + np.einsum("nk,snk->sn", t.design.matrix, b[:, t.codes]) \
        + fit.sigma / np.sqrt(spec.weights) * rng.standard_normal((nsim, spec.n))
    centre = y @ H.T
    j330 = list(map(str, t.levels)).index("330")
    truth = np.column_stack([mean[r] + b[:, t.codes[r]] @ t.design.matrix[r] for r in frame_rows]
                            + [fit.beta @ [1, 4.0] + b[:, j330] @ [1, 4.0], fit.beta @ [1, 6.0] + b_new @ [1, 6.0]])
    sd_noise = fit.sigma / np.sqrt(np.concatenate([spec.weights[frame_rows], [1.0, 1.0]]))
    y_new = truth + sd_noise * rng.standard_normal(truth.shape)
    coverage = (np.abs(y_new - centre) <= half).mean(axis=0)
    mc_se = np.sqrt(0.95 * 0.05 / nsim)
    assert np.all(np.abs(coverage - 0.95) < 3 * mc_se), coverage
    # without the new subject's effect variance (lme4's se alone) the interval is far too narrow
    narrow = scipy.stats.norm.ppf(0.975) * np.hypot(width_new["se"].to_numpy()[1], fit.sigma)
    assert (np.abs(y_new[:, 4] - centre[:, 4]) <= narrow).mean() < 0.95 - 10 * mc_se


# ---- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, message", [
    (dict(interval="tolerance"), ArgumentError, "interval must be one of confidence, prediction"),
    (dict(level=1.0, interval="confidence"), ArgumentError, "level must be"),
    (dict(level=0.0, se_fit=True), ArgumentError, "level must be"),
    (dict(se_fit="yes"), ArgumentError, "se_fit must be True or False"),
    (dict(offset=np.zeros(180)), ArgumentError, "offset is for newdata's rows"),
])
def test_bad_prediction_arguments_are_typed_errors(kwargs, error, message):
    fit = lc.lmer(SLEEP, "sleepstudy")
    with pytest.raises(error, match=message):
        fit.predict(**kwargs)


def test_new_level_without_permission_is_a_new_level_error_with_se():
    fit = lc.lmer(SLEEP, "sleepstudy")
    with pytest.raises(NewLevelError, match="'999' of 'Subject'"):
        fit.predict(pd.DataFrame({"Days": [1.0], "Subject": ["999"]}), se_fit=True)


# ---- Bayesian: brms' posterior_epred / posterior_predict -------------------------------------
@pytest.fixture(scope="module")
def post():
    """A weighted fit (so the response noise is sigma / sqrt(w)); small sampling."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return lc.bayes(SLEEP, sleep_weighted(), weights="w", draws=200, tune=200, chains=2, seed=7,
                        progressbar=False)


def draws_of(post, name):
    return post.idata.posterior[name].values


NEW = pd.DataFrame({"Days": [0.0, 6.0, 6.0, 3.0], "Subject": ["new1", "new1", "new2", "308"]}, index=list("abcd"))


def test_epred_of_the_model_frame_is_the_stored_linear_predictor(post):
    got = post.predict(summary=False)
    assert got.dims == ("chain", "draw", "obs")
    np.testing.assert_allclose(got.values, post.linear_predictor(), rtol=1e-13)
    table = post.predict()
    flat = got.values.reshape(-1, got.shape[-1])
    np.testing.assert_allclose(table["estimate"], flat.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(table["est_error"], flat.std(axis=0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(table["q97.5"], np.quantile(flat, 0.975, axis=0), rtol=1e-12)


def test_epred_of_a_seen_level_is_its_draws_of_beta_and_b(post):
    got = post.predict(NEW, allow_new_levels=True, summary=False, seed=1).values[..., 3]
    r = post.idata.posterior["r_Subject"].sel(Subject="308").values          # (chain, draw, coef)
    expected = draws_of(post, "(Intercept)") + r[..., 0] + 3.0 * (draws_of(post, "Days") + r[..., 1])
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_new_levels_have_the_spread_of_the_fitted_distribution(post):
    """"gaussian": per draw s the new level's deviation from x'beta_s, divided by sqrt(z'Sigma_s z), is
    N(0, 1) and independent across draws: its mean square is 1 within 3 sd (sqrt(2 / N)); rows of one
    new level share the effect, two new levels do not; and the variance over draws of epred is
    E[z'Sigma z] + var(x'beta) within the same Monte Carlo error."""
    got = post.predict(NEW, allow_new_levels=True, summary=False, seed=2).values
    b0, b1 = draws_of(post, "(Intercept)"), draws_of(post, "Days")
    sd0, sd1 = draws_of(post, "sd_(Intercept)|Subject"), draws_of(post, "sd_Days|Subject")
    rho = draws_of(post, "cor_Days.(Intercept)|Subject")
    n = b0.size
    for row, days in ((0, 0.0), (1, 6.0), (2, 6.0)):
        fixed = b0 + days * b1
        var_z = sd0**2 + days**2 * sd1**2 + 2 * days * rho * sd0 * sd1
        standard = (got[..., row] - fixed) / np.sqrt(var_z)
        assert abs(np.mean(standard**2) - 1) < 3 * np.sqrt(2 / n), np.mean(standard**2)
        expected = var_z.mean() + fixed.var()
        assert abs(got[..., row].var() / expected - 1) < 3 * np.sqrt(2 / n)
    twice = post.predict(NEW.iloc[[1, 1]], allow_new_levels=True, summary=False, seed=2).values
    np.testing.assert_array_equal(twice[..., 0], twice[..., 1])               # one new level, one effect
    assert abs(np.corrcoef((got[..., 1] - b0 - 6 * b1).ravel(), (got[..., 2] - b0 - 6 * b1).ravel())[0, 1]) \
        < 3 / np.sqrt(n)


def test_uncertainty_draws_a_fitted_level_per_draw(post):
    got = post.predict(NEW, allow_new_levels=True, sample_new_levels="uncertainty", summary=False, seed=3).values
    r = post.idata.posterior["r_Subject"].values                              # (chain, draw, level, coef)
    fixed = draws_of(post, "(Intercept)") + 6.0 * draws_of(post, "Days")
    candidates = r[..., 0] + 6.0 * r[..., 1]                                   # (chain, draw, level)
    gap = np.min(np.abs(candidates - (got[..., 1] - fixed)[..., None]), axis=-1)
    assert np.max(gap) < 1e-9


def test_response_adds_noise_with_sd_sigma_over_root_w(post):
    """On the model frame (weights 1, 2, 3): (response - epred) sqrt(w) / sigma is N(0, 1) over all
    draws and rows: mean within 3 / sqrt(N), mean square within 3 sqrt(2 / N) of 1."""
    epred = post.predict(summary=False).values
    response = post.predict(kind="response", summary=False, seed=4).values
    standard = (response - epred) * np.sqrt(post.spec.weights) / draws_of(post, "sigma")[..., None]
    N = standard.size
    assert abs(standard.mean()) < 3 / np.sqrt(N)
    assert abs(np.mean(standard**2) - 1) < 3 * np.sqrt(2 / N)
    new = post.predict(NEW.iloc[3:], kind="response", summary=False, seed=5).values[..., 0]   # w = 1
    seen = post.predict(NEW.iloc[3:], summary=False).values[..., 0]
    unit = (new - seen) / draws_of(post, "sigma")
    assert abs(np.mean(unit**2) - 1) < 3 * np.sqrt(2 / unit.size)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(kind="mean"), ArgumentError, "kind must be one of epred, response"),
    (dict(sample_new_levels="old_levels"), ArgumentError, "sample_new_levels must be one of"),
    (dict(summary="yes"), ArgumentError, "summary must be True or False"),
    (dict(offset=np.zeros(180)), ArgumentError, "offset is for newdata's rows"),
    (dict(newdata=NEW), NewLevelError, "'new1', 'new2' of 'Subject'"),
])
def test_bad_bayes_prediction_arguments_are_typed_errors(post, kwargs, error, message):
    with pytest.raises(error, match=message):
        post.predict(**kwargs)
