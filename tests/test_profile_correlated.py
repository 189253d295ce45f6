"""Profile intervals of terms with three and four correlated columns (issue 16, item 1).

The nuisance correlations of a term of three or more columns do not live in a
box, so the inner minimisation must stay among valid correlation matrices.
Each interval end is checked against a brute-force profile that shares no code
with the package: the ML deviance ``log|V| + r'V^-1 r + n log 2 pi`` with
``V = Z (I kron Sigma) Z' + sigma^2 I`` formed densely for each group's rows, with beta by generalised least squares,
minimised over the other parameters (written through the rows of the
covariance's Cholesky factor, the profiled sd or correlation fixed) from
several starts by BFGS and Nelder-Mead.  At a 95% end zeta must be 1.95996
within 2e-3.

Before the fix, the 3-column profile stopped with a LinAlgError inside the
inner optimiser, and on the issue's data the ends were too narrow (zeta 1.49
where 1.96 was due).  lme4 1.1-31 is too narrow on these data as well
(``confint(m, method = "profile")`` gives sd_fL2 upper 9.0747 and
cor_fL1.fL0 lower 0.8431 on the 3-column data, where the brute-force zeta is
1.485 and 0.748; on the 4-column data cor_fL3.fL2 lower 0.2180, zeta 0.775).
"""
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.optimize
import scipy.stats

import lmmcompare as lc

Z95 = scipy.stats.norm.ppf(0.975)


def _simulate(p, n_groups, seed):
    """``(0 + f | g)`` with a p-level factor, two replicates per cell, correlations 0.6 - 0.8."""
    rng = np.random.default_rng(seed)
    sds = np.array([3.0, 4.0, 5.0, 4.5][:p])
    C = np.array([[1, .6, .7], [.6, 1, .8], [.7, .8, 1]]) if p == 3 else np.full((p, p), 0.7) + 0.3 * np.eye(p)
    b = rng.multivariate_normal(np.zeros(p), np.outer(sds, sds) * C, size=n_groups)
    rows = [(f"g{g:02d}", f"L{lev}", 10 + lev + b[g, lev] + 2.0 * rng.normal())
            for g in range(n_groups) for lev in range(p) for _ in range(2)]
    return pd.DataFrame(rows, columns=["g", "f", "y"])


def _dense_deviance(cov, sigma, y, X, F):
    """ML deviance with V block-diagonal by group: rows come in groups of equal size (``y``: m x k)."""
    V = F @ cov @ F.transpose(0, 2, 1) + sigma**2 * np.eye(F.shape[1])  # m x k x k
    L = np.linalg.cholesky(V)
    Xs = np.linalg.solve(L, X).reshape(-1, X.shape[2])
    ys = np.linalg.solve(L, y[..., None]).ravel()
    r = ys - Xs @ np.linalg.lstsq(Xs, ys, rcond=None)[0]
    return 2 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum() + r @ r + ys.size * np.log(2 * np.pi)


def _brute_force_profile(data, kind, where, value, starts=3):
    """Minimum of the dense deviance with one sd (``where`` = column) or correlation (a pair) fixed."""
    levels, groups = sorted(data["f"].unique()), sorted(data["g"].unique())
    p, m = len(levels), len(groups)
    data = data.sort_values("g", kind="stable")
    F = (data["f"].to_numpy()[:, None] == np.array(levels)).astype(float)
    X = np.column_stack([np.ones(len(data)), F[:, 1:]])
    k_rows = len(data) // m  # every group has the same number of rows
    F, X, y = F.reshape(m, k_rows, p), X.reshape(m, k_rows, p), data["y"].to_numpy(float).reshape(m, k_rows)
    first = [where] if kind == "sd" else list(where)
    order = first + [c for c in range(p) if c not in first]
    back = np.argsort(order)

    def deviance(params):
        L, pos = np.zeros((p, p)), 0
        if kind == "sd":
            L[0, 0] = value
        else:  # sd_k, sd_l free; their correlation fixed
            a, b = abs(params[0]), abs(params[1])
            L[0, 0], L[1, :2], pos = a, (b * value, b * np.sqrt(1 - value**2)), 2
        for r in range(len(first), p):
            L[r, : r + 1] = params[pos : pos + r + 1]
            pos += r + 1
        cov = (L @ L.T)[np.ix_(back, back)]
        return _dense_deviance(cov, abs(params[pos]), y, X, F)

    k = sum(r + 1 for r in range(len(first), p)) + (2 if kind == "cor" else 0) + 1
    rng, best = np.random.default_rng(0), np.inf
    for s in range(starts):
        x0 = np.full(k, 2.0) if s == 0 else rng.normal(size=k) * 2 + 1
        res = scipy.optimize.minimize(deviance, x0, method="BFGS", options=dict(gtol=1e-8))
        res = scipy.optimize.minimize(deviance, res.x, method="Nelder-Mead",
                                      options=dict(xatol=1e-9, fatol=1e-11, maxfev=20000))
        best = min(best, res.fun)
    return best


CASES = [  # p, groups, seed, parameters profiled (name, kind, where)
    (3, 12, 1, [("sd_fL2|g", "sd", 2), ("cor_fL2.fL1|g", "cor", (2, 1))]),
    (4, 15, 3, [("sd_fL2|g", "sd", 2), ("cor_fL3.fL2|g", "cor", (3, 2))]),
]


@pytest.mark.parametrize("p, n_groups, seed, params", CASES, ids=["3 columns", "4 columns"])
def test_profile_ends_of_correlated_terms_match_a_brute_force_profile(p, n_groups, seed, params):
    data = _simulate(p, n_groups, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lc.errors.SingularFitWarning)
        fit = lc.lmer("y ~ f + (0 + f | g)", data, reml=False)
    ci = fit.profile(which=[name for name, _, _ in params]).confint()
    # the global minimum, by the same brute force: the profile of the first sd at its estimate
    base = min(fit.objective, _brute_force_profile(data, "sd", 0, fit.variance_parameters()[f"sd_fL0|g"]))
    for name, kind, where in params:
        for end, sign in (("lower", -1.0), ("upper", 1.0)):
            x = ci.loc[name, end]
            if kind == "cor" and abs(x) == 1.0:  # the profile never reached the cutoff before the bound
                zeta_at_bound = np.sqrt(max(_brute_force_profile(data, kind, where, x) - base, 0.0))
                assert zeta_at_bound < Z95 + 2e-3, (name, end)
                continue
            zeta = np.sqrt(max(_brute_force_profile(data, kind, where, x) - base, 0.0))
            assert zeta == pytest.approx(Z95, abs=2e-3), (name, end, x)
