"""The profile scale of a model with structured terms or ``sigma_by``: the estimated parameters themselves.

A profile moves one estimated parameter (the parameter table's rows,
:meth:`~lmmcompare.LmerFit.variance_parameters`) and minimises the ML deviance over
all the others.  Here the vector ``s`` holds, in phi's order, each term's
parameters (an unstructured term's sds and correlations, theta's order; a
structured term's sds and its common correlation or rho), then the residual sd
ratios ``delta_k``, and sigma last (where ``VarianceScale``
keeps it).  With sigma free,

    dd(s) = log|L_theta|^2 + r^2 / sigma^2 + n log(2 pi sigma^2) - sum_i log w_i,

``theta = theta(phi)`` (``lmmcompare.core.structures.CovarianceMap``), ``phi`` from
``s``: an unstructured term's ``T`` from its sds and correlations over sigma (as
``VarianceScale``), a structured term's relative sds ``sd / sigma``
and its correlation as it is, ``log delta_k``; the cross-products and ``w_i`` are the
rows' at ``delta`` (:class:`~lmmcompare.freq.fit.Devfun`).  The gradient is the
chain rule ``d dd / d s = (d dd / d theta) (d theta / d phi) (d phi / d s)`` plus
sigma's own terms; in ``log delta`` ``-2`` times :func:`lmmcompare.core.residual_ratios.loglik_slope`
at the penalised least-squares beta (``dd`` is ``-2`` times the log-likelihood there, beta
profiled out: the envelope theorem again).
"""
from __future__ import annotations

import numpy as np

from ...core.factor import LOG_2PI
from ...core.gradient import deviance_pieces
from ...core.residual_ratios import loglik_slope
from ...core.solve import solve_modes
from ...spec.parameters import COMMON_COR, COR, RHO, SD, SIGMA
from ..fit import Devfun
from .variance_scale import VarianceScale



class _UnstructuredTerm(VarianceScale):
    """sd/cor <-> theta of one unstructured term (:class:`VarianceScale`'s maps, with nothing to evaluate)."""

    def __init__(self, p: int):   # VarianceScale's own __init__ needs a fit; only the maps are used here
        self.sizes = [p]


class StructuredScale:
    """The estimated variance parameters (sigma last) <-> (phi, sigma), and the ML deviance in them.

    Attributes
    ----------
    labels : list of str
        The parameter names in ``s``'s order.
    blocks : list
        ``s``'s layout for ``variance_scale.InnerParameters``: ``p`` for an unstructured
        term's ``p(p+1)/2`` entries, ``(k,)`` for ``k`` entries that live in a box.
    """

    def __init__(self, fit_ml):
        self.fit = fit_ml
        self.devfun = Devfun(spec=fit_ml.spec, cp=fit_ml.cp, reml=False)
        table = fit_ml.spec.parameters
        rows = [r for r in table.variance if r.kind != SIGMA]
        self.rows = rows + [next(r for r in table.variance if r.kind == SIGMA)]
        self.labels = [r.label for r in self.rows]
        self.n_phi = self.devfun.lower.size
        self.n_cov = self.devfun.covariance.n_phi
        self.terms = []          # (s slice, phi slice, _UnstructuredTerm or None)
        self.blocks = []
        pos = 0
        for term, structure, p, (phis, _) in zip(fit_ml.spec.terms, self.devfun.covariance.structures,
                                                 self.devfun.covariance.sizes, self.devfun.covariance.slices()):
            k = phis.stop - phis.start
            self.terms.append((slice(pos, pos + k), phis, _UnstructuredTerm(p) if structure.unstructured else None))
            self.blocks.append(p if structure.unstructured else (k,))
            pos += k
        if self.n_phi > self.n_cov:
            self.blocks.append((self.n_phi - self.n_cov,))

    # ---- the map -----------------------------------------------------------------------------
    def to_phi(self, s):
        """``(phi, d phi / d s)`` (n_phi x len(s)), or ``(None, None)`` off the valid set."""
        s = np.asarray(s, dtype=float)
        sigma = s[-1]
        phi, J = np.empty(self.n_phi), np.zeros((self.n_phi, s.size))
        for ss, ps, us in self.terms:
            if us is not None:
                local = np.append(s[ss], sigma)
                theta = us.to_theta(local)
                if theta is None:
                    return None, None
                phi[ps] = theta
                Jt = us._theta_jacobian(local, theta)
                J[ps, ss] = Jt[:, :-1]
                J[ps, -1] = Jt[:, -1]
                continue
            for i, row in zip(range(ss.start, ss.stop), self.rows[ss]):
                j = ps.start + i - ss.start
                if row.kind == SD:
                    phi[j], J[j, i], J[j, -1] = s[i] / sigma, 1.0 / sigma, -s[i] / sigma**2
                else:
                    phi[j], J[j, i] = s[i], 1.0
        ratios = s[self.n_cov : self.n_phi]
        if np.any(ratios <= 0):
            return None, None
        phi[self.n_cov :] = np.log(ratios)
        J[np.arange(self.n_cov, self.n_phi), np.arange(self.n_cov, self.n_phi)] = 1.0 / ratios
        return phi, J

    def from_fit(self) -> np.ndarray:
        values = self.fit.variance_parameters()
        return values[self.labels].to_numpy(dtype=float)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """sds, ratios and sigma >= 0; correlations of unstructured terms in [-1, 1]; cs/ar1 correlations in
        their structure's range."""
        lo, hi = np.zeros(len(self.rows)), np.full(len(self.rows), np.inf)
        lower, upper = self.devfun.lower, self.devfun.upper
        for i, row in enumerate(self.rows):
            if row.kind == COR:
                lo[i], hi[i] = -1.0, 1.0
            elif row.kind in (COMMON_COR, RHO):
                lo[i], hi[i] = lower[row.phi], upper[row.phi]
        return lo, hi

    # ---- the deviance --------------------------------------------------------------------------
    def deviance(self, s) -> float:
        return self.deviance_and_gradient(s)[0]

    def _pieces(self, phi, sigma):
        """``(dd, d dd / d theta, r^2, d dd / d log delta)`` at ``(phi, sigma)``; ``(inf, None, None, None)``
        where L fails."""
        spec, cp, theta = self.devfun.at(phi)
        try:
            f, dlogdet, dr2 = deviance_pieces(cp, theta, include_X=False, workspace=self.devfun.workspace)
        except np.linalg.LinAlgError:
            return np.inf, None, None, None
        s2 = sigma * sigma
        value = f.logdet_theta + f.r2 / s2 + cp.n * (LOG_2PI + np.log(s2)) - cp.log_weights
        ratio_slope = (-2.0 * loglik_slope(spec, f, solve_modes(f)[1], sigma) if spec.sigma_by is not None
                       else np.zeros(0))
        return value, dlogdet + dr2 / s2, f.r2, ratio_slope

    def deviance_and_gradient(self, s):
        """``dd(s)`` and its gradient in ``s`` (module docstring)."""
        s = np.asarray(s, dtype=float)
        bad = np.inf, np.zeros_like(s)
        sigma = s[-1]
        if sigma <= 0:
            return bad
        phi, J = self.to_phi(s)
        if phi is None:
            return bad
        value, g_theta, r2, ratio_slope = self._pieces(phi, sigma)
        if g_theta is None:
            return bad
        g_phi = np.empty(self.n_phi)
        g_phi[: self.n_cov] = g_theta @ self.devfun.covariance.jacobian(phi[: self.n_cov])
        g_phi[self.n_cov :] = ratio_slope
        grad = g_phi @ J
        grad[-1] += -2 * r2 / sigma**3 + 2 * self.devfun.cp.n / sigma
        return value, grad


def profile_scale(fit_ml):
    """The scale a profile of ``fit_ml`` moves on: lme4's sd/cor scale for lme4's models, else
    :class:`StructuredScale`."""
    return VarianceScale(fit_ml) if fit_ml.spec.phi_is_theta else StructuredScale(fit_ml)
