"""Sampling the Bayesian model and returning a BayesFit."""
from __future__ import annotations

import contextlib
import time
import warnings

import arviz as az
import numpy as np
import xarray as xr

from .._version import __version__
from ..arguments import check_bool, check_choice, check_int, check_number, check_seed
from ..core.threads import single_blas_thread
from ..errors import ArgumentError, SamplingWarning
from ..spec import as_spec
from . import collector
from .chains import sample_chains
from .reuse import built_model
from .postprocess import (covariance_factors, fixed_effects, linear_predictor, named_posterior,
                          random_effects_marginal, random_effects_sampled, variance_parameters)
from .priors import PriorSet, default_priors
from .residual import ratio_draws, row_sd_draws
from .result import BayesFit

PARAMETERIZATIONS = ("marginal", "auto", "noncentered", "centered")
DEFAULT_PARAMETERIZATION = "marginal"   # b integrated out, drawn exactly afterwards (docs/bayesian.md says why)
SAMPLERS = ("auto", "pymc", "nutpie", "independence")
INITS = ("auto", "laplace", "jitter+adapt_diag", "adapt_diag", "jitter+adapt_full", "adapt_full")
LAPLACE_MIN_N = 10_000   # init="auto" starts the marginal model from its mode from this many rows, or ...
LAPLACE_MAX_P = 2        # ... when no term has more columns than this
LAPLACE_MIN_LEVELS = 15  # ... and every term has at least this many levels (laplace_by_default)


def import_nutpie():
    """The nutpie module (an optional extra), or a typed error that says how to install it."""
    try:
        import nutpie
    except ImportError as exc:
        raise ArgumentError("sampler='nutpie' needs nutpie: pip install 'lmmcompare[nutpie]'") from exc
    return nutpie


def bayes(formula, data=None, priors=None, draws: int = 1000, tune: int = 1000, chains: int = 4,
          cores: int | None = None, seed=None, sampler: str = "auto", parameterization: str = DEFAULT_PARAMETERIZATION,
          progressbar: bool = True, target_accept: float = 0.9, posterior_predictive: bool = False,
          log_likelihood: bool = True, init: str = "auto", reml_fit=None, weights=None, offset=None,
          contrasts=None, subset=None, na_action: str = "omit", sigma_by=None) -> BayesFit:
    """Sample the Bayesian model of ``formula``: the engine behind :func:`lmmcompare.bayes`.

    Takes the arguments documented there.  ``parameterization="auto"`` needs
    ``reml_fit``, the REML fit of the same spec, which this engine does not fit
    (it imports nothing from the frequentist one); :func:`lmmcompare.bayes` and
    :func:`lmmcompare.fit_both` hand it over.  The ``marginal`` model reads it
    too, to choose each sd's sampling scale (:mod:`.sd_fold`: signed near zero,
    softplus for a lone random intercept); without it every sd is sampled on the
    log scale.

    Returns
    -------
    BayesFit
    """
    check_choice("parameterization", parameterization, PARAMETERIZATIONS)
    check_choice("sampler", sampler, SAMPLERS)
    for name, value, minimum in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1)):
        check_int(name, value, minimum)
    if cores is not None:
        check_int("cores", cores, 1)
    target_accept = check_number("target_accept", target_accept, 0.0, 1.0)
    check_seed("seed", seed)
    check_bool("progressbar", progressbar)
    check_bool("posterior_predictive", posterior_predictive)
    check_bool("log_likelihood", log_likelihood)
    check_choice("init", init, INITS)
    if init == "laplace" and sampler not in ("pymc", "auto"):
        raise ArgumentError(f"init='laplace' is a start for PyMC's NUTS: use it with sampler='pymc', not {sampler!r}")
    if sampler == "independence" and parameterization != "marginal":
        raise ArgumentError(f"sampler='independence' needs parameterization='marginal' (got {parameterization!r}): "
                            "it proposes from the Laplace approximation of a handful of parameters, not of every "
                            "level's random effect")
    if sampler == "independence" and init not in ("auto", "laplace"):
        raise ArgumentError(f"init={init!r} starts NUTS; sampler='independence' starts from the Laplace "
                            "approximation: leave init='auto'")
    if priors is not None and not isinstance(priors, (dict, PriorSet)):
        raise ArgumentError(f"priors must be a dict such as {{'sigma': ('half_normal', 10)}}, got {priors!r}")
    spec = as_spec(formula, data, weights=weights, offset=offset, contrasts=contrasts, subset=subset,
                   na_action=na_action, sigma_by=sigma_by)
    prior_set = default_priors(spec, priors)
    t0 = time.perf_counter()
    built = built_model(spec, prior_set, parameterization, reml_fit=reml_fit)   # compiled once per design
    rng = np.random.default_rng(seed)
    sample_seed = int(rng.integers(2**31 - 1))
    # small dense blocks: one BLAS thread (lmmcompare.core.threads); collections walk only the fit's objects
    with single_blas_thread(), collector.frozen_while_fitting():
        with compile_mode(built), quiet_sampling(), built.model:
            sampler, kwargs = _sampling_options(built, draws, tune, chains, cores, sample_seed, progressbar,
                                                target_accept, sampler, init)
            raw = sample_chains(built.model, kwargs)
        fit = _to_fit(raw, built, rng, seed, sampler, time.perf_counter() - t0, posterior_predictive,
                      log_likelihood, progressbar)
    return fit


@contextlib.contextmanager
def quiet_sampling():
    """PyMC's and PyTensor's notices that say nothing to a user who did nothing wrong, filtered."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="pymc")
        # numba runs the blocked marginal Op's perform in object mode, as intended (the factor is numpy/LAPACK)
        warnings.filterwarnings("ignore", message="Numba will use object mode to run (Blocked|ClosedForm)")
        yield


def compile_mode(built):
    """The PyTensor mode the model's functions compile in: numba for the marginal model, C otherwise.

    The marginal model's graph is small (priors, transforms, one kernel node); numba
    compiles it in one function and calls it with less overhead than the C virtual
    machine, and needs neither PyTensor's C module cache (whose loading costs seconds and
    keeps its keys in memory) nor a BLAS to link.  Measured on sleepstudy: the log
    density and gradient 63 -> 20 us of CPU per call, compilation 4.4 -> 2.0 s.
    PyTensor's in-place rewrites are left out: they reuse the memory of arrays of a
    few numbers at most (the kernel's large arrays live inside its Op), and trying
    them took 0.15 of the 0.95 s that sleepstudy's log density and gradient took to
    compile (7.2 us per call either way).
    """
    if built.parameterization != "marginal":
        return contextlib.nullcontext()
    import pytensor
    from pytensor.compile.mode import get_mode

    return pytensor.config.change_flags(mode=get_mode("NUMBA").excluding("inplace"))


def _sampling_options(built, draws, tune, chains, cores, sample_seed, progressbar, target_accept, sampler,
                      init) -> tuple[str, dict]:
    """The sampler used and the keywords of ``pm.sample``: PyMC's or nutpie's NUTS with the start ``init``
    asks for, or the independence step (:mod:`.independence`; ``sampler="auto"`` where a gradient is costly)."""
    kwargs = dict(draws=draws, tune=tune, chains=chains, cores=cores if cores is not None else min(chains, 2),
                  random_seed=sample_seed, progressbar=progressbar, target_accept=target_accept,
                  compute_convergence_checks=False)
    if sampler == "auto":
        from .independence import costly_gradient

        sampler = "independence" if costly_gradient(built) else "pymc"
    if sampler == "independence":
        independence = _independence_options(built, chains, sample_seed)
        if independence:
            kwargs.pop("target_accept")
            return sampler, {**kwargs, **independence}
        sampler = "pymc"   # no Laplace approximation to propose from: NUTS, started as PyMC starts it
    if sampler == "nutpie":
        import_nutpie()
        kwargs["nuts_sampler"] = "nutpie"
    elif init in ("laplace", "auto"):
        dense = init == "laplace" or laplace_by_default(built)
        if dense or laplace_diagonal_by_default(built):
            laplace = _laplace_options(built, chains, sample_seed, target_accept, dense=dense)
            if laplace:
                kwargs.pop("target_accept")   # the step carries it
                kwargs.update(laplace)
    else:
        kwargs["init"] = init
    return sampler, kwargs


def _independence_options(built, chains, sample_seed) -> dict:
    """``step`` and ``initvals`` for the independence step around the Laplace approximation, or ``{}`` with
    a warning where the Hessian at the mode is not negative definite."""
    from .independence import LaplaceIndependence
    from .start import laplace_approximation

    rng = np.random.default_rng(sample_seed)
    laplace = laplace_approximation(built.model, rng)
    covariance = laplace.inverse_hessian()
    if covariance is None:
        warnings.warn("the independence sampler: the Hessian at the posterior mode is not negative definite, so "
                      "there is no Laplace approximation to propose from; sampling by NUTS instead",
                      SamplingWarning, stacklevel=5)
        return {}
    cov, chol = covariance
    return {"step": LaplaceIndependence(model=built.model, mode=laplace.mode, cov=cov),
            "initvals": laplace.chain_starts(built.model, chains, rng, chol)}


def laplace_by_default(built) -> bool:
    """Whether ``init="auto"`` starts NUTS from the Laplace approximation (:mod:`lmmcompare.bayesian.start`).

    For the marginal model with 10,000 rows or more (a narrow posterior: the
    first tuning windows from the prior's centre take hundreds of steps per
    draw), or whose terms have at most two columns and at least 15 levels
    each.  The dense mass matrix it starts with carries the correlations of
    the fixed effects, which a diagonal one cannot.  Measured at
    4 x (1000 + 1000), seed 1, min bulk ESS with PyMC's start -> with this
    one: cake 1746 -> 5792 (gradients per draw 23 -> 6.6), sleepstudy
    2951 -> 4317, 7,000-row ``(x | g)`` 4713 -> 5219, Orthodont 1538 -> 1194.
    With few levels an sd's posterior is skewed and far from the Gaussian at
    its mode: Dyestuff (6 batches) 2076 -> 1736, Penicillin (6 samples)
    2993 -> 2437, Pastes (10 batches) 2318 -> 1582.  With 4-column terms (the
    maximal crossed design) the mode sits on the boundary of a near-singular
    covariance (min ESS 185 -> 60 in 2 x (300 + 300)).  Those keep PyMC's start.
    """
    spec = built.spec
    small_terms = all(t.p <= LAPLACE_MAX_P and t.n_levels >= LAPLACE_MIN_LEVELS for t in spec.terms)
    return built.parameterization == "marginal" and (spec.n >= LAPLACE_MIN_N or small_terms)


def laplace_diagonal_by_default(built) -> bool:
    """Whether ``init="auto"`` starts NUTS from the mode with the Laplace variances as a diagonal mass matrix.

    For the marginal model with a term of more than two columns that
    :func:`laplace_by_default` leaves to PyMC's start: its dense Gaussian at a
    near-singular mode misleads NUTS (above), but PyMC's unit mass matrix
    from the prior's centre costs 138 gradients per draw in the first tuning
    window of the maximal crossed design.  Started at the mode with the
    Laplace variances, the window costs 19 per draw, and the whole
    1,000 + 1,000 chain 41,600 gradients instead of 55,000 (seed 1; min bulk
    ESS of the chain 290 -> 418).  On a cheap model it neither gains nor loses:
    sleepstudy with ``(1 + Days + I(Days**2) | Subject)``, seeds 1-5, min bulk
    ESS 972, 860, 1202, 1348, 1312 against PyMC's start's 1036, 1124, 996,
    1306, 1381, wall 29-51 s against 32-44 s.
    """
    return (built.parameterization == "marginal" and not laplace_by_default(built)
            and any(t.p > LAPLACE_MAX_P for t in built.spec.terms))


def _laplace_options(built, chains, sample_seed, target_accept, dense: bool = True) -> dict:
    """``step`` and ``initvals`` for pm.sample from :func:`.start.laplace_start`, or PyMC's default with a warning."""
    from .start import laplace_start

    start = laplace_start(built.model, chains, np.random.default_rng(sample_seed), target_accept, dense=dense)
    if start is None and not dense:   # the default's own choice: PyMC's start, without a word
        return {}
    if start is None:
        warnings.warn("init='laplace': the Hessian at the posterior mode is not negative definite; "
                      "starting as PyMC does (jitter+adapt_diag)", SamplingWarning, stacklevel=4)
        return {}
    return {"step": start.step, "initvals": start.initvals}


def _to_fit(raw, built, rng, seed, sampler, seconds, posterior_predictive, log_likelihood=True, progress=False):
    spec = built.spec
    post = raw.posterior
    fixed = fixed_effects(post, built)
    factors = covariance_factors(post, built)
    variances = variance_parameters(post, built, factors)
    if built.parameterization == "marginal":
        b_terms = random_effects_marginal(post, built, fixed, factors, rng, progress)
    else:
        b_terms = random_effects_sampled(post, built)
    named = named_posterior(post, built, b_terms, fixed, variances)
    coords = {"chain": named.chain.values, "draw": named.draw.values, "obs": np.arange(spec.n)}
    groups = {
        "posterior": named,
        "sample_stats": raw.sample_stats,
        "observed_data": xr.Dataset({"y": xr.DataArray(spec.y, dims=("obs",), coords={"obs": coords["obs"]})}),
    }
    if log_likelihood or posterior_predictive:
        mu = linear_predictor(spec, fixed, b_terms)
        # residual sd sigma delta_f(i) / sqrt(a_i) (prior weights a, sigma_by ratios delta)
        sigma = row_sd_draws(spec, variances["sigma"], ratio_draws(variances, spec))
    if log_likelihood:
        loglik = -0.5 * np.log(2 * np.pi * sigma**2) - 0.5 * ((spec.y - mu) / sigma) ** 2
        groups["log_likelihood"] = xr.Dataset({"y": xr.DataArray(loglik, dims=("chain", "draw", "obs"),
                                                                 coords=coords)})
    if posterior_predictive:
        yrep = mu + sigma * rng.standard_normal(mu.shape)
        groups["posterior_predictive"] = xr.Dataset({"y": xr.DataArray(yrep, dims=("chain", "draw", "obs"),
                                                                        coords=coords)})
    idata = az.InferenceData(**groups)
    idata.posterior.attrs.update(lmmcompare_parameterization=built.parameterization,
                                 lmmcompare_forms=", ".join(built.forms), lmmcompare_sampler=sampler,
                                 lmmcompare_seed=str(seed))
    idata.attrs["lmmcompare_version"] = __version__   # which software made these draws, saved with them
    fit = BayesFit(spec=spec, idata=idata, priors=built.priors, parameterization=built.parameterization,
                   forms=dict(zip([t.label for t in spec.terms], built.forms)),
                   sampler=sampler, seed=seed, seconds=seconds)
    fit.diagnostics(warn=True)
    return fit


# BayesFit.update samples through this module, which imports BayesFit (the method cannot import it back)
BayesFit._sample = staticmethod(bayes)
