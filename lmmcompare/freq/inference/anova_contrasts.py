"""Contrast matrices of the type I, II and III F-tests of each fixed-effect term.

These are the hypotheses of lmerTest's ``anova(fit, type = ...)`` (lmerTest
3.1-3, ``R/anova_contrasts.R``: ``get_contrasts_type1``,
``get_contrasts_type2_unfolded``, ``get_contrasts_type3``), re-derived here.
Every matrix has one column per kept fixed effect (``spec.fixed_names``).

Type I (sequential): with ``X'X = L D L'`` (Doolittle, no pivoting), the
rows of ``L'`` that belong to a term test it adjusted for the terms before it
and ignoring those after it (Goodnight 1980).

Type II: a term contained in no other term is tested by its own coefficients
(lmerTest's "marginal" rows).  Otherwise the columns of the term and of the
terms that contain it are moved last, ``X_new = [others, term, containing]``,
and the term's rows of ``L'`` from the Doolittle factor of ``X_new' X_new``
are used: the term adjusted for everything that does not contain it.

Type III (SAS, Goodnight 1980): let ``R`` be the rank-deficient design with
full indicator coding, ``[1, R_1, ..., R_k]`` with ``R_t`` the model matrix of
``~ 0 + term_t``, and ``G = (X^+ R)'`` (one row per column of ``R``, one
column per coefficient; column ``j`` is coefficient ``j`` written as a
function of the over-parameterised effects).  Going through the terms from
highest order down, the columns of a term are replaced by their residuals after
least squares on the columns of the terms that contain it.  A term ``A``
contains ``B`` when ``B``'s variables are a proper subset of ``A``'s and both
have the same numeric variables.  The orthogonalised columns, written back in
the coefficients (``K`` with ``G_final = G K``), give the term's rows.  As in
lmerTest, a variable counts in a term only where R's ``terms`` codes it by
contrasts (so in ``a + a:b`` the term ``a`` is contained in nothing).  For
formulas that respect marginality the hypotheses do not depend on the
contrast coding of the factors; they do depend on the origin of numeric
covariates, as in SAS and lmerTest.  lmerTest
computes ``K`` by picking the rows of ``G`` whose columns of ``R`` equal
treatment-coded columns of ``X``; carrying ``K`` along gives the same matrix
for treatment coding and a basis of the same hypothesis otherwise.

References
----------
Goodnight, J. H. (1980). Tests of hypotheses in fixed-effects linear models.
Communications in Statistics - Theory and Methods 9(2), 167-180.
Kuznetsova, A., Brockhoff, P. B. and Christensen, R. H. B. (2017). lmerTest
package: tests in linear mixed effects models. J. Stat. Softw. 82(13).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import formulaic
import numpy as np
import pandas as pd

from ...arguments import shown
from ...errors import ArgumentError, LmmWarning
from ...spec.design import _CONTEXT, quote_names, r_expression

ANOVA_TYPES = ("III", "II", "I")
_TYPE_ALIASES = {"3": "III", "2": "II", "1": "I", 3: "III", 2: "II", 1: "I"}


class MissingCellsWarning(LmmWarning):
    """Some combinations of factor levels of a term have no observations (type III)."""


@dataclass(frozen=True)
class ModelTerm:
    """A fixed-effect term: label, kept columns of ``X``, its variables (``factor_exprs``).

    ``variables`` are those R's ``attr(terms, "factors")`` codes 1 in the term
    (coded by contrasts: the term without the variable is empty or inside an
    earlier term); a variable coded 2 (all its levels, as in ``a + a:b`` for
    ``a``) does not count for containment in lmerTest.  ``numerics`` are the
    numeric ones among ``variables``.
    """

    label: str
    columns: tuple[int, ...]
    variables: frozenset
    numerics: frozenset
    factor_exprs: tuple[str, ...]

    @property
    def order(self) -> int:
        return len(self.factor_exprs)


def check_type(value) -> str:
    """``"III"``, ``"II"`` or ``"I"`` (also ``3, 2, 1`` and ``"3", "2", "1"``, as lmerTest)."""
    if not isinstance(value, bool) and isinstance(value, (int, np.integer, str)):
        key = int(value) if isinstance(value, (int, np.integer)) else value
        if key in _TYPE_ALIASES:
            return _TYPE_ALIASES[key]
        if key in ANOVA_TYPES:
            return key
    raise ArgumentError(f"type must be one of III, II, I (or 3, 2, 1), got {shown(value)}")


def model_terms(spec) -> tuple[bool, list[ModelTerm]]:
    """``(has_intercept, terms)``: the non-intercept terms in formula order, kept columns only."""
    kept = {c: i for i, c in enumerate(spec.keep_fixed)}
    fixed = spec.fixed
    intercept, terms, earlier = False, [], []
    for (label, cols), exprs in zip(fixed.term_columns, fixed.term_variables):
        if label == "1":
            intercept = True
            continue
        numerics = frozenset(exprs) - fixed.categorical
        every = frozenset(exprs)
        coded = frozenset(v for v in exprs if not every - {v} or any(every - {v} <= e for e in earlier))
        earlier.append(every)
        terms.append(ModelTerm(label, tuple(kept[c] for c in cols if c in kept), coded, numerics & coded, exprs))
    return intercept, terms


def containment(terms: list[ModelTerm]) -> dict[str, list[str]]:
    """For each term, the labels of the terms that contain it (lmerTest's ``containment``)."""
    def contains(big, small):
        return small.variables < big.variables and small.numerics == big.numerics

    return {t.label: [u.label for u in terms if contains(u, t)] for t in terms}


def doolittle(A: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Unit lower-triangular ``L`` of ``A = L U`` without pivoting (lmerTest's ``doolittle``).

    A pivot below ``eps`` in absolute value gives a zero column of ``L``, and
    entries below ``eps`` are set to zero, as lmerTest does.
    """
    n = A.shape[0]
    L, U = np.eye(n), np.zeros((n, n))
    for i in range(n):
        U[i] = A[i] - L[i, :i] @ U[:i]
        if i + 1 < n:
            col = A[i + 1:, i] - L[i + 1:, :i] @ U[:i, i]
            L[i + 1:, i] = 0.0 if abs(U[i, i]) < eps else col / U[i, i]
    L[np.abs(L) < eps] = 0.0
    return L


def _zapsmall(x: np.ndarray, rtol: float = 1e-7) -> np.ndarray:
    """Set entries below ``rtol`` times the largest to zero.

    lmerTest uses R's ``zapsmall`` (rounding to 7 significant digits); rounding
    the other entries too would only perturb the hypotheses at the 1e-7 level
    and break their exact invariance to the contrast coding, so they are kept.
    """
    mx = np.max(np.abs(x)) if x.size else 0.0
    return np.where(np.abs(x) < rtol * mx, 0.0, x) if mx > 0 else x


def _residual_fit(A: np.ndarray, B: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Least-squares coefficients of ``B`` on ``A`` (minimum norm; rank tolerance as ``lm.fit``)."""
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    keep = s > tol * (s[0] if s.size else 0.0)
    return Vt[keep].T @ ((U[:, keep].T @ B) / s[keep, None])


def type1_contrasts(X: np.ndarray, terms: list[ModelTerm]) -> dict[str, np.ndarray]:
    """Sequential (type I) hypotheses: the term's rows of ``L'`` from ``X'X = L D L'``."""
    p = X.shape[1]
    Lt = np.ones((1, 1)) if p == 1 else doolittle(X.T @ X).T
    return {t.label: Lt[list(t.columns)] for t in terms}


def type2_contrasts(X: np.ndarray, terms: list[ModelTerm], contained: dict) -> dict[str, np.ndarray]:
    """Type II hypotheses: each term adjusted for all terms that do not contain it."""
    p = X.shape[1]
    by_label = {t.label: t for t in terms}
    out = {}
    for t in terms:
        if not contained[t.label]:
            out[t.label] = np.eye(p)[list(t.columns)]
            continue
        last = list(t.columns) + [c for u in contained[t.label] for c in by_label[u].columns]
        order = [c for c in range(p) if c not in last] + last
        Lt = doolittle(X[:, order].T @ X[:, order]).T
        rows = Lt[[order.index(c) for c in t.columns]]
        back = np.empty(p, dtype=int)
        back[order] = np.arange(p)
        out[t.label] = rows[:, back]
    return out


def full_indicator_design(spec, intercept: bool, terms: list[ModelTerm]) -> list[np.ndarray]:
    """``[1?, R_1, ..., R_k]``: each term's ``~ 0 + term`` model matrix (all levels of its factors)."""
    frame = spec.frame.copy()
    for c in frame.columns:
        if isinstance(frame[c].dtype, pd.CategoricalDtype):
            frame[c] = frame[c].cat.remove_unused_categories()
    blocks = [np.ones((spec.n, 1))] if intercept else []
    for t in terms:
        if spec.fixed.direct and not set(t.factor_exprs) & spec.fixed.categorical:  # numeric columns
            blocks.append(np.prod([frame[v].to_numpy(dtype=float) for v in t.factor_exprs], axis=0)[:, None])
            continue
        expr = "0 + " + ":".join(t.factor_exprs)
        try:
            mm = formulaic.model_matrix(r_expression(quote_names(expr)), frame, na_action="raise", context=_CONTEXT)
        except Exception as exc:  # formulaic raises many types; the user needs one message
            raise ArgumentError(f"type III contrasts: cannot build the indicator design of term {t.label!r} "
                                f"({exc}); use type='II' or type='I'") from exc
        block = np.asarray(mm.to_numpy(), dtype=float)
        empty = [str(c) for c, col in zip(mm.columns, block.T) if not np.any(col)]
        if empty:
            warnings.warn(f"missing cells for: {', '.join(empty)}; interpret type III hypotheses with care "
                          "(lmerTest's message)", MissingCellsWarning, stacklevel=6)
        blocks.append(block)
    return blocks


def type3_contrasts(spec, X: np.ndarray, intercept: bool, terms: list[ModelTerm],
                    contained: dict) -> dict[str, np.ndarray]:
    """SAS type III hypotheses (Goodnight 1980), as lmerTest's ``get_contrasts_type3``."""
    R = np.hstack(full_indicator_design(spec, intercept, terms))
    G = _zapsmall((np.linalg.pinv(X) @ R).T)  # m x p: coefficients as functions of the indicator effects
    if np.linalg.matrix_rank(G) < X.shape[1]:
        raise ArgumentError("type III contrasts: the fixed-effect columns are not spanned by the terms' "
                            "indicator designs (an unusual coding); use type='II' or type='I'")
    K = np.eye(X.shape[1])  # G (current) = G (initial) @ K
    for t in sorted(terms, key=lambda u: -u.order):  # stable: containing terms come first
        cols = list(t.columns)
        by = [c for u in contained[t.label] for c in next(v for v in terms if v.label == u).columns]
        if not cols or not by:
            continue
        B = _residual_fit(G[:, by], G[:, cols])
        G[:, cols] = _zapsmall(G[:, cols] - G[:, by] @ B)
        K[:, cols] = _zapsmall(K[:, cols] - K[:, by] @ B)
    return {t.label: K[:, list(t.columns)].T for t in terms}


def anova_contrasts(spec, type: str = "III") -> dict[str, np.ndarray]:
    """Contrast matrix (rows x p) of each fixed-effect term, in formula order.

    Parameters
    ----------
    spec : ModelSpec
        Its fixed-effect terms, kept columns (``keep_fixed``) and model frame.
    type : {"III", "II", "I"}
        lmerTest's ``anova`` types; ``3, 2, 1`` are accepted too.

    Returns
    -------
    dict
        ``{term label: L}``, ``L`` with one column per kept fixed effect; rows
        that are (numerically) zero are removed, so a fully aliased term has
        none.  With at most one column or one term every type is type I, as in
        lmerTest.

    Raises
    ------
    ArgumentError
        Unknown ``type``, or a term whose indicator design cannot be built.
    """
    type = check_type(type)
    X = spec.X
    intercept, terms = model_terms(spec)
    if X.shape[1] == 0 or not terms:
        return {}
    if X.shape[1] <= 1 or len(terms) <= 1 or type == "I":
        out = type1_contrasts(X, terms)
    elif type == "II":
        out = type2_contrasts(X, terms, containment(terms))
    else:
        out = type3_contrasts(spec, X, intercept, terms, containment(terms))
    return {label: L[np.sum(np.abs(L), axis=1) > 1e-8] for label, L in out.items()}
