"""Build the PyMC model of a ModelSpec: y | b ~ N(X beta + Z b, sigma^2), b_ij ~ N(0, Sigma_i).

Parameterisations of the same model (the level effects of each form are built
in :mod:`.covariance`, on standardised columns):

* ``noncentered``: ``b_i = z_i L_i'`` with ``z_i ~ N(0, 1)`` and
  ``L_i`` the Cholesky factor of ``Sigma_i`` (LKJ correlation, per-column sds).
* ``centered``: ``b_i ~ MvNormal(0, Sigma_i)`` directly.
* ``auto`` (the default of :func:`lmmcompare.bayes`): one of the two, chosen
  from how much the data say about the levels (:mod:`.forms`).
* ``marginal``: b integrated out.  With ``r = y - X beta`` and ``Lambda`` the
  block-diagonal ``I (x) L_i / sigma``, ``M = I + Lambda' Z'Z Lambda``::

      -2 log p(y | beta, sigma, Sigma) = n log(2 pi sigma^2) + log|M|
                                         + (r'r - |R^{-1} Lambda' Z'r|^2) / sigma^2

  (``R R' = M``, Woodbury and the determinant lemma); ``r'r``, ``Z'r`` come from
  the cross-products ``X'X, X'y, y'y, Z'X, Z'y, Z'Z`` alone, so a gradient costs
  nothing that grows with n.  With one grouping factor ``M`` is block-diagonal
  (one ``p x p`` block per level) and is handled in closed form for p <= 2;
  other models evaluate the same likelihood through the frequentist engine's
  blocked factor (:mod:`.blocked`), whose cost does not grow with q as a
  dense ``q x q`` Cholesky's does.

Fixed effects other than the intercept are sampled on centred columns; the
reported ``(Intercept)`` is transformed back.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.standardize import column_transforms
from ..errors import ArgumentError
from ..spec import ModelSpec
from .covariance import level_effects, term_factors
from .elementwise import matvec, vecdot
from .forms import term_forms
from .priors import PriorSet


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


def _fixed_part(spec: ModelSpec, priors: PriorSet, pm, pt):
    names = spec.fixed_names
    has_intercept = "(Intercept)" in names
    slope_index = [j for j, n in enumerate(names) if n != "(Intercept)"]
    X = spec.X[:, slope_index]
    x_means = X.mean(axis=0) if has_intercept else np.zeros(len(slope_index))
    Xc = X - x_means
    mu = 0.0
    if slope_index:
        beta = pt.stack([priors.fixed[r.label].variable(r.pymc_name) for r in spec.parameters.fixed if r.i in slope_index])
        mu = matvec(Xc, beta)
    if has_intercept:
        alpha = priors.intercept.variable(spec.parameters["(Intercept)"].pymc_name)
        mu = mu + alpha
    return mu, x_means, slope_index


def build_model(spec: ModelSpec, priors: PriorSet, parameterization: str = "noncentered",
                shared_response: bool = False, standardized: bool = True, reml_fit=None) -> BuiltModel:
    """The PyMC model of ``spec`` under ``priors``.

    ``parameterization="auto"`` chooses the centred or noncentred form for the
    model (:func:`.forms.term_forms`) from ``reml_fit``, the REML fit of the
    spec that the caller hands over.  With
    ``shared_response`` the parts that depend on y
    are ``pm.Data`` (``y_obs``, or ``Dty``, ``yty``, ``Zty`` for the marginal
    model), so one compiled model can be refit to new responses
    (:class:`.refit.Refitter`).  ``standardized=False`` samples every
    covariance in the model's own sds and correlations (the generative form,
    which prior predictive draws need); the default moves the noncentered and
    centered forms on standardised columns (same model, same prior).
    """
    import pymc as pm
    import pytensor.tensor as pt

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
    with pm.Model(coords=coords) as model:
        mu, x_means, slope_index = _fixed_part(spec, priors, pm, pt)
        sigma = priors.sigma.variable(spec.parameters["sigma"].pymc_name)
        transforms = (column_transforms(spec) if standardized else None) or [None] * len(spec.terms)
        # the marginal model has no level effects to decorrelate, and its raw (sd, cor) geometry samples well
        # (Orthodont: no divergences); the extra Potential would only cost compile time (sleepstudy ESS/s 109 -> 69)
        if parameterization == "marginal":
            transforms = [None] * len(spec.terms)
        factors = [term_factors(spec, i, priors, pm, pt, A) for i, A in enumerate(transforms)]
        if parameterization == "marginal":
            _marginal_likelihood(spec, mu, sigma, [f.L for f in factors], slope_index, x_means, pm, pt,
                                 shared_response)
        else:
            for i, (t, f, form) in enumerate(zip(spec.terms, factors, forms)):
                b = level_effects(spec, i, f, form, pm, pt)
                mu = mu + _level_part(t, b)
            observed = pm.Data("y_obs", spec.y, dims="obs") if shared_response else spec.y
            pm.Normal("y", mu=mu, sigma=sigma, observed=observed, dims="obs")
    return BuiltModel(model=model, spec=spec, priors=priors, parameterization=parameterization,
                      x_means=x_means, slope_index=slope_index, forms=forms)


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


RESPONSE_PARTS = ("Dty", "yty", "Zty")   # the entries of marginal_data that depend on y


def marginal_data(spec: ModelSpec, slope_index, x_means) -> dict:
    """The cross-products the marginal likelihood needs, for the design as sampled.

    ``D`` is ``[1, centred slopes]`` (or the slopes alone), so ``gamma`` below is
    ``(alpha, beta_1, ...)``.  Only ``Dty``, ``yty`` and ``Zty`` depend on y.
    """
    n = spec.n
    has_intercept = "(Intercept)" in spec.fixed_names
    Xs = spec.X[:, slope_index] - x_means
    D = np.column_stack([np.ones(n), Xs]) if has_intercept else Xs
    Z = spec.Z
    data = {"n": n, "DtD": D.T @ D, "Dty": D.T @ spec.y, "yty": float(spec.y @ spec.y),
            "ZtD": np.asarray(Z.T @ D), "Zty": np.asarray(Z.T @ spec.y).ravel()}
    if _closed_form(spec):
        from ..core.blocks import cross_products

        data["A11"] = cross_products(spec).A11   # (levels, p, p) diagonal blocks of Z'Z
    else:
        data["ZtZ"] = (Z.T @ Z).toarray()
    return data


def _closed_form(spec: ModelSpec) -> bool:
    return len(spec.terms) == 1 and spec.terms[0].p <= 2


def marginal_loglik(spec: ModelSpec, data: dict, gamma, sigma, factors):
    """log p(y | gamma, sigma, Sigma) with b integrated out, as a PyTensor expression.

    ``factors`` are the Cholesky factors ``L_i`` of the ``Sigma_i`` (absolute
    scale); the formula is the module docstring's.  This is the likelihood of
    the ``marginal`` parameterisation; :mod:`lmmcompare.validate` compiles it
    on its own to check it against the REML criterion.
    """
    import pytensor.tensor as pt

    n = data["n"]
    rtr = data["yty"] - 2 * vecdot(gamma, data["Dty"]) + vecdot(gamma, matvec(data["DtD"], gamma))
    Ztr = data["Zty"] - matvec(data["ZtD"], gamma)
    s2 = sigma**2
    if _closed_form(spec):
        t = spec.terms[0]
        L = factors[0] / sigma
        A = data["A11"]
        c = Ztr.reshape((t.n_levels, t.p))
        if t.p == 1:
            lam = L[0, 0]
            m = 1.0 + lam**2 * A[:, 0, 0]
            logdet = pt.sum(pt.log(m))
            quad = pt.sum((lam * c[:, 0]) ** 2 / m)
        else:
            # M_j = I + L' A_j L (2 x 2) and w_j = L' c_j, elementwise over levels
            l11, l21, l22 = L[0, 0], L[1, 0], L[1, 1]
            a11, a12, a22 = A[:, 0, 0], A[:, 0, 1], A[:, 1, 1]
            t11 = l11 * (l11 * a11 + l21 * a12) + l21 * (l11 * a12 + l21 * a22)
            t12 = l22 * (l11 * a12 + l21 * a22)
            t22 = l22 * l22 * a22
            m11, m12, m22 = 1.0 + t11, t12, 1.0 + t22
            det = m11 * m22 - m12**2
            w1 = l11 * c[:, 0] + l21 * c[:, 1]
            w2 = l22 * c[:, 1]
            logdet = pt.sum(pt.log(det))
            quad = pt.sum((m22 * w1**2 - 2 * m12 * w1 * w2 + m11 * w2**2) / det)
    else:
        blocks = [pt.linalg.kron(pt.eye(t.n_levels), Li / sigma) for t, Li in zip(spec.terms, factors)]
        Lam = pt.linalg.block_diag(*blocks) if len(blocks) > 1 else blocks[0]
        M = pt.eye(spec.q) + pt.dot(Lam.T, pt.dot(data["ZtZ"], Lam))
        R = pt.linalg.cholesky(M)
        w = pt.linalg.solve_triangular(R, pt.dot(Lam.T, Ztr), lower=True)
        logdet = 2 * pt.sum(pt.log(pt.diag(R)))
        quad = pt.sum(w**2)
    return -0.5 * (n * pt.log(2 * np.pi * s2) + logdet + (rtr - quad) / s2)


def uses_blocked_marginal(spec: ModelSpec, shared_response: bool = False) -> bool:
    """Whether the marginal model evaluates through the blocked factor (:mod:`.blocked`).

    One grouping factor with p <= 2 has the closed form above; the dense form
    is kept for refits that swap the response (``shared_response``); every
    other model (crossed, nested, wider terms) uses the blocked factor.
    """
    return not _closed_form(spec) and not shared_response


def _spec_order_beta(spec, coef, slope_index, x_means, pt):
    """beta in the spec's column order from ``(alpha, beta_1, ...)`` on centred slopes."""
    names = spec.fixed_names
    if not names:
        return pt.zeros(0)
    values = [None] * len(names)
    has_intercept = "(Intercept)" in names
    slopes = coef[1:] if has_intercept else coef
    for k, j in enumerate(slope_index):
        values[j] = slopes[k]
    if has_intercept:
        values[names.index("(Intercept)")] = coef[0] - sum(float(m) * b for m, b in zip(x_means, slopes))
    return pt.stack(values)


def _marginal_likelihood(spec, mu_fixed, sigma, factors, slope_index, x_means, pm, pt, shared_response=False):
    """pm.Potential with the exact marginal log-likelihood (see module docstring)."""
    rv = {v.name: v for v in pm.modelcontext(None).free_RVs}
    coef = [rv[r.pymc_name] for r in sorted(spec.parameters.fixed, key=lambda r: r.label != "(Intercept)")]
    if uses_blocked_marginal(spec, shared_response):
        from ..core.blocks import cross_products
        from .blocked import blocked_loglik

        beta = _spec_order_beta(spec, coef, slope_index, x_means, pt)
        pm.Potential("marginal_loglik", blocked_loglik(cross_products(spec), beta, sigma, factors,
                                                       [t.p for t in spec.terms]))
        return
    gamma = pt.stack(coef) if coef else pt.zeros(0)
    data = marginal_data(spec, slope_index, x_means)
    if shared_response:
        data.update({k: pm.Data(k, data[k]) for k in RESPONSE_PARTS})
    pm.Potential("marginal_loglik", marginal_loglik(spec, data, gamma, sigma, factors))
