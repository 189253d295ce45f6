"""A Laplace start for NUTS: the posterior mode and the inverse Hessian there.

PyMC's default start (the prior's centre, jittered, unit mass matrix) costs
little on small data, but when the posterior is narrow, as with 73,421
InstEval rows, the first tuning windows take hundreds of leapfrog steps per
draw until the mass matrix has been learnt.  The marginal model has few
parameters (fixed effects, sds, correlations, sigma), so its mode and Hessian
are cheap: the mode by L-BFGS, the Hessian by central differences of the
gradient (2 d evaluations), both of the density NUTS samples (unconstrained
space, log-Jacobians included).  NUTS then starts with the inverse Hessian as its dense
mass matrix, still adapted during tuning, and each chain starts at its own
draw from the Laplace approximation, widened (``spread``) so that R-hat can
still see chains that disagree.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg.lapack
from pymc.step_methods.hmc.quadpotential import QuadPotentialFullAdapt


@dataclass(frozen=True)
class LaplaceStart:
    """What :func:`laplace_start` found (unconstrained space, PyMC's value variables)."""

    mode: np.ndarray
    cov: np.ndarray
    initvals: list          # one point (dict) per chain
    step: object            # pm.NUTS with the dense mass matrix


def _hessian(dlogp, x, h=1e-4):
    """Central differences of the gradient, symmetrised; step relative to each coordinate's scale."""
    d = x.size
    H = np.empty((d, d))
    for i in range(d):
        step = h * max(1.0, abs(x[i]))
        up, down = x.copy(), x.copy()
        up[i] += step
        down[i] -= step
        H[:, i] = (dlogp(up) - dlogp(down)) / (2 * step)
    return 0.5 * (H + H.T)


@dataclass(frozen=True)
class LaplaceApproximation:
    """The posterior mode and the Hessian there (unconstrained space, PyMC's value variables, raveled)."""

    mode: np.ndarray
    hessian: np.ndarray
    logp_dlogp: object       # the compiled log density and gradient the search used
    point_map_info: tuple    # how the raveled vector maps back to the value variables

    def inverse_hessian(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(C, chol(C))`` with ``C = (-H)^{-1}``, the Laplace covariance; None where ``-H`` is not positive
        definite."""
        try:
            cov = np.linalg.inv(-self.hessian)
            return cov, np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            return None

    def chain_starts(self, model, chains: int, rng: np.random.Generator, chol: np.ndarray, spread: float = 2.0):
        """One start per chain, ``mode + spread * chol @ z``, as the untransformed values pm.sample takes."""
        from pymc.blocking import DictToArrayBijection, RaveledVars

        free_names = [rv.name for rv in model.free_RVs]
        untransform = model.compile_fn(inputs=model.value_vars, outs=[model.rvs_to_values[rv] if
                                       model.rvs_to_transforms.get(rv) is None else
                                       model.rvs_to_transforms[rv].backward(model.rvs_to_values[rv], *rv.owner.inputs)
                                       for rv in model.free_RVs], on_unused_input="ignore")
        starts = []
        for _ in range(chains):
            x = self.mode + spread * chol @ rng.standard_normal(self.mode.size)
            values = untransform(DictToArrayBijection.rmap(RaveledVars(x, self.point_map_info)))
            starts.append(dict(zip(free_names, values)))
        return starts


def laplace_approximation(model, rng: np.random.Generator) -> LaplaceApproximation:
    """The mode of ``model``'s density (L-BFGS from PyMC's initial point) and the Hessian there (central
    differences of the gradient), in the space NUTS samples: unconstrained, log-Jacobians included."""
    import scipy.optimize
    from pymc.blocking import DictToArrayBijection

    value_vars = list(model.value_vars)
    logp_dlogp = model.logp_dlogp_function(grad_vars=value_vars, ravel_inputs=True)
    logp_dlogp.set_extra_values({})
    start = model.initial_point(random_seed=int(rng.integers(2**31 - 1)))
    raveled = DictToArrayBijection.map({v.name: start[v.name] for v in value_vars})

    def negative(x):
        value, grad = logp_dlogp(x)
        return -float(value), -np.asarray(grad, dtype=float)

    found = scipy.optimize.minimize(negative, raveled.data.astype(float), jac=True, method="L-BFGS-B",
                                    options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9})

    def dlogp(x):
        return np.asarray(logp_dlogp(x)[1], dtype=float)

    return LaplaceApproximation(found.x, _hessian(dlogp, found.x), logp_dlogp, raveled.point_map_info)


def laplace_start(model, chains: int, rng: np.random.Generator, target_accept: float,
                  spread: float = 2.0, dense: bool = True) -> LaplaceStart | None:
    """Mode, inverse Hessian, per-chain starts and a NUTS step for ``model``.

    ``dense=False`` starts NUTS with the diagonal of the inverse Hessian as its
    (diagonal, adapted) mass matrix instead of the whole matrix: for posteriors
    whose mode lies near the boundary of a near-singular covariance, where the
    Gaussian at the mode is a poor guide to the correlations but still gives
    every coordinate its scale (the maximal crossed design: the first tuning
    window's 138 gradients per draw with PyMC's unit start fall to 19).
    Returns None when the Hessian at the mode is not negative definite, or
    with ``dense=False`` when not even each coordinate's own curvature is
    negative (then the caller keeps PyMC's default start).
    """
    import pymc as pm
    from pymc.step_methods.hmc.quadpotential import QuadPotentialDiagAdapt

    laplace = laplace_approximation(model, rng)
    x_mode, H = laplace.mode, laplace.hessian
    cov, chol = laplace.inverse_hessian() or (None, None)
    if cov is None and dense:
        return None
    if not dense:
        # the Laplace variances, or each coordinate's own curvature where the Hessian is not negative definite
        variances = np.diag(cov) if cov is not None else 1.0 / -np.diag(H)
        if not np.all(np.isfinite(variances) & (variances > 0)):
            return None
        cov, chol = np.diag(variances), np.diag(np.sqrt(variances))
    initvals = laplace.chain_starts(model, chains, rng, chol, spread)
    if dense:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="QuadPotentialFullAdapt is an experimental feature")
            potential = LaplaceFullAdapt(x_mode.size, x_mode, cov, initial_weight=10 * x_mode.size)
    else:   # PyMC's default potential (initial weight 10), started from the Laplace variances
        potential = QuadPotentialDiagAdapt(x_mode.size, x_mode, np.diag(cov).copy(), 10)
    # NUTS hands the function contiguous float64 vectors of the right length: no input checks per call
    laplace.logp_dlogp._pytensor_function.trust_input = True
    with model:
        # the mode search's compiled log density and gradient serve NUTS too (one compilation, not two)
        step = pm.NUTS(vars=list(model.value_vars), potential=potential, target_accept=target_accept,
                       logp_dlogp_func=laplace.logp_dlogp)
    return LaplaceStart(mode=x_mode, cov=cov, initvals=initvals, step=step)


class LaplaceFullAdapt(QuadPotentialFullAdapt):
    """PyMC's ``QuadPotentialFullAdapt`` whose momentum draw calls LAPACK's triangular solve directly.

    ``random()`` solves ``C' v = z`` once per draw; scipy's ``solve_triangular``
    wraps that one ``trtrs`` call in about 30 us of argument checks (sleepstudy:
    8,000 draws).  Same routine, same numbers.
    """

    def random(self):
        vals = self.rng.normal(size=self._n).astype(self.dtype)
        solved, info = scipy.linalg.lapack.dtrtrs(self._chol, vals, lower=1, trans=1, overwrite_b=1)
        if info:
            raise np.linalg.LinAlgError(f"trtrs failed ({info})")
        return solved

    __call__ = random
