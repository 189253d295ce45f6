"""Figures that put the two paradigms side by side; each returns its Figure."""
from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def forest_plot(cmp, ci: str = "profile", level: float = 0.95):
    """Per parameter, its own panel (own scale): frequentist estimate and interval above,
    posterior median and equal-tailed interval below.  Panels fill two columns (row by row) when there
    are more than eight, so a model with many fixed effects stays about a screen tall; the legend sits
    above the panels, clear of them."""
    from matplotlib.lines import Line2D

    plt = _plt()
    table = cmp.table(ci, level)
    names = list(table.index)
    ncols = 2 if len(names) > 8 else 1
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.0 * ncols + 1.0, 0.55 * nrows + 1.2), squeeze=False)
    for ax in axes.ravel()[len(names):]:
        fig.delaxes(ax)
    for ax, name in zip(axes.ravel(), names):
        t = table.loc[name]
        if np.isfinite(t["lower"]):
            ax.plot([t["lower"], t["upper"]], [1, 1], color="C0", lw=2)
        ax.plot(t["estimate"], 1, "o", color="C0")
        ax.plot([t["eti_lower"], t["eti_upper"]], [0, 0], color="C1", lw=2)
        ax.plot(t["post_median"], 0, "s", color="C1")
        ax.set_ylim(-0.7, 1.7)
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    handles = [Line2D([], [], marker="o", color="C0", label=f"frequentist ({ci})"),
               Line2D([], [], marker="s", color="C1", label="posterior median, ETI")]
    fig.suptitle(f"{cmp.spec.formula}: {int(level * 100)}% intervals", fontsize=10)
    top = 1 - 0.6 / fig.get_figheight()   # room for the title and, below it, the legend
    fig.legend(handles=handles, fontsize=8, loc="lower center", ncol=2, bbox_to_anchor=(0.5, top), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, top))
    return fig


def _extremes(frame, column: str, max_levels: int):
    """``frame`` sorted by ``column``; beyond ``max_levels`` rows only the lowest and highest halves."""
    d = frame.sort_values(column)
    if len(d) <= max_levels:
        return d, ""
    half = max_levels // 2
    return (d.iloc[list(range(half)) + list(range(len(d) - half, len(d)))],
            f" ({half} lowest, {half} highest of {len(d)})")


def caterpillar_plot(cmp, group: str | None = None, coef: str | None = None, max_levels: int = 60):
    """Random effects per level: conditional modes +- 1.96 conditional SD beside posterior mean +- 1.96 SD.

    A grouping factor with more than ``max_levels`` levels shows the levels with the
    lowest and highest conditional modes (InstEval has 2,972 students).
    """
    from ..arguments import check_int

    check_int("max_levels", max_levels, 2)
    plt = _plt()
    rt = cmp.ranef_table()
    group = group or rt["group"].iloc[0]
    sub = rt[rt["group"] == group]
    coefs = [coef] if coef else list(dict.fromkeys(sub["coef"]))
    shown = min(sub["level"].nunique(), max_levels)
    fig, axes = plt.subplots(1, len(coefs), figsize=(4.5 * len(coefs), 0.22 * shown + 1.5), squeeze=False)
    for ax, c in zip(axes[0], coefs):
        d, note = _extremes(sub[sub["coef"] == c], "mode", max_levels)
        pos = np.arange(len(d))
        ax.errorbar(d["mode"], pos + 0.15, xerr=1.96 * d["cond_sd"], fmt="o", ms=3, color="C0", label="REML mode")
        ax.errorbar(d["post_mean"], pos - 0.15, xerr=1.96 * d["post_sd"], fmt="s", ms=3, color="C1",
                    label="posterior mean")
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_yticks(pos, d["level"], fontsize=7)
        ax.set_title(f"{c} | {group}{note}", fontsize=9)
    axes[0][0].legend(fontsize=8, loc="lower right")   # levels sorted upwards: the lower right is empty
    fig.tight_layout()
    return fig


def shrinkage_plot(cmp, max_levels: int = 60):
    """Per-group OLS estimates, REML BLUPs and posterior means: arrows show the shrinkage.

    With one column and more than ``max_levels`` levels, the levels with the lowest
    and highest OLS estimates are shown.
    """
    from ..arguments import check_int

    check_int("max_levels", max_levels, 2)
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
        d, note = _extremes(s, "ols", max_levels)
        fig, ax = plt.subplots(figsize=(6, max(4.0, 0.18 * len(d) + 1.5)))
        pos = np.arange(len(d))
        ax.scatter(d["ols"], pos, marker="o", facecolors="none", edgecolors="k", label="group mean (OLS)")
        ax.scatter(d["reml"], pos, color="C0", s=15, label="REML BLUP")
        ax.scatter(d["bayes"], pos, color="C1", marker="s", s=15, label="posterior mean")
        ax.set_yticks(pos, d["level"], fontsize=7)
        ax.set_xlabel(coefs[0] + note)
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


def trace_plot(bayes_fit, kind: str = "trace", max_parameters: int | None = None):
    """ArviZ trace (or rank) plot of the parameters, returned as a Figure.

    With ``max_parameters``, only that many: those with the smallest bulk ESS (the
    ones whose mixing a reader should look at), in the table's order.
    """
    import arviz as az

    _plt()
    names = list(bayes_fit.parameter_names)
    if max_parameters is not None and len(names) > max_parameters:
        worst = set(bayes_fit.diagnostics()["ess_bulk"].loc[names].nsmallest(max_parameters).index)
        names = [n for n in names if n in worst]
    axes = az.plot_trace(bayes_fit.idata, var_names=names, kind=kind, compact=False,
                         figsize=(10, 1.6 * len(names) + 0.4), backend_kwargs={"layout": "constrained"})
    return np.asarray(axes).ravel()[0].figure
