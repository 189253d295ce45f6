"""The closed-form marginal likelihood (one grouping factor, p <= 2) as one compiled kernel and one PyTensor Op.

With ``L = L_abs / sigma`` (the relative factor), per level ``j``
``M_j = I + L' A_j L``, ``c_j = Z_j'y - Z_j'D gamma``, ``v_j = L' c_j`` and
``u_j = M_j^{-1} v_j``::

    log p = -(n log(2 pi sigma^2) + sum_j log|M_j| + (r'r - Q) / sigma^2 - sum_i log a_i) / 2,
    Q = sum_j v_j' u_j,   r'r = y'y - 2 gamma'D'y + gamma'D'D gamma

(:mod:`lmmcompare.bayesian.marginal`).  Its partials, for any (not only
lower-triangular) ``L``, from ``d log|M| = 2 tr(M^{-1} L'A dL)`` and
``dQ = 2 c'dL u - 2 u'L'A dL u``::

    d/dgamma = -(D'D gamma - D'y + sum_j (Z_j'D)' L u_j) / sigma^2
    d/dL     = -sum_j A_j L M_j^{-1} + sum_j (c_j - A_j L u_j) u_j' / sigma^2
    d/dsigma = -n / sigma + (r'r - Q) / sigma^3        (L held fixed)

PyTensor chains these to the sampled sds and correlations through
``L = L_abs / sigma``.  One node in place of the 61 of the same formula
written as a PyTensor graph: sleepstudy's compiled log density and gradient
went from 124 nodes and 110 us of CPU per call to 63 nodes and 50 us, and
compiling it from 6.8 to 4.4 s of CPU.  The kernel is numba-compiled (numba
comes with PyTensor) and cached on disk, so only the first call after an
install compiles it (about 4 s).
"""
from __future__ import annotations

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented, grad_undefined
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key


@numba.njit(cache=True, nogil=True)
def closed_form_kernel(gamma, sigma, L, DtD, ZtD, A, Dty, yty, Zty, n, log_weights):
    """``(log p, d/dgamma, d/dsigma, d/dL)`` of the module docstring's formula.

    ``A`` is ``(levels, p, p)``, ``ZtD`` ``(levels * p, k)``, ``Zty`` ``(levels * p,)``;
    ``p`` is 1 or 2.  ``log p`` is ``-inf`` where some ``M_j`` is not positive definite.
    """
    k = gamma.shape[0]
    levels, p = A.shape[0], A.shape[1]
    s2 = sigma * sigma
    DtDg = DtD @ gamma
    rtr = yty - 2.0 * (gamma @ Dty) + gamma @ DtDg
    g_gamma = DtDg - Dty            # becomes -(...) / sigma^2 below
    g_L = np.zeros((p, p))
    logdet = 0.0
    Q = 0.0
    c = np.empty(p)
    for j in range(levels):
        for a in range(p):
            s = Zty[j * p + a]
            for b in range(k):
                s -= ZtD[j * p + a, b] * gamma[b]
            c[a] = s
        if p == 1:
            lam = L[0, 0]
            aj = A[j, 0, 0]
            m = 1.0 + lam * lam * aj
            if not m > 0.0:
                return -np.inf, np.zeros(k), 0.0, np.zeros((p, p))
            u = lam * c[0] / m
            logdet += np.log(m)
            Q += lam * c[0] * u
            g_L[0, 0] += -aj * lam / m + (c[0] - aj * lam * u) * u / s2
            for b in range(k):
                g_gamma[b] += ZtD[j, b] * lam * u
        else:
            l11, l12, l21, l22 = L[0, 0], L[0, 1], L[1, 0], L[1, 1]
            a11, a12, a22 = A[j, 0, 0], A[j, 0, 1], A[j, 1, 1]
            # AL = A_j L, M = I + L' A_j L
            al11, al12 = a11 * l11 + a12 * l21, a11 * l12 + a12 * l22
            al21, al22 = a12 * l11 + a22 * l21, a12 * l12 + a22 * l22
            m11 = 1.0 + l11 * al11 + l21 * al21
            m12 = l11 * al12 + l21 * al22
            m22 = 1.0 + l12 * al12 + l22 * al22
            det = m11 * m22 - m12 * m12
            if not (det > 0.0 and m11 > 0.0):
                return -np.inf, np.zeros(k), 0.0, np.zeros((p, p))
            i11, i12, i22 = m22 / det, -m12 / det, m11 / det
            v1, v2 = l11 * c[0] + l21 * c[1], l12 * c[0] + l22 * c[1]
            u1, u2 = i11 * v1 + i12 * v2, i12 * v1 + i22 * v2
            logdet += np.log(det)
            Q += v1 * u1 + v2 * u2
            # c - A L u and L u
            e1 = c[0] - (al11 * u1 + al12 * u2)
            e2 = c[1] - (al21 * u1 + al22 * u2)
            g_L[0, 0] += -(al11 * i11 + al12 * i12) + e1 * u1 / s2
            g_L[0, 1] += -(al11 * i12 + al12 * i22) + e1 * u2 / s2
            g_L[1, 0] += -(al21 * i11 + al22 * i12) + e2 * u1 / s2
            g_L[1, 1] += -(al21 * i12 + al22 * i22) + e2 * u2 / s2
            lu1, lu2 = l11 * u1 + l12 * u2, l21 * u1 + l22 * u2
            for b in range(k):
                g_gamma[b] += ZtD[2 * j, b] * lu1 + ZtD[2 * j + 1, b] * lu2
    value = -0.5 * (n * np.log(2.0 * np.pi * s2) + logdet + (rtr - Q) / s2 - log_weights)
    d_sigma = -n / sigma + (rtr - Q) / (s2 * sigma)
    return value, -g_gamma / s2, d_sigma, g_L


class ClosedFormLogLik(Op):
    """``(gamma, sigma, L, Dty, yty, Zty, DtD, ZtD, A, n, log_weights) -> (log p, d/dgamma, d/dsigma, d/dL)``.

    ``L`` is the relative factor ``L_abs / sigma``; ``Dty``, ``yty``, ``Zty``
    carry the response (``pm.Data`` in a reused model); the design's
    ``D'D``, ``Z'D``, the blocks ``A_j``, ``n`` and ``sum log a_i`` are constants of the graph.
    The Op holds nothing, so PyTensor's numba backend compiles it with the rest of the
    graph (:func:`_numba_closed_form`).
    """

    __props__ = ()

    def make_node(self, *inputs):
        inputs = [pt.as_tensor_variable(x, dtype="float64") for x in inputs]
        outputs = [pt.dscalar(), pt.dvector(), pt.dscalar(), pt.dmatrix()]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        gamma, sigma, L, Dty, yty, Zty, DtD, ZtD, A, n, log_weights = inputs

        def array(x):   # one compiled layout: C-contiguous float64
            return np.ascontiguousarray(x, dtype=float)

        result = closed_form_kernel(array(gamma), float(sigma), array(L), array(DtD), array(ZtD), array(A),
                                    array(Dty), float(yty), array(Zty), float(n), float(log_weights))
        for k, value in enumerate(result):
            output_storage[k][0] = np.asarray(value, dtype="float64")

    def L_op(self, inputs, outputs, output_grads):
        """The value's gradient: the partials times the output gradient; none for the data.

        The partials have no derivatives here: a Hessian asked of PyTensor raises
        (``grad_not_implemented``) rather than treating them as constants.
        """
        return partials_times(self, inputs, outputs, output_grads, n_parameters=3)

    def connection_pattern(self, node):
        return connections(node, n_parameters=3)


def partials_times(op, inputs, outputs, output_grads, n_parameters: int):
    """``L_op`` of an Op whose outputs are a value and its partials in the first ``n_parameters`` inputs."""
    g, *partial_grads = output_grads
    value_disconnected = isinstance(g.type, DisconnectedType)
    data = [DisconnectedType()() if value_disconnected else grad_undefined(op, i, inputs[i], "data, not a parameter")
            for i in range(n_parameters, len(inputs))]
    if any(not isinstance(h.type, DisconnectedType) for h in partial_grads):
        return [grad_not_implemented(op, i, inputs[i], "second derivatives of the marginal likelihood")
                for i in range(n_parameters)] + data
    if value_disconnected:
        return [DisconnectedType()() for _ in inputs]
    return [g * d for d in outputs[1:]] + data


def connections(node, n_parameters: int) -> list:
    """Outputs (value, partials) connected to the parameters; the data reach the value only."""
    n_out = len(node.outputs)
    return [[True] * n_out if i < n_parameters else [True] + [False] * (n_out - 1) for i in range(len(node.inputs))]


def closed_form_loglik(gamma, sigma, L, response: dict, DtD, ZtD, A, n: int, log_weights: float):
    """``log p(y | gamma, sigma, L)`` through :class:`ClosedFormLogLik` (value and partials in one node)."""
    design = [pt.constant(np.asarray(x, dtype=float)) for x in (DtD, ZtD, A, float(n), float(log_weights))]
    return ClosedFormLogLik()(gamma, sigma, L, response["Dty"], response["yty"], response["Zty"], *design)[0]


@register_funcify_default_op_cache_key(ClosedFormLogLik)
def _numba_closed_form(op, node=None, **kwargs):
    """The Op in PyTensor's numba backend: the kernel itself, inputs and outputs as 0-d arrays where scalar."""

    @numba.njit
    def closed_form(gamma, sigma, L, Dty, yty, Zty, DtD, ZtD, A, n, log_weights):
        value, d_gamma, d_sigma, d_L = closed_form_kernel(gamma, sigma.item(), L, DtD, ZtD, A, Dty, yty.item(), Zty,
                                                          n.item(), log_weights.item())
        return np.array(value), d_gamma, np.array(d_sigma), d_L

    return closed_form, 1
