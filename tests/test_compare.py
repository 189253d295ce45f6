"""The comparison layer, its plots, the HTML report and the command line."""
import re
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.special

import lmmcompare as lc
from lmmcompare.errors import ArgumentError, SamplingWarning
from lmmcompare.plots import caterpillar_plot, forest_plot, ppc_plot, shrinkage_plot, trace_plot

SAMPLING = dict(draws=300, tune=300, chains=2, progressbar=False, parameterization="marginal")


@pytest.fixture(scope="module")
def sleep_cmp():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return lc.fit_both("Reaction ~ Days + (Days | Subject)", "sleepstudy", seed=4, **SAMPLING)


@pytest.fixture(scope="module")
def dyestuff2_cmp():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lc.fit_both("Yield ~ 1 + (1 | Batch)", "Dyestuff2", seed=5, **SAMPLING)


def test_table_columns_and_names(sleep_cmp):
    table = sleep_cmp.table("wald")
    assert list(table.index) == ["(Intercept)", "Days", "sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject",
                                 "sd_Days|Subject", "sigma"]
    assert list(table.columns) == ["estimate", "se", "lower", "upper", "interval", "post_mean", "post_median",
                                   "post_sd", "eti_lower", "eti_upper", "hdi_lower", "hdi_upper", "r_hat",
                                   "ess_bulk", "shift", "overlap", "flag"]
    fit = sleep_cmp.freq
    np.testing.assert_allclose(table.loc["Days", ["estimate", "se"]], [fit.fixef["Days"], fit.se["Days"]])
    assert np.isnan(table.loc["sigma", "se"]) and np.isnan(table.loc["sigma", "lower"])  # Wald: fixed only
    draws = sleep_cmp.bayes.idata.posterior["Days"].values.ravel()
    assert table.loc["Days", "post_median"] == pytest.approx(np.median(draws))
    assert table.loc["Days", "shift"] == pytest.approx((np.median(draws) - fit.fixef["Days"]) / fit.se["Days"])
    lo, hi = table.loc["Days", ["lower", "upper"]]
    elo, ehi = table.loc["Days", ["eti_lower", "eti_upper"]]
    inter = max(0, min(hi, ehi) - max(lo, elo))
    assert table.loc["Days", "overlap"] == pytest.approx(inter / (max(hi, ehi) - min(lo, elo)))
    assert table.loc["Days", "flag"] == ""


def test_profile_table_uses_profile_intervals(sleep_cmp):
    table = sleep_cmp.table("profile")
    prof = sleep_cmp.freq.confint("profile", progress=False)
    np.testing.assert_allclose(table["lower"], prof.loc[table.index, "lower"])
    assert (table["interval"] == "profile").all()


def test_boundary_flag_on_dyestuff2(dyestuff2_cmp):
    table = dyestuff2_cmp.table("profile")
    assert dyestuff2_cmp.freq.singular
    assert "boundary" in table.loc["sd_(Intercept)|Batch", "flag"]
    flags = dyestuff2_cmp.flags("profile")
    assert any(name == "sd_(Intercept)|Batch" and flag == "boundary" and "boundary (0)" in text
               for name, flag, text in flags)


def test_ranef_table_and_shrinkage(sleep_cmp):
    rt = sleep_cmp.ranef_table()
    assert list(rt.columns) == ["group", "level", "coef", "mode", "cond_sd", "post_mean", "post_sd"]
    assert len(rt) == 36
    row = rt[(rt.level == "308") & (rt.coef == "Days")].iloc[0]
    assert row["mode"] == pytest.approx(sleep_cmp.freq.ranef()["Subject"].loc["308", "Days"])
    s = sleep_cmp.shrinkage()
    data = lc.load_dataset("sleepstudy")
    sub = data[data.Subject == "308"]
    slope, intercept = np.polyfit(sub.Days, sub.Reaction, 1)
    assert s[(s.level == "308") & (s.coef == "Days")]["ols"].item() == pytest.approx(slope)
    # BLUPs shrink the per-subject slopes towards the population slope
    wide = s[s.coef == "Days"]
    assert np.var(wide["reml"]) < np.var(wide["ols"])


def test_ppc_statistics_and_fit_statistics(sleep_cmp):
    ppc = sleep_cmp.ppc(seed=1)
    assert list(ppc.index) == ["mean", "sd", "min", "max", "sd of Subject means"]
    y = sleep_cmp.spec.y
    assert ppc.loc["mean", "observed"] == pytest.approx(np.mean(y))
    # P(T(y_rep) >= T(y)) over the same replicated data sets, by hand
    yrep = sleep_cmp.bayes.posterior_predictive(seed=1).values.reshape(-1, y.size)
    subject = lc.load_dataset("sleepstudy")["Subject"].to_numpy()
    by_hand = {"mean": (yrep.mean(axis=1), y.mean()), "sd": (yrep.std(axis=1, ddof=1), y.std(ddof=1)),
               "min": (yrep.min(axis=1), y.min()), "max": (yrep.max(axis=1), y.max()),
               "sd of Subject means": (pd.DataFrame(yrep.T).groupby(subject).mean().std(ddof=1).to_numpy(),
                                       pd.Series(y).groupby(subject).mean().std(ddof=1))}
    for name, (rep, observed) in by_hand.items():
        assert ppc.loc[name, "observed"] == pytest.approx(observed, rel=1e-12), name
        assert ppc.loc[name, "replicated_mean"] == pytest.approx(rep.mean(), rel=1e-12), name
        assert ppc.loc[name, "p_value"] == np.mean(rep >= observed), name
    assert 0.05 < ppc.loc["mean", "p_value"] < 0.95  # a well-fitting model reproduces the mean
    fs = sleep_cmp.fit_statistics()
    assert fs.loc["AIC", "frequentist"] == pytest.approx(sleep_cmp.freq.aic)
    # PSIS-LOO: p_loo = lppd - elpd_loo, with lppd = sum_i log mean_s p(y_i | theta_s) by hand
    loglik = sleep_cmp.bayes.idata.log_likelihood["y"].values.reshape(-1, y.size)
    lppd = float(np.sum(scipy.special.logsumexp(loglik, axis=0) - np.log(loglik.shape[0])))
    elpd, p_loo = fs.loc["elpd_loo", "bayesian"], fs.loc["p_loo", "bayesian"]
    assert lppd - elpd == pytest.approx(p_loo, rel=1e-6)
    assert 2 < p_loo < 2 + 36 + 4   # fixed effects + shrunken subject effects + variance parameters


def drawn_lines(ax):
    """(x, y) of every line with data (legend proxies are empty)."""
    return [(line.get_xdata().tolist(), line.get_ydata().tolist()) for line in ax.lines if len(line.get_xdata())]


def test_forest_plot_draws_the_table_s_estimates_and_intervals(sleep_cmp):
    table = sleep_cmp.table("wald")
    fig = forest_plot(sleep_cmp, "wald")
    assert [ax.get_ylabel() for ax in fig.axes] == list(table.index)
    for ax, (name, t) in zip(fig.axes, table.iterrows()):
        expected = [([t["lower"], t["upper"]], [1, 1])] if np.isfinite(t["lower"]) else []  # Wald: fixed effects
        expected += [([t["estimate"]], [1]), ([t["eti_lower"], t["eti_upper"]], [0, 0]), ([t["post_median"]], [0])]
        assert drawn_lines(ax) == expected, name
    assert sum(np.isfinite(table["lower"])) == 2
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["frequentist (wald)", "posterior median, ETI"]
    assert fig._suptitle.get_text() == "Reaction ~ Days + (Days | Subject): 95% intervals"


def errorbar_data(container):
    """x, y and the half-widths of the horizontal error bars of an errorbar container."""
    line, _, (bars,) = container.lines
    segments = np.array(bars.get_segments())
    x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
    return x, y, (segments[:, 1, 0] - segments[:, 0, 0]) / 2


def test_caterpillar_plot_draws_modes_and_posterior_means(sleep_cmp):
    rt = sleep_cmp.ranef_table()
    fig = caterpillar_plot(sleep_cmp)
    assert [ax.get_title() for ax in fig.axes] == ["(Intercept) | Subject", "Days | Subject"]
    for ax, coef in zip(fig.axes, ["(Intercept)", "Days"]):
        d = rt[rt["coef"] == coef].sort_values("mode")
        assert [t.get_text() for t in ax.get_yticklabels()] == list(d["level"])
        pos = np.arange(18)
        for container, (centre, sd, shift) in zip(ax.containers, [("mode", "cond_sd", 0.15),
                                                                  ("post_mean", "post_sd", -0.15)]):
            x, y, half = errorbar_data(container)
            np.testing.assert_allclose(x, d[centre], rtol=1e-12)
            np.testing.assert_allclose(y, pos + shift, rtol=1e-12)
            np.testing.assert_allclose(half, 1.96 * d[sd], rtol=1e-9)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["REML mode", "posterior mean"]


def test_shrinkage_plot_draws_ols_blups_and_posterior_means(sleep_cmp):
    s = sleep_cmp.shrinkage()
    fig = shrinkage_plot(sleep_cmp)
    (ax,) = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("(Intercept)", "Days", "shrinkage: Subject")
    wide = {k: s.pivot(index="level", columns="coef", values=k) for k in ("ols", "reml", "bayes")}
    for points, (kind, label) in zip(ax.collections, [("ols", "per-group OLS"), ("reml", "REML BLUP"),
                                                      ("bayes", "posterior mean")]):
        assert points.get_label() == label
        np.testing.assert_allclose(points.get_offsets(), wide[kind][["(Intercept)", "Days"]], rtol=1e-12)
    arrows = ax.texts
    assert len(arrows) == 18
    for arrow, level in zip(arrows, wide["ols"].index):   # from the OLS estimate to the BLUP
        np.testing.assert_allclose(arrow.xy, wide["reml"].loc[level, ["(Intercept)", "Days"]], rtol=1e-12)
        np.testing.assert_allclose(arrow.xyann, wide["ols"].loc[level, ["(Intercept)", "Days"]], rtol=1e-12)


def test_ppc_plot_draws_the_densities_of_observed_and_replicated_data(sleep_cmp):
    from scipy.stats import gaussian_kde

    y = sleep_cmp.spec.y
    yrep = sleep_cmp.bayes.posterior_predictive(seed=0).values.reshape(-1, y.size)
    fig = ppc_plot(sleep_cmp, seed=0)
    (ax,) = fig.axes
    lines = [line for line in ax.lines if len(line.get_xdata())]
    assert len(lines) == 50 + 1 and lines[-1].get_label() == "observed" and ax.get_xlabel() == "Reaction"
    grid = lines[-1].get_xdata()
    np.testing.assert_allclose(grid[[0, -1]], [min(y.min(), np.quantile(yrep, 0.001)),
                                               max(y.max(), np.quantile(yrep, 0.999))], rtol=1e-12)
    np.testing.assert_allclose(lines[-1].get_ydata(), gaussian_kde(y)(grid), rtol=1e-10)
    rows = np.random.default_rng(0).choice(yrep.shape[0], size=50, replace=False)   # the replicates drawn
    for line, row in list(zip(lines, rows))[:5]:
        np.testing.assert_allclose(line.get_ydata(), gaussian_kde(yrep[row])(grid), rtol=1e-10)


def test_trace_plot_draws_each_chain_of_each_parameter(sleep_cmp):
    post = sleep_cmp.bayes.idata.posterior
    names = sleep_cmp.bayes.parameter_names
    fig = trace_plot(sleep_cmp.bayes)
    assert [ax.get_title() for ax in fig.axes] == [n for n in names for _ in (0, 1)]   # density, trace
    for k, name in enumerate(names):
        traces = [line.get_ydata() for line in fig.axes[2 * k + 1].lines
                  if len(line.get_ydata()) == post.sizes["draw"]]   # not the divergence ticks, if any
        np.testing.assert_array_equal(np.array(traces), post[name].values)


def test_caterpillar_of_many_levels_shows_the_extremes(sleep_cmp):
    """18 subjects, max_levels=6: the 3 lowest and 3 highest conditional modes, in order."""
    fig = caterpillar_plot(sleep_cmp, coef="Days", max_levels=6)
    modes = sleep_cmp.freq.ranef()["Subject"]["Days"].sort_values()
    expected = list(modes.index[:3]) + list(modes.index[-3:])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == expected
    assert "3 lowest, 3 highest of 18" in fig.axes[0].get_title()


def test_fit_statistics_without_a_stored_log_likelihood(sleep_cmp):
    import dataclasses

    bare = dataclasses.replace(sleep_cmp.bayes, idata=sleep_cmp.bayes.idata.copy())
    del bare.idata.log_likelihood
    fs = lc.compare(sleep_cmp.freq, bare).fit_statistics()
    assert fs.loc["logLik", "frequentist"] == pytest.approx(sleep_cmp.freq.loglik)
    assert np.isnan(fs.loc["elpd_loo", "bayesian"])


def test_html_report_is_self_contained(sleep_cmp, tmp_path):
    path = sleep_cmp.report(tmp_path / "report.html", ci="wald")
    text = open(path, encoding="utf-8").read()
    assert text.startswith("<!DOCTYPE html>")
    assert len(re.findall(r'src="data:image/png;base64,', text)) >= 5
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', text) and "<script" not in text   # nothing remote
    assert "sd_(Intercept)|Subject" in text and "Side by side" in text and "seed: 4" in text
    assert "pymc" in text and "Posterior predictive test statistics" in text


def markdown_tables(md):
    """The rows of every table in ``md`` as a CommonMark + GFM-tables parser reads them (lists of cell texts)."""
    markdown_it = pytest.importorskip("markdown_it")
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(md)
    rows, tables = None, []
    for tok in tokens:
        if tok.type == "table_open":
            tables.append([])
        elif tok.type == "tr_open":
            rows = []
        elif tok.type == "inline" and rows is not None:
            rows.append(tok.content)  # the cell's text, an escaped \\| read as |
        elif tok.type == "tr_close":
            tables[-1].append(rows)
            rows = None
    return tables, tokens


def test_markdown(sleep_cmp):
    """Parsed as Markdown: the formula heading, one row per parameter with 14 cells (the names of
    variance parameters hold a '|'), the numbers of the table, and the flags of :meth:`flags`."""
    md = sleep_cmp.to_markdown("wald")
    (rows,), tokens = markdown_tables(md)
    table = sleep_cmp.table("wald")
    heading = next(t for i, t in enumerate(tokens) if i and tokens[i - 1].type == "heading_open")
    assert heading.children[0].type == "code_inline" and heading.content == "`Reaction ~ Days + (Days | Subject)`"
    assert rows[0] == ["parameter", "estimate", "se", "lower", "upper", "post_median", "post_sd", "eti_lower",
                       "eti_upper", "r_hat", "ess_bulk", "shift", "overlap", "flag"]
    assert [len(r) for r in rows] == [14] * 7
    assert [r[0] for r in rows[1:]] == list(table.index)
    sd = rows[1 + list(table.index).index("sd_Days|Subject")]
    assert float(sd[1]) == pytest.approx(table.loc["sd_Days|Subject", "estimate"], rel=1e-3)
    assert float(sd[5]) == pytest.approx(table.loc["sd_Days|Subject", "post_median"], rel=1e-3)
    assert sd[2] == sd[3] == sd[4] == ""  # Wald: no se or interval for a standard deviation
    flags = sleep_cmp.flags("wald")
    items = [t.content for t in tokens if t.type == "inline" and t.level == 3]  # list items: "`name` (flag): text"
    assert items == [f"`{name}` ({flag}): {text}" for name, flag, text in flags]
    assert ("No flags: the two paradigms agree on every parameter." in md) == (not flags)


def test_compare_rejects_mismatched_fits(sleep_cmp, dyestuff2_cmp):
    with pytest.raises(ArgumentError, match="not of the same model and data"):
        lc.compare(sleep_cmp.freq, dyestuff2_cmp.bayes)
    with pytest.raises(ArgumentError, match="takes an LmerFit and a BayesFit"):
        lc.compare(sleep_cmp.bayes, sleep_cmp.freq)


def test_compare_checks_the_data_not_the_formula_text(sleep_cmp):
    """Same formula, n and y but another x or grouping column: a typed error naming the part that differs.
    The same model written with other spacing, an explicit 1, or the rows in another order: accepted,
    with the same table."""
    data = lc.load_dataset("sleepstudy")
    formula = "Reaction ~ Days + (Days | Subject)"
    shifted = data.assign(Days=data["Days"] + 1.0)
    relabelled = data.assign(Subject=data["Subject"].to_numpy()[np.r_[10:180, 0:10]])  # same levels, other rows
    for other, part in [(shifted, "fixed-effects model matrix X"),
                        (relabelled, r"random-effects term \(\(Intercept\) \+ Days \| Subject\)")]:
        with pytest.raises(ArgumentError, match=f"not of the same model and data: their {part}"):
            lc.compare(lc.lmer(formula, other), sleep_cmp.bayes)
    with pytest.raises(ArgumentError, match="their response values y differ"):
        lc.compare(lc.lmer(formula, data.assign(Reaction=data["Reaction"] + 1.0)), sleep_cmp.bayes)
    with pytest.raises(ArgumentError, match=r"their fixed-effects model matrix X \(row by row, with y\) differ"):
        lc.compare(lc.lmer(formula, data.assign(Reaction=data["Reaction"][::-1].to_numpy())), sleep_cmp.bayes)
    reference = sleep_cmp.table("wald")
    for same in (lc.lmer("Reaction~1+Days+( Days|Subject )", "sleepstudy"),
                 lc.lmer(formula, data.sample(frac=1.0, random_state=3))):
        table = lc.compare(same, sleep_cmp.bayes).table("wald")
        np.testing.assert_allclose(table[["estimate", "lower", "upper"]], reference[["estimate", "lower", "upper"]],
                                   rtol=1e-6)


def test_intervals_are_kept_per_setting(sleep_cmp):
    """A second bootstrap with other nsim/seed is computed, not the first one returned; the same one is kept."""
    small = sleep_cmp.table("boot", nsim=20, seed=1)
    large = sleep_cmp.table("boot", nsim=40, seed=2)
    expected = sleep_cmp.freq.confint("boot", nsim=40, seed=2, progress=False)
    np.testing.assert_allclose(large[["lower", "upper"]], expected.loc[large.index, ["lower", "upper"]])
    assert not np.allclose(small["upper"], large["upper"])
    assert sleep_cmp.intervals("boot", nsim=20, seed=1) is sleep_cmp.intervals("boot", nsim=20, seed=1)
    profile = sleep_cmp.table(ci="profile", progress=False)
    np.testing.assert_allclose(profile["lower"], sleep_cmp.freq.confint("profile", progress=False).loc[profile.index,
                                                                                                         "lower"])


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "lmmcompare.cli", *args], capture_output=True, text=True)


def test_cli_datasets_and_fit():
    out = run_cli("datasets")
    assert out.returncode == 0 and "sleepstudy" in out.stdout and "InstEval" in out.stdout
    out = run_cli("fit", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy", "--ml")
    assert out.returncode == 0
    assert "maximum likelihood" in out.stdout and "1763.9" in out.stdout and "Data: sleepstudy" in out.stdout


def test_cli_bad_arguments_give_one_line_errors(tmp_path):
    out = run_cli("fit", "Reaction ~ Dayz + (1 | Subject)", "--data", "sleepstudy")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "unknown column 'Dayz'" in out.stderr
    out = run_cli("fit", "y ~ x + (1 | g)", "--data", str(tmp_path / "missing.csv"))
    assert out.returncode == 2 and "neither a shipped dataset" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("compare", "y ~ (1|g)")
    assert out.returncode == 2 and "--data" in out.stderr


def test_cli_compare_writes_a_report(tmp_path):
    report = tmp_path / "out.html"
    out = run_cli("compare", "Yield ~ 1 + (1 | Batch)", "--data", "Dyestuff", "--report", str(report),
                  "--draws", "200", "--tune", "200", "--chains", "2", "--seed", "3", "--ci", "wald",
                  "--parameterization", "marginal")
    assert out.returncode == 0, out.stderr[-2000:]
    assert report.exists()
    (rows,), _ = markdown_tables(out.stdout)  # the CLI prints to_markdown()
    assert [r[0] for r in rows] == ["parameter", "(Intercept)", "sd_(Intercept)|Batch", "sigma"]
    assert [len(r) for r in rows] == [14] * 4


def test_trace_plot_keeps_the_parameters_with_the_smallest_ess(sleep_cmp):
    ess = sleep_cmp.bayes.diagnostics()["ess_bulk"].loc[sleep_cmp.bayes.parameter_names]
    fig = trace_plot(sleep_cmp.bayes, max_parameters=3)
    kept = [ax.get_title() for ax in fig.axes][::2]
    assert kept == [n for n in sleep_cmp.bayes.parameter_names if n in set(ess.nsmallest(3).index)]
