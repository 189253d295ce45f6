"""The fit functions a user calls, which hand one engine's result to the other.

The engines are siblings: :mod:`lmmcompare.bayesian` imports nothing from
:mod:`lmmcompare.freq`.  Where the Bayesian fit reads a frequentist one, it is
fitted here, in the open, and handed over: the default ``marginal`` model reads
the REML fit of the same spec to choose each sd's sampling scale (signed near
zero, softplus for a lone random intercept: :mod:`lmmcompare.bayesian.sd_fold`),
and ``parameterization="auto"`` to choose each term's form.

* :func:`bayes` fits the REML model first (milliseconds for a small model, a
  second or two for InstEval, against a sampling run of seconds to minutes)
  unless ``reml_fit`` is given;
* :func:`fit_both` builds the spec once and optimises once: its own REML fit is
  the one read (an ML comparison, ``reml=False``, still reads a REML fit,
  refitted from the ML fit's own cross-products, so the choices do not depend
  on ``reml``).

PyMC is imported only when a Bayesian fit is made.
"""
from __future__ import annotations

import inspect
import warnings

from .arguments import check_bool, did_you_mean
from .compare import Comparison
from .errors import ArgumentError
from .freq import lmer
from .spec import as_spec
from .spec.inputs import INPUT_DEFAULTS


def _reml_fit_for_choice(spec, bayes_options, fit=None):
    """The REML fit the Bayesian engine's choices read (``marginal``'s signed sds, ``auto``'s forms): ``fit`` by REML (an ML ``fit`` refitted from its own
    cross-products, :meth:`~lmmcompare.LmerFit.by_criterion`), else fitted here.  Warnings are kept
    quiet: a singular or flagged fit only steers the choices."""
    from .bayesian.fit import DEFAULT_PARAMETERIZATION   # the Bayesian engine loads ArviZ: only when fitting

    if bayes_options.get("parameterization", DEFAULT_PARAMETERIZATION) not in ("auto", "marginal") \
            or bayes_options.get("reml_fit") is not None:
        return bayes_options.get("reml_fit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lmer(spec, reml=True) if fit is None else fit.by_criterion(True)


def _check_keywords(function: str, options: dict, accepted: list[str], extra: str = "") -> None:
    """Unknown keywords are a typed error that suggests the one meant (``REML`` -> ``reml``)."""
    for key in options:
        if key not in accepted:
            hint = did_you_mean(key, accepted)
            raise ArgumentError(f"unknown keyword argument {key!r} for {function}{hint} "
                                f"(it takes {', '.join(accepted)}{extra})")


def bayes(formula, data=None, **options):
    """Fit the Bayesian version of an lme4 model with PyMC.

    Parameters
    ----------
    formula : str or ModelSpec
    data : DataFrame or str, optional
    priors : dict or PriorSet, optional
        Overrides of the default priors (see :mod:`lmmcompare.bayesian.priors`);
        a ``PriorSet`` (e.g. ``fit.priors`` of an earlier fit) is used as it is.
    draws, tune, chains, cores, seed
        Passed to the sampler; ``seed`` makes the run reproducible.  On Linux
        each of ``cores`` (default ``min(chains, 2)``) forked processes samples
        its share of the chains and sends its draws back once
        (:mod:`lmmcompare.bayesian.chains`): the same draws PyMC gives for the
        same seed, without PyMC's message per draw.
    sampler : {"auto", "pymc", "nutpie", "independence"}
        ``"pymc"`` is PyMC's NUTS; ``"nutpie"`` nutpie's (numba backend, faster
        compile-and-sample) when installed; ``"independence"`` independence
        Metropolis-Hastings with a multivariate t proposal around the posterior
        mode (marginal parameterisation; exact, one log density and no gradient per
        draw: :mod:`lmmcompare.bayesian.independence`).  ``"auto"`` (default) is
        ``"independence"`` for marginal models of 10,000 rows or more whose blocked
        factor keeps a dense block of 500 rows or more (InstEval: a gradient costs
        57 ms there, the density alone 21 ms), and ``"pymc"`` otherwise;
        ``BayesFit.sampler`` says which ran.
    parameterization : {"marginal", "auto", "noncentered", "centered"}
        How the random effects are sampled; the model and prior are the same.
        ``marginal`` (default) integrates the random effects out, so the sampler moves
        on the fixed effects, sds, correlations and sigma alone (no funnel, in
        any data), and draws ``b`` afterwards from its exact Gaussian
        conditional ``b | beta, sigma, Sigma, y``, one draw per posterior draw
        (see :mod:`lmmcompare.bayesian.marginal`).  ``noncentered`` samples
        ``b_j = L z_j`` (as brms and bambi), ``centered`` samples
        ``b_j ~ N(0, Sigma)`` directly, and ``auto`` picks one of those two from the
        REML fit of the same spec (:mod:`lmmcompare.bayesian.forms`; the choice is in ``BayesFit.forms``).
    posterior_predictive : bool
        Also draw replicated responses into ``idata.posterior_predictive``.
    log_likelihood : bool
        Store the pointwise log-likelihood (``idata.log_likelihood``, what
        what observation-level :meth:`BayesFit.loo` needs; ``loo(by="group")`` needs
        none).  It holds chains x draws x n numbers: for large data (InstEval:
        73,421 rows) pass False.
    init : {"auto", "laplace", "jitter+adapt_diag", "adapt_diag", "jitter+adapt_full", "adapt_full"}
        How NUTS starts (``sampler="pymc"``; the independence sampler always starts from the Laplace
        approximation).  ``"laplace"`` finds the posterior
        mode and starts from the inverse Hessian there as a dense mass matrix
        (see :mod:`lmmcompare.bayesian.start`), each chain from its own overdispersed draw; it pays
        for itself when the posterior is narrow or the fixed effects are correlated.
        ``"auto"`` is ``"laplace"`` for the marginal parameterisation with at least
        10,000 rows or with terms of at most two columns and 15 levels or more
        (:func:`lmmcompare.bayesian.fit.laplace_by_default` has the measurements);
        for other marginal models with a term of more than two columns it starts
        at the mode too, with the Laplace variances as a diagonal mass matrix
        (:func:`lmmcompare.bayesian.fit.laplace_diagonal_by_default`); otherwise
        PyMC's ``"jitter+adapt_diag"``.  The other values are PyMC's.
    weights, offset, contrasts, subset, na_action
        Prior weights, an offset, factor codings, the rows to use and the missing-value
        rule, as :func:`lmmcompare.lmer` takes them (:meth:`lmmcompare.ModelSpec.from_formula`).
    sigma_by : str, optional
        A factor column: one residual sd per level, sampled (brms' ``sigma ~ f``), each with
        the sigma prior; the posterior has ``sigma`` (the first level's) and the ratios
        ``sigma_ratio_<level>|<f>``, and ``BayesFit.residual_sd`` the mean by level.  Every
        parameterisation covers it, the marginal one included.
    reml_fit : LmerFit, optional
        The REML fit of the same spec, from which the ``marginal`` model chooses
        each sd's sampling scale (:mod:`lmmcompare.bayesian.sd_fold`) and
        ``parameterization="auto"`` the form; fitted here first when not given
        (:func:`fit_both` hands over its own).

    Returns
    -------
    BayesFit
    """
    from .bayesian.fit import bayes as sample

    _check_keywords("bayes", options, [k for k in inspect.signature(sample).parameters if k not in ("formula", "data")])
    spec = as_spec(formula, data, **_spec_inputs(options))
    return sample(spec, **{**options, "reml_fit": _reml_fit_for_choice(spec, options)})


def _spec_inputs(options: dict) -> dict:
    """The spec's inputs (weights, offset, contrasts, subset, na_action), taken out of ``options``."""
    return {k: options.pop(k) for k in INPUT_DEFAULTS if k in options}


def fit_both(formula, data=None, reml: bool = True, **bayes_options) -> Comparison:
    """Build the spec once, fit it by REML/ML and by PyMC, and compare.

    The frequentist model is optimised once: with ``reml=True`` (the default)
    its fit is also the one the Bayesian ``auto`` choice reads.
    """
    from .bayesian.fit import bayes as sample

    check_bool("reml", reml)
    accepted = [k for k in inspect.signature(sample).parameters if k not in ("formula", "data", "reml_fit")]
    _check_keywords("fit_both", bayes_options, ["reml"] + accepted, ": reml goes to lmer, the others to bayes")
    spec = as_spec(formula, data, **_spec_inputs(bayes_options))
    freq_fit = lmer(spec, reml=reml)
    reml_fit = _reml_fit_for_choice(spec, bayes_options, freq_fit)
    return Comparison(freq_fit, sample(spec, **bayes_options, reml_fit=reml_fit))
