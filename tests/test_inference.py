"""Satterthwaite / Kenward-Roger df, Wald, profile and bootstrap intervals against
lmerTest 3.1-3, pbkrtest 0.5.2 and lme4 1.1-31 (tests/data/lme4_reference.json).

Where lme4 stopped short of the optimum (Orthodont: our REML criterion is lower
by 1.3e-8 relative) the df and se are compared at lme4's own theta, which is
what lmerTest and pbkrtest used.
"""
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats

import lmmcompare as lc
from lmmcompare.errors import ArgumentError, SingularFitWarning
from lmmcompare.freq import fit_at_theta, make_devfun

from conftest import REFERENCE

REML_CASES = [c for c in REFERENCE if c["reml"] and "satterthwaite_df" in c]
PROFILE_CASES = [c for c in REFERENCE if "profile_ci" in c]


def fit_for(case, fit=None):
    """Our optimum, or lme4's theta where lme4's criterion is above ours (it stopped short)."""
    if fit is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = lc.lmer(case["formula"], case["data"], reml=case["reml"])
    if fit.objective < case["criterion"] - 1e-12 * abs(case["criterion"]):
        return fit_at_theta(make_devfun(fit.spec, case["reml"]), case["theta"])
    return fit


@pytest.mark.parametrize("case", REML_CASES, ids=[c["id"] for c in REML_CASES])
def test_satterthwaite_df_and_p_match_lmertest(case):
    table = fit_for(case).coef_table("satterthwaite")
    names = list(case["satterthwaite_df"])
    np.testing.assert_allclose(table.loc[names, "df"], list(case["satterthwaite_df"].values()), rtol=1e-3)
    np.testing.assert_allclose(table.loc[names, "p"], list(case["satterthwaite_p"].values()), rtol=1e-3)


@pytest.mark.parametrize("case", [c for c in REML_CASES if "kr_df" in c],
                         ids=[c["id"] for c in REML_CASES if "kr_df" in c])
def test_kenward_roger_df_and_se_match_pbkrtest(case):
    """At lme4's theta, as pbkrtest computed them (observed: within 1.4e-12; 7,185 rows in test_kenward_roger)."""
    spec = lc.ModelSpec.from_formula(case["formula"], case["data"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)  # Dyestuff2: theta = 0, as in lme4
        fit = fit_at_theta(make_devfun(spec, True), case["theta"])
    assert fit.sigma == pytest.approx(case["sigma"], rel=1e-12)
    table = fit.coef_table("kenward-roger")
    names = list(case["kr_df"])
    np.testing.assert_allclose(table.loc[names, "df"], list(case["kr_df"].values()), rtol=1e-8)
    np.testing.assert_allclose(table.loc[names, "se"], list(case["kr_se"].values()), rtol=1e-8)


def test_kenward_roger_inflates_the_se_when_it_should():
    """Balanced designs (Orthodont) need no adjustment; an unbalanced one does."""
    balanced = lc.lmer("distance ~ age * Sex + (age | Subject)", "Orthodont")
    np.testing.assert_allclose(balanced.coef_table("kenward-roger")["se"], balanced.se, rtol=1e-8)
    data = lc.load_dataset("sleepstudy")
    codes = data["Subject"].cat.codes
    unbalanced = data[~((codes % 3 == 0) & (data["Days"] > 6)) & ~((codes % 4 == 1) & (data["Days"] < 2))]
    fit = lc.lmer("Reaction ~ Days + (Days | Subject)", unbalanced)
    kr, plain = fit.coef_table("kenward-roger"), fit.coef_table("none")
    assert np.all(kr["se"] > plain["se"] * 1.0001)
    assert np.isinf(plain["df"]).all()
    np.testing.assert_allclose(plain["p"], 2 * scipy.stats.norm.sf(np.abs(plain["t"])))


@pytest.mark.parametrize("case", REFERENCE, ids=[c["id"] for c in REFERENCE])
def test_wald_intervals_match_lme4(case, fitted_cases):
    ci = fit_for(case, fitted_cases[case["id"]]).confint("wald")
    ref = case["wald_ci"]
    np.testing.assert_allclose(ci.loc[ref["names"], "lower"], ref["lower"], rtol=1e-5)
    np.testing.assert_allclose(ci.loc[ref["names"], "upper"], ref["upper"], rtol=1e-5)
    assert ci.drop(index=ref["names"]).isna().all().all()


@pytest.mark.parametrize("case", PROFILE_CASES, ids=[c["id"] for c in PROFILE_CASES])
def test_profile_intervals_match_lme4(case, fitted_cases):
    """Each end within 2e-3 relative (2e-3 absolute for correlations) of lme4; where it is
    not, lme4's end (from an interpolating spline) must lie on our profile at |zeta| = z
    to 2e-3, i.e. the difference is lme4's interpolation, not our profile."""
    fit = fitted_cases[case["id"]]
    prof = fit.profile()
    ci = prof.confint(0.95)
    ref = case["profile_ci"]
    assert list(ci.index) == ref["names"]
    for name, lo, hi in zip(ref["names"], ref["lower"], ref["upper"]):
        for side, mine, theirs in (("lower", ci.loc[name, "lower"], lo), ("upper", ci.loc[name, "upper"], hi)):
            tol = 2e-3 if name.startswith("cor_") else 2e-3 * abs(theirs)
            if abs(mine - theirs) <= tol:
                continue
            # check lme4's end on our profile
            single = fit.profile(which=[name])
            trace = single.traces[name]
            z_at = np.interp(theirs, trace["value"], trace["zeta"])
            assert abs(abs(z_at) - 1.959964) < 2e-3 * 1.96 or abs(mine - theirs) < 1e-4 * max(1, abs(ci.loc[name]).max()), \
                (name, side, mine, theirs, z_at)


def test_profile_traces_are_monotone_and_zero_at_the_estimate():
    fit = lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    prof = fit.profile()
    for name, trace in prof.traces.items():
        assert np.all(np.diff(trace["zeta"]) > 0), name
        at_est = trace.loc[np.isclose(trace["value"], prof.estimates[name]), "zeta"]
        assert len(at_est) == 1 and at_est.iloc[0] == 0.0


def test_profile_handles_the_boundary_like_lme4():
    fit = lc.lmer("Yield ~ 1 + (1 | Batch)", "Dyestuff2")
    ci = fit.confint("profile", progress=False)
    assert ci.loc["sd_(Intercept)|Batch", "lower"] == 0.0
    ref = next(c for c in REFERENCE if c["id"] == "dyestuff2_reml_singular")["profile_ci"]
    assert ci.loc["sd_(Intercept)|Batch", "upper"] == pytest.approx(ref["upper"][0], rel=2e-3)


@pytest.fixture(scope="module")
def sleep_ml():
    return lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy", reml=False)


def test_profile_of_a_fit_with_correlation_one_is_finite_and_exact():
    """A sleepstudy response simulated from the REML fit whose refit is singular (correlation +1).

    Rounding put the estimated correlation at 1 + 2e-16, which made the profile
    base deviance infinite and every interval (-inf, inf).  The interval ends are
    checked against a brute-force profile (Nelder-Mead over the other parameters,
    the correlation as cos(phi) so the boundary is inside the search).  lme4's
    spline-based profile is up to 3% narrower here (sd_(Intercept) upper 30.26,
    where the brute-force zeta is 1.86).
    """
    import scipy.optimize

    from lmmcompare.freq.inference.variance_scale import VarianceScale

    fit = lc.lmer("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    y = fit.simulate(1, seed=4169215644)["sim_1"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refit = lc.lmer(fit.spec.with_response(y))
        ci = refit.confint("profile", progress=False)
        ml = lc.lmer(refit.spec, reml=False)
    assert refit.singular and ci.loc["cor_Days.(Intercept)|Subject", "upper"] == 1.0
    assert np.isfinite(ci.to_numpy()).all()
    scale = VarianceScale(ml)
    s_hat = scale.from_fit()
    base = scale.deviance(s_hat)

    def brute_zeta(i, x):
        best = np.inf
        for start in (s_hat, s_hat * [1.1, 0, 1.2, 1.0], s_hat * [0.9, 0, 0.8, 1.05]):
            v0 = np.array([start[0], 0.5, start[2], start[3]])   # (sd1, phi, sd2, sigma), cor = cos(phi)
            free = [k for k in range(4) if k != i]

            def dev(z):
                v = v0.copy()
                v[free], v[i] = z, x
                return scale.deviance(np.array([abs(v[0]), np.cos(v[1]), abs(v[2]), abs(v[3])]))

            res = scipy.optimize.minimize(dev, v0[free], method="Nelder-Mead",
                                          options=dict(xatol=1e-9, fatol=1e-10, maxiter=20000))
            best = min(best, res.fun)
        return np.sign(x - s_hat[i]) * np.sqrt(max(best - base, 0.0))

    z = scipy.stats.norm.ppf(0.975)
    for name, i, side, sign in [("sd_(Intercept)|Subject", 0, "upper", 1), ("sd_Days|Subject", 2, "lower", -1),
                                ("sd_Days|Subject", 2, "upper", 1), ("sigma", 3, "lower", -1)]:
        assert brute_zeta(i, ci.loc[name, side]) == pytest.approx(sign * z, abs=2e-3), (name, side)


def test_bootstrap_is_reproducible_and_independent_of_n_jobs(sleep_ml):
    a = lc.freq.inference.bootstrap(sleep_ml, nsim=24, seed=11, progress=False)
    b = lc.freq.inference.bootstrap(sleep_ml, nsim=24, seed=11, progress=False)
    c = lc.freq.inference.bootstrap(sleep_ml, nsim=24, seed=11, n_jobs=2, progress=False)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)
    assert list(a.columns) == ["sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject", "sd_Days|Subject",
                               "sigma", "(Intercept)", "Days"]


def test_bootstrap_intervals_agree_with_profile_to_monte_carlo_error(sleep_ml):
    """Fixed effects and sigma: each percentile end within 4 Monte Carlo standard errors
    of the profile end (se of a sample quantile: sqrt(a(1-a)/n) / density, normal density)."""
    nsim, level = 300, 0.95
    draws = lc.freq.inference.bootstrap(sleep_ml, nsim=nsim, seed=2024, progress=False)
    prof = sleep_ml.confint("profile", progress=False)
    a = (1 - level) / 2
    for name in ["(Intercept)", "Days", "sigma"]:
        sd = draws[name].std()
        mc_se = np.sqrt(a * (1 - a) / nsim) / (scipy.stats.norm.pdf(scipy.stats.norm.ppf(a)) / sd)
        lo, hi = draws[name].quantile([a, 1 - a])
        assert abs(lo - prof.loc[name, "lower"]) < 4 * mc_se, name
        assert abs(hi - prof.loc[name, "upper"]) < 4 * mc_se, name


def test_contrast_single_row_is_the_t_test_and_rows_combine():
    fit = lc.lmer("angle ~ recipe * temp + (1 | recipe:replicate)", "cake")
    table = fit.coef_table()
    L = np.zeros(6)
    L[3] = 1.0
    one = fit.contrast(L)
    assert one["F value"].iloc[0] == pytest.approx(table.loc["temp", "t"] ** 2, rel=1e-10)
    assert one["DenDF"].iloc[0] == pytest.approx(table.loc["temp", "df"], rel=1e-8)
    two = fit.contrast(np.eye(6)[[1, 2]])
    est, V = fit.beta[[1, 2]], fit.vcov_beta[np.ix_([1, 2], [1, 2])]
    assert two["F value"].iloc[0] == pytest.approx(est @ np.linalg.solve(V, est) / 2, rel=1e-10)
    assert two["NumDF"].iloc[0] == 2
    kr1 = fit.contrast(L, ddf="kenward-roger")
    assert kr1["DenDF"].iloc[0] == pytest.approx(fit.coef_table("kenward-roger").loc["temp", "df"], rel=1e-8)
    terms = lc.anova(fit)
    assert list(terms.index) == ["recipe", "temp", "recipe:temp"]
    assert terms.loc["recipe", "F value"] == pytest.approx(two["F value"].iloc[0], rel=1e-10)
    assert terms.loc["recipe", "DenDF"] == pytest.approx(two["DenDF"].iloc[0], rel=1e-8)   # the same hypothesis


def test_inference_argument_errors():
    fit = lc.lmer("Yield ~ 1 + (1 | Batch)", "Dyestuff")
    with pytest.raises(ArgumentError, match="ddf must be one of satterthwaite, kenward-roger, none"):
        fit.coef_table("KR")
    with pytest.raises(ArgumentError, match="method must be one of profile, wald, boot"):
        fit.confint("bayes")
    with pytest.raises(ArgumentError, match="level must be a number between 0 and 1"):
        fit.confint("wald", level=95)
    with pytest.raises(ArgumentError, match="L must have 1 columns"):
        fit.contrast([1.0, 0.0])


def test_plot_profile_draws_each_trace():
    from lmmcompare.plots import plot_profile

    fit = lc.lmer("Yield ~ 1 + (1 | Batch)", "Dyestuff")
    prof = fit.profile()
    fig = plot_profile(prof)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == list(prof.traces)
    ci = prof.confint(0.95)
    for ax, (name, trace) in zip(visible, prof.traces.items()):
        np.testing.assert_allclose(ax.lines[0].get_xdata(), trace["value"])
        np.testing.assert_allclose(ax.lines[0].get_ydata(), trace["zeta"])
        # zeta = 0 and +-1.96, and a vertical line at each finite end of the profile interval
        levels = sorted(line.get_ydata()[0] for line in ax.lines[1:4])
        np.testing.assert_allclose(levels, [-1.959964, 0, 1.959964], atol=1e-6)
        ends = [line.get_xdata()[0] for line in ax.lines[4:]]
        np.testing.assert_allclose(ends, [e for e in ci.loc[name] if np.isfinite(e)], rtol=1e-12)
        assert ax.get_ylabel() == r"$\zeta$"


@pytest.mark.parametrize("a, b", [(0.0, 3.0), (1.2, 1.5), (-1.0, 40.0)])
def test_secant_interval_end_is_the_root_and_stays_in_its_bracket(a, b):
    """The profile's root step on f(x) = x^3 - 2 (root 2^(1/3)): within tol of a root, every point inside
    [a, b]; None when the steps allowed do not reach it (then Brent's method takes over)."""
    from lmmcompare.freq.inference.profile import _secant_in_bracket

    seen = []

    def f(x):
        seen.append(x)
        return x ** 3 - 2.0

    root = _secant_in_bracket(f, a, b, f(a), f(b), tol=1e-10, steps=60)
    assert abs(root ** 3 - 2.0) < 1e-10
    assert root == pytest.approx(2.0 ** (1 / 3), abs=1e-10)
    assert all(a <= x <= b for x in seen)
    assert _secant_in_bracket(f, a, b, f(a), f(b), tol=1e-14, steps=1) is None
