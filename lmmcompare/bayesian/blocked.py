"""The blocked marginal likelihood as a PyTensor Op: the kernel of every marginal model but the closed form.

The Op hands the evaluation to the blocked factor of the shared core
(:func:`lmmcompare.core.likelihood.loglik`), which returns the value and the
gradient in one pass at a cost that does not grow with n, nor with q as a
dense ``q x q`` Cholesky's does (InstEval: q = 4114).  A small model
(``q + p + 1 <= 110``) is held dense instead, as the frequentist engine holds
it (:class:`lmmcompare.core.small_dense.DenseCriterion`): a few LAPACK calls
in place of the blocked factor's Python (Pastes 0.66 -> 0.17 ms, Penicillin
0.69 -> 0.16 ms per logp-and-gradient, the same numbers to 1e-13).
PyTensor sees one node with four outputs (value and partials); the value's
gradient is the partials scaled by the output gradient, so a
logp-and-gradient evaluation factors ``L(theta)`` once.

The response enters as an input, the y-dependent entries of the
cross-products (:func:`lmmcompare.core.blocks.response_row`), so a compiled
model can be refit to a new y by swapping that vector (``pm.Data``) alone:
the Op rebuilds its cross-products when the vector changes, once per refit.

With ``sigma_by`` the cross-products depend on the residual sd ratios as well:
``BlockedRatioLogLik`` takes ``log delta`` and the response ``y`` itself, builds
the blocks at each new ``delta`` (:class:`lmmcompare.core.residual_ratios.RatioProducts`)
and adds the partials in ``log delta`` (:func:`lmmcompare.core.residual_ratios.loglik_slope`).
"""
from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from ..core.blocks import CrossProducts, response_row, with_response_row
from ..core.factor import factorize
from ..core.likelihood import loglik
from ..core.relcovar import lower_index
from ..core.residual_ratios import RatioProducts, loglik_slope
from ..core.small_dense import DenseCriterion
from .closed_form import connections, partials_times


class BlockedLogLik(Op):
    """``(beta, sigma, theta, row) -> (log p(y | beta, sigma, theta), d/dbeta, d/dsigma, d/dtheta)``.

    ``row`` is :func:`~lmmcompare.core.blocks.response_row` of the response;
    the design's cross-products ``cp`` are held by the Op.
    """

    __props__ = ()   # instances are never merged: each holds its own cross-products

    def __init__(self, cp: CrossProducts):
        # (row, cross-products with that row, the dense criterion of a small model or None): replaced as one
        # tuple, so a reader never sees half of it
        self._current = (response_row(cp), cp, DenseCriterion.for_model(cp, reml=False))

    @property
    def cp(self) -> CrossProducts:
        """The cross-products of the current response."""
        return self._current[1]

    def products(self, row: np.ndarray) -> tuple[CrossProducts, DenseCriterion | None]:
        """The cross-products for response ``row`` and, for a small model, its dense criterion
        (:mod:`lmmcompare.core.small_dense`, 4 to 5 times faster there); rebuilt only when the row changes."""
        current_row, cp, dense = self._current
        if row is current_row or np.array_equal(row, current_row):
            return cp, dense
        cp, dense = with_response_row(cp, row), (None if dense is None else dense.with_response_row(row))
        self._current = (row.copy(), cp, dense)
        return cp, dense

    def make_node(self, beta, sigma, theta, row):
        inputs = [pt.as_tensor_variable(x, dtype="float64") for x in (beta, sigma, theta, row)]
        outputs = [pt.dscalar(), pt.dvector(), pt.dscalar(), pt.dvector()]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        """Value and partials from :func:`lmmcompare.core.likelihood.loglik`."""
        beta, sigma, theta, row = inputs
        cp, dense = self.products(row)
        result = loglik(cp, beta, float(sigma), theta, dense=dense)
        output_storage[0][0] = np.asarray(result.value, dtype="float64")
        output_storage[1][0] = np.asarray(result.d_beta, dtype="float64")
        output_storage[2][0] = np.asarray(result.d_sigma, dtype="float64")
        output_storage[3][0] = np.asarray(result.d_theta, dtype="float64")

    def L_op(self, inputs, outputs, output_grads):
        """The value's gradient: the partials (outputs 1 to 3) times the output gradient; none for the data
        (and no second derivatives: a Hessian asked of PyTensor raises)."""
        return partials_times(self, inputs, outputs, output_grads, n_parameters=3)

    def connection_pattern(self, node):
        return connections(node, n_parameters=3)

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other


class BlockedLogLikValue(Op):
    """``(beta, sigma, theta, row) -> log p(y | beta, sigma, theta)`` alone, from a :class:`BlockedLogLik`'s products.

    For samplers that never ask for a gradient (:mod:`.independence`): the
    factor without the inverse blocks that its gradient needs (InstEval:
    21 ms instead of 57 ms per evaluation).
    """

    __props__ = ()

    def __init__(self, full: BlockedLogLik):
        self.full = full

    def make_node(self, beta, sigma, theta, row):
        inputs = [pt.as_tensor_variable(x, dtype="float64") for x in (beta, sigma, theta, row)]
        return Apply(self, inputs, [pt.dscalar()])

    def perform(self, node, inputs, output_storage):
        beta, sigma, theta, row = inputs
        cp, dense = self.full.products(row)
        result = loglik(cp, beta, float(sigma), theta, gradient=False, dense=dense)
        output_storage[0][0] = np.asarray(result.value, dtype="float64")

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other


class BlockedRatioLogLik(Op):
    """``(beta, sigma, theta, log_delta, y) -> (log p, d/dbeta, d/dsigma, d/dtheta, d/dlog_delta)`` with ``sigma_by``.

    The spec (prior weights, ``sigma_by``) is held by the Op; ``y`` is the response
    (the spec's is replaced when it changes, once per refit).
    """

    __props__ = ()

    def __init__(self, spec):
        self._current = (np.array(spec.y), RatioProducts(spec))

    def products(self, y: np.ndarray) -> RatioProducts:
        """The cross-products at any ratios for response ``y`` (a new cache when ``y`` changes)."""
        current_y, products = self._current
        if y is current_y or np.array_equal(y, current_y):
            return products
        products = RatioProducts(products.spec.with_response(y))
        self._current = (np.array(y), products)
        return products

    def make_node(self, beta, sigma, theta, log_delta, y):
        inputs = [pt.as_tensor_variable(x, dtype="float64") for x in (beta, sigma, theta, log_delta, y)]
        outputs = [pt.dscalar(), pt.dvector(), pt.dscalar(), pt.dvector(), pt.dvector()]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        beta, sigma, theta, log_delta, y = inputs
        spec, cp = self.products(y).at(log_delta)
        try:
            f = factorize(cp, np.asarray(theta, float))
        except np.linalg.LinAlgError:
            f = None
        result = loglik(cp, beta, float(sigma), theta, factor=f)
        slope = (loglik_slope(spec, f, beta, float(sigma)) if f is not None
                 else np.full(log_delta.shape, np.nan))
        for k, value in enumerate((result.value, result.d_beta, result.d_sigma, result.d_theta, slope)):
            output_storage[k][0] = np.asarray(value, dtype="float64")

    def L_op(self, inputs, outputs, output_grads):
        return partials_times(self, inputs, outputs, output_grads, n_parameters=4)

    def connection_pattern(self, node):
        return connections(node, n_parameters=4)

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other


def theta_from_factors(factors, sizes, sigma):
    """lme4's theta (column-major lower triangles of ``L_i / sigma``) as a PyTensor vector."""
    parts = []
    for L, p in zip(factors, sizes):
        rows, cols = lower_index(p)
        parts.append(L[rows, cols] / sigma)
    return pt.concatenate(parts)


def blocked_loglik(cp: CrossProducts, beta, sigma, factors, sizes, row=None):
    """``log p(y | beta, sigma, Sigma)`` through the Op ``BlockedLogLik`` (value and partials in one node).

    ``factors`` are the Cholesky factors ``L_i`` of the ``Sigma_i`` (absolute
    scale), ``sizes`` their orders ``p_i``; ``beta`` is in the spec's column
    order; ``row`` the response (:func:`~lmmcompare.core.blocks.response_row`,
    a constant from ``cp`` when not given, or a ``pm.Data`` to swap).
    """
    row = response_row(cp) if row is None else row
    return BlockedLogLik(cp)(beta, sigma, theta_from_factors(factors, sizes, sigma), row)[0]


def blocked_ratio_loglik(spec, beta, sigma, factors, ratios, y):
    """As :func:`blocked_loglik` for a spec with ``sigma_by``: ``ratios`` are ``delta_2..delta_K``, ``y``
    the response (a constant or a ``pm.Data``); ``spec`` carries the prior weights."""
    theta = theta_from_factors(factors, [t.p for t in spec.terms], sigma)
    return BlockedRatioLogLik(spec)(beta, sigma, theta, pt.log(ratios), y)[0]
