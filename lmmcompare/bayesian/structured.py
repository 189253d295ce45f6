"""The Cholesky factor of a structured term's covariance (``diag``, ``cs``, ``ar1``) as a PyTensor graph.

A structured term (``lmmcompare.spec.structures``) has ``Sigma = S R(rho) S``
with ``S = diag(sd)`` (one sd per column, or one common sd) and the factor

    L = diag(sd) chol(R(rho))

written with the closed forms of ``lmmcompare.core.structures``:

* ``diag``: ``R = I``, ``L = diag(sd)``;
* ``cs``, ``R = (1 - rho) I + rho 11'``: column ``j`` of ``chol(R)`` has
  ``d_j = sqrt((1 - rho)(1 + j rho) / (1 + (j-1) rho))`` on the diagonal and
  ``c_j = rho sqrt(1 - rho) / sqrt((1 + (j-1) rho)(1 + j rho))`` below it
  (``d_0 = 1``, ``c_0 = rho``);
* ``ar1``, ``R_ij = rho^|i-j|``: ``chol(R)_i0 = rho^i``,
  ``chol(R)_ij = rho^(i-j) sqrt(1 - rho^2)`` for ``1 <= j <= i``.

Priors (keys in :mod:`.priors`): each sd row its sd prior, as an unstructured
term's (a common sd is one variable); the correlation ``rho`` on its range
``(low, 1)`` (``low = -1/(p-1)`` for cs, ``-1`` for ar1) through
``(rho - low) / (1 - low) ~ Beta(a, b)``, by default ``Beta(1, 1)``: uniform on
the range, as brms' ``ar`` and ``cosy`` classes (bounded, flat by default; ``cosy`` on [0, 1]).
The sampler moves on the Beta's log-odds, so ``rho`` never reaches the
singular ends.
"""
from __future__ import annotations

from .priors import PriorSet


def correlation_range(kind: str, p: int) -> float:
    """The lower end of the correlation of a ``p``-column ``cs`` or ``ar1`` term (the upper end is 1)."""
    return -1.0 / (p - 1) if kind == "cs" else -1.0


def cs_cholesky(rho, p: int, pt):
    """``chol(R)`` of the compound-symmetry correlation ``(1 - rho) I + rho 11'`` (module docstring)."""
    cols_d, cols_c = [], []
    for j in range(p):
        if j == 0:
            d, c = pt.as_tensor_variable(1.0), rho
        else:
            a, b = 1.0 + (j - 1) * rho, 1.0 + j * rho
            d = pt.sqrt((1.0 - rho) * b / a)
            c = rho * pt.sqrt((1.0 - rho) / (a * b))
        cols_d.append(d)
        cols_c.append(c)
    zero = pt.as_tensor_variable(0.0)
    rows = [pt.stack([cols_c[j] if j < i else cols_d[i] if j == i else zero for j in range(p)]) for i in range(p)]
    return pt.stack(rows)


def ar1_cholesky(rho, p: int, pt):
    """``chol(R)`` of the AR(1) correlation ``rho^|i-j|`` (module docstring)."""
    root = pt.sqrt(1.0 - rho * rho)
    zero = pt.as_tensor_variable(0.0)
    rows = []
    for i in range(p):
        rows.append(pt.stack([rho**i if j == 0 else rho ** (i - j) * root if j <= i else zero for j in range(p)]))
    return pt.stack(rows)


def structured_factor(spec, i: int, priors: PriorSet, pm, pt):
    """``L = diag(sd) chol(R(rho))`` of structured term ``i`` (registered as the term's ``L_i``).

    Variables: each sd row's ``pymc_name`` (``sd_i_k``, one ``sd_i_0`` for a
    common sd) with its prior; for cs and ar1 the correlation's Beta on the unit
    interval ``<pymc_name>_unit`` and the correlation itself as the Deterministic
    ``common_cor_i`` or ``rho_i``.
    """
    term, table = spec.terms[i], spec.parameters
    structure, p = term.structure, term.p
    sd_rows = table.sds(i)
    sds = [priors.sds[r.label].variable(r.pymc_name) for r in sd_rows]
    sd = pt.stack(sds * p if len(sds) == 1 else sds)
    if structure.has_correlation(p):
        row = next(r for r in table.of_term(i) if r.kind != "sd")
        a, b = priors.cors[term.label].params
        low = correlation_range(structure.kind, p)
        unit = pm.Beta(f"{row.pymc_name}_unit", a, b)
        rho = pm.Deterministic(row.pymc_name, low + (1.0 - low) * unit)
        corr_chol = (cs_cholesky if structure.kind == "cs" else ar1_cholesky)(rho, p, pt)
        L = sd[:, None] * corr_chol
    else:
        L = pt.diag(sd)
    return pm.Deterministic(table.terms[i].cholesky, L)
