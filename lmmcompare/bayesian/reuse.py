"""Compile once per design: the PyMC model of a spec and its compiled log density, reused across calls.

Building the PyMC graph and compiling the log density and its gradient
(graph rewriting, C code) cost seconds per call: 3 to 4 s of sleepstudy's 17 s
at 4 x (1000 + 1000) draws, more than a small model's sampling per chain.  A
second ``lc.bayes`` call with the same design, priors and parameterisation
(another seed, more draws, ``post.update(draws=...)``, ``fit_both`` after
``bayes``) reuses the model built by the first: its response enters as
``pm.Data`` and is set to the new spec's, and the model (:func:`reusing_model_class`) hands back
the compiled function instead of compiling it again.  The last
``CACHE_SIZE`` designs are kept.  ``parameterization="auto"`` is not
reused (its forms come from a REML fit).
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from functools import lru_cache

import numpy as np

from .marginal import response_data
from .model import build_model
from .sd_fold import folded_terms, softplus_data, softplus_scale

CACHE_SIZE = 4
_BUILT: OrderedDict = OrderedDict()


@lru_cache(maxsize=1)
def reusing_model_class():
    """``pm.Model`` whose ``logp_dlogp_function`` compiles once per set of arguments (PyMC loads lazily)."""
    import pymc as pm

    class ReusingModel(pm.Model):
        """A PyMC model that keeps the compiled log density and gradient it hands out."""

        def logp_dlogp_function(self, grad_vars=None, tempered=False, initial_point=None, ravel_inputs=None,
                                **kwargs):
            key = (None if grad_vars is None else tuple(v.name for v in grad_vars), tempered, ravel_inputs,
                   repr(sorted(kwargs.items())), initial_point is None)
            cache = self.__dict__.setdefault("_lmmcompare_compiled", {})
            if initial_point is not None or key not in cache:
                function = super().logp_dlogp_function(grad_vars=grad_vars, tempered=tempered,
                                                       initial_point=initial_point, ravel_inputs=ravel_inputs,
                                                       **kwargs)
                if initial_point is not None:
                    return function
                cache[key] = function
            return cache[key]

    return ReusingModel


def design_key(spec, priors, parameterization: str, folded: tuple = (), softplus: bool = False) -> str:
    """A digest of what the compiled model depends on besides the response: design, inputs, priors, form, and
    the sds' scales (which terms are signed; whether a softplus sd is, its ``c`` being data like the response)."""
    h = hashlib.sha1()
    for array in (spec.X, spec.Z.indptr, spec.Z.indices, spec.Z.data, spec.weights, spec.offset):
        if array is not None:
            h.update(np.ascontiguousarray(array).tobytes())
            h.update(str(np.shape(array)).encode())
        h.update(b"|")
    terms = [(t.group, t.columns, t.n_levels, t.p, t.correlated, t.structure) for t in spec.terms]
    if spec.sigma_by is not None:   # a residual sd per level: the levels' rows are part of the design
        h.update(np.ascontiguousarray(spec.sigma_by.codes).tobytes())
    h.update(repr((spec.fixed_names, terms, spec.n, priors.table().to_csv(), parameterization, folded,
                   softplus)).encode())
    return h.hexdigest()


def built_model(spec, priors, parameterization: str, reml_fit=None):
    """The :class:`~lmmcompare.bayesian.model.BuiltModel` of ``spec``, reused when the design was seen before.
    The marginal model's sd scales are chosen from ``reml_fit`` (:func:`.sd_fold.folded_terms`,
    :func:`.sd_fold.softplus_scale`)."""
    if parameterization == "auto":
        return build_model(spec, priors, parameterization, reml_fit=reml_fit)
    import pymc as pm

    folded = folded_terms(spec, reml_fit) if parameterization == "marginal" else ()
    softplus = softplus_scale(spec, reml_fit) if parameterization == "marginal" else None
    key = design_key(spec, priors, parameterization, folded, softplus is not None)
    built = _BUILT.get(key)
    if built is None:
        built = build_model(spec, priors, parameterization, shared_response=True, model_class=reusing_model_class(),
                            folded=folded, softplus=softplus)
        _BUILT[key] = built
        while len(_BUILT) > CACHE_SIZE:
            _BUILT.popitem(last=False)
    else:
        _BUILT.move_to_end(key)
    if built.parameterization == "marginal":
        response = response_data(spec, built.slope_index, built.x_means)
        if softplus is not None:
            response.update(softplus_data(spec, softplus))
    else:
        response = {"y_obs": spec.y}
    pm.set_data(response, model=built.model)
    return dataclasses.replace(built, spec=spec, softplus=softplus)


def clear() -> None:
    """Forget the reused models (their compiled functions go with them)."""
    _BUILT.clear()
