"""One compiled PyMC model, refit to many responses on the same design.

Coverage studies and simulation-based calibration fit the same model to
hundreds of simulated responses.  Compiling the log-density and its gradient
takes longer than sampling a small model, so :class:`Refitter` compiles once
(the response enters as ``pm.Data``) and swaps the response before each run.
The marginal model is refit through the same likelihood kernel as
:func:`lmmcompare.bayes` (:mod:`.marginal`), crossed designs included: only
its y-dependent inputs are swapped.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from ..arguments import check_choice, check_int, check_seed
from .fit import PARAMETERIZATIONS, _to_fit, compile_mode, import_nutpie, quiet_sampling
from .marginal import response_data
from .model import build_model
from .priors import default_priors


class Refitter:
    """Fit the Bayesian model of ``spec`` to new responses without recompiling.

    Parameters
    ----------
    spec : ModelSpec
        The design; its response only sets data-scaled default priors, which
        stay fixed for every refit.
    priors : dict or PriorSet, optional
    parameterization : {"marginal", "auto", "noncentered", "centered"}
    target_accept : float
    sampler : {"pymc", "nutpie"}
        nutpie compiles longer (numba) but samples a small model tens of
        times faster than PyMC's Python NUTS: the choice for long studies.

    Examples
    --------
    >>> refit = Refitter(spec)                                 # doctest: +SKIP
    >>> fits = [refit.fit(y, seed=k) for k, y in enumerate(ys)]  # doctest: +SKIP
    """

    def __init__(self, spec, priors=None, parameterization: str = "marginal", target_accept: float = 0.9,
                 sampler: str = "pymc", reml_fit=None):
        import pymc as pm

        check_choice("parameterization", parameterization, PARAMETERIZATIONS)
        check_choice("sampler", sampler, ("pymc", "nutpie"))
        self.spec, self.sampler, self.target_accept = spec, sampler, target_accept
        self.built = build_model(spec, default_priors(spec, priors), parameterization, shared_response=True,
                                 reml_fit=reml_fit)
        with self.built.model, compile_mode(self.built), quiet_sampling():
            if sampler == "nutpie":
                self.compiled = import_nutpie().compile_pymc_model(self.built.model)
            else:
                self.step = pm.NUTS(target_accept=target_accept)   # compiles the log-density and gradient once

    def fit(self, y, draws: int = 500, tune: int = 500, chains: int = 2, seed=None):
        """Sample the posterior for response ``y`` (chains run one after another).

        Returns
        -------
        BayesFit
        """
        import pymc as pm

        for name, value, minimum in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1)):
            check_int(name, value, minimum)
        check_seed("seed", seed)
        spec = self.spec.with_response(y)
        built = dataclasses.replace(self.built, spec=spec)
        if built.parameterization == "marginal":
            new = response_data(spec, built.slope_index, built.x_means)
        else:
            new = {"y_obs": spec.y}
        rng = np.random.default_rng(seed)
        sample_seed = int(rng.integers(2**31 - 1))
        t0 = time.perf_counter()
        if self.sampler == "nutpie":
            import nutpie

            raw = nutpie.sample(self.compiled.with_data(**new), draws=draws, tune=tune, chains=chains, cores=1,
                                seed=sample_seed, progress_bar=False, target_accept=self.target_accept)
            return _to_fit(raw, built, rng, seed, "nutpie", time.perf_counter() - t0, False)
        with self.built.model, compile_mode(self.built), quiet_sampling():
            pm.set_data(new)
            raw = pm.sample(draws=draws, tune=tune, chains=chains, cores=1, step=self.step,
                            random_seed=sample_seed, progressbar=False,
                            compute_convergence_checks=False)
        return _to_fit(raw, built, rng, seed, "pymc", time.perf_counter() - t0, False)
