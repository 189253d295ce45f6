"""Simulation-based calibration of the Bayesian model (Talts et al. 2018).

Draw parameters and a response from the prior predictive distribution of the
model (PyMC's noncentered model, so the data are simulated by a different
graph than the one that fits them), fit each simulated response, and rank the
true value among the posterior draws.  If the sampler and the model are right
the ranks are uniform on ``0 .. L``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.stats

from ..arguments import check_bool, check_int, check_n_jobs, check_seed, shown
from ..errors import ArgumentError
from ..progress import Progress
from ..report.html import figure_html, standalone_page, table_html
from ..spec import as_spec
from .coverage import _quiet_pymc, _refitter


def prior_draws(spec, prior_set, nsim: int, seed) -> tuple[pd.DataFrame, np.ndarray]:
    """``nsim`` parameter draws (shared names) and responses ``(nsim, n)`` from the prior predictive."""
    import pymc as pm

    from ..bayesian.model import build_model
    from ..bayesian.postprocess import covariance_factors, fixed_effects, variance_parameters

    built = build_model(spec, prior_set, "noncentered", standardized=False)   # generative: no Potentials
    with built.model, warnings.catch_warnings(), _quiet_pymc():
        warnings.simplefilter("ignore")
        idata = pm.sample_prior_predictive(draws=nsim, random_seed=seed)
    prior = idata.prior
    values = {**fixed_effects(prior, built), **variance_parameters(prior, built, covariance_factors(prior, built))}
    truth = pd.DataFrame({name: np.asarray(v).reshape(-1) for name, v in values.items()})
    names = [*spec.parameters.variance_labels, *spec.fixed_names]
    return truth[names], idata.prior_predictive["y"].values.reshape(nsim, spec.n)


@dataclass(frozen=True, eq=False)
class SBCResult:
    """Ranks of the true parameters among thinned posterior draws.

    Attributes
    ----------
    ranks : DataFrame
        ``nsim x parameters``, each in ``0 .. n_draws`` (the thinned draws per fit).
    truth : DataFrame
        The prior draws the data were simulated from.
    n_draws : int
        ``L``, the number of posterior draws each rank is out of.
    divergences : ndarray
        Divergent transitions of each fit.
    """

    ranks: pd.DataFrame
    truth: pd.DataFrame
    n_draws: int
    divergences: np.ndarray
    settings: dict = field(default_factory=dict)

    def uniformity(self, bins: int | None = None) -> pd.DataFrame:
        """Chi-square test of uniform ranks per parameter (``bins`` equal bins of ``0..L``)."""
        nsim = len(self.ranks)
        bins = bins or int(max(2, min(20, nsim // 5)))
        edges = np.linspace(0, self.n_draws + 1, bins + 1)
        rows = []
        for name in self.ranks:
            counts = np.histogram(self.ranks[name], bins=edges)[0]
            expected = nsim * np.diff(edges) / (self.n_draws + 1)
            chi2 = float(((counts - expected) ** 2 / expected).sum())
            rows.append((name, chi2, bins - 1, float(scipy.stats.chi2.sf(chi2, bins - 1)),
                         float(self.ranks[name].mean() / self.n_draws)))
        return pd.DataFrame(rows, columns=["parameter", "chi2", "df", "p_value", "mean_rank_fraction"]) \
            .set_index("parameter")

    def plot(self, bins: int | None = None):
        """Rank histograms with the 99% band of a uniform histogram (Talts et al. 2018, fig. 2)."""
        import matplotlib.pyplot as plt

        nsim = len(self.ranks)
        bins = bins or int(max(2, min(20, nsim // 5)))
        edges = np.linspace(0, self.n_draws + 1, bins + 1)
        names = list(self.ranks)
        ncol = min(3, len(names))
        nrow = -(-len(names) // ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.4 * nrow), squeeze=False)
        lo, hi = scipy.stats.binom.ppf([0.005, 0.995], nsim, 1 / bins)
        for ax, name in zip(axes.ravel(), names):
            ax.axhspan(lo, hi, color="0.85")
            ax.axhline(nsim / bins, color="0.5", lw=0.8)
            ax.hist(self.ranks[name], bins=edges, color="C0", edgecolor="white")
            ax.set_title(name, fontsize=8)
            ax.set_yticks([])
        for ax in axes.ravel()[len(names):]:
            ax.set_visible(False)
        fig.suptitle(f"SBC ranks ({nsim} fits, L = {self.n_draws}); band: 99% for uniform ranks", fontsize=9)
        fig.tight_layout()
        return fig

    def html_section(self) -> str:
        """An HTML section (uniformity table, rank histograms) for reports."""

        table = self.uniformity()
        worst = table["p_value"].min()
        verdict = ("no parameter's ranks depart from uniform at the 1% level" if worst >= 0.01 else
                   "ranks depart from uniform (p < 0.01) for " + ", ".join(table.index[table["p_value"] < 0.01]))
        return (f"<h2>Simulation-based calibration</h2><p>{len(self.ranks)} data sets from the prior predictive "
                f"of <code>{self.settings.get('formula')}</code> (seed {self.settings.get('seed')}), each fit "
                f"by the {self.settings.get('parameterization')} model; {int(self.divergences.sum())} divergent "
                f"transitions in all; {verdict}.</p>" + table_html(table)
                + figure_html(self.plot(), "SBC rank histograms"))

    def report(self, path) -> str:
        """Write a self-contained HTML page with :meth:`html_section`; returns the path."""

        return standalone_page(path, f"SBC: {self.settings.get('formula')}", self.html_section())


def _one_fit(spec, y, prior_set, truth_row, parameterization, sampler, draws, tune, chains, thin, seed):
    options = {"priors": prior_set, "parameterization": parameterization, "sampler": sampler}
    with warnings.catch_warnings(), _quiet_pymc():
        warnings.simplefilter("ignore")   # divergences are counted in the result
        fit = _refitter(spec, options).fit(y, draws=draws, tune=tune, chains=chains, seed=seed)
    post = fit.idata.posterior
    ranks = {name: int((post[name].values[:, ::thin].reshape(-1) < value).sum()) for name, value in truth_row.items()}
    return ranks, int(fit.idata.sample_stats["diverging"].values.sum())


def sbc(spec, data=None, nsim: int = 100, draws: int = 200, tune: int = 500, chains: int = 2, thin: int = 2,
        priors=None, parameterization: str = "marginal", sampler: str = "pymc", seed=None, n_jobs: int = 1,
        progress: bool = True) -> SBCResult:
    """Simulation-based calibration of the Bayesian model of ``spec``.

    Parameters
    ----------
    spec : ModelSpec or str
        The design (a formula needs ``data``); its response only sets the
        data-scaled default priors, which stay fixed over the simulations.
    nsim : int
        Number of prior draws, simulated data sets and fits.
    draws, tune, chains : int
        Sampler settings of each fit; ranks use every ``thin``-th draw, so
        each is out of ``L = chains * ceil(draws / thin)``.
    priors : dict or PriorSet, optional
        Overrides of the default priors, as in :func:`lmmcompare.bayes`.
    parameterization : {"marginal", "noncentered", "centered"}
        How each simulated data set is fit (the model is compiled once:
        :class:`lmmcompare.bayesian.refit.Refitter`).
    sampler : {"pymc", "nutpie"}
    seed : int, optional
    n_jobs : int
        Parallel fits with joblib.

    Returns
    -------
    SBCResult
    """
    from ..bayesian.priors import default_priors

    spec = as_spec(spec, data)
    nsim, draws, tune = check_int("nsim", nsim, 2), check_int("draws", draws, 1), check_int("tune", tune, 0)
    chains, thin, n_jobs = check_int("chains", chains, 1), check_int("thin", thin, 1), check_n_jobs("n_jobs", n_jobs)
    check_seed("seed", seed)
    check_bool("progress", progress)
    if parameterization not in ("marginal", "noncentered", "centered"):
        raise ArgumentError("parameterization must be marginal, noncentered or centered, "
                            f"got {shown(parameterization)}")
    seed = int(np.random.SeedSequence().entropy % 2**32) if seed is None else seed
    prior_set = default_priors(spec, priors)
    truth, ys = prior_draws(spec, prior_set, nsim, seed)
    fit_seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(nsim)]
    args = (parameterization, sampler, draws, tune, chains, thin)
    results = [None] * nsim
    with Progress(nsim, "SBC fits", enabled=progress) as bar:
        if n_jobs == 1:
            for k in range(nsim):
                results[k] = _one_fit(spec, ys[k], prior_set, truth.iloc[k], *args, fit_seeds[k])
                bar.update(1)
        else:
            from joblib import Parallel, delayed

            jobs = Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(_one_fit)(spec, ys[k], prior_set, truth.iloc[k], *args, fit_seeds[k]) for k in range(nsim))
            for k, res in enumerate(jobs):
                results[k] = res
                bar.update(1)
    ranks = pd.DataFrame([r for r, _ in results], columns=truth.columns)
    settings = {"formula": spec.formula, "nsim": nsim, "draws": draws, "tune": tune, "chains": chains, "thin": thin,
                "parameterization": parameterization, "sampler": sampler, "seed": seed}
    return SBCResult(ranks=ranks, truth=truth, n_draws=chains * len(range(0, draws, thin)),
                     divergences=np.array([d for _, d in results]), settings=settings)
