"""The scale on which the marginal model samples each random-effect sd: log (PyMC's), signed or softplus.

Near-zero sds are sampled signed, ``sd = |s|``, instead of on the log scale, and a
lone random intercept's sd on a softplus scale (end of this docstring).

PyMC samples a half-distributed sd as ``log sd``.  Where the data leave the sd
close to zero, that scale stretches the posterior's left tail: Orthodont's
``(age | Subject)`` has ``log sd`` posteriors with skewness -3.2 and -2.0, and
NUTS mixes slowly along them (minimum bulk ESS 1,403 of 4,000).  The same
posterior can be sampled on ``s`` in the reals with density ``p(|s|) / 2``
(the prior's symmetric extension: ``HalfStudentT(3, c)`` becomes
``StudentT(3, 0, c)``, and so on) and ``sd = |s|``.  The two mirror images of
the posterior meet smoothly at ``s = 0``, so there is no boundary and no
stretched tail; both images give the same ``sd``.

Where the sd is far from zero the log scale is better (the natural scale's
right skew costs ESS: sleepstudy 4,317 -> 3,296 with every sd signed), so a
term is folded only when its REML fit leaves a column's sd near zero: the
conditional deviance of setting that column's sd to zero, every other
parameter at its REML value,

    D_k = -2 log p(y | beta_hat, sigma_hat, theta_hat with row k of T_i zero)
          + 2 log p(y | beta_hat, sigma_hat, theta_hat),

below ``FOLD_BELOW`` for some column ``k`` of the term (then all the term's sds
are folded: in a correlated term the sds move together).  Measured, 4 x (1000 +
1000) draws, minimum bulk ESS (seeds 1 and 2 on the log scale, 1-3 folded):

==========================  ======  ===============  ===============
model (term)                ``D``   log scale        folded
==========================  ======  ===============  ===============
Orthodont (age | Subject)   4.7     1,403 / 1,509    2,970-3,474
Pastes (1 | batch)          0.6     1,617 / 1,703    2,522-2,853
Dyestuff (1 | Batch)        8.8     1,848 / 1,653    1,379-1,672
Dyestuff2 (1 | Batch)       0.0     2,006 / 1,592    1,624-2,059
==========================  ======  ===============  ===============

Dyestuff and Dyestuff2, one random intercept and nothing else, are the
exceptions: there the intercept's spread grows with the batch sd (a funnel in
``(alpha, sd)``), which the natural scale makes worse, and which sampling the
intercept around its conditional mean removes on the log scale
(:mod:`.fixed_reparam`; Dyestuff2 with it: 2,150-2,583 on the log scale,
1,855-1,955 folded).  So a model whose only term is one random intercept is not
folded, and ``FOLD_BELOW`` sits between Orthodont's 4.7 and Dyestuff's 8.8.
Terms of three or more columns keep the log scale (not measured; their
correlations are sampled through :func:`.covariance.lkj_cholesky`).

The lone random intercept's sd is sampled on a softplus scale instead,
``sd = c log(1 + e^x)``: linear in ``x`` around and below ``c``, where its
posterior's mass near zero lies, logarithmic above it, with no boundary.  ``c``
is the REML sd, or ``sigma_hat / sqrt(rows per level)`` where that is larger (the
sd at which a level mean's variance doubles; Dyestuff2's REML sd is 0).  Measured
with the intercept as ``z``, seeds 1-3, minimum bulk ESS: Dyestuff 2,623 / 3,133 /
2,786 (log scale 1,899 / 2,440 / 2,693), Dyestuff2 3,019 / 3,124 (2,568 with seed
1), sleepstudy ``(1 | Subject)`` 4,173 (3,558), cake 6,214 (5,152); tail ESS
1,422-1,855 against 859-1,421 for Dyestuff in the prototype.
"""
from __future__ import annotations

import numpy as np

from ..core.likelihood import loglik
from ..spec.parameters import lower_index

FOLD_BELOW = 6.0   # deviance units: between Orthodont's 4.7 and Dyestuff's 8.8 (module docstring)
FOLDED_UP_TO_P = 2   # columns of the largest term that may be folded (measured on p = 1 and p = 2)


def zero_sd_deviances(spec, reml_fit) -> list[np.ndarray]:
    """Per term of ``spec``, the deviance ``D_k`` of each column's sd set to zero at the REML values
    (module docstring); a structured term's entry is empty (its sds are not sampled as such)."""
    cp, theta = reml_fit.cp, np.asarray(reml_fit.theta, dtype=float)
    base = loglik(cp, reml_fit.beta, reml_fit.sigma, theta, gradient=False).value
    out, offset = [], 0
    for term in spec.terms:
        rows, _ = lower_index(term.p)
        values = []
        if not term.structured:
            for k in range(term.p):
                zeroed = theta.copy()
                zeroed[offset + np.flatnonzero(rows == k)] = 0.0
                values.append(2.0 * (base - loglik(cp, reml_fit.beta, reml_fit.sigma, zeroed, gradient=False).value))
        out.append(np.array(values))
        offset += rows.size
    return out


def folded_terms(spec, reml_fit) -> tuple[int, ...]:
    """Indices of the terms whose sds the marginal model samples signed: unstructured, at most
    ``FOLDED_UP_TO_P`` columns, some column's ``D_k`` below ``FOLD_BELOW``, and not the lone random intercept
    of a one-term model (module docstring); none without a REML fit, or where its theta does not lay out the
    spec's terms as lme4's does."""
    if reml_fit is None or np.size(reml_fit.theta) != sum(t.p * (t.p + 1) // 2 for t in spec.terms):
        return ()
    if len(spec.terms) == 1 and spec.terms[0].p == 1:
        return ()
    deviances = zero_sd_deviances(spec, reml_fit)
    return tuple(i for i, (term, d) in enumerate(zip(spec.terms, deviances))
                 if d.size and term.p <= FOLDED_UP_TO_P and float(d.min()) < FOLD_BELOW)


def softplus_scale(spec, reml_fit) -> float | None:
    """``c`` of the softplus sd (module docstring) for a model whose only term is one random intercept:
    ``max(sd_hat, sigma_hat / sqrt(n / levels))`` from ``reml_fit``; None for any other model or without a
    REML fit."""
    if reml_fit is None or len(spec.terms) != 1 or spec.terms[0].p != 1 or spec.terms[0].structured:
        return None
    sd_hat = abs(float(np.ravel(reml_fit.theta)[0])) * float(reml_fit.sigma)
    return max(sd_hat, float(reml_fit.sigma) / np.sqrt(spec.n / spec.terms[0].n_levels))


def softplus_data(spec, scale: float) -> dict:
    """The model data holding ``c`` of the lone random intercept's softplus sd, by name (``pm.Data``: a
    model reused for a new response takes its own ``c``, :mod:`.reuse`)."""
    return {spec.parameters.sds(0)[0].pymc_name + "_scale": np.float64(scale)}


def softplus_sd(prior, name: str, scale: float, pm, pt):
    """The sd ``c log(1 + e^x)`` named ``name`` (a ``pm.Deterministic``), ``x`` a free real ``name + "_x"``,
    with the sd's prior and the log-Jacobian ``log(c sigmoid(x))`` as a Potential; ``x`` starts at 0.
    ``c`` is the model data ``name + "_scale"`` (:func:`softplus_data`), set to ``scale``."""
    x = pm.Flat(name + "_x", initval=np.float64(0.0))
    c = pm.Data(name + "_scale", np.float64(scale))
    sd = pm.Deterministic(name, c * pt.softplus(x))
    pm.Potential(name + "_prior", pm.logp(prior.dist(), sd) + pt.log(c) + pt.log(pt.sigmoid(x)))
    return sd


def signed_sd(prior, name: str, pm, pt):
    """The sd ``|s|`` named ``name`` (a ``pm.Deterministic``), ``s`` a free real ``name + "_signed"`` with
    density ``p(|s|)``, ``p`` the sd's prior (``prior.dist()``): the prior on ``|s|`` is ``p`` itself.
    ``s`` starts at the prior's scale (its ``sigma``, or ``1 / lam``), where PyMC's jitter moves it by
    up to 1 in either direction."""
    scale = prior.kwargs.get("sigma", 1.0 / prior.kwargs["lam"] if "lam" in prior.kwargs else 1.0)
    s = pm.Flat(name + "_signed", initval=np.float64(scale))
    magnitude = pt.abs(s)
    pm.Potential(name + "_prior", pm.logp(prior.dist(), magnitude))
    return pm.Deterministic(name, magnitude)
