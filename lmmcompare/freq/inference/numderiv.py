"""Numerical derivatives with Richardson extrapolation (the method of R's numDeriv).

Central differences ``(f(x + h) - f(x - h)) / 2h`` at ``h, h/2, h/4, h/8``
are combined so that the ``h^2``, ``h^4`` and ``h^6`` error terms cancel.
"""
from __future__ import annotations

import numpy as np


def _steps(x, d=1e-4, eps=1e-4, zero_tol=1.78e-5):
    return d * np.abs(x) + eps * (np.abs(x) < zero_tol)


def _richardson(values: list) -> np.ndarray:
    """Extrapolate central differences taken at h / 2**k (error in even powers of h)."""
    table = [np.asarray(v, dtype=float) for v in values]
    for m in range(1, len(table)):
        factor = 4.0**m
        table = [(factor * table[i + 1] - table[i]) / (factor - 1) for i in range(len(table) - 1)]
    return table[0]


def jacobian(fun, x, r: int = 4) -> np.ndarray:
    """Jacobian of a vector function (rows: outputs, columns: inputs)."""
    x = np.asarray(x, dtype=float)
    f0 = np.atleast_1d(np.asarray(fun(x), dtype=float))
    J = np.empty((f0.size, x.size))
    h0 = _steps(x)
    for j in range(x.size):
        estimates = []
        for k in range(r):
            h = h0[j] / 2**k
            step = np.zeros_like(x)
            step[j] = h
            estimates.append((np.ravel(fun(x + step)) - np.ravel(fun(x - step))) / (2 * h))
        J[:, j] = _richardson(estimates)
    return J


def hessian(fun, x, r: int = 4, d: float = 0.1) -> np.ndarray:
    """Hessian by Richardson-extrapolated second differences (numDeriv's ``genD``).

    Steps start at ``d |x_i|`` (0.1, numDeriv's default for Hessians) and halve;
    ``D_ij = (f(x + h_i + h_j) - 2 f(x) + f(x - h_i - h_j) - D_ii h_i^2 - D_jj h_j^2) / (2 h_i h_j)``.
    """
    x = np.asarray(x, dtype=float)
    k = x.size
    f0 = float(fun(x))
    h0 = _steps(x, d=d)
    diag = np.empty(k)
    for i in range(k):
        est = []
        for m in range(r):
            h = h0[i] / 2**m
            e = np.zeros(k)
            e[i] = h
            est.append((fun(x + e) - 2 * f0 + fun(x - e)) / h**2)
        diag[i] = _richardson(est)
    H = np.diag(diag)
    for i in range(k):
        for j in range(i):
            est = []
            for m in range(r):
                hi, hj = h0[i] / 2**m, h0[j] / 2**m
                e = np.zeros(k)
                e[i], e[j] = hi, hj
                second = (fun(x + e) - 2 * f0 + fun(x - e) - diag[i] * hi**2 - diag[j] * hj**2) / (2 * hi * hj)
                est.append(second)
            H[i, j] = H[j, i] = _richardson(est)
    return H
