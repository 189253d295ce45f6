"""The variance components of a frequentist fit: lme4's ``VarCorr`` and the estimated parameters.

Term ``i`` has ``Sigma_i = sigma^2 T_i T_i'`` whatever its structure (``T_i`` from
theta, which a structured term's phi implies, :mod:`lmmcompare.core.structures`).
The *estimated* parameters are those of the parameter table
(:class:`lmmcompare.spec.parameters.ParameterTable`): for an unstructured term the
sds and correlations of ``Sigma_i``; for a structured one its sds
(``sigma s_k``) and its common correlation or rho; then ``sigma`` (the first
level's residual sd with ``sigma_by``) and the ratios ``delta_k = sigma_k / sigma``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.relcovar import theta_to_T
from ..spec.parameters import SD, SIGMA, SIGMA_RATIO, sd_cor_from_cov
from ..spec.residual_groups import level_scales


def term_covariances(fit) -> list[np.ndarray]:
    """``Sigma_i = sigma^2 T_i T_i'`` for each term."""
    return [fit.sigma**2 * T @ T.T for T in fit.T_blocks]


def ratios_from_phi(spec, phi) -> np.ndarray:
    """``delta_2..delta_K`` of ``sigma_by`` (empty without it): the exponentials of phi's last entries."""
    if spec.sigma_by is None:
        return np.zeros(0)
    return np.exp(np.asarray(phi, float)[len(phi) - spec.sigma_by.n_levels + 1 :])


def residual_ratios(fit) -> np.ndarray:
    """``delta_2..delta_K`` of ``sigma_by`` (empty without it): the exponentials of phi's last entries."""
    return ratios_from_phi(fit.spec, fit.phi)


def residual_sd(fit) -> pd.Series:
    """The residual sd by level of ``sigma_by`` (``sigma delta_k``; one value, ``sigma``, without it)."""
    spec = fit.spec
    if spec.sigma_by is None:
        return pd.Series([fit.sigma], index=["sigma"], name="residual sd")
    values = fit.sigma * level_scales(residual_ratios(fit))
    return pd.Series(values, index=pd.Index(spec.sigma_by.levels, name=spec.sigma_by.name), name="residual sd")


def parameter_values(spec, phi, theta, sigma: float) -> np.ndarray:
    """The estimated variance parameters at ``(phi, theta(phi), sigma)``, in the parameter table's order
    (what :func:`variance_parameters` names; a bootstrap refit needs no fit object)."""
    phi = np.asarray(phi, dtype=float)
    covs = [sigma**2 * T @ T.T for T in theta_to_T(np.asarray(theta, float), [t.p for t in spec.terms])]
    ratios = ratios_from_phi(spec, phi)
    values = []
    for row in spec.parameters.variance:
        if row.kind == SIGMA:
            values.append(sigma)
        elif row.kind == SIGMA_RATIO:
            values.append(ratios[row.i - 1])
        elif row.theta is not None:     # an unstructured term: its sd/cor in theta's order
            values.append(sd_cor_from_cov(covs[row.term])[row.theta - _first_theta(spec, row.term)])
        elif row.kind == SD:            # sigma times a relative sd of phi
            values.append(sigma * phi[row.phi])
        else:                           # a common correlation or rho: phi holds it as it is
            values.append(phi[row.phi])
    return np.array(values, dtype=float)


def variance_parameters(fit) -> pd.Series:
    """The estimated variance parameters under the shared names, in the parameter table's order."""
    return pd.Series(parameter_values(fit.spec, fit.phi, fit.theta, fit.sigma),
                     index=fit.spec.parameters.variance_labels, dtype=float)


def _first_theta(spec, term: int) -> int:
    return sum(t.n_theta for t in spec.terms[:term])


def varcorr_frame(fit) -> pd.DataFrame:
    """Rows of R's ``as.data.frame(VarCorr(fit))``: grp, var1, var2, vcov, sdcor.

    Every sd and correlation a term implies is listed, whatever its structure
    (lme4 2.0 does so for its structured terms); with ``sigma_by`` one
    ``Residual`` row per level, ``var1`` naming the level.
    """
    rows = []
    for t, label, cov in zip(fit.spec.terms, fit.group_labels, term_covariances(fit)):
        sd = np.sqrt(np.diag(cov))
        for i, c in enumerate(t.columns):
            rows.append((label, c, None, cov[i, i], sd[i]))
        for i in range(t.p):
            for j in range(i + 1, t.p):
                denom = sd[i] * sd[j]
                rows.append((label, t.columns[i], t.columns[j], cov[i, j],
                             cov[i, j] / denom if denom > 0 else np.nan))
    if fit.spec.sigma_by is None:
        rows.append(("Residual", None, None, fit.sigma**2, fit.sigma))
    else:
        for level, sd in residual_sd(fit).items():
            rows.append(("Residual", level, None, sd**2, sd))
    return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
