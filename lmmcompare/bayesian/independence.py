"""Independence Metropolis-Hastings from the Laplace approximation: the sampler for large crossed marginal models.

When the random effects are integrated out, the marginal model has a handful of
parameters (fixed effects, sds, correlations, sigma), and with tens of thousands
of rows their posterior is close to the Gaussian at its mode.  NUTS there pays
for gradients it hardly needs: on InstEval (73,421 rows; three crossed factors)
one gradient needs the dense inverse of the 1,142-row trailing block of the
blocked factor, 57 ms against 21 ms for the log density alone, and each draw
takes several.  This step proposes independently of the current point
(Tierney 1994),

    x* = m + C z / sqrt(w),   z ~ N(0, I),  w ~ chi2_nu / nu,

a multivariate t with ``nu`` degrees of freedom around the posterior mode ``m``
with ``C C'`` the inverse Hessian there (:mod:`lmmcompare.bayesian.start`), and accepts it with
probability

    min(1, [pi(x*) / q(x*)] / [pi(x) / q(x)]),

so the chain targets the exact posterior ``pi``; the Laplace approximation
only shapes the proposal.  One log density per draw, no gradient.  The t's
polynomial tails dominate the posterior's (Gaussian, or exponential where an
sd approaches zero on the log scale), so the weights ``pi / q`` are bounded and
the chain is uniformly ergodic (Tierney 1994, Cor. 4); how far the posterior is
from the proposal shows in the acceptance rate and the ESS, reported with the
draws (``accept`` in ``sample_stats``).
"""
from __future__ import annotations

import numpy as np
from pymc.blocking import RaveledVars
from pymc.pytensorf import compile as compile_function
from pymc.pytensorf import join_nonshared_inputs
from pymc.step_methods.arraystep import ArrayStepShared
from pymc.step_methods.compound import Competence
from pytensor.compile.mode import Mode
from pytensor.graph.replace import clone_replace
from pytensor.graph.traversal import ancestors

from .blocked import BlockedLogLik, BlockedLogLikValue

PROPOSAL_DF = 10    # the t's degrees of freedom: tails heavier than the Gaussian at the mode
MIN_ROWS = 10_000   # sampler="auto" chooses this step from this many rows ...
MIN_TRAILING = 500  # ... when the blocked factor's dense trailing block has at least this many rows


def blocked_nodes(logp) -> list:
    """The ``BlockedLogLik`` nodes (:mod:`lmmcompare.bayesian.blocked`) of the graph ``logp``, a model's
    log density (none for the closed form)."""
    return list({v.owner for v in ancestors([logp]) if v.owner is not None and isinstance(v.owner.op, BlockedLogLik)})


def costly_gradient(built) -> bool:
    """Whether ``sampler="auto"`` samples ``built`` by this step rather than NUTS.

    The marginal model of at least ``MIN_ROWS`` (10,000) rows (a posterior close to
    its Laplace approximation) whose blocked factor keeps a dense trailing block
    of at least ``MIN_TRAILING`` (500) rows: there a gradient's inverse blocks cost
    ``O(m^3)`` on top of the factor (InstEval, m = 1,145: 57 against 21 ms).
    """
    if built.parameterization != "marginal" or built.spec.n < MIN_ROWS:
        return False
    return any(node.op.cp.blocks is None and node.op.cp.q_rest >= MIN_TRAILING for node in blocked_nodes(built.model.logp()))


def value_only_logp(model):
    """``model.logp()`` with each blocked likelihood replaced by its value-only twin
    (``BlockedLogLikValue``, :mod:`lmmcompare.bayesian.blocked`): the factor without the inverse blocks."""
    logp = model.logp()
    replacements = {node.outputs[0]: BlockedLogLikValue(node.op)(*node.inputs) for node in blocked_nodes(logp)}
    return clone_replace(logp, replacements) if replacements else logp


class LaplaceIndependence(ArrayStepShared):
    """Independence Metropolis-Hastings with a multivariate t proposal (module docstring).

    Parameters
    ----------
    model : pymc.Model
    mode, cov : ndarray
        Centre and scale matrix of the proposal in the raveled unconstrained space of
        ``model.value_vars`` (the posterior mode and inverse Hessian, :func:`.start.laplace_approximation`).
    df : float
        The t's degrees of freedom.
    """

    name = "laplace_independence"
    default_blocked = True
    stats_dtypes_shapes = {"accept": (np.float64, []), "accepted": (np.float64, [])}

    def __init__(self, model, mode: np.ndarray, cov: np.ndarray, df: float = PROPOSAL_DF, rng=None):
        value_vars = list(model.value_vars)
        [logp], raveled = join_nonshared_inputs(model.initial_point(), [value_only_logp(model)], value_vars, {})
        # Python's linker: the graph is a few scalar nodes around the likelihood, and numba's object-mode
        # call of the blocked Op cost InstEval 21 ms more per evaluation (43 against 22 ms)
        self.logp = compile_function([raveled], logp, mode=Mode(linker="py", optimizer="fast_run"))
        self.mode, self.chol, self.df = np.asarray(mode, dtype=float), np.linalg.cholesky(cov), float(df)
        self._last = None   # (x, log pi(x) - log q(x)) of the chain's current state
        super().__init__(value_vars, {}, blocked=True, rng=rng)

    def log_weight(self, x: np.ndarray) -> float:
        """``log pi(x) - log q(x)`` up to a constant; ``-inf`` where the density is zero or fails."""
        lp = float(self.logp(x))
        if not np.isfinite(lp):
            return -np.inf
        r = np.linalg.solve(self.chol, x - self.mode)
        return lp + 0.5 * (self.df + x.size) * np.log1p(r @ r / self.df)

    def astep(self, q0: RaveledVars):
        x = q0.data
        if self._last is None or not np.array_equal(self._last[0], x):
            self._last = (x.copy(), self.log_weight(x))
        z = self.rng.standard_normal(x.size)
        proposal = self.mode + self.chol @ z / np.sqrt(self.rng.chisquare(self.df) / self.df)
        log_ratio = self.log_weight(proposal) - self._last[1]
        accept = float(np.exp(min(0.0, log_ratio))) if not np.isnan(log_ratio) else 0.0
        accepted = bool(self.rng.uniform() < accept)
        if accepted:
            self._last = (proposal, self._last[1] + log_ratio)
        return RaveledVars(self._last[0].copy(), q0.point_map_info), [{"accept": accept, "accepted": float(accepted)}]

    @staticmethod
    def competence(var, has_grad):
        return Competence.COMPATIBLE
