"""Leave-one-group-out PSIS-LOO (lmmcompare.bayesian.group_loo, BayesFit.loo(by="group")).

(a) each group's per-draw log density, b integrated out, against a dense multivariate
    normal (scipy) and, summed over groups, against the core's blocked likelihood;
(b) each group's PSIS-LOO term against brute-force leave-one-group-out (refit without
    the group, then the exact marginal density of its rows), within Monte Carlo error;
(c) crossed factors raise the typed error, and the comparison layer says so.
"""
import html
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import scipy.stats
from scipy.special import logsumexp

import lmmcompare as lc
from conftest import prior_fit
from lmmcompare.bayesian.group_loo import group_log_likelihood, loo_grouping_factor
from lmmcompare.compare.checks import pareto_note
from lmmcompare.core.blocks import cross_products
from lmmcompare.core.likelihood import loglik
from lmmcompare.core.relcovar import lower_index
from lmmcompare.errors import CrossedGroupingError, SamplingWarning


def draw_parameters(spec, post, chain, draw):
    """beta, sigma and each term's Sigma_t of one draw, read from the named posterior by hand."""
    at = {"chain": chain, "draw": draw}
    beta = np.array([float(post[n].isel(at)) for n in spec.fixed_names])
    covs = []
    for i, term in enumerate(spec.terms):
        sd = np.array([float(post[r.label].isel(at)) for r in spec.parameters.sds(i)])
        cor = np.eye(term.p)
        for r in spec.parameters.of_term(i):
            if r.kind == "cor":
                cor[r.i, r.j] = cor[r.j, r.i] = float(post[r.label].isel(at))
        covs.append(np.outer(sd, sd) * cor)
    return beta, float(post["sigma"].isel(at)), covs


@pytest.mark.parametrize("formula, data, factor", [
    ("strength ~ 1 + (1 | batch/cask)", "Pastes", "batch"),          # nested: cask:batch is the first term
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "Subject"),
    ("distance ~ age + (age || Subject)", "Orthodont", "Subject"),   # two terms on one factor
])
def test_group_density_is_the_dense_multivariate_normal(formula, data, factor):
    spec = lc.ModelSpec.from_formula(formula, data)
    fit, _ = prior_fit(spec)
    post = fit.idata.posterior
    G = loo_grouping_factor(spec)
    assert G.name == factor
    got = group_log_likelihood(spec, post)
    assert got.dims == ("chain", "draw", factor) and list(got[factor].values) == list(G.levels)
    Z, cp = spec.Z.toarray(), cross_products(spec)
    for chain, draw in [(0, 0), (0, 11), (1, 4), (1, 29)]:
        beta, sigma, covs = draw_parameters(spec, post, chain, draw)
        Sigma = scipy.linalg.block_diag(*[np.kron(np.eye(t.n_levels), c) for t, c in zip(spec.terms, covs)])
        for g in range(G.n_levels):
            rows = G.codes == g
            V = sigma**2 * np.eye(rows.sum()) + Z[rows] @ Sigma @ Z[rows].T
            dense = scipy.stats.multivariate_normal(spec.X[rows] @ beta, V).logpdf(spec.y[rows])
            assert float(got[chain, draw, g]) == pytest.approx(dense, rel=1e-10, abs=1e-10)
        # the groups are independent given theta: their sum is the whole marginal likelihood
        theta = np.concatenate([np.linalg.cholesky(c)[lower_index(t.p)] / sigma for t, c in zip(spec.terms, covs)])
        whole = loglik(cp, beta, sigma, theta, gradient=False).value
        assert float(got[chain, draw].sum()) == pytest.approx(whole, rel=1e-10, abs=1e-10)


# (b) brute force: 6 groups x 8 rows, x = 0..7 in every group, so every subset has the same
# mean of x and the prior of the intercept (set on centred predictors) stays the same in a refit
GROUPS, ROWS = 6, 8
SAMPLING = dict(draws=1000, tune=500, chains=2, progressbar=False, parameterization="marginal")


@pytest.fixture(scope="module")
def simulated():
    rng = np.random.default_rng(0)
    x = np.tile(np.arange(ROWS, dtype=float), GROUPS)
    y = 1 + 0.5 * x + np.repeat(rng.normal(0, 1, GROUPS), ROWS) + rng.normal(0, 1, GROUPS * ROWS)
    data = pd.DataFrame({"y": y, "x": x, "g": np.repeat([f"g{i}" for i in range(GROUPS)], ROWS)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return data, lc.bayes("y ~ x + (1 | g)", data, seed=1, **SAMPLING)


def log_mean_exp_and_se(logp):
    """``log mean_s p_s`` of (chain, draw) log densities and its Monte Carlo se.

    Delta method: ``se(log mean p) = sd(p) / (mean(p) sqrt(ESS(p)))``, ESS from ArviZ
    (autocorrelation within chains).
    """
    p = np.exp(logp - logp.max())
    ess = float(az.ess(p))
    return float(np.log(p.mean()) + logp.max()), float(p.std() / (p.mean() * np.sqrt(ess)))


def psis_se(logp):
    """Monte Carlo se of one PSIS-LOO term ``log sum_s w_s p_s`` (normalised smoothed weights w_s).

    The self-normalised importance-sampling estimate ``E = sum_s w_s p_s`` of
    ``E_loo[p]`` has variance ``sum_s w_s^2 (p_s - E)^2 / r_eff`` (``r_eff`` = ESS(p)/S,
    for the chains' autocorrelation), so ``se(log E) = sqrt(var) / E``, as the loo
    package's ``E_loo`` computes it.
    """
    flat = logp.reshape(-1)
    p = np.exp(flat - flat.max())
    r_eff = float(az.ess(p.reshape(logp.shape))) / p.size
    log_w, _ = az.psislw(-flat, r_eff)
    w = np.exp(log_w - logsumexp(log_w))
    E = np.sum(w * p)
    return float(np.sqrt(np.sum(w**2 * (p - E) ** 2) / r_eff) / E)


@pytest.mark.parametrize("level", ["g0", "g3"])
def test_group_psis_loo_agrees_with_brute_force_leave_one_group_out(simulated, level):
    data, full = simulated
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        loo = full.loo(pointwise=True, by="group")
    assert float(loo.pareto_k.sel(g=level)) < 0.7   # where PSIS is trusted, it must match
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        # the same priors: the defaults are scaled to the data, which leaving out a group changes
        without = lc.bayes("y ~ x + (1 | g)", data[data.g != level], seed=2, priors=full.priors, **SAMPLING)
    # log p(y_g | theta_s) at the draws of the refit: the same function on the refit's posterior,
    # whose parameter names are those of the full spec (only the rows of g are read)
    held_out = group_log_likelihood(full.spec, without.idata.posterior).sel(g=level).values
    brute, se_brute = log_mean_exp_and_se(held_out)
    full_logp = group_log_likelihood(full.spec, full.idata.posterior).sel(g=level).values
    psis, se_psis = float(loo.loo_i.sel(g=level)), psis_se(full_logp)
    se = np.hypot(se_brute, se_psis)
    assert se < 0.06
    assert abs(psis - brute) < 3 * se
    # ...and the test can tell leaving out from not: the in-sample log mean density is far off
    in_sample, _ = log_mean_exp_and_se(full_logp)
    assert in_sample - brute > 10 * se


def test_fit_statistics_show_both_levels(simulated, tmp_path):
    data, full = simulated
    freq = lc.lmer("y ~ x + (1 | g)", data)
    cmp = lc.compare(freq, full)
    fs = cmp.fit_statistics()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loo = full.loo(pointwise=True, by="group")
    # the warning names every level whose k exceeds ArviZ's threshold, and only those
    high_k = loo.pareto_k[loo.pareto_k > float(loo.good_k)]
    assert [str(w.message).split("(")[1].split(")")[0] for w in caught if w.category is SamplingWarning] \
        == ([", ".join(high_k.g.values)] if high_k.size else [])
    logp = group_log_likelihood(full.spec, full.idata.posterior).values.reshape(-1, GROUPS)
    lppd = float(np.sum(logsumexp(logp, axis=0) - np.log(logp.shape[0])))
    assert fs.loc["loo_group", "bayesian"] == "g"
    assert fs.loc["elpd_loo_group", "bayesian"] == pytest.approx(float(loo.loo_i.sum()), rel=1e-12)
    assert fs.loc["p_loo_group", "bayesian"] == pytest.approx(lppd - float(loo.loo_i.sum()), rel=1e-10)
    assert fs.loc["pareto_k_over_0.7_group", "bayesian"] == int((loo.pareto_k > 0.7).sum())
    high = int(fs.loc["pareto_k_over_0.7", "bayesian"]), int(fs.loc["pareto_k_over_0.7_group", "bayesian"])
    assert fs.attrs["pareto_note"] == pareto_note(*high, full.spec.n, {}, "g", GROUPS)
    # loo() without pointwise: the same totals
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        total = full.loo(by="group")
    assert float(total.elpd_loo) == float(loo.elpd_loo) and "loo_i" not in total.index
    page = open(cmp.report(tmp_path / "r.html", ci="wald"), encoding="utf-8").read()
    assert "elpd_loo_group" in page and "pareto_k_over_0.7_group" in page
    assert html.escape(fs.attrs["pareto_note"]) in page


def test_pareto_note_names_the_trusted_level():
    assert "trust both" in pareto_note(0, 0, 180, {}, "Subject", 18)
    assert "trust the group-level estimate only" in pareto_note(3, 0, 180, {}, "Subject", 18)
    assert "trust the observation-level estimate only" in pareto_note(0, 2, 180, {}, "Subject", 18)
    assert "trust neither" in pareto_note(3, 1, 180, {}, "Subject", 18)
    crossed = pareto_note(0, float("nan"), 144, {"group": "crossed factors"})
    assert "group-level PSIS-LOO not available (crossed factors)" in crossed
    assert "trust the observation-level estimate only" in crossed


def test_crossed_factors_raise_the_typed_error():
    spec = lc.ModelSpec.from_formula("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin")
    fit, _ = prior_fit(spec)
    with pytest.raises(CrossedGroupingError, match=r"crossed grouping factors \(plate, sample\)") as info:
        fit.loo(by="group")
    assert "sample is not nested in plate" in str(info.value) and "plate is not nested in sample" in str(info.value)
    assert isinstance(info.value, ValueError)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fs = lc.compare(lc.lmer(spec), fit).fit_statistics()
    assert np.isnan(fs.loc["elpd_loo_group", "bayesian"]) and np.isnan(fs.loc["pareto_k_over_0.7_group", "bayesian"])
    assert "group-level PSIS-LOO not available (crossed grouping factors plate, sample" in fs.attrs["pareto_note"]
