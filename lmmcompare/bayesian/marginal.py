"""The likelihood of the ``marginal`` parameterisation: b integrated out, one interface, two kernels.

With ``r = y - X beta``, ``Lambda`` the block-diagonal ``I (x) L_i / sigma``
and ``M = I + Lambda' Z'Z Lambda``::

    -2 log p(y | beta, sigma, Sigma) = n log(2 pi sigma^2) + log|M|
                                       + (r'r - |R^{-1} Lambda' Z'r|^2) / sigma^2

(``R R' = M``, Woodbury and the determinant lemma).  :func:`marginal_loglik`
evaluates it with the kernel :func:`kernel` picks for the design:

* ``"blocked"``, every model: the core's blocked factor behind a PyTensor Op
  (:mod:`.blocked`), whose cost grows neither with n nor as ``q^3``.
* ``"closed_form"``, one grouping factor with p <= 2, where ``M`` is one
  ``p x p`` block per level: a compiled kernel with its partials in one Op
  (:mod:`.closed_form`; sleepstudy, logp and gradient: 50 us of CPU against
  770 us for the blocked Op), so kept as a special case of the same likelihood.
  With ``sigma_by`` it is written out as a PyTensor graph (``_level_terms``).

The y-dependent inputs of either kernel (:func:`response_data`) may be
``pm.Data``, so one compiled model is refit to new responses by swapping them
(:class:`.refit.Refitter`).  Coefficients are ``(alpha, beta_1, ...)`` on the
centred slopes (``x_means``) that the model samples.
"""
from __future__ import annotations

import numpy as np

from ..core.blocks import cross_products, response_row
from ..core.design_products import first_block_diagonal
from ..spec import ModelSpec
from .elementwise import matvec, vecdot

KERNELS = ("closed_form", "blocked")


def kernel(spec: ModelSpec) -> str:
    """The kernel that evaluates the marginal likelihood of ``spec`` (module docstring)."""
    return "closed_form" if len(spec.terms) == 1 and spec.terms[0].p <= 2 else "blocked"


def prior_weighted(spec: ModelSpec) -> ModelSpec:
    """``spec`` weighted by its prior weights alone (its ``residual_ratios``, a frequentist fit's, dropped)."""
    return spec if spec.residual_ratios is None else spec.with_residual_ratios(None)


def level_cross_products(spec: ModelSpec, slope_index, x_means) -> dict:
    """Per level ``k`` of ``sigma_by``, the closed form's cross-products with weights ``a_i 1[f(i) = k]``.

    The model's weights are ``w_i = a_i c_{f(i)}``, ``c_k = 1 / delta_k^2``, so every
    cross-product of ``W^{1/2}[Z D y]`` is ``sum_k c_k`` times its level-``k`` part;
    these parts are fixed, so the likelihood needs no data pass per evaluation.
    Arrays have a leading axis of ``K`` levels (1 without ``sigma_by``): ``DtD``,
    ``ZtD``, ``A`` (the ``levels x p x p`` blocks of ``Z'Z``), ``Dty``, ``yty``,
    ``Zty``; ``counts`` (rows per level) and ``log_prior_weights`` (``sum log a_i``).
    """
    sums = level_sums(spec, _centred_design(spec, slope_index, x_means))
    return {"DtD": sums["CtC"], "ZtD": sums["ZtC"], "A": sums["A"], "Dty": sums["Cty"], "yty": sums["yty"],
            "Zty": sums["Zty"], "counts": sums["counts"], "log_prior_weights": sums["log_prior_weights"]}


def level_sums(spec: ModelSpec, C: np.ndarray) -> dict:
    """Per level ``k`` of ``sigma_by`` (one level without it), sums over its rows with weights ``a_i`` (the prior
    weights) for the single term of ``spec`` and the columns ``C``: ``A`` (the ``levels x p x p`` blocks of
    ``Z'WZ``), ``ZtC``, ``Zty``, ``CtC``, ``Cty``, ``yty`` (``y`` less the offset), each with a leading axis of
    levels; ``counts`` (rows per level) and ``log_prior_weights`` (``sum log a_i``)."""
    spec = prior_weighted(spec)
    t = spec.terms[0]
    a = np.ones(spec.n) if spec.weights is None else spec.weights
    codes = np.zeros(spec.n, dtype=int) if spec.sigma_by is None else spec.sigma_by.codes
    K = int(codes.max()) + 1
    y = spec.y - spec.working_offset
    out = {k: [] for k in ("A", "ZtC", "Zty", "CtC", "Cty", "yty")}
    for k in range(K):
        w = np.where(codes == k, a, 0.0)
        out["A"].append(first_block_diagonal(t.design.matrix, t.codes, t.n_levels, w))
        out["ZtC"].append(np.asarray(spec.Z.T @ (w[:, None] * C)))
        out["Zty"].append(np.asarray(spec.Z.T @ (w * y)).ravel())
        out["CtC"].append(C.T @ (w[:, None] * C))
        out["Cty"].append(C.T @ (w * y))
        out["yty"].append(float(y @ (w * y)))
    stacked = {k: np.asarray(v) for k, v in out.items()}
    stacked["counts"] = np.bincount(codes, minlength=K).astype(float)
    stacked["log_prior_weights"] = float(np.log(a).sum())
    return stacked


def response_data(spec: ModelSpec, slope_index, x_means, cp=None) -> dict:
    """The y-dependent inputs of the kernel for ``spec``, by name (the ``pm.Data`` a refit swaps).

    ``closed_form``: ``Dty``, ``yty`` and ``Zty`` with ``D = [1, centred slopes]``;
    ``blocked``: ``response_row``, the y-dependent entries of the core's
    cross-products (:func:`lmmcompare.core.blocks.response_row`); ``cp``, the
    spec's cross-products when the caller has them, saves building them again.
    """
    if kernel(spec) == "blocked":
        if spec.sigma_by is not None:   # the Op builds the cross-products at each ratio from y itself
            return {"response_y": np.array(spec.y, dtype=float)}
        return {"response_row": response_row(cross_products(spec) if cp is None else cp)}
    if spec.sigma_by is not None:   # per level of sigma_by (level_cross_products)
        parts = level_cross_products(spec, slope_index, x_means)
        return {"Dty": parts["Dty"], "yty": parts["yty"], "Zty": parts["Zty"]}
    D, y = sampled_design(spec, slope_index, x_means), spec.working_response
    return {"Dty": D.T @ y, "yty": float(y @ y), "Zty": np.asarray(spec.weighted_rows(spec.Z).T @ y).ravel()}


def sampled_design(spec: ModelSpec, slope_index, x_means) -> np.ndarray:
    """``W^{1/2} D`` with ``D = [1, centred slopes]`` (or the slopes alone), the columns of ``(alpha, beta_1, ...)``.

    With prior weights ``W`` the likelihood is that of the row-scaled model
    (:mod:`lmmcompare.spec.inputs`); without, ``D`` itself.
    """
    return spec.weighted_rows(_centred_design(spec, slope_index, x_means))


def _centred_design(spec: ModelSpec, slope_index, x_means) -> np.ndarray:
    """``D = [1, centred slopes]`` (or the slopes alone): the columns of ``(alpha, beta_1, ...)``."""
    Xs = spec.X[:, slope_index] - x_means
    return np.column_stack([np.ones(spec.n), Xs]) if "(Intercept)" in spec.fixed_names else Xs


def marginal_loglik(spec: ModelSpec, response: dict, coef, sigma, factors, slope_index, x_means, cp=None,
                    ratios=None):
    """log p(y | coef, sigma, Sigma) with b integrated out, as a PyTensor expression.

    ``response`` holds the y-dependent inputs (:func:`response_data`, arrays or
    ``pm.Data``); ``coef`` is ``(alpha, beta_1, ...)`` on the centred slopes;
    ``factors`` are the Cholesky factors ``L_i`` of the ``Sigma_i`` (absolute
    scale); ``cp`` as in :func:`response_data`; ``ratios``, with ``sigma_by``, the residual sd
    ratios ``delta_2..delta_K`` (``sigma`` is the first level's).  :mod:`lmmcompare.validate`
    compiles it on its own to check it against the REML criterion.
    """
    if spec.sigma_by is not None:
        if kernel(spec) == "blocked":
            from .blocked import blocked_ratio_loglik   # PyTensor Op: loaded with PyMC, not with the package

            beta = spec_order_beta(spec, coef, slope_index, x_means)
            return blocked_ratio_loglik(prior_weighted(spec), beta, sigma, factors, ratios, response["response_y"])
        return _closed_form_by_level(spec, response, coef, sigma, factors[0], slope_index, x_means, ratios)
    cp = cross_products(spec) if cp is None else cp
    if kernel(spec) == "blocked":
        from .blocked import blocked_loglik   # PyTensor Op: loaded with PyMC, not with the package

        beta = spec_order_beta(spec, coef, slope_index, x_means)
        return blocked_loglik(cp, beta, sigma, factors, [t.p for t in spec.terms], response["response_row"])
    return _closed_form(spec, cp, response, coef, sigma, factors[0], slope_index, x_means)


def spec_order_beta(spec: ModelSpec, coef, slope_index, x_means):
    """beta in the spec's column order from ``(alpha, beta_1, ...)`` on centred slopes.

    ``beta_(Intercept) = alpha - sum_k xbar_k beta_k``; the slopes are unchanged.
    """
    import pytensor.tensor as pt

    names = spec.fixed_names
    if not names:
        return pt.zeros(0)
    has_intercept = "(Intercept)" in names
    slopes = coef[1:] if has_intercept else coef
    if not slope_index:
        return coef
    values = [None] * len(names)
    for k, j in enumerate(slope_index):
        values[j] = slopes[k]
    if has_intercept:
        values[names.index("(Intercept)")] = coef[0] - vecdot(pt.as_tensor_variable(np.asarray(x_means)), slopes)
    return pt.stack(values)


def _closed_form(spec: ModelSpec, cp, response: dict, gamma, sigma, L_abs, slope_index, x_means):
    """One grouping factor, p <= 2: ``log|M|`` and the quadratic form level by level, in one node.

    ``M_j = I + L' A_j L`` with ``A_j = Z_j'Z_j`` and ``L = L_abs / sigma``,
    ``w_j = L' c_j`` with ``c = Z'r`` (:mod:`.closed_form` has the kernel, its partials and the Op).
    """
    from .closed_form import closed_form_loglik   # PyTensor Op: loaded with PyMC, not with the package

    D = sampled_design(spec, slope_index, x_means)
    DtD, ZtD = D.T @ D, np.asarray(spec.weighted_rows(spec.Z).T @ D)
    return closed_form_loglik(gamma, sigma, L_abs / sigma, response, DtD, ZtD, cp.A11, spec.n, spec.log_weights)


def _closed_form_by_level(spec: ModelSpec, response: dict, gamma, sigma, L_abs, slope_index, x_means, ratios):
    """The closed form with ``sigma_by``: its cross-products ``sum_k c_k`` (level-k parts), ``c_k = 1 / delta_k^2``.

    The quantities of :func:`_closed_form` are those of the rows scaled by
    ``sqrt(w_i)``, ``w_i = a_i c_{f(i)}``; the density gains ``sum_i log w_i / 2 =
    (sum_i log a_i + sum_k n_k log c_k) / 2``.
    """
    import pytensor.tensor as pt

    t = spec.terms[0]
    parts = level_cross_products(spec, slope_index, x_means)
    c = pt.concatenate([pt.ones(1), 1.0 / ratios**2])                         # (K,)

    def combine(stack):
        return (c.reshape((-1,) + (1,) * (stack.ndim - 1)) * stack).sum(axis=0)

    DtD, ZtD, A = combine(parts["DtD"]), combine(parts["ZtD"]), combine(parts["A"])
    Dty, yty, Zty = combine(response["Dty"]), combine(response["yty"]), combine(response["Zty"])
    rtr = yty - 2 * vecdot(gamma, Dty) + vecdot(gamma, matvec(DtD, gamma))
    cvec = (Zty - matvec(ZtD, gamma)).reshape((t.n_levels, t.p))
    logdet, quad = _level_terms(t, L_abs / sigma, A, cvec)
    log_weights = parts["log_prior_weights"] + vecdot(pt.as_tensor_variable(parts["counts"]), pt.log(c))
    s2 = sigma**2
    return -0.5 * (spec.n * pt.log(2 * np.pi * s2) + logdet + (rtr - quad) / s2 - log_weights)


def _level_terms(t, L, A, c):
    """``(sum_j log|M_j|, sum_j w_j' M_j^{-1} w_j)`` with ``M_j = I + L' A_j L``, ``w_j = L' c_j`` (p <= 2)."""
    import pytensor.tensor as pt

    if t.p == 1:
        lam = L[0, 0]
        m = 1.0 + lam**2 * A[:, 0, 0]
        return pt.sum(pt.log(m)), pt.sum((lam * c[:, 0]) ** 2 / m)
    l11, l21, l22 = L[0, 0], L[1, 0], L[1, 1]
    a11, a12, a22 = A[:, 0, 0], A[:, 0, 1], A[:, 1, 1]
    t11 = l11 * (l11 * a11 + l21 * a12) + l21 * (l11 * a12 + l21 * a22)
    t12 = l22 * (l11 * a12 + l21 * a22)
    t22 = l22 * l22 * a22
    m11, m12, m22 = 1.0 + t11, t12, 1.0 + t22
    det = m11 * m22 - m12**2
    w1 = l11 * c[:, 0] + l21 * c[:, 1]
    w2 = l22 * c[:, 1]
    return pt.sum(pt.log(det)), pt.sum((m22 * w1**2 - 2 * m12 * w1 * w2 + m11 * w2**2) / det)


def add_marginal_likelihood(spec: ModelSpec, coef, sigma, factors, slope_index, x_means, shared_response: bool,
                            ratios=None):
    """The model's ``pm.Potential("marginal_loglik")``; with ``shared_response`` its y-inputs are ``pm.Data``.
    ``coef`` may be a callable ``coef(response)`` that makes the coefficients from the y-inputs
    (:func:`.fixed_reparam.conditional_intercept`)."""
    import pymc as pm

    cp = None if spec.sigma_by is not None else cross_products(spec)   # built once for both uses
    response = response_data(spec, slope_index, x_means, cp)
    if shared_response:
        response = {k: pm.Data(k, v) for k, v in response.items()}
    if callable(coef):
        coef = coef(response)
    pm.Potential("marginal_loglik", marginal_loglik(spec, response, coef, sigma, factors, slope_index, x_means, cp,
                                                    ratios))
