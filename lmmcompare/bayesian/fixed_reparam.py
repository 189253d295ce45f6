"""The closed-form marginal model's intercept, sampled around its conditional mean.

Given the covariance parameters, the likelihood of the coefficients ``gamma =
(alpha, beta_1, ...)`` (on the sampled design ``D``: intercept and centred
slopes) is normal with mean the generalised least-squares estimate and
covariance ``sigma^2 P^{-1}``::

    V_0 = I + Z Lambda Lambda' Z',   P = D' V_0^{-1} D,   gamma_hat = P^{-1} D' V_0^{-1} y

where ``Lambda = lambda I_J`` for one random intercept with relative sd
``lambda = sd / sigma``.  By Woodbury, level by level, with ``C_j = Z_j' D`` (a
row), ``c_j = Z_j' y``, ``a_j = Z_j' Z_j`` and ``w_j = lambda^2 / (1 + lambda^2 a_j)``::

    P = D'D - sum_j w_j C_j' C_j,      D' V_0^{-1} y = D'y - sum_j w_j C_j' c_j

The spread of the intercept grows with the group sd (Dyestuff:
``var(alpha | sd, sigma) = (sd^2 + sigma^2 / 5) / 6``), a funnel in
``(alpha, log sd)``.  So the sampler moves ``z`` instead of ``alpha``, where, given
the slopes ``beta_s`` (on centred columns their conditional spread does not funnel),

    alpha = alpha_hat + sigma z / sqrt(P_00),   alpha_hat = (b_0 - P_0s beta_s) / P_00

with ``b = D' V_0^{-1} y`` and the row ``P_0.`` of ``P`` (the conditional mean and
sd of alpha); the density gains the log-Jacobian ``log sigma - log(P_00) / 2``, and
the prior stays on ``alpha``.  The posterior is the same; ``z`` has no funnel.
Only row 0 of ``P`` is needed: a few vector operations per gradient.  Measured
with the same priors, 4 x (1000 + 1000), seeds 1-3, minimum bulk ESS: Dyestuff
1,594 / 1,950 / 2,131 sampling ``alpha``, 2,255 / 3,051 / 2,805 sampling ``z``;
Dyestuff2 1,285-2,260 and 2,150-2,583.

Only a model with one random intercept does this.  With a random slope too
(sleepstudy, Orthodont) the intercept already mixes well (bulk ESS 3,700-4,400
of 4,000), and the same algebra with ``2 x 2`` blocks made PyTensor's numba
backend compile for 9-11 s in every fresh process (the graph is not cached),
against about 2 s; all the coefficients as ``gamma_hat + sigma R^{-T} z``
(``R R' = P``) needed Cholesky factors and triangular solves with their
gradients, and sleepstudy's log density and gradient went from 20 to 86 us.
"""
from __future__ import annotations

import numpy as np

from ..core.design_products import first_block_diagonal
from .marginal import sampled_design, kernel, response_data


def reparameterized(spec) -> bool:
    """Whether the marginal model of ``spec`` samples its intercept as ``z``: one random intercept, the
    closed-form kernel's case (module docstring), without ``sigma_by``, and an intercept among the fixed
    effects."""
    return (kernel(spec) == "closed_form" and spec.terms[0].p == 1 and spec.sigma_by is None
            and "(Intercept)" in spec.fixed_names)


def intercept_moments(DtD, ZtD, a, Dty, Zty, lam, slopes, xp):
    """``(alpha_hat, P_00)``: the intercept's conditional mean given ``slopes`` and the covariance parameters,
    and its precision over ``sigma^2`` (module docstring: row 0 of ``P`` and of ``D' V_0^{-1} y``), with
    ``a_j = Z_j'Z_j`` and ``lam`` the relative sd.  ``xp``: ``pytensor.tensor`` (the model's expressions)
    or ``numpy`` (draws at once: ``lam`` of shape (S, 1), ``slopes`` (S, k))."""
    lam2 = lam * lam
    w = lam2 / (1.0 + lam2 * a)                 # (J,), or (S, J) for S draws
    C = np.asarray(ZtD, dtype=float)
    P0 = DtD[0] - xp.dot(C[:, 0] * w, C)
    b0 = Dty[0] - xp.sum(C[:, 0] * w * Zty, axis=-1)
    alpha_hat = (b0 - (xp.sum(P0[..., 1:] * slopes, axis=-1) if slopes is not None else 0.0)) / P0[..., 0]
    return alpha_hat, P0[..., 0]


def design_sums(spec, slope_index, x_means) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(D'D, Z'D, a)`` of the sampled design ``D`` (:func:`.marginal.sampled_design`), rows weighted:
    what :func:`intercept_moments` needs besides the response; ``a_j = Z_j'Z_j`` as the cross-products'
    ``A11`` holds it (:func:`lmmcompare.core.design_products.first_block_diagonal`)."""
    D = sampled_design(spec, slope_index, x_means)
    term = spec.terms[0]
    a = first_block_diagonal(spec.weighted_rows(term.design.matrix), term.codes, term.n_levels)[:, 0, 0]
    return D.T @ D, np.asarray(spec.weighted_rows(spec.Z).T @ D), a


def conditional_intercept(spec, priors, response: dict, sigma, L_abs, slope_index, x_means, slopes, pm, pt):
    """``alpha = alpha_hat + sigma z / sqrt(P_00)`` with ``z`` free (``pm.Flat``, named the intercept's
    ``pymc_name + "_z"``), the Jacobian and the intercept's prior as a Potential (module docstring);
    :func:`intercept_draws` gives alpha's draws afterwards.  ``response``: the kernel's
    ``Dty``, ``Zty`` (arrays or ``pm.Data``); ``slopes``: the centred slopes' coefficients (or None)."""
    DtD, ZtD, a = design_sums(spec, slope_index, x_means)
    alpha_hat, precision = intercept_moments(DtD, ZtD, a, response["Dty"], response["Zty"], L_abs[0, 0] / sigma,
                                             slopes, pt)
    name = spec.parameters["(Intercept)"].pymc_name
    z = pm.Flat(name + "_z")
    alpha = alpha_hat + sigma * z / pt.sqrt(precision)
    pm.Potential(name + "_prior", pm.logp(priors.intercept.dist(), alpha) + pt.log(sigma) - 0.5 * pt.log(precision))
    return alpha


def intercept_draws(spec, z, sigma, L_abs, slopes, slope_index, x_means) -> np.ndarray:
    """``alpha`` of each posterior draw from its ``z`` (module docstring), in numpy: the model keeps no
    ``pm.Deterministic`` for it, whose function PyMC compiles (numba) in every call and sampling process.
    ``z``, ``sigma``: (chain, draw); ``L_abs``: (chain, draw, p, p); ``slopes``: (chain, draw, k) or None."""
    DtD, ZtD, a = design_sums(spec, slope_index, x_means)
    response = response_data(spec, slope_index, x_means)
    s = sigma.reshape(-1)
    alpha_hat, precision = intercept_moments(DtD, ZtD, a, response["Dty"], response["Zty"],
                                             (L_abs[..., 0, 0].reshape(-1) / s)[:, None],
                                             None if slopes is None else slopes.reshape(s.size, -1), np)
    return (alpha_hat + s * z.reshape(-1) / np.sqrt(precision)).reshape(z.shape)
