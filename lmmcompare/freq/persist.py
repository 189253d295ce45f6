"""An LmerFit as data in a saved file, and back (the file format is :mod:`lmmcompare.archive`).

The file holds the fit's values (theta, beta, sigma, u, b, the criterion, the covariance
of beta, the conditional covariances, ``singular``, ``reml``) and the optimizer's record;
its spec is rebuilt from the formula and model frame (:mod:`lmmcompare.archive.specs`).
The cross-products and the factor ``L(theta)`` are not stored: they are evaluated again,
as ``lmer`` builds them (``make_devfun``'s cross-products, the factor at the saved theta),
which is a pure function of the spec and theta, not an optimisation.  The values a fit
derives on demand (profiles, the refit by the other criterion) are not stored either.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .fit import make_devfun
from .optimize import OptSummary
from .variance_components import ratios_from_phi

# the fields of an LmerFit stored as they are (spec, opt, cp and factor are handled apart)
VALUES = ("reml", "theta", "phi", "beta", "sigma", "u", "b", "objective", "vcov_beta", "cond_blocks", "singular")


def lmer_fit_content(writer, fit) -> dict:
    """The JSON tree of an ``LmerFit`` (arrays as members of ``writer``)."""
    opt = {f.name: getattr(fit.opt, f.name) for f in dataclasses.fields(OptSummary) if f.name != "log"}
    log = fit.opt.log
    trace = {"theta": np.array([theta for theta, _ in log], dtype=float).reshape(len(log), fit.phi.size),
             "objective": [value for _, value in log]}
    return writer.encode({"spec": fit.spec, "values": {name: getattr(fit, name) for name in VALUES},
                          "opt": opt, "log": trace}, "the fit")


def lmer_fit_fields(reader, node) -> dict:
    """The keyword arguments of ``LmerFit`` from :func:`lmer_fit_content`'s tree: no optimisation."""
    content = reader.decode(node)
    spec, values = content["spec"], content["values"]
    trace = content["log"]
    log = tuple((theta.copy(), value) for theta, value in zip(trace["theta"], trace["objective"]))
    opt = OptSummary(**content["opt"], log=log)
    if spec.sigma_by is not None:   # the rows weighted by the fitted residual sd ratios (the last of phi)
        spec = spec.with_residual_ratios(ratios_from_phi(spec, values["phi"]))
    cp = make_devfun(spec, values["reml"]).cp   # the cross-products as lmer computes them
    return dict(spec=spec, **values, opt=opt, cp=cp)
