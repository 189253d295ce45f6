"""The parameter table of a model: every parameter's kind, place and name, defined once.

Names follow lme4 (``confint(..., oldNames = FALSE)``): the fixed effects by
their column names; for term ``t`` with columns ``c_1..c_p`` and grouping
factor ``g``, the lower triangle of its covariance ``Sigma_t``, column by
column (theta's order, :func:`~lmmcompare.spec.structures.lower_index`), is ``sd_c_i|g`` on the diagonal
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
import numpy as np

from .structures import lower_index, sd_cor_matrices, Structure  # noqa: F401  (re-exported: older import paths)

FIXED, SD, COR, SIGMA = "fixed", "sd", "cor", "sigma"
COMMON_COR, RHO, SIGMA_RATIO = "common_cor", "rho", "sigma_ratio"   # structured terms, sigma_by
VARIANCE_KINDS = (SD, COR, COMMON_COR, RHO, SIGMA, SIGMA_RATIO)
INTERCEPT = "(Intercept)"


def term_labels(columns, group) -> tuple[str, ...]:
    """Labels of one term's sd/cor parameters in theta's order: the one place they are formatted."""
    rows, cols = lower_index(len(columns))
    return tuple(f"sd_{columns[i]}|{group}" if i == j else f"cor_{columns[i]}.{columns[j]}|{group}"
                 for i, j in zip(rows, cols))


def structure_labels(structure: Structure, columns, group: str) -> tuple[tuple[str, str, int, int], ...]:
    """``(kind, label, i, j)`` of each natural parameter of a structured (not ``us``) term, in phi's order.

    Kinds: ``"sd"`` (entry ``(i, i)``; a common sd ``sd|g`` has ``i = j = 0``),
    ``"common_cor"`` (cs, ``cor|g``) and ``"rho"`` (ar1, ``rho|g``), both with ``(i, j) = (1, 0)``.
    """
    p = len(columns)
    if structure.common_sd(p):
        out = [(SD, f"sd|{group}", 0, 0)]
    else:
        out = [(SD, f"sd_{c}|{group}", i, i) for i, c in enumerate(columns)]
    if structure.has_correlation(p):
        out.append((COMMON_COR, f"cor|{group}", 1, 0) if structure.kind == "cs" else (RHO, f"rho|{group}", 1, 0))
    return tuple(out)


def ratio_labels(factor) -> list[str]:
    """Names of the ratios ``delta_k = sigma_k / sigma_1``, k >= 2, of ``sigma_by``: ``sigma_ratio_<level>|<factor>``."""
    return [f"sigma_ratio_{level}|{factor.name}" for level in factor.levels[1:]]


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
        ``"fixed"``, ``"sd"``, ``"cor"`` or ``"sigma"``; a structured term's common
        correlation ``"common_cor"`` (cs) or ``"rho"`` (ar1), and ``"sigma_ratio"``,
        the residual sd of a level of ``sigma_by`` over the first level's.
    label : str
        The name users see (lme4's).
    term : int or None
        Index of the random-effects term in ``spec.terms`` (sd and cor rows).
    i, j : int
        sd/cor: entry ``(i, j)`` of ``Sigma_term`` (``i = j`` for an sd, ``i > j``
        for a correlation); fixed: ``i = j`` = column of ``X``.
    theta : int or None
        Position in theta (sd and cor rows of unstructured terms).
    phi : int or None
        Position in phi, the optimizer's vector (theta's entries of unstructured
        terms, each structured term's relative sds and correlation, then the
        logs of the sigma ratios; :class:`lmmcompare.core.structures.CovarianceMap`).
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
    phi: int | None = None


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
        pos, phi, terms, used = 0, 0, [], {}
        for t, term in enumerate(spec.terms):
            if term.structured:
                for kind, label, i, j in structure_labels(term.structure, term.columns, term.parameter_group):
                    rows.append(Parameter(kind, label, t, i, j, None, f"sd_{t}_{i}" if kind == SD else f"{kind}_{t}",
                                          phi))
                    phi += 1
                pos += term.n_theta
            else:
                ri, ci = lower_index(term.p)
                for label, i, j in zip(term_labels(term.columns, term.parameter_group), ri, ci):
                    rows.append(Parameter(SD if i == j else COR, label, t, int(i), int(j), pos,
                                          f"sd_{t}_{i}" if i == j else None, phi))
                    pos += 1
                    phi += 1
            key = term.parameter_group
            start = used.get(key, 0)
            used[key] = start + term.p
            terms.append(TermVariables(t, term.group, key, f"L_{t}", f"b_{t}", f"r_{key}", f"{key}__coef", start))
        rows.append(Parameter(SIGMA, "sigma", pymc_name="sigma"))
        if spec.sigma_by is not None:
            for k, label in enumerate(ratio_labels(spec.sigma_by), start=1):
                rows.append(Parameter(SIGMA_RATIO, label, i=k, j=k, pymc_name=f"sigma_ratio_{k}", phi=phi))
                phi += 1
        return cls(tuple(rows), tuple(terms))

    @property
    def fixed(self) -> tuple[Parameter, ...]:
        """The fixed effects, in the columns' order."""
        return tuple(r for r in self.rows if r.kind == FIXED)

    @property
    def variance(self) -> tuple[Parameter, ...]:
        """sd and cor rows in phi's order, then sigma (and the sigma ratios)."""
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
