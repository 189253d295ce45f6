"""Structured covariances (diag, cs, ar1) and sigma_by in the Bayesian engine (issue 22).

* The marginal model's likelihood at fixed parameters equals the dense
  multivariate normal density ``N(y; X beta, Z blockdiag(Sigma) Z' + sigma^2
  diag(delta_f(i)^2 / a_i))`` (scipy) to 1e-10, for every structure and for
  sigma_by (closed-form and blocked kernels), and the PyTensor factors of
  :mod:`lmmcompare.bayesian.structured` are the Cholesky factors of the implied
  covariance at a point of the sampled space.
* The posterior agrees with REML (the tolerances of tests/test_bayes.py), and the
  comparison table lines up the new parameters of both engines.
"""
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import scipy.stats

import lmmcompare as lc
from lmmcompare.bayesian.marginal import marginal_loglik, response_data
from lmmcompare.bayesian.model import build_model
from lmmcompare.bayesian.priors import default_priors
from lmmcompare.bayesian.structured import ar1_cholesky, cs_cholesky
from lmmcompare.errors import SamplingWarning
from lmmcompare.spec import ModelSpec
from structures_cases import dataset

SAMPLING = dict(draws=300, tune=300, chains=2, progressbar=False)


def small_rm(n_subjects=20):
    """The first subjects of the RepeatedMeasures data set (all three groups of grp), for speed."""
    data = dataset("RepeatedMeasures")
    keep = data["subj"].cat.categories[:n_subjects]
    out = data[data["subj"].isin(keep)].copy()
    out["subj"] = out["subj"].cat.remove_unused_categories()
    return out


def dense_loglik(spec, beta, sigma, ratios, covs):
    """log N(y; offset + X beta, Z blockdiag(Sigma_t) Z' + sigma^2 diag(delta_f(i)^2 / a_i)), by scipy."""
    Z = spec.Z.toarray()
    G = scipy.linalg.block_diag(*[np.kron(np.eye(t.n_levels), S) for t, S in zip(spec.terms, covs)])
    delta = np.ones(spec.n) if spec.sigma_by is None else np.concatenate([[1.0], ratios])[spec.sigma_by.codes]
    a = np.ones(spec.n) if spec.weights is None else spec.weights
    V = Z @ G @ Z.T + np.diag(sigma**2 * delta**2 / a)
    return scipy.stats.multivariate_normal(spec.X @ beta + spec.working_offset, V).logpdf(spec.y)


def f64(value):
    """A float64 PyTensor constant (a Python float such as -0.5 would become float32)."""
    import pytensor.tensor as pt

    return pt.as_tensor_variable(np.asarray(value, dtype="float64"))


def structured_L(structure, sd, rho, p):
    """``diag(sd) chol(R(rho))`` by the PyTensor closed forms (the factors the model samples)."""
    import pytensor.tensor as pt

    sd = np.broadcast_to(np.asarray(sd, float), (p,))
    if structure.kind == "cs":
        R = cs_cholesky(f64(rho), p, pt).eval()
    elif structure.kind == "ar1":
        R = ar1_cholesky(f64(rho), p, pt).eval()
    else:
        R = np.eye(p)
    return sd[:, None] * R


CASES = [   # formula, data, sigma_by, weights?, rho
    ("y ~ time + cs(0 + occ | subj)", "rm", None, False, 0.4),
    ("y ~ time + cs(0 + occ | subj)", "rm", None, False, -0.15),       # near -1/(p-1) = -0.2
    ("y ~ time + cs(0 + occ | subj, hom=True)", "rm", None, False, 0.3),
    ("y ~ time + ar1(0 + occ | subj)", "rm", None, False, 0.7),
    ("y ~ time + ar1(0 + occ | subj)", "rm", None, False, -0.5),
    ("y ~ time + diag(0 + occ | subj)", "rm", None, False, None),
    ("y ~ time + diag(1 + time | subj)", "rm", None, False, None),       # closed form, p = 2
    ("Reaction ~ Days + cs(Days | Subject)", "sleepstudy", None, False, -0.3),   # closed form, cs p = 2
    ("distance ~ age + (1 | Subject)", "Orthodont", "Sex", False, None),  # closed form, sigma_by
    ("distance ~ age + (age | Subject)", "Orthodont", "Sex", True, None),  # closed form, sigma_by and weights
    ("y ~ time + cs(0 + occ | subj)", "rm", "grp", False, 0.4),         # blocked kernel, sigma_by
    ("y ~ time + ar1(0 + occ | subj)", "rm", "grp", True, 0.6),         # blocked kernel, sigma_by and weights
]


@pytest.mark.parametrize("formula, data, sigma_by, weighted, rho", CASES)
def test_marginal_likelihood_is_the_dense_normal_density(formula, data, sigma_by, weighted, rho):
    frame = small_rm(8) if data == "rm" else lc.load_dataset(data)
    if weighted:
        frame = frame.assign(w=1.0 + (np.arange(len(frame)) % 3) / 2)
    spec = ModelSpec.from_formula(formula, frame, sigma_by=sigma_by, weights="w" if weighted else None)
    rng = np.random.default_rng(7)
    t = spec.terms[0]
    s = t.structure
    if t.structured:
        sd = rng.uniform(0.5, 2.0, s.n_sds(t.p))
        L = structured_L(s, sd, rho, t.p)
        sd_full, cor = s.implied_sd_cor(np.concatenate([sd, [rho] if rho is not None else []]), t.p)
        cov = sd_full[:, None] * cor * sd_full[None, :]
    else:
        A = rng.normal(size=(t.p, t.p))
        cov = A @ A.T + np.eye(t.p)
        L = np.linalg.cholesky(cov)
    np.testing.assert_allclose(L @ L.T, cov, rtol=1e-12, atol=1e-12)
    slope_index = [j for j, n in enumerate(spec.fixed_names) if n != "(Intercept)"]
    x_means = spec.X[:, slope_index].mean(axis=0)
    beta = np.linalg.lstsq(spec.X, spec.y, rcond=None)[0] + rng.normal(scale=0.1, size=len(spec.fixed_names))
    coef = np.concatenate([[beta[0] + x_means @ beta[slope_index]], beta[slope_index]])   # alpha on centred slopes
    sigma = 0.9
    ratios = None if sigma_by is None else rng.uniform(0.5, 2.0, spec.sigma_by.n_levels - 1)
    expected = dense_loglik(spec, beta, sigma, ratios, [cov])
    value = marginal_loglik(spec, response_data(spec, slope_index, x_means), f64(coef), f64(sigma), [f64(L)],
                            slope_index, x_means, ratios=None if ratios is None else f64(ratios)).eval()
    assert float(value) == pytest.approx(expected, abs=1e-10 * max(1.0, abs(expected)))


@pytest.mark.parametrize("formula", ["y ~ time + cs(0 + occ | subj)", "y ~ time + cs(0 + occ | subj, hom=True)",
                                     "y ~ time + ar1(0 + occ | subj)", "y ~ time + diag(0 + occ | subj, hom=True)"])
def test_sampled_factor_is_the_cholesky_factor_of_the_implied_covariance(formula):
    """At a random point of the sampler's (unconstrained) space, the model's L_0 satisfies L L' = S R(rho) S, with
    the sds and rho read from the same point; and the posterior names are the parameter table's."""
    spec = ModelSpec.from_formula(formula, small_rm(8))
    built = build_model(spec, default_priors(spec), "marginal")
    model, t = built.model, spec.terms[0]
    rows = spec.parameters.of_term(0)
    outs = model.replace_rvs_by_values([model["L_0"]] + [model[r.pymc_name] for r in rows])
    fn = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")
    point = model.initial_point()
    rng = np.random.default_rng(3)
    for _ in range(3):
        jittered = {k: v + rng.normal(scale=0.7, size=np.shape(v)) for k, v in point.items()}
        L, *values = fn(jittered)
        sd, cor = t.structure.implied_sd_cor(np.array(values, dtype=float), t.p)
        np.testing.assert_allclose(L @ L.T, sd[:, None] * cor * sd[None, :], rtol=1e-10, atol=1e-12)
        assert np.allclose(L, np.tril(L))
        if t.structure.has_correlation(t.p):
            low = -1.0 / (t.p - 1) if t.structure.kind == "cs" else -1.0
            assert low < values[-1] < 1.0


def test_correlation_priors_are_keyed_and_checked():
    spec = ModelSpec.from_formula("y ~ time + cs(0 + occ | subj)", small_rm(8))
    default = default_priors(spec)
    assert str(default.cors[spec.terms[0].label]) == "beta(1, 1)"
    for key in ("cor|subj", "common_cor_subj", "common_cor"):
        assert default_priors(spec, {key: ("beta", 2, 3)}).cors[spec.terms[0].label].params == (2.0, 3.0)
    with pytest.raises(lc.ArgumentError, match=r"prior for 'common_cor' must be \('beta', a, b\)"):
        default_priors(spec, {"common_cor": ("lkj", 2)})
    ar = ModelSpec.from_formula("y ~ time + ar1(0 + occ | subj)", small_rm(8))
    assert default_priors(ar, {"rho_subj": ("beta", 4, 4)}).cors[ar.terms[0].label].params == (4.0, 4.0)
    diag = ModelSpec.from_formula("y ~ time + diag(1 + time | subj)", small_rm(8))
    assert default_priors(diag).cors == {}     # independent columns: no correlation to put a prior on


def sample_both(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return lc.fit_both(formula, data, seed=1, **{**SAMPLING, **kw})


@pytest.fixture(scope="module")
def rm_cs():
    return sample_both("y ~ time + cs(0 + occ | subj)", small_rm(20))


@pytest.fixture(scope="module")
def orthodont_by_sex():
    return sample_both("distance ~ age + (1 | Subject)", "Orthodont", sigma_by="Sex")


def agrees_with_reml(comparison, names):
    """Fixed effects as tests/test_bayes.py (median within half a posterior sd, sd within 30% of the se);
    variance parameters: median within one posterior sd of the REML estimate (no ``shift`` flag)."""
    post, reml = comparison.bayes.idata.posterior, comparison.freq
    for name in reml.spec.fixed_names:
        draws = post[name].values.ravel()
        assert abs(np.median(draws) - reml.fixef[name]) < 0.5 * draws.std(), name
        assert abs(draws.std() / reml.se[name] - 1) < 0.30, name
    estimates = reml.variance_parameters()
    for name in names:
        draws = post[name].values.ravel()
        assert abs(np.median(draws) - estimates[name]) < draws.std(), name


def test_cs_posterior_agrees_with_reml(rm_cs):
    assert rm_cs.bayes.sampled_as == "marginal"
    assert rm_cs.bayes.parameter_names == rm_cs.freq.spec.fixed_names + list(rm_cs.freq.variance_parameters().index)
    agrees_with_reml(rm_cs, ["cor|subj", "sigma"] + [f"sd_occt{k}|subj" for k in range(1, 7)])
    post = rm_cs.bayes.idata.posterior
    assert -0.2 < float(post["cor|subj"].min()) and float(post["cor|subj"].max()) < 1.0
    assert post["r_subj"].shape[2:] == (20, 6)


def test_ar1_posterior_agrees_with_reml():
    comparison = sample_both("y ~ time + ar1(0 + occ | subj)", small_rm(20))
    assert comparison.bayes.parameter_names == ["(Intercept)", "time", "sd|subj", "rho|subj", "sigma"]
    agrees_with_reml(comparison, ["sd|subj", "rho|subj", "sigma"])


@pytest.mark.parametrize("formula, names", [
    ("y ~ time + diag(0 + occ | subj)", [f"sd_occt{k}|subj" for k in range(1, 7)] + ["sigma"]),
    ("y ~ time + cs(0 + occ | subj, hom=True)", ["sd|subj", "cor|subj", "sigma"]),
])
def test_other_structures_agree_with_reml(formula, names):
    """diag and cs(hom=True) against their REML fits (cs and ar1 above; sigma_by below and, on the blocked
    kernel, through its exact likelihood, gradient and b draws: a sampling run costs 45 s of CI)."""
    comparison = sample_both(formula, small_rm(20))
    assert comparison.bayes.sampled_as == "marginal"
    assert comparison.bayes.parameter_names == comparison.freq.spec.fixed_names + names
    agrees_with_reml(comparison, names)


def test_sigma_by_posterior_agrees_with_reml(orthodont_by_sex):
    fit = orthodont_by_sex.bayes
    assert fit.sampled_as == "marginal"
    agrees_with_reml(orthodont_by_sex, ["sd_(Intercept)|Subject", "sigma", "sigma_ratio_Female|Sex"])
    post = fit.idata.posterior
    # residual sd by level: sigma (Male, the first level) and sigma * ratio (Female), as LmerFit.residual_sd
    by_level = fit.residual_sd
    assert list(by_level.index) == list(orthodont_by_sex.freq.residual_sd.index) == ["Male", "Female"]
    assert by_level["Male"] == pytest.approx(float(post["sigma"].mean()), rel=1e-12)
    assert by_level["Female"] == pytest.approx(float((post["sigma"] * post["sigma_ratio_Female|Sex"]).mean()), rel=1e-12)
    female = np.asarray(fit.spec.frame["Sex"] == "Female")
    female_sd = (post["sigma"] * post["sigma_ratio_Female|Sex"]).values
    assert abs(by_level["Female"] - orthodont_by_sex.freq.residual_sd["Female"]) < female_sd.std()
    # the pointwise log-likelihood uses each row's own residual sd
    mu = fit.linear_predictor()
    sd = np.where(female, female_sd[..., None], post["sigma"].values[..., None])
    expected = scipy.stats.norm.logpdf(fit.spec.y, mu, sd)
    np.testing.assert_allclose(fit.idata.log_likelihood["y"].values, expected, rtol=1e-10, atol=1e-10)
    # posterior predictive noise: standardised by the row's sd it has unit variance in each level
    z = (fit.posterior_predictive(seed=5).values - mu) / sd
    for rows in (female, ~female):
        assert z[..., rows].var() == pytest.approx(1.0, abs=4 * np.sqrt(2 / z[..., rows].size))


@pytest.mark.parametrize("which", ["rm_cs", "orthodont_by_sex"])
def test_group_loo_is_the_dense_density_of_each_group(which, request):
    """loo(by='group')'s per-group log-likelihood at a draw equals the dense normal density of that group's rows."""
    from lmmcompare.bayesian.group_loo import group_log_likelihood
    from lmmcompare.bayesian.postprocess import term_covariance_draws

    fit = request.getfixturevalue(which).bayes
    spec, post = fit.spec, fit.idata.posterior
    loglik = group_log_likelihood(spec, post)
    G = spec.terms[0].factor
    cov = term_covariance_draws(post, spec)[0][0, 7]
    beta = np.array([float(post[n][0, 7]) for n in spec.fixed_names])
    sigma = float(post["sigma"][0, 7])
    ratios = None if spec.sigma_by is None else np.array([float(post[r.label][0, 7]) for r in spec.parameters.variance
                                                           if r.kind == "sigma_ratio"])
    for g in (0, 3):
        rows = np.flatnonzero(G.codes == g)
        Zg = spec.terms[0].design.matrix[rows]
        delta = np.ones(rows.size) if ratios is None else np.concatenate([[1.0], ratios])[spec.sigma_by.codes[rows]]
        V = Zg @ cov @ Zg.T + np.diag((sigma * delta) ** 2)
        expected = scipy.stats.multivariate_normal(spec.X[rows] @ beta, V).logpdf(spec.y[rows])
        assert float(loglik[0, 7, g]) == pytest.approx(expected, abs=1e-9 * abs(expected)), g
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)   # a few groups' Pareto k is high at these few draws
        loo = fit.loo(by="group", pointwise=True)
    assert float(loo.loo_i.sum()) == pytest.approx(loo.elpd_loo, rel=1e-12)


def test_comparison_table_lines_up_structured_and_residual_parameters(rm_cs, orthodont_by_sex):
    for comparison, names in ((rm_cs, ["cor|subj", "sd_occt3|subj"]),
                              (orthodont_by_sex, ["sigma", "sigma_ratio_Female|Sex"])):
        table = comparison.table(ci="wald")
        assert list(table.index) == comparison.bayes.parameter_names
        estimates = comparison.freq.variance_parameters()
        post = comparison.bayes.idata.posterior
        for name in names:
            assert table.loc[name, "estimate"] == estimates[name]
            assert table.loc[name, "post_median"] == pytest.approx(float(np.median(post[name].values)), rel=1e-12)
            assert abs(table.loc[name, "shift"]) < 1


def test_ranef_of_a_structured_term_shrinks_like_the_blups(rm_cs):
    bayes_re, blup = rm_cs.bayes.ranef()["subj"], rm_cs.freq.ranef()["subj"]
    pd.testing.assert_index_equal(bayes_re.index, blup.index)
    assert list(bayes_re.columns) == list(blup.columns)
    assert np.all(np.abs(bayes_re - blup) < rm_cs.bayes.ranef(sd=True)["subj"])


def test_noncentred_likelihood_uses_each_rows_residual_sd():
    """With sigma_by the noncentred likelihood at a point of the sampler's space is
    sum_i log N(y_i; mu_i, sigma delta_f(i) / sqrt(a_i)) with mu from the same point (prior weights a)."""
    frame = small_rm(8).assign(w=lambda d: 1.0 + (np.arange(len(d)) % 4) / 3)
    spec = ModelSpec.from_formula("y ~ time + cs(0 + occ | subj)", frame, sigma_by="grp", weights="w")
    built = build_model(spec, default_priors(spec), "noncentered")
    assert built.parameterization == "noncentered"
    model = built.model
    outs = [model.logp(vars=[model["y"]], sum=True)] + model.replace_rvs_by_values(
        [model[name] for name in ("alpha", "beta_0", "b_0", "sigma", "sigma_ratio_1", "sigma_ratio_2")])
    fn = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")
    point = model.initial_point()
    rng = np.random.default_rng(11)
    t = spec.terms[0]
    for _ in range(2):
        jittered = {k: v + rng.normal(scale=0.5, size=np.shape(v)) for k, v in point.items()}
        logp, alpha, slope, b, sigma, *ratios = fn(jittered)
        assert spec.sigma_by.levels == ("A", "B", "C")
        mu = alpha + (spec.X[:, 1] - spec.X[:, 1].mean()) * slope + np.sum(t.design.matrix * b[t.codes], axis=1)
        sd = sigma * np.array([1.0, *ratios])[spec.sigma_by.codes] / np.sqrt(spec.weights)
        assert float(logp) == pytest.approx(scipy.stats.norm.logpdf(spec.y, mu, sd).sum(), rel=1e-12)


def test_marginal_random_effects_follow_their_exact_conditional_with_sigma_by():
    """The b drawn after a marginal fit with sigma_by (and prior weights): at one parameter value, 4000 draws have
    the mean Sigma Z' V^-1 (y - X beta) and covariance Sigma - Sigma Z' V^-1 Z Sigma of the dense conditional,
    V = Z Sigma Z' + sigma^2 diag(delta_f(i)^2 / a_i), within 4 Monte Carlo standard errors."""
    from lmmcompare.bayesian.postprocess import _single_term_draws

    frame = lc.load_dataset("Orthodont")
    frame = frame.assign(w=1.0 + (np.arange(len(frame)) % 3) / 2)
    spec = ModelSpec.from_formula("distance ~ age + (age | Subject)", frame, sigma_by="Sex", weights="w")
    beta, sigma, ratio = np.array([16.0, 0.7]), 1.5, 0.5
    cov = np.array([[4.0, -0.2], [-0.2, 0.05]])
    n_draws = 4000
    b = _single_term_draws(spec, np.full((1, n_draws), sigma), np.broadcast_to(beta, (1, n_draws, 2)),
                           np.broadcast_to(np.linalg.cholesky(cov), (1, n_draws, 2, 2)),
                           np.full((1, n_draws, 1), ratio), np.random.default_rng(2))[0].reshape(n_draws, -1)
    Z = spec.Z.toarray()
    G = np.kron(np.eye(spec.terms[0].n_levels), cov)
    delta = np.array([1.0, ratio])[spec.sigma_by.codes]
    V = Z @ G @ Z.T + np.diag(sigma**2 * delta**2 / spec.weights)
    K = G @ Z.T @ np.linalg.inv(V)
    mean, var = K @ (spec.y - spec.X @ beta), np.diag(G - K @ Z @ G)
    assert np.all(np.abs(b.mean(axis=0) - mean) < 4 * np.sqrt(var / n_draws))
    np.testing.assert_allclose(b.var(axis=0), var, rtol=4 * np.sqrt(2 / n_draws))


def test_bayes_r2_residual_variance_with_sigma_by_is_the_mean_row_variance(orthodont_by_sex):
    """Per draw: sigma^2 times the row-share-weighted mean of delta_f(i)^2 (as the frequentist R²)."""
    from lmmcompare.derived.variances import bayes_variances

    post = orthodont_by_sex.bayes
    share_female = float(np.mean(post.spec.frame["Sex"] == "Female"))
    sigma = post.idata.posterior["sigma"].values
    ratio = post.idata.posterior["sigma_ratio_Female|Sex"].values
    expected = sigma**2 * ((1 - share_female) + share_female * ratio**2)
    np.testing.assert_allclose(bayes_variances(post).var_residual, expected, rtol=1e-12)


def test_blocked_kernel_gradient_in_the_ratios_matches_differences():
    """The Op's partials with sigma_by (log delta in closed form, the rest from the core) against central
    differences of its value, on a two-term model (blocked kernel) with prior weights."""
    from lmmcompare.bayesian.blocked import BlockedRatioLogLik
    from lmmcompare.bayesian.marginal import prior_weighted

    frame = small_rm(8).assign(w=lambda d: 1.0 + (np.arange(len(d)) % 3) / 2)
    spec = prior_weighted(ModelSpec.from_formula("y ~ time + (time | subj) + (1 | occ)", frame, sigma_by="grp",
                                                 weights="w"))
    op = BlockedRatioLogLik(spec)
    beta, sigma = np.array([10.0, 0.4]), 0.8
    theta, log_delta = np.array([1.1, -0.2, 0.3, 0.7]), np.array([0.3, -0.4])

    def run(b, s, th, ld):
        outputs = [[None] for _ in range(5)]
        op.perform(None, [b, s, th, ld, spec.y], outputs)
        return [o[0] for o in outputs]

    value, d_beta, d_sigma, d_theta, d_ratio = run(beta, sigma, theta, log_delta)
    h = 1e-6
    for point, partial in ((log_delta, d_ratio), (theta, d_theta), (beta, d_beta)):
        for k in range(point.size):
            up, down = point.copy(), point.copy()
            up[k] += h
            down[k] -= h
            if point is log_delta:
                numeric = (run(beta, sigma, theta, up)[0] - run(beta, sigma, theta, down)[0]) / (2 * h)
            elif point is theta:
                numeric = (run(beta, sigma, up, log_delta)[0] - run(beta, sigma, down, log_delta)[0]) / (2 * h)
            else:
                numeric = (run(up, sigma, theta, log_delta)[0] - run(down, sigma, theta, log_delta)[0]) / (2 * h)
            assert partial[k] == pytest.approx(numeric, rel=1e-6, abs=1e-6)
    numeric = (run(beta, sigma + h, theta, log_delta)[0] - run(beta, sigma - h, theta, log_delta)[0]) / (2 * h)
    assert d_sigma == pytest.approx(numeric, rel=1e-6)


def test_blocked_random_effects_follow_their_exact_conditional_with_sigma_by():
    """As above for the blocked kernel (a cs term over 6 occasions): the cross-products at the draw's ratios."""
    from lmmcompare.bayesian.postprocess import _blocked_draws

    spec = ModelSpec.from_formula("y ~ time + ar1(0 + occ | subj)", small_rm(6), sigma_by="grp")
    t = spec.terms[0]
    beta, sigma, ratios = np.array([10.0, 0.5]), 0.7, np.array([1.4, 0.6])
    idx = np.arange(t.p)
    cov = 1.3 * 0.6 ** np.abs(idx[:, None] - idx[None, :])
    n_draws = 2000
    b = _blocked_draws(spec, np.full((1, n_draws), sigma), np.broadcast_to(beta, (1, n_draws, 2)),
                       [np.broadcast_to(np.linalg.cholesky(cov), (1, n_draws, t.p, t.p))],
                       np.broadcast_to(ratios, (1, n_draws, 2)), np.random.default_rng(3), False)[0]
    b = b.reshape(n_draws, -1)
    Z = spec.Z.toarray()
    G = np.kron(np.eye(t.n_levels), cov)
    delta = np.array([1.0, *ratios])[spec.sigma_by.codes]
    V = Z @ G @ Z.T + np.diag(sigma**2 * delta**2)
    K = G @ Z.T @ np.linalg.inv(V)
    mean, var = K @ (spec.y - spec.X @ beta), np.diag(G - K @ Z @ G)
    assert np.all(np.abs(b.mean(axis=0) - mean) < 4.5 * np.sqrt(var / n_draws))
    np.testing.assert_allclose(b.var(axis=0), var, rtol=4.5 * np.sqrt(2 / n_draws))


def test_blocked_ratio_op_follows_a_new_response():
    """A compiled model refit to a new y (reuse, refit) swaps the Op's response: its value then equals that of an
    Op built for the new response, and differs from the old one."""
    from lmmcompare.bayesian.blocked import BlockedRatioLogLik

    spec = ModelSpec.from_formula("y ~ time + cs(0 + occ | subj)", small_rm(6), sigma_by="grp")
    new_y = spec.y * 1.2 + 3.0
    from lmmcompare.spec.structures import lower_index

    theta = 1.1 * np.eye(6)[lower_index(6)]          # T = 1.1 I in theta's (column-major) order
    args = [np.array([10.0, 0.5]), 0.8, theta, np.array([0.2, -0.1])]

    def value(op, y):
        outputs = [[None] for _ in range(5)]
        op.perform(None, [*args, y], outputs)
        return float(outputs[0][0])

    op = BlockedRatioLogLik(spec)
    old = value(op, spec.y)
    swapped = value(op, new_y)
    assert swapped == pytest.approx(value(BlockedRatioLogLik(spec.with_response(new_y)), new_y), abs=1e-10)
    assert abs(swapped - old) > 1.0
