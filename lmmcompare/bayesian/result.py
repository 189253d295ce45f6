"""The frozen result of a Bayesian fit."""
from __future__ import annotations

import contextlib
import dataclasses
import warnings
from dataclasses import dataclass

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from ..archive import save_archive
from ..arguments import check_bool, check_choice, check_level, check_seed
from ..errors import ArgumentError, SamplingWarning
from ..spec import ModelSpec
from ..spec.residual_groups import level_scales
from ..spec.update import updated_inputs
from .persist import bayes_fit_content
from .prediction import predict_posterior
from .priors import PriorSet
from .residual import ratio_draws, row_sd_draws

LOO_LEVELS = ("observation", "group")


def _warn_high_pareto_k(result, by: str) -> None:
    """A SamplingWarning naming the points whose Pareto k exceeds ArviZ's threshold ``good_k``."""
    k, good_k = result.pareto_k, float(result.good_k)
    high = k[k > good_k]
    if not high.size:
        return
    dim = k.dims[0]
    names = ", ".join(map(str, high[dim].values[:10])) + (", ..." if high.size > 10 else "")
    what = "observations" if by == "observation" else f"levels of {dim}"
    hint = "; loo(by='group') leaves out whole groups" if by == "observation" else ""
    warnings.warn(f"Pareto k > {good_k:.2f} for {high.size} of {k.size} {what} ({names}): their PSIS-LOO terms "
                  f"are unreliable{hint}", SamplingWarning, stacklevel=3)


_SAMPLER_STATS = (   # (column, sample_stats names in PyMC's and nutpie's spelling, reduction over draws)
    ("divergences", ("diverging",), lambda v: v.sum(axis=1).astype(int)),
    ("mean_tree_depth", ("tree_depth", "depth"), lambda v: v.mean(axis=1)),
    ("max_tree_depth", ("tree_depth", "depth"), lambda v: v.max(axis=1).astype(int)),
    ("max_depth_hits", ("reached_max_treedepth", "maxdepth_reached"), lambda v: v.sum(axis=1).astype(int)),
    ("gradients_per_draw", ("n_steps",), lambda v: v.mean(axis=1)),
    ("step_size", ("step_size",), lambda v: v.mean(axis=1)),
    ("acceptance", ("acceptance_rate", "mean_tree_accept", "accept"), lambda v: v.mean(axis=1)),
    ("moves", ("accepted",), lambda v: v.mean(axis=1)),   # the independence step's share of moves
)


LOW_MOVES = 0.1   # diagnostics(warn=True) flags independence chains that move on fewer draws than this (mean)


@dataclass(frozen=True, eq=False)
class BayesFit:
    """Posterior draws of the Bayesian LMM under the names shared with :class:`LmerFit`.

    Attributes
    ----------
    idata : arviz.InferenceData
        ``posterior`` (``(Intercept)``, slopes, ``sd_*``, ``cor_*``, a structured term's
        ``sd|g``, ``cor|g`` or ``rho|g``, ``sigma``, with ``sigma_by`` the ratios
        ``sigma_ratio_<level>|<f>``, ``r_<group>`` per level), ``log_likelihood``, ``sample_stats``,
        ``observed_data`` and, on request, ``posterior_predictive``.
    priors : PriorSet
    parameterization, sampler : str
    forms : dict
        Per term (``"Days+(Intercept)|Subject"`` style keys), how its level
        effects were sampled: ``"centered"`` or ``"noncentered"``; empty for
        the marginal parameterisation.
    seed : int or None
    seconds : float
        Wall time including model building, compilation and sampling.
    """

    spec: ModelSpec
    idata: az.InferenceData
    priors: PriorSet
    parameterization: str
    sampler: str
    seed: object
    seconds: float
    forms: dict = dataclasses.field(default_factory=dict)

    def update(self, formula: str | None = None, data=None, **changes) -> "BayesFit":
        """A new fit of this model with some arguments changed, as R's (and brms') ``update``.

        ``formula`` may use ``.`` for the old sides (``". ~ . - Days"``); ``data``
        defaults to this fit's model frame; ``changes`` are any of
        :func:`lmmcompare.bayes`'s arguments.  The rest are this fit's: draws,
        tuning steps, chains, seed, sampler, parameterisation, the stored
        groups, and its priors (default priors are scaled to the new data
        again; priors a user set are kept while the model's parameters are
        the same, and must be given again when they are not).
        """
        spec_arguments, rest = updated_inputs(self.spec, formula, data, changes)
        spec = ModelSpec.from_formula(**spec_arguments)
        post = self.idata.posterior
        options = dict(draws=post.sizes["draw"], chains=post.sizes["chain"], seed=self.seed, sampler=self.sampler,
                       parameterization=self.parameterization,
                       tune=int(self.idata.sample_stats.attrs.get("tuning_steps", post.sizes["draw"])),
                       log_likelihood="log_likelihood" in self.idata.groups(),
                       posterior_predictive="posterior_predictive" in self.idata.groups())
        if "priors" not in rest and self.priors.user:
            if (spec.parameters.fixed_labels + spec.parameters.variance_labels
                    != self.spec.parameters.fixed_labels + self.spec.parameters.variance_labels):
                raise ArgumentError(f"this fit's priors for {', '.join(self.priors.from_user)} were set by hand "
                                    "and the new model has other parameters: pass priors= to update")
            options["priors"] = self.priors
        return self._sample(spec, **{**options, **rest})

    @property
    def sampled_as(self) -> str:
        """The parameterisation as run: ``"auto: centered"`` names the form ``"auto"`` chose."""
        if self.parameterization != "auto":
            return self.parameterization
        return "auto: " + ", ".join(sorted(set(self.forms.values())))

    @property
    def parameter_names(self) -> list[str]:
        """Fixed effects, then sd/cor and sigma (the shared names)."""
        return self.spec.fixed_names + self.spec.parameters.variance_labels

    @property
    def _ranef_keys(self) -> dict[str, str]:
        """``r_<key>`` variables of the posterior: key -> grouping factor (``g.1`` only for repeated names)."""
        return {t.parameter_group: t.group for t in self.spec.terms}

    def summary(self, include_ranef: bool = True, hdi_prob: float = 0.95) -> pd.DataFrame:
        """ArviZ summary (mean, sd, HDI, R-hat, ESS) under the shared names."""
        check_bool("include_ranef", include_ranef)
        check_level("hdi_prob", hdi_prob)
        var_names = self.parameter_names + ([f"r_{g}" for g in self._ranef_keys] if include_ranef else [])
        return az.summary(self.idata, var_names=var_names, hdi_prob=hdi_prob)

    def ranef(self, sd: bool = False) -> dict[str, pd.DataFrame]:
        """Posterior means (or sds) of the random effects, laid out as ``LmerFit.ranef``."""
        check_bool("sd", sd)
        out = {}
        for g, factor in self._ranef_keys.items():
            da = self.idata.posterior[f"r_{g}"]
            stat = da.std(("chain", "draw")) if sd else da.mean(("chain", "draw"))
            frame = stat.to_pandas()
            frame.index.name = factor
            frame.columns.name = None
            out[g] = frame
        return out

    def prior_summary(self) -> pd.DataFrame:
        """Every prior used, by class and parameter, and whether it is a default."""
        return self.priors.table()

    def posterior_predictive(self, seed=None) -> xr.DataArray:
        """Replicated responses ``y_rep`` (chain, draw, obs).

        The ones stored in ``idata.posterior_predictive`` when the fit drew them
        (``bayes(..., posterior_predictive=True)``); otherwise drawn here from
        ``seed``, ``y_rep = offset + X beta + Z b + sigma_i e`` per draw (``sigma_i = sigma
        delta_f(i) / sqrt(w_i)``, ``w`` the prior weights, ``delta`` the ``sigma_by`` ratios), and returned without
        being stored: a result is a value, and no call changes what it holds.
        """
        check_seed("seed", seed)
        if "posterior_predictive" in self.idata.groups():
            return self.idata.posterior_predictive["y"]
        rng = np.random.default_rng(seed)
        mu = self.linear_predictor()
        post = self.idata.posterior
        sigma = row_sd_draws(self.spec, post["sigma"].values, ratio_draws(post, self.spec))
        yrep = mu + sigma * rng.standard_normal(mu.shape)
        da = xr.DataArray(yrep, dims=("chain", "draw", "obs"),
                          coords={"chain": self.idata.posterior.chain.values,
                                  "draw": self.idata.posterior.draw.values, "obs": np.arange(self.spec.n)})
        return da

    @property
    def residual_sd(self) -> pd.Series:
        """Posterior mean of the residual sd by level of ``sigma_by`` (``sigma delta_k``), as ``LmerFit.residual_sd``.

        One value, ``sigma``, without ``sigma_by``; the draws are ``sigma`` and the
        ``sigma_ratio_<level>|<f>`` variables of ``idata.posterior``.
        """
        post = self.idata.posterior
        sigma = post["sigma"].values
        factor = self.spec.sigma_by
        if factor is None:
            return pd.Series([float(sigma.mean())], index=["sigma"], name="residual sd")
        ratios = ratio_draws(post, self.spec)
        levels = sigma[..., None] * level_scales(ratios)
        return pd.Series(levels.reshape(-1, factor.n_levels).mean(axis=0),
                         index=pd.Index(factor.levels, name=factor.name), name="residual sd")

    def predict(self, newdata: pd.DataFrame | None = None, kind: str = "epred", allow_new_levels: bool = False,
                sample_new_levels: str = "gaussian", summary: bool = True, seed=None, offset=None):
        """Posterior predictions for new rows (or the model frame), as brms' ``posterior_epred`` / ``posterior_predict``.

        Parameters
        ----------
        newdata : DataFrame, optional
            New rows; the model frame when omitted.
        kind : {"epred", "response"}
            ``offset + x'beta + z'b`` per draw (``"epred"``), or that plus residual noise
            ``sigma e / sqrt(w)`` (``"response"``, ``w = 1`` on new rows).
        allow_new_levels : bool
            Predict levels not in the fit (else a :class:`~lmmcompare.errors.NewLevelError`).
        sample_new_levels : {"gaussian", "uncertainty"}
            A new level's effect per draw: ``N(0, Sigma)`` at that draw (``"gaussian"``), or
            the effect of a randomly chosen fitted level (``"uncertainty"``, brms' default)
            (:mod:`lmmcompare.bayesian.prediction`).
        summary : bool
            A table per row (``estimate``, ``est_error``, ``q2.5``, ``q97.5``: brms' posterior
            mean, sd and 95% interval), or the draws as an xarray (chain, draw, obs).
        seed : int, optional
            For the new levels' effects and the noise.
        offset : array, optional
            With ``newdata``, the ``offset`` argument's values for its rows (required when the
            fit had one).
        """
        return predict_posterior(self, newdata, kind, allow_new_levels, sample_new_levels, summary, seed, offset)

    def linear_predictor(self) -> np.ndarray:
        """``offset + X beta + Z b`` for every draw: (chain, draw, obs)."""
        from .postprocess import linear_predictor, random_effects_from_posterior

        post = self.idata.posterior
        fixed = {n: post[n].values for n in self.spec.fixed_names}
        return linear_predictor(self.spec, fixed, random_effects_from_posterior(post, self.spec))

    def loo(self, pointwise: bool = False, by: str = "observation"):
        """PSIS-LOO (ArviZ ``ELPDData``) of single observations or of whole groups.

        ``by="observation"`` uses the stored pointwise log-likelihood, conditional on
        the random effects: ``elpd = sum_i log p(y_i | y_-i)``.  ``by="group"`` leaves
        out one level ``g`` of the grouping factor the likelihood factorizes over
        (the single factor, or the coarsest of a nested design) with ``b`` integrated
        out: ``elpd = sum_g log p(y_g | y_-g)``, from ``log p(y_g | beta, sigma, Sigma)``
        per draw (:mod:`lmmcompare.bayesian.group_loo`); its pointwise values have
        that factor's levels as coordinates.  Crossed factors raise
        :class:`~lmmcompare.errors.CrossedGroupingError`.  Where a point has Pareto
        k above ArviZ's threshold (0.7, lower for fewer than 2,200 draws), a
        :class:`~lmmcompare.errors.SamplingWarning` names it instead of ArviZ's generic
        warning: its PSIS estimate is unreliable.
        """
        check_bool("pointwise", pointwise)
        check_choice("by", by, LOO_LEVELS)
        if by == "group":
            from .group_loo import group_log_likelihood

            loglik = group_log_likelihood(self.spec, self.idata.posterior)
            data = az.InferenceData(posterior=self.idata.posterior, log_likelihood=xr.Dataset({"y": loglik}))
        elif "log_likelihood" not in self.idata.groups():
            raise ArgumentError("this fit stored no pointwise log-likelihood: refit with bayes(..., log_likelihood=True)"
                                " or use loo(by='group'), which needs none")
        else:
            data = self.idata
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto", category=UserWarning)
            result = az.loo(data, pointwise=True)
        _warn_high_pareto_k(result, by)
        if pointwise:
            return result
        summary = result.drop(["loo_i", "pareto_k"])   # what az.loo(pointwise=False) returns
        return az.ELPDData(data=list(summary.values), index=list(summary.index))

    def sampler_stats(self) -> pd.DataFrame:
        """Per chain: divergences, tree depth (mean, max, draws at the cap), gradients per draw, step size.

        A NUTS draw of tree depth ``d`` costs up to ``2^d - 1`` leapfrog steps,
        one gradient each (``n_steps``, PyMC's and nutpie's count): how hard the
        posterior's geometry is, apart from how fast one gradient is.
        """
        stats = self.idata.sample_stats
        columns = {}
        for label, names, reduce in _SAMPLER_STATS:
            name = next((n for n in names if n in stats), None)
            if name is not None:
                columns[label] = reduce(stats[name].values.astype(float))
        return pd.DataFrame(columns, index=pd.Index(stats.chain.values, name="chain"))

    def diagnostics(self, warn: bool = False) -> pd.DataFrame:
        """R-hat, bulk and tail ESS per parameter; divergences, tree depth and gradients per draw in ``attrs``.

        ``attrs`` holds ``divergences`` (total), ``mean_tree_depth``,
        ``max_tree_depth``, ``max_depth_hits`` (draws whose tree hit the cap),
        ``gradients_per_draw`` (mean leapfrog steps) and ``acceptance`` (mean
        acceptance probability) over all chains, and for the independence
        sampler ``moves`` (the share of draws that moved; no gradients, no
        trees) (:meth:`sampler_stats` has them per chain).  With ``warn``, a
        :class:`~lmmcompare.errors.SamplingWarning` names every parameter with
        R-hat > 1.01 or ESS < 400, and reports divergences, trees cut at the cap
        and independence chains that move on fewer than 10% of draws.
        """
        check_bool("warn", warn)
        with _numpy_statistics():
            table = az.summary(self.idata, var_names=self.parameter_names, kind="diagnostics")
        divergent = int(self.idata.sample_stats["diverging"].sum()) if "diverging" in self.idata.sample_stats else 0
        table.attrs["divergences"] = divergent
        per_chain = self.sampler_stats()
        for column in ("mean_tree_depth", "gradients_per_draw", "acceptance", "moves"):
            if column in per_chain:
                table.attrs[column] = float(per_chain[column].mean())
        if "max_tree_depth" in per_chain:
            table.attrs["max_tree_depth"] = int(per_chain["max_tree_depth"].max())
        if "max_depth_hits" in per_chain:
            table.attrs["max_depth_hits"] = int(per_chain["max_depth_hits"].sum())
        if warn:
            problems = []
            bad_rhat = table.index[table["r_hat"] > 1.01].tolist()
            low_ess = table.index[(table["ess_bulk"] < 400) | (table["ess_tail"] < 400)].tolist()
            if bad_rhat:
                problems.append(f"R-hat > 1.01 for {', '.join(bad_rhat)}")
            if low_ess:
                problems.append(f"bulk or tail ESS < 400 for {', '.join(low_ess)}")
            if divergent:
                hint = ("raise target_accept" if self.parameterization == "marginal"
                        else "try parameterization='marginal', which has no level effects to funnel, "
                             "or raise target_accept")
                problems.append(f"{divergent} divergent transitions ({hint})")
            if table.attrs.get("moves", 1.0) < LOW_MOVES:
                problems.append(f"the independence sampler moved on only {100 * table.attrs['moves']:.0f}% of "
                                "draws: the posterior is far from its Laplace approximation (sampler='pymc' "
                                "samples it by NUTS)")
            hits = table.attrs.get("max_depth_hits", 0)
            if hits:
                draws = self.idata.posterior.sizes["draw"] * per_chain.shape[0]
                problems.append(f"{hits} of {draws} draws hit the maximum tree depth "
                                "(long trajectories: a ridge or strong correlations in the posterior)")
            if problems:
                warnings.warn("; ".join(problems), SamplingWarning, stacklevel=3)
        return table

    def save(self, path) -> str:
        """Write this fit to one file at ``path``; :func:`lmmcompare.load` reads it back without sampling.

        A zip archive of data only: every group of ``idata`` as netCDF, the priors as
        family names and numbers, the model as its formula and model frame; never a
        pickle, so loading one from someone else runs no code.  Returns the path written.
        """
        return save_archive(path, "BayesFit", lambda writer: bayes_fit_content(writer, self))

    def __repr__(self):
        post = self.idata.posterior
        return (f"<BayesFit {self.sampled_as} ({self.sampler}): {self.spec.formula} | "
                f"{post.sizes['chain']} chains x {post.sizes['draw']} draws, {self.seconds:.1f} s>")


@contextlib.contextmanager
def _numpy_statistics():
    """ArviZ's statistics through numpy rather than numba inside the block: for the handful of parameters
    :meth:`BayesFit.diagnostics` reads, numba's first compilation of ArviZ's variance (0.15 s, every
    process) costs more than it saves.  ArviZ's own setting is restored afterwards."""
    enabled = az.Numba.numba_flag
    az.Numba.disable_numba()
    try:
        yield
    finally:
        az.Numba.numba_flag = enabled
