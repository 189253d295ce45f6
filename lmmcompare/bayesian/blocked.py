"""The blocked marginal likelihood as a PyTensor Op, for the ``marginal`` parameterisation.

The dense ``q x q`` marginal of :func:`.model.marginal_loglik` is exact but costs
``O(q^3)`` per gradient inside PyTensor; for crossed or many random effects
(Penicillin, InstEval's 4,114) this Op hands the evaluation to the frequentist
engine's blocked factor (:func:`lmmcompare.core.likelihood.loglik`), which returns
the value and the gradient in one pass.  PyTensor sees one node with four
outputs (value and partials); the value's gradient is the partials scaled by
the output gradient, so a logp-and-gradient evaluation factors ``L(theta)`` once.
"""
from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from ..core.blocks import CrossProducts
from ..core.likelihood import loglik
from ..core.relcovar import lower_index


class BlockedLogLik(Op):
    """``(beta, sigma, theta) -> (log p(y | beta, sigma, theta), d/dbeta, d/dsigma, d/dtheta)``."""

    __props__ = ()   # instances are never merged: each holds its own cross-products

    def __init__(self, cp: CrossProducts):
        self.cp = cp

    def make_node(self, beta, sigma, theta):
        inputs = [pt.as_tensor_variable(beta, dtype="float64"), pt.as_tensor_variable(sigma, dtype="float64"),
                  pt.as_tensor_variable(theta, dtype="float64")]
        outputs = [pt.dscalar(), pt.dvector(), pt.dscalar(), pt.dvector()]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        """Value and partials from :func:`lmmcompare.core.likelihood.loglik`."""
        beta, sigma, theta = inputs
        result = loglik(self.cp, beta, float(sigma), theta)
        output_storage[0][0] = np.asarray(result.value, dtype="float64")
        output_storage[1][0] = np.asarray(result.d_beta, dtype="float64")
        output_storage[2][0] = np.asarray(result.d_sigma, dtype="float64")
        output_storage[3][0] = np.asarray(result.d_theta, dtype="float64")

    def L_op(self, inputs, outputs, output_grads):
        """The value's gradient: the partials (outputs 1 to 3) times the output gradient."""
        _, d_beta, d_sigma, d_theta = outputs
        g = output_grads[0]
        if isinstance(g.type, DisconnectedType):
            return [DisconnectedType()() for _ in inputs]
        # the partials themselves are not differentiated again (no second derivatives)
        return [g * d_beta, g * d_sigma, g * d_theta]

    def connection_pattern(self, node):
        return [[True, False, False, False] for _ in node.inputs]

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


def blocked_loglik(cp: CrossProducts, beta, sigma, factors, sizes):
    """``log p(y | beta, sigma, Sigma)`` through the Op ``BlockedLogLik`` (value and partials in one node).

    ``factors`` are the Cholesky factors ``L_i`` of the ``Sigma_i`` (absolute
    scale), ``sizes`` their orders ``p_i``; ``beta`` is in the spec's column order.
    """
    return BlockedLogLik(cp)(beta, sigma, theta_from_factors(factors, sizes, sigma))[0]
