"""The parameter table of a model: every parameter's kind, place and name, defined once.

Names follow lme4 (``confint(..., oldNames = FALSE)``): the fixed effects by
their column names; for term ``t`` with columns ``c_1..c_p`` and grouping
factor ``g``, the lower triangle of its covariance ``Sigma_t``, column by
column (theta's order, :func:`lower_index`), is ``sd_c_i|g`` on the diagonal
(``i = j``) and ``cor_c_i.c_j|g`` below it (``i > j``); the residual standard
deviation is ``sigma``.  Where two terms on one factor would repeat a name
(``(x | g) + (1 | g)``, which lme4 labels alike), the later term's names carry
lme4's ``VarCorr`` label ``g.1`` instead
(:attr:`lmmcompare.spec.RandomTerm.parameter_group`).

Each :class:`Parameter` row also carries the name of the PyMC variable that
samples it (``alpha``, ``beta_k``, ``sd_t_k``, ``sigma``), and each
:class:`TermVariables` the names of a term's PyMC variables (``L_t``, ``b_t``)
and of its posterior variable ``r_<group>``.  Code that needs a name or a
place reads it from the rows; no code rebuilds or splits a label.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

FIXED, SD, COR, SIGMA = "fixed", "sd", "cor", "sigma"
INTERCEPT = "(Intercept)"


@lru_cache(maxsize=64)
def lower_index(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a p x p lower triangle, column-major (lme4's theta order)."""
    rows = np.array([i for j in range(p) for i in range(j, p)], dtype=int)
    cols = np.array([j for j in range(p) for i in range(j, p)], dtype=int)
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


def term_labels(columns, group) -> tuple[str, ...]:
    """Labels of one term's sd/cor parameters in theta's order: the one place they are formatted."""
    rows, cols = lower_index(len(columns))
    return tuple(f"sd_{columns[i]}|{group}" if i == j else f"cor_{columns[i]}.{columns[j]}|{group}"
                 for i, j in zip(rows, cols))


def sd_cor_matrices(values, p: int) -> tuple[np.ndarray, np.ndarray]:
    """``(sd, cor)`` from a term's lower triangle of sds and correlations: the inverse of :func:`sd_cor_from_cov`."""
    rows, cols = lower_index(p)
    sd, cor = np.zeros(p), np.eye(p)
    for v, i, j in zip(values, rows, cols):
        if i == j:
            sd[i] = v
        else:
            cor[i, j] = cor[j, i] = v
    return sd, cor


def sd_cor_from_cov(cov: np.ndarray) -> np.ndarray:
    """Lower triangle (theta order) of ``cov`` as sds on the diagonal and correlations below.

    Entry ``(i, j)`` is ``sqrt(cov_ii)`` if ``i = j``, else ``cov_ij / sqrt(cov_ii cov_jj)``.
    """
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    rows, cols = lower_index(cov.shape[0])
    out = np.empty(rows.size)
    for k, (i, j) in enumerate(zip(rows, cols)):
        if i == j:
            out[k] = sd[i]
        else:
            denom = sd[i] * sd[j]
            # rounding can put a correlation of a singular (boundary) fit just beyond +-1
            out[k] = np.clip(cov[i, j] / denom, -1.0, 1.0) if denom > 0 else np.nan
    return out


@dataclass(frozen=True)
class Parameter:
    """One parameter of a model.

    Attributes
    ----------
    kind : str
        ``"fixed"``, ``"sd"``, ``"cor"`` or ``"sigma"``.
    label : str
        The name users see (lme4's).
    term : int or None
        Index of the random-effects term in ``spec.terms`` (sd and cor rows).
    i, j : int
        sd/cor: entry ``(i, j)`` of ``Sigma_term`` (``i = j`` for an sd, ``i > j``
        for a correlation); fixed: ``i = j`` = column of ``X``.
    theta : int or None
        Position in theta (sd and cor rows).
    pymc_name : str or None
        The PyMC variable that samples it when sampled directly (``alpha``,
        ``beta_k`` for the k-th non-intercept column, ``sd_t_i``, ``sigma``);
        None for a correlation, which comes from the term's factor ``L_t``.
    """

    kind: str
    label: str
    term: int | None = None
    i: int = 0
    j: int = 0
    theta: int | None = None
    pymc_name: str | None = None


@dataclass(frozen=True)
class TermVariables:
    """Names of one random-effects term's variables.

    ``cholesky`` (``L_t``): the Cholesky factor of ``Sigma_t``; ``effects``
    (``b_t``): its level effects; ``ranef`` (``r_<group>``): the posterior
    variable it shares with the other terms of the same parameter group,
    with dims ``(group, coef_dim)``, its columns from ``coef_start`` on.
    """

    term: int
    group: str          # the grouping factor (level dimension of r_<group>)
    key: str            # the parameter group: g, or g.1 where names would repeat
    cholesky: str
    effects: str
    ranef: str
    coef_dim: str
    coef_start: int


@dataclass(frozen=True)
class ParameterTable:
    """Every parameter of one spec: fixed effects in X's order, then sd/cor in theta's order, then sigma."""

    rows: tuple[Parameter, ...]
    terms: tuple[TermVariables, ...]

    @classmethod
    def from_spec(cls, spec) -> "ParameterTable":
        """Build the table from ``spec.fixed_names`` and ``spec.terms``."""
        rows, slope = [], 0
        for col, name in enumerate(spec.fixed_names):
            pymc = "alpha" if name == INTERCEPT else f"beta_{slope}"
            slope += name != INTERCEPT
            rows.append(Parameter(FIXED, name, i=col, j=col, pymc_name=pymc))
        pos, terms, used = 0, [], {}
        for t, term in enumerate(spec.terms):
            ri, ci = lower_index(term.p)
            for label, i, j in zip(term_labels(term.columns, term.parameter_group), ri, ci):
                rows.append(Parameter(SD if i == j else COR, label, t, int(i), int(j), pos,
                                      f"sd_{t}_{i}" if i == j else None))
                pos += 1
            key = term.parameter_group
            start = used.get(key, 0)
            used[key] = start + term.p
            terms.append(TermVariables(t, term.group, key, f"L_{t}", f"b_{t}", f"r_{key}", f"{key}__coef", start))
        rows.append(Parameter(SIGMA, "sigma", pymc_name="sigma"))
        return cls(tuple(rows), tuple(terms))

    @property
    def fixed(self) -> tuple[Parameter, ...]:
        """The fixed effects, in the columns' order."""
        return tuple(r for r in self.rows if r.kind == FIXED)

    @property
    def variance(self) -> tuple[Parameter, ...]:
        """sd and cor rows in theta's order, then sigma."""
        return tuple(r for r in self.rows if r.kind != FIXED)

    @property
    def variance_labels(self) -> list[str]:
        return [r.label for r in self.variance]

    @property
    def fixed_labels(self) -> list[str]:
        return [r.label for r in self.fixed]

    def of_term(self, term: int) -> tuple[Parameter, ...]:
        """The sd/cor rows of term ``term`` in theta's order."""
        return tuple(r for r in self.rows if r.term == term)

    def sds(self, term: int) -> tuple[Parameter, ...]:
        """The sd rows of term ``term``, one per column."""
        return tuple(r for r in self.of_term(term) if r.kind == SD)

    def __getitem__(self, label: str) -> Parameter:
        for r in self.rows:
            if r.label == label:
                return r
        raise KeyError(label)

    def ranef_variables(self) -> dict[str, list[TermVariables]]:
        """The terms of each ``r_<group>`` posterior variable, by variable name, in term order."""
        out: dict[str, list[TermVariables]] = {}
        for tv in self.terms:
            out.setdefault(tv.ranef, []).append(tv)
        return out
