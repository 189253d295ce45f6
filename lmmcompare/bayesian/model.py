"""Build the PyMC model of a ModelSpec: y | b ~ N(X beta + Z b, sigma^2), b_ij ~ N(0, Sigma_i).

Parameterisations of the same model (the level effects of each form are built
in :mod:`.covariance`, on standardised columns):

* ``noncentered``: ``b_i = z_i L_i'`` with ``z_i ~ N(0, 1)`` and
  ``L_i`` the Cholesky factor of ``Sigma_i`` (LKJ correlation, per-column sds).
* ``centered``: ``b_i ~ MvNormal(0, Sigma_i)`` directly.
* ``auto`` (the default of :func:`lmmcompare.bayes`): one of the two, chosen
  from how much the data say about the levels (:mod:`.forms`).
* ``marginal``: b integrated out; its likelihood is :mod:`.marginal`'s
  (one interface: the core's blocked factor, or a closed form for one
  grouping factor with p <= 2), with ``sigma_by`` too (the blocked Op then
  takes the ratios, ``lmmcompare.bayesian.blocked.BlockedRatioLogLik``).
  Its sds are sampled on the log scale, or signed where the REML fit leaves them
  near zero (:mod:`.sd_fold`); a model whose only term is one random intercept
  samples that sd on a softplus scale and its fixed intercept around its
  conditional mean (:mod:`.fixed_reparam`).

Structured terms (``diag``, ``cs``, ``ar1``) are built in :mod:`.structured`;
the residual sd of each row (prior weights, ``sigma_by``) in :mod:`.residual`.

Fixed effects other than the intercept are sampled on centred columns; the
reported ``(Intercept)`` is transformed back.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.standardize import column_transforms
from ..errors import ArgumentError
from ..spec import ModelSpec
from .blas_link import warn_if_unlinked
from .covariance import level_effects, term_factors
from .elementwise import matvec
from .fixed_reparam import conditional_intercept, reparameterized
from .forms import term_forms
from .marginal import add_marginal_likelihood
from .priors import PriorSet
from .residual import residual_parameters, row_sd


@dataclass(frozen=True, eq=False)
class BuiltModel:
    """The PyMC model and what post-processing needs to name its variables."""

    model: object
    spec: ModelSpec
    priors: PriorSet
    parameterization: str
    x_means: np.ndarray  # means of the centred non-intercept columns
    slope_index: list    # columns of X that are not the intercept
    forms: tuple = ()    # per term, "centered" or "noncentered" (empty for the marginal model)
    folded: tuple = ()   # terms whose sds are sampled signed, sd = |s| (marginal model; .sd_fold)
    intercept_z: bool = False   # the intercept is sampled as z around its conditional mean (.fixed_reparam)
    softplus: float | None = None   # a lone random intercept's sd is softplus * log(1 + e^x) (.sd_fold)


def _fixed_part(spec: ModelSpec, priors: PriorSet, pm, pt, intercept: bool = True):
    """``(mu, x_means, slope_index, coef)``: ``X beta`` on centred slopes and ``coef = (alpha, beta_1, ...)``;
    with ``intercept=False`` ``coef`` is the list ``[None, beta_1, ...]`` and ``mu`` None (the marginal model
    makes alpha, :mod:`.fixed_reparam`)."""
    names = spec.fixed_names
    has_intercept = "(Intercept)" in names
    slope_index = [j for j, n in enumerate(names) if n != "(Intercept)"]
    X = spec.X[:, slope_index]
    x_means = X.mean(axis=0) if has_intercept else np.zeros(len(slope_index))
    Xc = X - x_means
    mu = 0.0
    slopes = [priors.fixed[r.label].variable(r.pymc_name) for r in spec.parameters.fixed if r.i in slope_index]
    if slopes:
        mu = matvec(Xc, pt.stack(slopes))
    coef = slopes
    if has_intercept and not intercept:
        return None, x_means, slope_index, [None, *slopes]
    if has_intercept:
        alpha = priors.intercept.variable(spec.parameters["(Intercept)"].pymc_name)
        mu = mu + alpha
        coef = [alpha, *slopes]
    return mu, x_means, slope_index, pt.stack(coef) if coef else pt.zeros(0)


def build_model(spec: ModelSpec, priors: PriorSet, parameterization: str = "noncentered",
                shared_response: bool = False, standardized: bool = True, reml_fit=None,
                model_class=None, folded: tuple = (), softplus: float | None = None) -> BuiltModel:
    """The PyMC model of ``spec`` under ``priors``.

    ``parameterization="auto"`` chooses the centred or noncentred form for the
    model (:func:`.forms.term_forms`) from ``reml_fit``, the REML fit of the
    spec that the caller hands over.  With
    ``shared_response`` the parts that depend on y
    are ``pm.Data`` (``y_obs``, or for the marginal model the names of
    :func:`.marginal.response_data`), so one compiled model can be refit to new responses
    (:class:`.refit.Refitter`).  ``standardized=False`` samples every
    covariance in the model's own sds and correlations, with PyMC's LKJCorr (the generative form,
    which prior predictive draws need); the default moves the noncentered and
    centered forms on standardised columns (same model, same prior).  ``model_class``: a subclass
    of ``pm.Model`` to build it as (:mod:`lmmcompare.bayesian.reuse`'s, which keeps its compiled functions).
    ``folded``: indices of the terms whose sds the marginal model samples signed (:func:`.sd_fold.folded_terms`);
    ``softplus``: the scale of a lone random intercept's softplus sd (:func:`.sd_fold.softplus_scale`).
    """
    import pymc as pm
    import pytensor.tensor as pt

    warn_if_unlinked()
    if parameterization == "marginal":
        forms = ()
    elif parameterization == "auto":
        if reml_fit is None:
            raise ArgumentError("parameterization='auto' chooses the form from the REML fit of the same spec: "
                                "pass reml_fit=lmmcompare.lmer(spec), or call lmmcompare.bayes, which fits it")
        forms = tuple(term_forms(spec, reml_fit))
    else:
        forms = (parameterization,) * len(spec.terms)
    coords = {"obs": np.arange(spec.n)}
    with (model_class or pm.Model)(coords=coords) as model:
        around_mean = parameterization == "marginal" and reparameterized(spec)   # the intercept as z (.fixed_reparam)
        mu, x_means, slope_index, coef = _fixed_part(spec, priors, pm, pt, intercept=not around_mean)
        sigma, ratios = residual_parameters(spec, priors, pm, pt)
        transforms = (column_transforms(spec) if standardized else None) or [None] * len(spec.terms)
        # the marginal model has no level effects to decorrelate, and its raw (sd, cor) geometry samples well
        # (Orthodont: no divergences); the extra Potential would only cost compile time (sleepstudy ESS/s 109 -> 69)
        if parameterization == "marginal":
            transforms = [None] * len(spec.terms)
        folded = tuple(folded) if parameterization == "marginal" else ()
        softplus = softplus if parameterization == "marginal" else None
        factors = [term_factors(spec, i, priors, pm, pt, A, generative=not standardized, folded=i in folded,
                                softplus=softplus) for i, A in enumerate(transforms)]
        if parameterization == "marginal":
            if around_mean:   # alpha from z, given the slopes, sigma and the factor (.fixed_reparam)
                slopes = pt.stack(coef[1:]) if len(coef) > 1 else None

                def coef(response, slopes=slopes, rest=coef[1:]):
                    alpha = conditional_intercept(spec, priors, response, sigma, factors[0].L, slope_index, x_means,
                                                  slopes, pm, pt)
                    return pt.stack([alpha, *rest])
            add_marginal_likelihood(spec, coef, sigma, [f.L for f in factors], slope_index, x_means,
                                    shared_response, ratios)
        else:
            for i, (t, f, form) in enumerate(zip(spec.terms, factors, forms)):
                b = level_effects(spec, i, f, form, pm, pt)
                mu = mu + _level_part(t, b)
            observed = pm.Data("y_obs", spec.y, dims="obs") if shared_response else spec.y
            if spec.offset is not None:
                mu = mu + spec.offset
            # residual sd sigma delta_f(i) / sqrt(a_i): prior weights a (lmmcompare.spec.inputs), sigma_by delta
            pm.Normal("y", mu=mu, sigma=row_sd(spec, sigma, ratios, pt), observed=observed, dims="obs")
    return BuiltModel(model=model, spec=spec, priors=priors, parameterization=parameterization,
                      x_means=x_means, slope_index=slope_index, forms=forms, folded=folded,
                      intercept_z=around_mean, softplus=softplus)


def _level_part(term, b):
    """``(Z_i b_i)`` row by row, ``sum_k X_ik b_i[g(row), k]``, one column at a time.

    Gathering whole rows (``b[codes]``) has a gradient that PyTensor runs in
    Python (2-D ``AdvancedIncSubtensor1``, 31 us of sleepstudy's 147 us); a
    column at a time it is C.
    """
    X = term.design.matrix
    parts = []
    for k in range(term.p):
        gathered = b[:, k][term.codes]
        parts.append(gathered if np.all(X[:, k] == 1.0) else X[:, k] * gathered)
    return sum(parts[1:], parts[0])
