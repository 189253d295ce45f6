"""Figures that put the two paradigms side by side; each returns its Figure."""
from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def forest_plot(cmp, ci: str = "profile", level: float = 0.95):
    """Per parameter: frequentist estimate and interval beside the posterior median and ETI.

    Fixed effects and variance parameters are on separate panels (different scales)."""
    plt = _plt()
    table = cmp.table(ci, level)
    groups = [[n for n in table.index if n in cmp.spec.fixed_names],
              [n for n in table.index if n not in cmp.spec.fixed_names]]
    groups = [g for g in groups if g]
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 0.6 * max(map(len, groups)) + 1.5),
                             squeeze=False)
    for ax, names in zip(axes[0], groups):
        pos = np.arange(len(names))
        t = table.loc[names]
        ax.errorbar(t["estimate"], pos + 0.15, xerr=[t["estimate"] - t["lower"], t["upper"] - t["estimate"]],
                    fmt="o", color="C0", label=f"frequentist ({ci})")
        ax.errorbar(t["post_median"], pos - 0.15,
                    xerr=[t["post_median"] - t["eti_lower"], t["eti_upper"] - t["post_median"]],
                    fmt="s", color="C1", label="posterior median, ETI")
        ax.set_yticks(pos, names)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].legend(loc="best", fontsize=8)
    fig.suptitle(f"{cmp.spec.formula}: {int(level * 100)}% intervals")
    fig.tight_layout()
    return fig


def caterpillar_plot(cmp, group: str | None = None, coef: str | None = None):
    """Random effects per level: conditional modes +- 1.96 conditional SD beside posterior mean +- 1.96 SD."""
    plt = _plt()
    rt = cmp.ranef_table()
    group = group or rt["group"].iloc[0]
    sub = rt[rt["group"] == group]
    coefs = [coef] if coef else list(dict.fromkeys(sub["coef"]))
    fig, axes = plt.subplots(1, len(coefs), figsize=(4.5 * len(coefs), 0.22 * sub["level"].nunique() + 1.5),
                             squeeze=False)
    for ax, c in zip(axes[0], coefs):
        d = sub[sub["coef"] == c].sort_values("mode")
        pos = np.arange(len(d))
        ax.errorbar(d["mode"], pos + 0.15, xerr=1.96 * d["cond_sd"], fmt="o", ms=3, color="C0", label="REML mode")
        ax.errorbar(d["post_mean"], pos - 0.15, xerr=1.96 * d["post_sd"], fmt="s", ms=3, color="C1",
                    label="posterior mean")
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_yticks(pos, d["level"], fontsize=7)
        ax.set_title(f"{c} | {group}", fontsize=9)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def shrinkage_plot(cmp):
    """Per-group OLS estimates, REML BLUPs and posterior means: arrows show the shrinkage."""
    plt = _plt()
    s = cmp.shrinkage()
    coefs = list(dict.fromkeys(s["coef"]))
    if len(coefs) >= 2:
        a, b = coefs[:2]
        wide = {k: s.pivot(index="level", columns="coef", values=k) for k in ("ols", "reml", "bayes")}
        fig, ax = plt.subplots(figsize=(6, 5))
        ax.scatter(wide["ols"][a], wide["ols"][b], marker="o", facecolors="none", edgecolors="k", label="per-group OLS")
        ax.scatter(wide["reml"][a], wide["reml"][b], color="C0", s=15, label="REML BLUP")
        ax.scatter(wide["bayes"][a], wide["bayes"][b], color="C1", marker="s", s=15, label="posterior mean")
        for lev in wide["ols"].index:
            ax.annotate("", xy=(wide["reml"].loc[lev, a], wide["reml"].loc[lev, b]),
                        xytext=(wide["ols"].loc[lev, a], wide["ols"].loc[lev, b]),
                        arrowprops=dict(arrowstyle="->", color="grey", lw=0.6))
        ax.set_xlabel(a)
        ax.set_ylabel(b)
    else:
        fig, ax = plt.subplots(figsize=(6, 4))
        d = s.sort_values("ols")
        pos = np.arange(len(d))
        ax.scatter(d["ols"], pos, marker="o", facecolors="none", edgecolors="k", label="group mean (OLS)")
        ax.scatter(d["reml"], pos, color="C0", s=15, label="REML BLUP")
        ax.scatter(d["bayes"], pos, color="C1", marker="s", s=15, label="posterior mean")
        ax.set_yticks(pos, d["level"], fontsize=7)
        ax.set_xlabel(coefs[0])
    ax.legend(fontsize=8)
    ax.set_title(f"shrinkage: {cmp.spec.terms[0].group}")
    fig.tight_layout()
    return fig


def ppc_plot(cmp, n_draws: int = 50, seed=None):
    """Density of the observed response over densities of replicated data sets."""
    plt = _plt()
    from scipy.stats import gaussian_kde

    y = cmp.spec.y
    yrep = cmp.bayes.posterior_predictive(seed=seed).values.reshape(-1, y.size)
    rng = np.random.default_rng(seed)
    grid = np.linspace(min(y.min(), np.quantile(yrep, 0.001)), max(y.max(), np.quantile(yrep, 0.999)), 200)
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in rng.choice(yrep.shape[0], size=min(n_draws, yrep.shape[0]), replace=False):
        ax.plot(grid, gaussian_kde(yrep[row])(grid), color="C1", alpha=0.15, lw=0.8)
    ax.plot(grid, gaussian_kde(y)(grid), color="k", lw=2, label="observed")
    ax.plot([], [], color="C1", label="posterior predictive")
    ax.set_xlabel(cmp.spec.response)
    ax.legend()
    ax.set_title("posterior predictive check")
    fig.tight_layout()
    return fig


def trace_plot(bayes_fit, kind: str = "trace"):
    """ArviZ trace (or rank) plot of the parameters, returned as a Figure."""
    import arviz as az

    _plt()
    axes = az.plot_trace(bayes_fit.idata, var_names=bayes_fit.parameter_names, kind=kind, compact=False)
    return np.asarray(axes).ravel()[0].figure
