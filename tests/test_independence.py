"""The independence Metropolis-Hastings step (``sampler="independence"``) and when ``"auto"`` picks it.

The step must sample the exact posterior whatever its proposal: on a known target
(a correlated Gaussian and a Gamma, proposal centred off the mode and too narrow)
the draws' means, sds and correlation match the target's within Monte Carlo
error.  On an LMM it agrees with NUTS on the marginal model within 4 Monte Carlo
SE.  Its value-only likelihood is the blocked Op's value; the rule of ``"auto"``
and the reuse of the factor for repeated draws of ``b`` are checked directly.
"""
import numpy as np
import pandas as pd
import pytest

import lmmcompare as lc
from lmmcompare.bayesian.priors import default_priors
from lmmcompare.bayesian.reuse import built_model

pm = pytest.importorskip("pymc")


def _draws(idata, name):
    return idata.posterior[name].values.reshape(-1, *idata.posterior[name].shape[2:])


def test_step_samples_a_known_target_from_a_poor_proposal():
    """Target: x ~ N(mu, S) (2-D, correlation 0.6) and g ~ Gamma(3, 2); the proposal's centre is shifted by
    half an sd and its scale is 0.6 of the truth, so only the Metropolis-Hastings correction makes it right."""
    from lmmcompare.bayesian.independence import LaplaceIndependence

    mu, sd, rho = np.array([1.0, -2.0]), np.array([0.5, 2.0]), 0.6
    S = np.diag(sd) @ np.array([[1, rho], [rho, 1]]) @ np.diag(sd)
    with pm.Model() as model:
        pm.MvNormal("x", mu=mu, cov=S)
        pm.Gamma("g", alpha=3.0, beta=2.0)   # sampled as log g
    # unconstrained order: x (2), log g (1); the log-Gamma's mode is log(3/2), its curvature 3
    mode = np.array([1.25, -1.0, np.log(1.5) + 0.3])
    cov = 0.36 * np.diag([0.25, 4.0, 1.0 / 3.0])
    with model:
        step = LaplaceIndependence(model=model, mode=mode, cov=cov)
        idata = pm.sample(draws=4000, tune=500, chains=2, cores=1, step=step, random_seed=5, progressbar=False,
                          compute_convergence_checks=False)
    import arviz as az

    x, g = _draws(idata, "x"), _draws(idata, "g")
    ess_x = np.array([float(az.ess(idata.posterior["x"].sel(x_dim_0=k).values)) for k in range(2)])
    ess_g = float(az.ess(idata.posterior["g"].values))
    # means within 4 Monte Carlo SE; sds within 4 SE of an sd (sd / sqrt(2 ESS), Gaussian; Gamma's kurtosis 2
    # adds to it: var(s^2) = sigma^4 (2 + kurtosis) / ESS)
    assert np.all(np.abs(x.mean(axis=0) - mu) < 4 * sd / np.sqrt(ess_x))
    assert np.all(np.abs(x.std(axis=0) - sd) < 4 * sd / np.sqrt(2 * ess_x))
    assert abs(np.corrcoef(x.T)[0, 1] - rho) < 4 * (1 - rho**2) / np.sqrt(ess_x.min())
    g_sd = np.sqrt(3.0) / 2.0
    assert abs(g.mean() - 1.5) < 4 * g_sd / np.sqrt(ess_g)
    assert abs(g.std() - g_sd) < 4 * g_sd * np.sqrt(4.0 / ess_g) / 2
    accept = idata.sample_stats["accept"].values
    assert 0.2 < accept.mean() < 0.95     # a real Metropolis-Hastings chain: it moves and it rejects
    # a rejected proposal repeats the state: moves and repeats add up to the draws
    moved = np.abs(np.diff(x[:, 0])) > 0
    assert abs(moved.mean() - idata.sample_stats["accepted"].values.mean()) < 0.01


def test_value_only_density_is_the_models_density():
    """The blocked Op's value-only twin gives the model's log density to rounding, at points around the mode."""
    from pymc.blocking import DictToArrayBijection

    from lmmcompare.bayesian.independence import LaplaceIndependence

    spec = lc.ModelSpec.from_formula("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin")
    built = built_model(spec, default_priors(spec, None), "marginal")
    model = built.model
    point = model.initial_point()
    x0 = DictToArrayBijection.map({v.name: point[v.name] for v in model.value_vars}).data
    with model:
        step = LaplaceIndependence(model=model, mode=x0, cov=np.eye(x0.size))
    full = model.compile_logp()
    info = DictToArrayBijection.map({v.name: point[v.name] for v in model.value_vars}).point_map_info
    from pymc.blocking import RaveledVars

    rng = np.random.default_rng(3)
    for _ in range(4):
        x = x0 + 0.3 * rng.standard_normal(x0.size)
        expected = full(DictToArrayBijection.rmap(RaveledVars(x, info)))
        assert abs(float(step.logp(x)) - float(expected)) < 1e-9 * abs(float(expected))


def _crossed(n_rows, n_first, n_second, seed=0):
    rng = np.random.default_rng(seed)
    g1, g2 = rng.integers(n_first, size=n_rows), rng.integers(n_second, size=n_rows)
    y = rng.normal(size=n_first)[g1] + rng.normal(size=n_second)[g2] + rng.normal(size=n_rows)
    return pd.DataFrame({"y": y, "g1": g1.astype(str), "g2": g2.astype(str)})


@pytest.mark.parametrize("n_rows, n_first, n_second, expected", [
    (12_000, 800, 600, True),     # a dense trailing block of 600 rows: a gradient costs O(600^3)
    (9_999, 800, 600, False),     # fewer rows than the rule asks for
    (12_000, 800, 400, False),    # a trailing block of 400 rows
])
def test_auto_picks_the_independence_step_for_large_crossed_models(n_rows, n_first, n_second, expected):
    from lmmcompare.bayesian.independence import costly_gradient

    spec = lc.ModelSpec.from_formula("y ~ 1 + (1 | g1) + (1 | g2)", _crossed(n_rows, n_first, n_second))
    assert costly_gradient(built_model(spec, default_priors(spec, None), "marginal")) is expected


def test_auto_keeps_nuts_for_one_grouping_factor_however_large():
    from lmmcompare.bayesian.independence import costly_gradient

    data = _crossed(20_000, 900, 2)
    spec = lc.ModelSpec.from_formula("y ~ 1 + (1 | g1)", data)   # the closed form: no blocked factor
    assert not costly_gradient(built_model(spec, default_priors(spec, None), "marginal"))


def test_repeated_parameters_reuse_the_factor_for_the_same_draw():
    """``conditional_effects`` with the factor handed in draws exactly what it draws factoring itself."""
    from lmmcompare.core.blocks import cross_products
    from lmmcompare.core.factor import factorize
    from lmmcompare.core.likelihood import conditional_effects

    spec = lc.ModelSpec.from_formula("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin")
    cp = cross_products(spec)
    beta, sigma, theta = np.array([22.9]), 0.55, np.array([1.5, 3.4])
    own = conditional_effects(cp, beta, sigma, theta, np.random.default_rng(8))
    given = conditional_effects(cp, beta, sigma, theta, np.random.default_rng(8), factor=factorize(cp, theta))
    np.testing.assert_array_equal(own, given)


PENICILLIN = "diameter ~ 1 + (1 | plate) + (1 | sample)"
OPTIONS = dict(draws=1000, tune=500, chains=2, seed=4, progressbar=False, log_likelihood=False)


@pytest.fixture(scope="module")
def penicillin_mh():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lc.bayes(PENICILLIN, "Penicillin", sampler="independence", **OPTIONS)


@pytest.mark.filterwarnings("ignore::lmmcompare.errors.SamplingWarning")
def test_independence_and_nuts_sample_the_same_penicillin_posterior(penicillin_mh):
    """The two samplers on the same marginal model: every parameter's posterior mean within 4 Monte Carlo SE,
    and the same seed gives the same draws (random effects included: their streams are spawned per chain)."""
    mh = penicillin_mh
    nuts = lc.bayes(PENICILLIN, "Penicillin", sampler="pymc", **OPTIONS)
    assert (mh.sampler, nuts.sampler) == ("independence", "pymc")
    a, b = mh.diagnostics(), nuts.diagnostics()
    for name in a.index:
        bound = 4 * np.hypot(a.loc[name, "mcse_mean"], b.loc[name, "mcse_mean"])
        assert abs(float(mh.idata.posterior[name].mean()) - float(nuts.idata.posterior[name].mean())) < bound, name
    assert mh.sampler_stats()["acceptance"].between(0.2, 0.99).all()
    again = lc.bayes(PENICILLIN, "Penicillin", sampler="independence", **OPTIONS)
    for name in ("sd_(Intercept)|sample", "r_plate"):
        np.testing.assert_array_equal(again.idata.posterior[name].values, mh.idata.posterior[name].values)


def test_diagnostics_report_the_share_of_moves_and_warn_when_it_is_low(penicillin_mh):
    import dataclasses

    from lmmcompare.errors import SamplingWarning

    accepted = penicillin_mh.idata.sample_stats["accepted"].values
    attrs = penicillin_mh.diagnostics().attrs
    assert attrs["moves"] == pytest.approx(accepted.mean())
    assert "gradients_per_draw" not in attrs
    stuck = penicillin_mh.idata.copy()
    stuck.sample_stats["accepted"] = stuck.sample_stats["accepted"] * 0.0 + (np.arange(accepted.shape[1]) % 20 == 0)
    with pytest.warns(SamplingWarning, match="independence sampler moved on only 5% of draws"):
        dataclasses.replace(penicillin_mh, idata=stuck).diagnostics(warn=True)


@pytest.mark.filterwarnings("ignore:bulk or tail ESS")   # 50 draws: the ESS warning is expected
def test_without_a_laplace_approximation_it_samples_by_nuts_and_says_so(monkeypatch):
    """A Hessian at the mode that is not negative definite leaves nothing to propose from: NUTS, with a warning."""
    import dataclasses

    from lmmcompare.bayesian import start
    from lmmcompare.errors import SamplingWarning

    real = start.laplace_approximation

    def flat(model, rng):
        found = real(model, rng)
        return dataclasses.replace(found, hessian=np.eye(found.mode.size))

    monkeypatch.setattr(start, "laplace_approximation", flat)
    with pytest.warns(SamplingWarning, match="Hessian at the posterior mode is not negative definite"):
        post = lc.bayes(PENICILLIN, "Penicillin", sampler="independence", draws=50, tune=50, chains=1, seed=1,
                        progressbar=False, log_likelihood=False)
    assert post.sampler == "pymc" and "gradients_per_draw" in post.diagnostics().attrs
