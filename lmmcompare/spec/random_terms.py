"""Random-effects terms: one ``(expr | group)`` after lme4's expansion, built from the parsed bars.

Term ``i`` has a grouping factor with ``l_i`` levels and ``p_i`` model columns;
its block ``Z_i`` of ``Z`` is ``n x l_i p_i`` with the columns of one level
adjacent (level-major), as in lme4.  The terms of one grouping factor are
numbered as lme4's ``VarCorr`` numbers them (``g``, ``g.1``), which keeps the
parameter names of every term distinct.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError, FormulaError, UnidentifiableTermsWarning
from .checks import FrameColumns, frame_columns
from .design import Design, GroupingFactor, build_design, grouping_factor
from .formula import ParsedFormula
from .parameters import structure_labels, term_labels
from .structures import Structure


@dataclass(frozen=True, eq=False)
class RandomTerm:
    """One random-effects term ``(expr | group)`` after lme4's expansion.

    Attributes
    ----------
    factor : GroupingFactor
        Grouping factor: ``name``, ``codes`` (one per row), ``levels``.
    design : Design
        The term's model matrix ``X_i`` (n x p_i) and its column ``names``.
    expr : str
        The expression left of the bar for this (expanded) term.
    double_bar : bool
        The term came from ``||`` (lme4's uncorrelated expansion).
    varcorr_index : int
        How many terms on the same grouping factor come before this one in
        the spec (lme4's ``VarCorr`` labels them ``g``, ``g.1``, ``g.2``).
    repeats_names : bool
        Its ``sd_``/``cor_`` names would repeat those of an earlier term on the
        same factor (``(x | g) + (1 | g)``); its names then carry
        :attr:`varcorr_group` instead of the factor's name.
    structure : Structure
        Its covariance structure (``us``, ``diag``, ``cs``, ``ar1``; :mod:`.structures`).
    """

    factor: GroupingFactor
    design: Design
    expr: str
    double_bar: bool = False
    varcorr_index: int = 0
    repeats_names: bool = False
    structure: Structure = Structure()

    @property
    def group(self) -> str:
        return self.factor.name

    @property
    def varcorr_group(self) -> str:
        """The term's row label in lme4's ``VarCorr``: ``g``, or ``g.k`` for the k-th later term on ``g``."""
        return self.group if self.varcorr_index == 0 else f"{self.group}.{self.varcorr_index}"

    @property
    def parameter_group(self) -> str:
        """The group part of the term's parameter names (``sd_c|<this>``): distinct for every term."""
        return self.varcorr_group if self.repeats_names else self.group

    @property
    def codes(self) -> np.ndarray:
        return self.factor.codes

    @property
    def levels(self) -> tuple[str, ...]:
        return self.factor.levels

    @property
    def columns(self) -> tuple[str, ...]:
        return self.design.names

    @property
    def label(self) -> str:
        """``"(Intercept)+Days|Subject"``: the term's columns and :attr:`parameter_group` (keys of priors and forms)."""
        return f"{'+'.join(self.columns)}|{self.parameter_group}"

    @property
    def n_levels(self) -> int:
        return self.factor.n_levels

    @property
    def p(self) -> int:
        """Number of model columns of the term (``p_i``)."""
        return len(self.design.names)

    @property
    def q(self) -> int:
        """Number of random effects of the term, ``l_i p_i``."""
        return self.n_levels * self.p

    @property
    def correlated(self) -> bool:
        """Whether the term's columns share a covariance matrix with correlations (not ``diag``)."""
        return self.p > 1 and self.structure.kind != "diag"

    @property
    def n_theta(self) -> int:
        """Length of the term's part of theta, ``p_i (p_i + 1) / 2``."""
        return self.p * (self.p + 1) // 2

    @property
    def structured(self) -> bool:
        """Whether the term's covariance has a structure other than lme4's unstructured one."""
        return not self.structure.unstructured and not (self.p == 1 and self.structure.kind == "diag")

    @property
    def n_phi(self) -> int:
        """Length of the term's part of phi, the optimizer's parameters (theta's for ``us``)."""
        return self.structure.n_params(self.p)

    @property
    def text(self) -> str:
        """The term as a formula writes it: ``(Days | Subject)``, ``cs(0 + f | g)``."""
        return self.structure.text(self.expr, self.group)

    @property
    def theta_lower(self) -> np.ndarray:
        """Lower bounds of theta: 0 on the diagonal of T_i, -inf below it (column-major)."""
        return np.array([0.0 if i == j else -np.inf for j in range(self.p) for i in range(j, self.p)])

    @cached_property
    def Z(self) -> sp.csc_matrix:
        """Sparse ``n x (l_i p_i)`` block: ``Z[r, codes[r] * p_i + k] = X_i[r, k]``.

        Built once per term (cached in the instance ``__dict__``); shared, so read-only.
        """
        X = self.design.matrix
        n, p = X.shape
        order = np.argsort(self.codes, kind="stable")  # rows level by level, increasing within a level
        counts = np.bincount(self.codes, minlength=self.n_levels)
        starts = np.cumsum(counts) - counts
        level = self.codes[order]
        # entry (row order[i], column level * p + k) goes to position p * start + k * count + rank in level
        pos = ((p * starts[level] + np.arange(n) - starts[level])[:, None]
               + counts[level][:, None] * np.arange(p))
        indices, data = np.empty(n * p, dtype=np.int64), np.empty(n * p)
        indices[pos] = order[:, None]
        data[pos] = X[order]
        indptr = np.concatenate([[0], np.cumsum(np.repeat(counts, p))])
        return sp.csc_matrix((data, indices, indptr), shape=(n, self.q))

    def __repr__(self):
        kind = ("uncorrelated" if self.double_bar or self.structure.kind == "diag" and self.p > 1 else
                "scalar" if self.p == 1 else "correlated")
        if self.structured:
            kind += f", {self.structure.kind}" + (" hom" if self.structure.hom else "")
        return (f"RandomTerm({self.group!r}: {self.n_levels} levels x {self.p} "
                f"[{', '.join(self.columns)}], {kind})")



def random_terms(parsed: ParsedFormula, frame: pd.DataFrame | FrameColumns) -> tuple[RandomTerm, ...]:
    """The terms of the bars on the model frame (a DataFrame or its :class:`~.checks.FrameColumns`), ``||``
    expanded, in lme4's order (decreasing levels, stable)."""
    columns = frame_columns(frame)
    frame = columns.frame
    factors: dict[tuple[str, ...], GroupingFactor] = {}
    terms, seen = [], set()
    for bar in parsed.bars:
        factor = factors.get(bar.group) or grouping_factor(bar.group, columns)
        factors[bar.group] = factor
        design = build_design(bar.expr, columns, f"random term {bar.text}")
        if design.matrix.shape[1] == 0:
            raise FormulaError(f"random term {bar.text} has no columns (did you write '(0 | g)'?)")
        _check_structure(bar, design, frame)
        pieces = [(bar.expr, design)]
        if bar.double:  # lme4's expandDoubleVerts: (1|g) + (0 + t|g) for each term t
            exprs = ["1" if label == "1" else f"0 + {label}" for label, _ in design.term_columns]
            pieces = [(e, build_design(e, columns, f"random term {bar.text}")) for e in exprs]
        for expr, des in pieces:
            key = (frozenset(des.names), factor.name)  # (1 + x | g) and (x + 1 | g) are one term
            if key in seen:
                raise FormulaError(
                    f"random-effects term ({' + '.join(des.names)} | {factor.name}) appears twice; remove the duplicate")
            seen.add(key)
            terms.append(RandomTerm(factor=factor, design=des, expr=expr, double_bar=bar.double,
                                    structure=bar.structure))
    order = sorted(range(len(terms)), key=lambda i: -terms[i].n_levels)  # stable, as R's order()
    named = _name_terms([terms[i] for i in order])
    _check_zero_columns(named)
    return named


def _name_terms(terms: list[RandomTerm]) -> tuple[RandomTerm, ...]:
    """Number the terms of each grouping factor as lme4's ``VarCorr`` does, and keep parameter names distinct.

    A term whose ``sd_``/``cor_`` names would repeat an earlier term's on the same
    factor gets :attr:`RandomTerm.varcorr_group` (``g.1``) in its names, and the
    pair is reported by :func:`_warn_unidentifiable`.
    """
    named, earlier = [], {}
    for t in terms:
        before = earlier.setdefault(t.group, [])
        names = set(_labels(t, t.group))
        repeats = any(names & set(_labels(u, u.group)) for u in before)
        t = dataclasses.replace(t, varcorr_index=len(before), repeats_names=repeats)
        _warn_unidentifiable(before, t)
        before.append(t)
        named.append(t)
    return tuple(named)


def _labels(term: RandomTerm, group: str) -> tuple[str, ...]:
    """The names of the term's parameters with ``group`` as their group part."""
    if term.structured:
        return tuple(label for _, label, _, _ in structure_labels(term.structure, term.columns, group))
    return term_labels(term.columns, group)


def _check_structure(bar, design, frame) -> None:
    """cs and ar1 need two or more columns; ar1 runs over the levels of one factor, without an intercept."""
    kind = bar.structure.kind
    if kind in ("cs", "ar1") and design.matrix.shape[1] < 2:
        raise FormulaError(f"random-effects term {bar.text} has one column, so {kind}() has no correlation to "
                           f"estimate: use ({bar.expr} | {' : '.join(bar.group)}) or give it two or more columns")
    if kind != "ar1":
        return
    labels = [label for label, _ in design.term_columns]
    variables = [v for vs in design.term_variables for v in vs]
    factor_ok = (len(labels) == 1 and labels[0] != "1" and len(variables) == 1
                 and variables[0] in design.categorical)
    if not factor_ok:
        raise FormulaError(
            f"random-effects term {bar.text}: ar1() runs over the ordered levels of one factor, written "
            f"ar1(0 + f | g) with f a categorical column (its level order gives the lags), got {bar.expr!r}"
            + ("; drop the intercept with '0 +'" if "1" in labels else "")
            + ("; convert a numeric time column with pd.Categorical(column, ordered=True)"
               if variables and not set(variables) & design.categorical else ""))


def _warn_unidentifiable(before: list[RandomTerm], term: RandomTerm) -> None:
    """Warn when ``term``'s columns and an earlier term's on the same factor span a common direction.

    Per level, the terms add ``X_a Sigma_a X_a' + X_b Sigma_b X_b'`` to the
    covariance of the response.  If ``X_a u = X_b v`` for some non-zero ``u, v``
    (``rank [X_a X_b] < rank X_a + rank X_b``; e.g. both have an intercept), then
    ``Sigma_a + c u u'`` and ``Sigma_b - c v v'`` give the same model for every
    small ``c``: the likelihood is flat along that direction and only the sum is
    estimable (lme4 fits it and reports a degenerate Hessian).
    """
    for other in before:
        a, b = other.design.matrix, term.design.matrix
        rank = np.linalg.matrix_rank
        if rank(np.hstack([a, b])) < rank(a) + rank(b):
            shared = [c for c in term.columns if c in other.columns]
            what = (f"both have the column(s) {', '.join(shared)}" if shared
                    else "a combination of the columns of one is a combination of the other's")
            warnings.warn(
                f"random-effects terms ({' + '.join(other.columns)} | {other.group}) and "
                f"({' + '.join(term.columns)} | {term.group}) {what} on the same grouping factor: only the sum "
                "of their variances along the shared direction is identifiable, and how it is split between the "
                "two terms is arbitrary" + (f" (the second term's parameters are labelled '|{term.varcorr_group}')"
                                           if term.repeats_names else "")
                + "; drop the shared column from one of the terms, e.g. write (0 + x | g) for the second",
                UnidentifiableTermsWarning, stacklevel=7)


def _check_zero_columns(terms) -> None:
    """A random-effects column that is 0 in every row has a variance the likelihood does not depend on.

    ``Var(Z_i b_i) = X_i Sigma_i X_i'`` (per level) is the same for every value
    of that column's variance and correlations, so the profiled deviance is flat
    in them and any estimate is the optimizer's start (lme4 fits it and warns
    that the parameters are not uniquely determined).
    """
    for t in terms:
        zero = [c for c, col in zip(t.columns, t.design.matrix.T) if not np.any(col)]
        if zero:
            rest = [c for c in t.columns if c not in zero]
            keep = " + ".join(["0"] * ("(Intercept)" not in rest) + [c for c in rest if c != "(Intercept)"])
            advice = (f"remove it from the term, e.g. ({keep or '1'} | {t.group})" if rest
                      else "remove the term")
            raise DataError(
                f"column {zero[0]!r} of the random-effects term ({t.expr} | {t.group}) is 0 in every "
                "row, so the likelihood does not depend on its variance and correlations and they cannot be "
                f"estimated: {advice}")
