"""Kenward-Roger (pbkrtest's ``vcovAdj`` and ``Lb_ddf``) with no n x n matrix.

As pbkrtest, the marginal covariance of y is written linear in the variance
components ``gamma``: for each term the lower triangle of its covariance
``Sigma_i`` (column by column, lme4's order), then ``sigma^2``::

    Sigma = sum_r gamma_r G_r,   G_r = Z E_r Z',   E_r = I_l (x) (e_a e_b' + e_b e_a')  (e_a e_a' if a = b),
    G_last = I_n

so second derivatives of ``Sigma`` vanish.  Structured terms whose covariance is
linear in some parameters take those: ``diag``, the variances of its columns alone
(with ``hom=True`` one component whose ``E_r`` pairs every column with itself);
``cs(hom=True)`` and a two-column ``ar1``, ``Sigma_i = v I + c (11' - I)`` with ``c = v rho``
(one diagonal and one off-diagonal component); a two-column ``cs``, any 2 x 2
covariance (``us``'s components).  Other ``cs``/``ar1`` terms are nonlinear in their
parameters ``psi``: the variances and the correlation, ``Sigma_ab = sqrt(v_a v_b) rho``
(cs) or ``v rho^|a-b|`` (ar1), as SAS's CSH and AR(1).  For them Kenward and Roger's (1997)
full adjustment is used: the components are the entries of ``Sigma_i`` (``us``'s),
collapsed by ``J = d gamma / d psi`` (``P_k = sum_c J_ck P_c``, ``Q`` and the traces
likewise on both sides), and ``U`` gains ``-R_kl / 4`` with
``R_kl = X'S (d^2 Sigma / d psi_k d psi_l) S X = -sum_c H_ckl P_c`` (``H`` the second
derivatives of the entries), the term pbkrtest drops because it is zero for linear models.  With ``sigma_by`` the residual part is one component per
level, ``sigma_k^2 D_k / a`` (:mod:`.residual_levels`).  KR's result depends only on the span of the ``G_r``, not on
the basis (``W`` and ``P`` transform together).  With ``S = Sigma^{-1}`` and
``Phi = (X'SX)^{-1}`` (Kenward and Roger 1997; Halekoh and Hojsgaard 2014)::

    P_r  = -X'S G_r S X,        Q_rs = X'S G_r S G_s S X,
    I_rs = tr(S G_r S G_s) - 2 tr(Phi Q_rs) + tr(Phi P_r Phi P_s),   W = 2 I^{-1},
    U    = sum_rs W_rs (Q_rs - P_r Phi P_s - R_rs / 4),   Phi_A = Phi + 2 Phi U Phi.

``E_r`` pairs effect ``alpha_g`` with effect ``beta_g`` for every level g (one
matching, two when a != b), so with ``K = Z'SZ`` and ``F = Z'SX`` from
:mod:`.marginal_inverse` every term is a sum over matchings of small blocks::

    tr(S G_r S G_s) = sum_{(alpha,beta) in r, (gamma,delta) in s} sum(K[beta, gamma] * K[alpha, delta])
    tr(S G_r S^2)   = sum_{(alpha,beta) in r} sum_g (Z'S^2Z)[beta_g, alpha_g]
    P_r = -sum F[alpha]' F[beta],   Q_rs = sum F[alpha]' K[beta, gamma] F[delta],
    Q_r,last = sum F[alpha]' (Z'S^2X)[beta],   P_last = -X'S^2X,   Q_last,last = X'S^3X.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ...errors import ArgumentError, LmmWarning
from ...core.threads import single_blas_thread
from .marginal_inverse import block, entries, inner, marginal_inverse

ONE_BLAS_THREAD_UP_TO = 1000  # q below which BLAS threads cost more than they save on a busy machine


class RefitREMLWarning(LmmWarning):
    """An ML fit was refitted by REML for Kenward-Roger (as pbkrtest does)."""


@dataclass(frozen=True, eq=False)
class KenwardRoger:
    """pbkrtest's ``vcovAdj`` with the pieces of its df.

    Attributes
    ----------
    vcov : ndarray (p, p)
        ``Phi = (X' Sigma^{-1} X)^{-1}``, the unadjusted covariance of beta.
    vcov_adjusted : ndarray (p, p)
        ``Phi_A = Phi + 2 Phi U Phi``.
    P : ndarray (k, p, p)
        ``P_r = -X' S G_r S X`` per variance component (``sigma^2`` last).
    W : ndarray (k, k)
        ``2 I^{-1}``, the asymptotic covariance of the components.
    """

    vcov: np.ndarray
    vcov_adjusted: np.ndarray
    P: np.ndarray
    W: np.ndarray

    def df(self, L) -> float:
        """pbkrtest's ``Lb_ddf``: denominator df of the Wald F-test of ``L beta = 0``."""
        return self.df_scaling(L)[0]

    def df_scaling(self, L) -> tuple[float, float]:
        """Denominator df and F scaling (pbkrtest's ``.KR_adjust``) for a full-row-rank ``L``.

        With ``Theta = L'(L Phi L')^{-1} L`` and ``u_r = Theta Phi P_r Phi``::

            A1 = sum_rs W_rs tr(u_r) tr(u_s),   A2 = sum_rs W_rs tr(u_r u_s),
            B = (A1 + 6 A2) / 2q,   g = ((q + 1) A1 - (q + 4) A2) / ((q + 2) A2),
            c1, c2, c3 = (g, q - g, q + 2 - g) / (3q + 2(1 - g)),
            rho = ((1 - A2/q) / (1 - c2 B))^2 (1 + c1 B) / (q (1 - c3 B)),
            df = 4 + (q + 2) / (q rho - 1),

        and the reported ``F = scaling W / q`` with ``scaling = df (1 - A2/q) / (df - 2)``
        (1 when ``|df - 2| < 0.01``; exactly 1 for one row).
        """
        L = np.atleast_2d(np.asarray(L, dtype=float))
        V0 = self.vcov
        Theta = L.T @ np.linalg.solve(L @ V0 @ L.T, L)
        u = Theta @ V0 @ self.P @ V0  # (k, p, p)
        traces = np.trace(u, axis1=1, axis2=2)
        A1 = float(traces @ self.W @ traces)
        A2 = float(np.einsum("rs,rij,sji->", self.W, u, u))
        q = L.shape[0]
        B = (A1 + 6 * A2) / (2 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        denom = 3 * q + 2 * (1 - g)
        c1, c2, c3 = g / denom, (q - g) / denom, (q + 2 - g) / denom
        v0, v1, v2 = 1 + c1 * B, 1 - c2 * B, 1 - c3 * B
        v0 = 0.0 if abs(v0) < 1e-10 else v0
        x = 1 - A2 / q
        ratio = 1.0 if abs(x) < 1e-14 and abs(v1) < 1e-14 else x / v1  # pbkrtest's .divZero
        rho = ratio**2 * v0 / v2 / q
        df = float(4 + (q + 2) / (q * rho - 1))
        scaling = 1.0 if abs(df - 2) < 0.01 else df * x / (df - 2)
        return df, float(scaling)


def _linear_kind(term) -> str | None:
    """How a term's covariance is linear: ``"us"`` (every entry), ``"diag"``, ``"exchangeable"``
    (``v I + c (11' - I)``), or None (not linear in its parameters)."""
    structure, p = term.structure, term.p
    if structure.unstructured or (structure.kind == "cs" and p == 2 and not structure.hom):
        return "us"
    if not structure.has_correlation(p):
        return "diag"
    if (structure.kind == "cs" and structure.hom) or (structure.kind == "ar1" and p == 2):
        return "exchangeable"
    return None


def variance_components(spec) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Per random-effects component r (pbkrtest's order): the matchings ``(alpha, beta)``,
    index arrays into the columns of Z with ``E_r = sum_matchings sum_g e_alpha_g e_beta_g'``.

    An unstructured term, and a nonlinear one (collapsed later by :func:`nonlinear_maps`), has one
    component per entry of its lower triangle; a ``diag`` term one per column (one in all with
    ``hom=True``); an exchangeable one (module docstring) its diagonal and its off-diagonal entries."""
    out, offset = [], 0
    for t in spec.terms:
        base = offset + t.p * np.arange(t.n_levels)
        kind = _linear_kind(t)
        if kind not in ("us", None):
            diagonal = [(base + a, base + a) for a in range(t.p)]
            if kind == "exchangeable":
                out += [diagonal, [(base + a, base + b) for a in range(t.p) for b in range(t.p) if a != b]]
            else:
                out.extend([diagonal] if t.structure.common_sd(t.p) else [[m] for m in diagonal])
            offset += t.q
            continue
        for b in range(t.p):
            for a in range(b, t.p):
                ia, ib = base + a, base + b
                out.append([(ia, ib)] if a == b else [(ia, ib), (ib, ia)])
        offset += t.q
    return out


def nonlinear_maps(spec, theta, sigma: float, n_components: int):
    """``(M, H)`` for the terms nonlinear in their parameters (None when there are none).

    ``M`` (n_params x n_components) collapses the components to the parameters: the identity on
    linear terms' components and on the residual ones, ``J' = (d gamma / d psi)'`` on a nonlinear
    term's entries ``gamma`` (its lower triangle, theta's order); ``H`` (n_components, n_params,
    n_params) holds ``d^2 gamma_c / d psi_k d psi_l``.  ``psi`` are the term's variances and
    correlation at the covariance ``sigma^2 T T'`` that ``theta`` gives (module docstring).
    """
    from ...core.relcovar import theta_to_T
    from ...spec.structures import lower_index

    if all(_linear_kind(t) is not None for t in spec.terms):
        return None
    Ts = theta_to_T(np.asarray(theta, float), [t.p for t in spec.terms])
    blocks, seconds, pos = [], [], 0
    for t, T in zip(spec.terms, Ts):
        size = len(_term_components(t))
        if _linear_kind(t) is not None:
            blocks.append(np.eye(size))
            seconds.append(np.zeros((size, size, size)))
            pos += size
            continue
        S = sigma**2 * T @ T.T
        J, H = _entry_derivatives(t, S, lower_index(t.p))
        blocks.append(J.T)
        seconds.append(H)
    rest = n_components - sum(b.shape[1] for b in blocks)
    blocks.append(np.eye(rest))
    seconds.append(np.zeros((rest, rest, rest)))
    k = sum(b.shape[0] for b in blocks)
    M = np.zeros((k, n_components))
    H = np.zeros((n_components, k, k))
    r = c = 0
    for b, h in zip(blocks, seconds):
        M[r : r + b.shape[0], c : c + b.shape[1]] = b
        H[c : c + b.shape[1], r : r + b.shape[0], r : r + b.shape[0]] = h
        r, c = r + b.shape[0], c + b.shape[1]
    return M, H


def _term_components(t) -> list:
    """The components :func:`variance_components` gives one term (their count is what matters here)."""
    kind = _linear_kind(t)
    if kind in ("us", None):
        return [None] * (t.p * (t.p + 1) // 2)
    if kind == "exchangeable":
        return [None, None]
    return [None] if t.structure.common_sd(t.p) else [None] * t.p


def _entry_derivatives(t, S, lower):
    """``(J, H)``: first and second derivatives of the lower-triangle entries of ``S`` in psi.

    cs (one variance per column, ``psi = (v_1..v_p, rho)``): ``S_ab = sqrt(v_a v_b) rho``;
    ar1 (``psi = (v, rho)``): ``S_ab = v rho^|a-b|``.
    """
    rows, cols = lower
    p = t.p
    if t.structure.kind == "ar1":
        v, rho = S[0, 0], S[1, 0] / S[0, 0]
        lag = (rows - cols).astype(float)
        J = np.column_stack([rho**lag, v * lag * rho ** np.maximum(lag - 1, 0)])
        H = np.zeros((rows.size, 2, 2))
        H[:, 0, 1] = H[:, 1, 0] = lag * rho ** np.maximum(lag - 1, 0)
        H[:, 1, 1] = v * lag * (lag - 1) * rho ** np.maximum(lag - 2, 0)
        return J, H
    v = np.diag(S).copy()
    if np.any(v <= 0):
        raise ArgumentError(f"Kenward-Roger is not defined where a variance of {t.text} is 0 (a boundary "
                            "fit): use ddf='satterthwaite'")
    rho = S[1, 0] / np.sqrt(v[0] * v[1])
    J, H = np.zeros((rows.size, p + 1)), np.zeros((rows.size, p + 1, p + 1))
    for c, (a, b) in enumerate(zip(rows, cols)):
        if a == b:
            J[c, a] = 1.0
            continue
        root = np.sqrt(v[a] * v[b])
        J[c, a], J[c, b], J[c, p] = rho * root / (2 * v[a]), rho * root / (2 * v[b]), root
        H[c, a, a], H[c, b, b] = -rho * root / (4 * v[a] ** 2), -rho * root / (4 * v[b] ** 2)
        H[c, a, b] = H[c, b, a] = rho / (4 * root)
        H[c, a, p] = H[c, p, a] = root / (2 * v[a])
        H[c, b, p] = H[c, p, b] = root / (2 * v[b])
    return J, H


def kenward_roger(spec, theta, sigma: float, dense: bool | None = None) -> KenwardRoger:
    """pbkrtest's ``vcovAdj`` for ``spec`` at the variance parameters ``(theta, sigma)``.

    Parameters
    ----------
    spec : ModelSpec
    theta : array_like
        Relative covariance parameters, lme4's order (term covariances
        ``sigma^2 T_i T_i'``).
    sigma : float
        Residual standard deviation.
    dense : bool, optional
        Passed to :func:`.marginal_inverse.marginal_inverse` (the default chooses).

    Returns
    -------
    KenwardRoger
        See the module docstring for the formulas.  pbkrtest evaluates them at
        the REML estimates; any ``(theta, sigma)`` is accepted here.

    Raises
    ------
    ArgumentError
        When the random effects are too many to hold their connected blocks
        dense (:func:`.marginal_inverse.marginal_inverse`).
    """
    with single_blas_thread(spec.q <= ONE_BLAS_THREAD_UP_TO):
        return _kenward_roger(marginal_inverse(spec, theta, float(sigma), dense), spec, theta, float(sigma))


def _kenward_roger(m, spec, theta, sigma) -> KenwardRoger:
    K, F1, F2 = m.ZSZ, m.ZSX, m.ZS2X
    p = spec.p
    comps = variance_components(spec)
    nr, lev = len(comps), m.levels
    k = nr + (1 if lev is None else len(lev.P))     # sigma^2, or one residual variance per level of sigma_by
    trace = np.empty((k, k))
    P = np.empty((k, p, p))
    Q = np.empty((k, k, p, p))
    for r, pairs_r in enumerate(comps):
        P[r] = -sum(F1[a].T @ F1[b] for a, b in pairs_r)
        for s in range(r, nr):
            t, Qrs = 0.0, np.zeros((p, p))
            for a, b in pairs_r:
                for c, d in comps[s]:
                    Kbc = block(K, b, c)
                    t += inner(Kbc, block(K, a, d))
                    Qrs += F1[a].T @ np.asarray(Kbc @ F1[d])
            trace[r, s] = trace[s, r] = t
            Q[r, s] = Qrs
        if lev is None:
            trace[r, -1] = trace[-1, r] = sum(np.sum(m.ZS2Z_entries(b, a)) for a, b in pairs_r)
            Q[r, -1] = sum(F1[a].T @ F2[b] for a, b in pairs_r)
            continue
        for j in range(len(lev.P)):     # Z'S E_j S Z and Z'S E_j S X in place of Z'S^2Z and Z'S^2X
            trace[r, nr + j] = trace[nr + j, r] = sum(np.sum(entries(lev.ZSEZ[j], b, a)) for a, b in pairs_r)
            Q[r, nr + j] = sum(F1[a].T @ lev.ZSEX[j][b] for a, b in pairs_r)
    if lev is None:
        P[-1] = -m.XSX[1]
        Q[-1, -1] = m.XSX[2]
        trace[-1, -1] = m.trace_S2
    else:
        P[nr:], Q[nr:, nr:], trace[nr:, nr:] = lev.P, lev.Q, lev.trace
    maps = nonlinear_maps(spec, theta, sigma, k)
    if maps is None:
        return _adjusted(np.linalg.inv(m.XSX[0]), P, Q, trace)
    M, H = maps
    upper = np.triu(np.ones((k, k), dtype=bool))[:, :, None, None]
    Q = np.where(upper, Q, np.swapaxes(np.swapaxes(Q, 0, 1), 2, 3))   # Q_sr = Q_rs' below the diagonal
    R = -np.einsum("ckl,cij->klij", H, P)
    return _adjusted(np.linalg.inv(m.XSX[0]), np.einsum("kc,cij->kij", M, P),
                     np.einsum("kc,cdij,ld->klij", M, Q, M), M @ trace @ M.T, R)


def _adjusted(Phi, P, Q, trace, R=None) -> KenwardRoger:
    """``W`` and ``Phi_A`` from the traces, ``P_r`` and ``Q_rs`` (r <= s), as pbkrtest's ``vcovAdj_internal``;
    with ``R`` (second derivatives, nonlinear parameters) Kenward and Roger's ``-R_rs / 4`` in ``U``."""
    k = P.shape[0]
    Phi = 0.5 * (Phi + Phi.T)
    PhiP = Phi @ P
    info = np.empty((k, k))
    for r in range(k):
        for s in range(r, k):
            info[r, s] = info[s, r] = (trace[r, s] - 2 * np.sum(Phi * Q[r, s])
                                       + np.sum(PhiP[r] * (P[s] @ Phi)))
    if np.min(np.abs(np.linalg.eigvalsh(info))) > 1e-10:
        W = 2 * np.linalg.inv(info)
    else:  # MASS::ginv's tolerance
        W = 2 * np.linalg.pinv(info, rcond=np.sqrt(np.finfo(float).eps))
    W = 0.5 * (W + W.T)
    U = np.zeros_like(Phi)
    for r in range(k - 1):
        for s in range(r + 1, k):
            U += W[r, s] * (Q[r, s] - P[r] @ Phi @ P[s] - (0.0 if R is None else 0.25 * R[r, s]))
    U = U + U.T
    for r in range(k):
        U += W[r, r] * (Q[r, r] - P[r] @ Phi @ P[r] - (0.0 if R is None else 0.25 * R[r, r]))
    return KenwardRoger(vcov=Phi, vcov_adjusted=Phi + 2 * Phi @ U @ Phi, P=P, W=W)


# ---- on a fit ------------------------------------------------------------------------------
def reml_fit(fit):
    """The fit itself if REML; else its REML refit, once per fit, with a :class:`RefitREMLWarning`
    (pbkrtest's ``vcovAdj`` and ``KRmodcomp`` refit ML fits by REML)."""
    if fit.reml:
        return fit
    if "Kenward-Roger REML fit" not in fit.derived:
        warnings.warn("Kenward-Roger is defined for REML: refitting the model by REML (as pbkrtest does); "
                      "estimates and tests are the REML fit's", RefitREMLWarning, stacklevel=4)
    return fit.derived.get("Kenward-Roger REML fit", lambda: fit.by_criterion(reml=True))


def kenward_roger_fit(fit) -> KenwardRoger:
    """:func:`kenward_roger` at the fit's REML estimates (an ML fit is refitted by REML), once per fit."""
    fit = reml_fit(fit)
    return fit.derived.get("Kenward-Roger", lambda: kenward_roger(fit.spec, fit.theta, fit.sigma))


def kenward_roger_vcov(fit):
    """``(Phi_A, P, W)``: pbkrtest's ``vcovAdj(fit)`` and the pieces of its df (see :class:`KenwardRoger`)."""
    kr = kenward_roger_fit(fit)
    return kr.vcov_adjusted, kr.P, kr.W


def kenward_roger_df(fit, L) -> float:
    """pbkrtest's ``Lb_ddf``: denominator df of the Wald F-test of ``L beta = 0``."""
    return kenward_roger_fit(fit).df(L)


def kenward_roger_df_scaling(fit, L) -> tuple[float, float]:
    """Denominator df and F scaling of the Kenward-Roger F-test (:meth:`KenwardRoger.df_scaling`)."""
    return kenward_roger_fit(fit).df_scaling(L)
