"""Each term's covariance ``Sigma_i`` and its level effects ``b_i``, in the centred or noncentred form.

A term's columns are sampled on standardised columns ``X_i A_i`` (``A_i`` from
:func:`lmmcompare.core.standardize.column_transforms`; for ``(x | g)`` the
intercept moves to the mean of x).  :func:`term_factors` returns two Cholesky
factors of the same covariance: ``L`` of ``Sigma_i`` and ``L_std`` of
``S_i = A_i^{-1} Sigma_i A_i^{-T}``, the covariance of the level effects
``c_j = A_i^{-1} b_j`` on the standardised columns.  :func:`level_effects` then
draws ``c_j`` (``z_j L_std'`` noncentred, or ``N(0, S_i)`` centred) and returns
``b_j = A_i c_j``.  The model and the prior are those of ``b_j ~ N(0, Sigma_i)``
either way; only the geometry the sampler sees changes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.standardize import is_identity
from .elementwise import matmul
from .priors import PriorSet
from .sd_fold import signed_sd, softplus_sd
from .structured import structured_factor


@dataclass(frozen=True)
class TermFactors:
    """``L`` (Cholesky factor of ``Sigma_i``) and ``L_std`` (of ``A^{-1} Sigma_i A^{-T}``), PyTensor expressions."""

    L: object
    L_std: object
    A: np.ndarray | None   # None: the columns are sampled as they are (L_std is L)


def lkj_cholesky(name: str, p: int, eta: float, pm, pt):
    """The Cholesky factor of a ``p x p`` correlation matrix with the LKJ(eta) prior, on unconstrained coordinates.

    PyMC's ``LKJCorr`` samples the correlations on a box (an interval transform
    per entry) and returns ``-inf`` where the matrix is not positive definite:
    NUTS meets walls, and near a singular covariance, where a maximal model's
    posterior lives, its trees run long.  Here, as in Stan, ``k = p(p-1)/2``
    free reals ``y`` give canonical partial correlations ``z = tanh(y)`` and the
    factor row by row (Lewandowski, Kurowicka & Joe 2009, sec. 3)::

        L_i0 = z_i0,   L_ij = z_ij sqrt(1 - sum_{l<j} L_il^2),   L_ii = sqrt(1 - sum_{l<i} L_il^2)

    so every ``y`` is a valid correlation matrix.  The density of ``y`` is the
    LKJ density of ``Omega = L L'`` in its Cholesky form,
    ``sum_{i>=1} (p - i - 1 + 2 eta - 2) log L_ii``, plus the log-Jacobians
    ``sum log(1 - z^2)`` (tanh) and ``sum_{i>j} 0.5 log(1 - sum_{l<j} L_il^2)``
    (``z -> L``), added as ``pm.Potential(name + "_lkj")`` on ``pm.Flat(name, shape=k)``.
    """
    k = p * (p - 1) // 2
    y = pm.Flat(name, shape=k)
    z = pt.tanh(y)
    log_density = pt.sum(pt.log1p(-z * z))
    rows, position = [pt.stack([1.0] + [0.0] * (p - 1))], 0
    for i in range(1, p):
        row, remaining = [], 1.0   # remaining = 1 - sum of squares so far in this row
        for j in range(i):
            root = pt.sqrt(remaining) if j else 1.0
            entry = z[position] * root
            if j:
                log_density = log_density + 0.5 * pt.log(remaining)
            row.append(entry)
            remaining = remaining - entry * entry
            position += 1
        diagonal = pt.sqrt(remaining)
        log_density = log_density + (p - i - 1 + 2.0 * eta - 2.0) * pt.log(diagonal)
        rows.append(pt.stack(row + [diagonal] + [0.0] * (p - i - 1)))
    pm.Potential(name + "_lkj", log_density)
    return pt.stack(rows)


def term_factors(spec, i, priors: PriorSet, pm, pt, A=None, generative: bool = False,
                 folded: bool = False, softplus: float | None = None) -> TermFactors:
    """``Sigma_i`` of term ``i`` of ``spec`` from per-column sds and an LKJ correlation, as :class:`TermFactors`.

    A structured term (``diag``, ``cs``, ``ar1``) has its own few parameters instead
    (:func:`.structured.structured_factor`).

    The variables are named by the spec's parameter table: ``sd_i_k`` per column
    (its row's ``pymc_name``, with the prior of its label) and ``L_i``.

    With a non-trivial standardising ``A`` (p = 2), the sampler moves on the
    standardised covariance instead (``_standardized_factors``), same prior.
    For p >= 3 the correlation is sampled through :func:`lkj_cholesky`, unless
    ``generative`` (a model for forward sampling) asks for PyMC's ``LKJCorr``.
    ``folded``: the sds are sampled signed, ``sd = |s|``; ``softplus``: a one-column term's sd is
    ``softplus * log(1 + e^x)`` (:mod:`.sd_fold`; columns as they are).
    """
    A = None if is_identity(A) else np.asarray(A, dtype=float)
    term, table = spec.terms[i], spec.parameters
    if term.structured:   # diag, cs, ar1: sampled on the model's own columns (a standardising A mixes them)
        L = structured_factor(spec, i, priors, pm, pt)
        return TermFactors(L, L, None)
    if term.p == 2 and A is not None:
        return _standardized_factors(i, term, priors, A, pm, pt, table)
    sd_rows = table.sds(i)

    def sd(row):
        prior = priors.sds[row.label]
        if softplus is not None and term.p == 1:
            return softplus_sd(prior, row.pymc_name, softplus, pm, pt)
        return signed_sd(prior, row.pymc_name, pm, pt) if folded else prior.variable(row.pymc_name)

    if term.p == 1:
        L = sd(sd_rows[0]).reshape((1, 1))
        return TermFactors(L, L, None)   # one column: the scaling cancels
    sds = pt.stack([sd(r) for r in sd_rows])
    eta = priors.cors[term.label].params[0]
    if term.p == 2:
        # LKJ(eta) on a 2 x 2 correlation matrix is (rho + 1) / 2 ~ Beta(eta, eta): same density,
        # without the matrix Ops of the general LKJ (which dominate a small model's gradient)
        rho = pm.Deterministic(f"rho_{i}", 2.0 * pm.Beta(f"corr_{i}", eta, eta) - 1.0)
        corr_chol = pt.stack([pt.stack([1.0, 0.0]), pt.stack([rho, pt.sqrt(1.0 - rho**2)])])
    elif generative:   # forward sampling (prior predictive) needs a distribution, not a Potential
        corr = pm.LKJCorr(f"corr_{i}", n=term.p, eta=eta, return_matrix=True)
        corr_chol = pt.linalg.cholesky(corr)
    else:
        corr_chol = lkj_cholesky(f"corr_{i}", term.p, eta, pm, pt)
    L = pm.Deterministic(table.terms[i].cholesky, sds[:, None] * corr_chol)
    if A is None:
        return TermFactors(L, L, None)
    A_inv = np.linalg.inv(A)
    return TermFactors(L, pt.linalg.cholesky(pt.dot(A_inv, pt.dot(pt.dot(L, L.T), A_inv.T))), A)


def _standardized_factors(i, term, priors: PriorSet, A, pm, pt, table) -> TermFactors:
    """Factors of ``Sigma_i = A S A'``, sampling ``S`` (sds ``s_0, s_1``, correlation ``r``) with the prior of Sigma_i.

    ``S`` is the covariance of the coefficients on the standardised columns
    ``X_i A``.  The prior stays on the model's sds and correlation: their log
    densities at the values implied by ``S``, plus the log-Jacobian of
    ``(s_0, s_1, r) -> (sd_0, sd_1, rho)``, which is
    ``2 log s_0 s_1 + 3 log|det A| - 2 log sd_0 sd_1`` (the map ``S -> A S A'``
    on symmetric 2 x 2 matrices has determinant ``det(A)^3``, and
    ``(sd_0, sd_1, rho) -> Sigma`` has ``2 sd_0^2 sd_1^2``).  In the model's
    parameters, with x far from 0 (Orthodont's age, 8 to 14), a wide slope sd
    forces the intercept sd up and the correlation towards -1: a curved ridge
    where NUTS diverged.  In ``S`` the two are nearly independent.
    """
    names = [r.label for r in table.sds(i)]
    s0, s1 = pm.HalfFlat(f"sdstd_{i}_0"), pm.HalfFlat(f"sdstd_{i}_1")
    r = pm.Uniform(f"corstd_{i}", -1.0, 1.0)
    # Sigma = A S A' entry by entry (A is a constant 2 x 2)
    S = [[s0 * s0, r * s0 * s1], [r * s0 * s1, s1 * s1]]

    def entry(j, k):
        return sum(A[j, m] * S[m][n] * A[k, n] for m in range(2) for n in range(2))

    v0, v01, v1 = entry(0, 0), entry(0, 1), entry(1, 1)
    sd0, sd1 = pt.sqrt(v0), pt.sqrt(v1)
    rho = v01 / (sd0 * sd1)
    eta = priors.cors[term.label].params[0]
    log_prior = (pm.logp(priors.sds[names[0]].dist(), sd0) + pm.logp(priors.sds[names[1]].dist(), sd1)
                 + pm.logp(pm.Beta.dist(eta, eta), (rho + 1.0) / 2.0) - np.log(2.0))
    abs_det = abs(np.linalg.det(A))
    log_jacobian = 2.0 * (pt.log(s0) + pt.log(s1)) + 3.0 * np.log(abs_det) - 2.0 * (pt.log(sd0) + pt.log(sd1))
    pm.Potential(f"prior_cov_{i}", log_prior + log_jacobian)
    # l22 = sqrt(det Sigma) / l11 with det Sigma = det(A)^2 s0^2 s1^2 (1 - r^2): no cancellation
    root = pt.sqrt(1.0 - r * r)
    L = pm.Deterministic(table.terms[i].cholesky, pt.stack([pt.stack([sd0, 0.0]),
                                                            pt.stack([v01 / sd0, abs_det * s0 * s1 * root / sd0])]))
    L_std = pt.stack([pt.stack([s0, 0.0]), pt.stack([r * s1, root * s1])])
    return TermFactors(L, L_std, A)


def level_effects(spec, i, factors: TermFactors, form: str, pm, pt):
    """``b_i`` (levels x p) of term ``i``, rows ``b_j ~ N(0, Sigma_i)``, in ``form`` ("noncentered" or "centered").

    Its name is the term's ``effects`` in the spec's parameter table.

    Noncentred: ``c_j = L_std z_j`` with ``z_j ~ N(0, I)``.  Centred: ``c_j`` is
    sampled itself, ``c_j ~ N(0, S_i)``; for p <= 2 as a chain of normals
    (``c_j0 ~ N(0, l11)``, ``c_j1 | c_j0 ~ N(l21 c_j0 / l11, l22)``), which is
    ``MvNormal(0, L_std L_std')`` without a triangular solve per gradient.
    Either way ``b_j = A c_j``.
    """
    term = spec.terms[i]
    shape = (term.n_levels, term.p)
    Ls = factors.L_std
    if form == "noncentered":
        z = pm.Normal(f"z_{i}", 0.0, 1.0, shape=shape)
        c = matmul(z, Ls.T)
    elif term.p == 1:
        c = pm.Normal(f"c_{i}", 0.0, Ls[0, 0], shape=shape)
    elif term.p == 2:
        c0 = pm.Normal(f"c_{i}_0", 0.0, Ls[0, 0], shape=term.n_levels)
        c1 = pm.Normal(f"c_{i}_1", Ls[1, 0] / Ls[0, 0] * c0, Ls[1, 1], shape=term.n_levels)
        c = pt.stack([c0, c1], axis=1)
    else:
        c = pm.MvNormal(f"c_{i}", mu=np.zeros(term.p), chol=Ls, shape=shape)
    b = c if factors.A is None else matmul(c, factors.A.T)
    return pm.Deterministic(spec.parameters.terms[i].effects, b)
