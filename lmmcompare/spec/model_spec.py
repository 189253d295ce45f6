"""The frozen model spec: everything both engines need, built once from a formula.

Notation (Bates et al. 2015): ``y = X beta + Z b + e`` with ``Z = [Z_1 ... Z_k]``,
one block per random-effects term; term ``i`` has a grouping factor with
``l_i`` levels and ``p_i`` model columns, so ``Z_i`` is ``n x l_i p_i`` with the
columns of one level adjacent (level-major), as in lme4.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property

import formulaic
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..datasets import load_dataset
from ..errors import ArgumentError, DataError, FormulaError
from .checks import (FrameColumns, check_column_values, check_columns, check_frame, check_sizes, complete_rows,
                     full_rank_columns)
from .contrasts import non_treatment, resolve_contrasts
from .inputs import (INPUT_DEFAULTS, OFFSET, WEIGHTS, apply_subset, attach_input, check_no_missing, check_weights,
                     drop_zero_weights, split_offsets)
from .design import _CONTEXT, Design, GroupingFactor, build_design, expression_values, quote_names, r_expression
from .formula import ParsedFormula, parse_formula, variables_of
from .parameters import ParameterTable
from .residual_groups import residual_factor, row_scales
from .formula_checks import check_formula_terms, check_functions, formula_error, strip_comments, transform_variables
from .random_terms import RandomTerm, random_terms
from .terms import simple_terms


@dataclass(frozen=True, eq=False)
class ModelSpec:
    """Response, fixed-effects design and random-effects terms of one model.

    Build it with :meth:`from_formula`; both engines read it and neither parses
    formulas.  It is immutable: :meth:`with_response` returns a copy with a new
    response (used by simulation, bootstrap and coverage studies).

    Attributes
    ----------
    formula : str
        The formula as written.
    response : str
        Response expression.
    y : ndarray (n,)
    X : ndarray (n, p)
        Dense fixed-effects model matrix, R's treatment contrasts.
    fixed_names : list of str
        lme4's coefficient names, in column order.
    terms : tuple of RandomTerm
        In lme4's order: decreasing number of levels (stable).
    frame : DataFrame
        The complete rows of the used columns (the model frame).
    n_dropped : int
        Rows dropped for missing values.
    dropped_fixed : tuple of str
        Aliased fixed-effect columns dropped for rank deficiency.
    predictors : tuple of str
        Columns used in the fixed part or left of a bar (not grouping-only).
    weights : ndarray (n,) or None
        Prior weights: row ``i`` has residual variance ``sigma^2 / w_i`` (:mod:`lmmcompare.spec.inputs`).
    offset : ndarray (n,) or None
        Known part of the linear predictor: the ``offset(...)`` terms plus the ``offset`` argument.
    inputs : dict
        The ``offset`` argument's values and the ``contrasts`` which, with the
        weights, rebuild this spec from ``frame`` (:attr:`build_arguments`).
    """

    formula: str
    response: str
    y: np.ndarray
    fixed: Design
    terms: tuple[RandomTerm, ...]
    frame: pd.DataFrame = field(repr=False)
    data_name: str | None = None
    n_dropped: int = 0
    dropped_fixed: tuple[str, ...] = ()
    keep_fixed: tuple[int, ...] = ()
    predictors: tuple[str, ...] = ()
    weights: np.ndarray | None = field(default=None, repr=False)
    offset: np.ndarray | None = field(default=None, repr=False)
    inputs: dict = field(default_factory=dict, repr=False)
    offset_terms: tuple[str, ...] = ()
    inputs_as_given: dict = field(default_factory=dict, repr=False)   # names and queries, for update(data=)
    sigma_by: GroupingFactor | None = None    # a residual sd per level (:mod:`.residual_groups`)
    residual_ratios: np.ndarray | None = field(default=None, repr=False)   # delta_2..delta_K at which rows are weighted

    @property
    def build_arguments(self) -> dict:
        """``formula``, ``data`` (the model frame) and the options with which
        ``ModelSpec.from_formula(**spec.build_arguments)`` rebuilds this spec."""
        return {"formula": self.formula, "data": self.frame, "weights": self.weights, **self.inputs}

    @property
    def working_offset(self) -> np.ndarray:
        """The offset, zeros when there is none."""
        return np.zeros(self.n) if self.offset is None else self.offset

    @property
    def row_weights(self) -> np.ndarray | None:
        """``w_i``: the prior weights divided by ``delta_{f(i)}^2`` of ``residual_ratios`` (None: all 1).

        Row ``i`` has residual variance ``sigma^2 / w_i``; every weighted
        computation of both engines reads these.
        """
        if self.residual_ratios is None:
            return self.weights
        w = 1.0 / row_scales(self.sigma_by, self.residual_ratios) ** 2
        return w if self.weights is None else self.weights * w

    def with_residual_ratios(self, ratios) -> "ModelSpec":
        """The spec whose rows are weighted by the residual sd ratios ``ratios`` (levels 2..K of ``sigma_by``;
        None: by the prior weights alone)."""
        new = dataclasses.replace(self, residual_ratios=None if ratios is None else np.asarray(ratios, dtype=float))
        for cached in ("Z", "parameters"):   # the design is the same: keep what was built once
            if cached in self.__dict__:
                new.__dict__[cached] = self.__dict__[cached]
        return new

    @property
    def log_weights(self) -> float:
        """``sum_i log w_i``: the weighted density's constant beyond the row-scaled one
        (:mod:`lmmcompare.spec.inputs`)."""
        w = self.row_weights
        return 0.0 if w is None else float(np.log(w).sum())

    def weighted_rows(self, M):
        """``W^{1/2} M`` for an array or sparse matrix with one row per observation (``M`` when unweighted)."""
        w = self.row_weights
        if w is None:
            return M
        root = np.sqrt(w)
        if sp.issparse(M):
            return sp.diags(root) @ M
        return M * (root if np.ndim(M) == 1 else root[:, None])

    @property
    def working_response(self) -> np.ndarray:
        """``W^{1/2} (y - offset)``: the response of the row-scaled unweighted model."""
        return self.weighted_rows(self.y if self.offset is None else self.y - self.offset)

    @property
    def X(self) -> np.ndarray:
        """Fixed-effects model matrix (n x p), aliased columns removed."""
        return self.fixed.matrix[:, list(self.keep_fixed)]

    @property
    def fixed_names(self) -> list[str]:
        """Names of the columns of :attr:`X`, as lme4 names them."""
        return [self.fixed.names[i] for i in self.keep_fixed]

    @cached_property
    def parameters(self) -> ParameterTable:
        """The parameter table (:mod:`.parameters`): every name, kind and place, built once per spec."""
        return ParameterTable.from_spec(self)

    @property
    def n(self) -> int:
        """Number of observations."""
        return self.y.shape[0]

    @property
    def p(self) -> int:
        """Number of fixed effects (columns of :attr:`X`)."""
        return len(self.keep_fixed)

    @property
    def q(self) -> int:
        """Number of random effects, the sum of ``l_i p_i`` over the terms."""
        return sum(t.q for t in self.terms)

    @property
    def n_theta(self) -> int:
        """Length of theta."""
        return sum(t.n_theta for t in self.terms)

    @property
    def phi_is_theta(self) -> bool:
        """Whether the optimizer's covariance parameters are lme4's theta: every term unstructured, no ``sigma_by``."""
        return self.sigma_by is None and all(t.structure.unstructured for t in self.terms)

    @property
    def theta_lower(self) -> np.ndarray:
        """Lower bounds of theta for all terms: 0 on the diagonals of the T_i, -inf elsewhere."""
        return np.concatenate([t.theta_lower for t in self.terms])

    @property
    def factors(self) -> dict[str, GroupingFactor]:
        """Distinct grouping factors by name, in term order."""
        out = {}
        for t in self.terms:
            out.setdefault(t.group, t.factor)
        return out

    @cached_property
    def Z(self) -> sp.csc_matrix:
        """The full sparse ``n x q`` random-effects model matrix, built once per spec.

        Cached (``functools.cached_property`` stores it in the instance ``__dict__``,
        which a frozen dataclass allows): shared, so treat it as read-only.
        """
        return sp.hstack([t.Z for t in self.terms], format="csc")

    def with_response(self, y) -> "ModelSpec":
        """A copy of this spec with response ``y`` (same design)."""
        y = np.asarray(y, dtype=float)
        if y.shape != self.y.shape:
            raise DataError(f"new response has shape {y.shape}, the spec has {self.y.shape}")
        return dataclasses.replace(self, y=y)

    @classmethod
    def from_formula(cls, formula: str, data, weights=None, offset=None, contrasts=None, subset=None,
                     na_action: str = "omit", sigma_by=None) -> "ModelSpec":
        """Parse an lme4 formula and build the design once.

        Parameters
        ----------
        formula : str
            lme4 syntax: ``"Reaction ~ Days + (Days | Subject)"``; supports
            ``(1|g)``, ``(x|g)``, ``(0 + x|g)``, ``(x||g)``, ``(1|a/b)``,
            ``(1|a:b)``, several and crossed terms, ``I(...)``, ``a*b``.
        data : DataFrame or str
            The data, or the name of a shipped dataset.
        weights : str or array, optional
            Prior weights (a column or one value per row of ``data``): the
            residual variance of row i is ``sigma^2 / w_i``, as lme4's.  Rows of
            weight 0 are dropped with a warning.
        offset : str or array, optional
            Added to the linear predictor, as ``offset(col)`` terms of the
            formula (both may be given; they add up).
        contrasts : dict, optional
            Coding of the fixed part's factors: ``{"recipe": "sum"}``, one of
            ``"treatment"``, ``"sum"``, ``"helmert"``, ``"poly"`` or a numeric
            matrix (levels x columns); others follow
            :func:`lmmcompare.set_default_contrasts` (:mod:`lmmcompare.spec.contrasts`).
        subset : array of bool or str, optional
            The rows to use: a mask over ``data`` or a ``DataFrame.query`` string.
        na_action : {"omit", "fail"}
            Drop rows with missing values in the model's columns (with a
            warning that counts them), or raise a DataError naming the columns.
        sigma_by : str, optional
            A factor column: one residual sd per level (:mod:`.residual_groups`).

        Returns
        -------
        ModelSpec

        Raises
        ------
        FormulaError, DataError
        """
        data_name = data if isinstance(data, str) else None
        if isinstance(data, str):

            data = load_dataset(data)
        check_frame(data)
        data = apply_subset(data, subset)
        data, weights_column = attach_input(data, weights, "weights", WEIGHTS)
        data, offset_column = attach_input(data, offset, "offset", OFFSET)
        if weights_column:
            check_weights(data[WEIGHTS].to_numpy(), weights if isinstance(weights, str) else "the weights array")
        formula = strip_comments(formula)
        parsed = parse_formula(formula)
        fixed_expr, offset_exprs = split_offsets(parsed.fixed)
        parsed = dataclasses.replace(parsed, fixed=fixed_expr)
        if not parsed.bars:
            raise FormulaError(
                f"formula {formula!r} has no random-effects term such as '(1 | group)'; "
                "for a model without random effects use ordinary least squares "
                "(e.g. statsmodels.formula.api.ols or numpy.linalg.lstsq)"
            )
        used, predictors = _used_columns(parsed, data)
        names = {c for c in data.columns if isinstance(c, str)}
        offset_vars = set().union(*(_required(f"I({e})", "offset(...)", names) for e in offset_exprs))
        check_columns(offset_vars, data, "offset(...)")
        used = [c for c in map(str, data.columns) if c in set(used) | offset_vars]
        predictors = predictors | offset_vars
        hidden = [c for c in (weights_column, offset_column) if c]
        if sigma_by is not None:
            residual_factor(sigma_by, data)   # names the argument before anything else is checked
            used = used + [sigma_by] * (sigma_by not in used)
        check_no_missing(data, used + hidden, na_action)
        frame, n_dropped, columns = complete_rows(data, used + hidden)
        if weights_column:
            frame, n_zero = drop_zero_weights(frame)
            n_dropped += n_zero
            columns = FrameColumns(frame) if n_zero else columns
        w = frame.pop(WEIGHTS).to_numpy() if weights_column else None
        offset_argument = frame.pop(OFFSET).to_numpy() if offset_column else None
        o = offset_argument
        check_column_values(columns, used, predictors)
        y = expression_values(parsed.response, columns)
        for expr in offset_exprs:
            o = (0.0 if o is None else o) + expression_values(expr, columns, "offset(...)")
        codings = resolve_contrasts(contrasts, parsed.fixed, columns)
        fixed = build_design(parsed.fixed, columns, "the fixed-effects model matrix", non_treatment(codings))
        keep, dropped = full_rank_columns(fixed)
        terms = random_terms(parsed, columns)
        inputs = {"offset": offset_argument, "contrasts": codings or None, "sigma_by": sigma_by}
        spec = cls(formula=formula, response=parsed.response, y=y, fixed=fixed, terms=terms,
                   frame=frame, data_name=data_name, n_dropped=n_dropped,
                   dropped_fixed=dropped, keep_fixed=keep,
                   predictors=tuple(c for c in frame.columns if c in predictors),
                   weights=w, offset=o, inputs=inputs, offset_terms=tuple(offset_exprs),
                   sigma_by=None if sigma_by is None else residual_factor(sigma_by, frame),
                   inputs_as_given={k: (v if v is None or isinstance(v, str) else "array") for k, v in
                                    (("weights", weights), ("offset", offset), ("subset", subset),
                                     ("na_action", na_action))})
        check_sizes(spec)
        return spec

    def __repr__(self):
        lines = [f"ModelSpec: {self.formula}",
                 f"  {self.n} observations of {self.response!r}"
                 + (f" ({self.n_dropped} rows with missing values dropped)" if self.n_dropped else ""),
                 f"  fixed effects (p = {self.p}): {', '.join(self.fixed_names) or 'none'}"]
        if self.dropped_fixed:
            lines.append(f"  dropped as aliased: {', '.join(self.dropped_fixed)}")
        lines.append(f"  random effects (q = {self.q}):")
        lines.extend(f"    {t!r}" for t in self.terms)
        return "\n".join(lines)


def _required(expr: str, where: str, columns: set[str]) -> set[str]:
    simple = simple_terms(expr)
    if simple is not None:
        return {v for term in simple[1] for v in term}
    check_formula_terms(expr, where, columns)
    quoted = quote_names(expr)
    try:
        parsed = formulaic.Formula(r_expression(quoted))
        found = parsed.required_variables
        names = ({str(v) for v in found} | transform_variables(parsed, _CONTEXT)) - set(_CONTEXT)
    except Exception as exc:
        raise formula_error(f"cannot parse {where}", expr, exc, columns) from exc
    check_functions(found, columns, where, expr, known=_CONTEXT)
    # formulaic reports a backquoted `a.b` as the variable 'a': name the dotted column instead
    dotted = {v for v in variables_of(quoted) if "." in v}
    out = set()
    for v in names:
        longer = {d for d in dotted if d.startswith(v + ".")} if v not in columns else set()
        out |= longer or {v}
    return out


def _used_columns(parsed: ParsedFormula, data: pd.DataFrame) -> tuple[list[str], set[str]]:
    """Columns the model uses (in the frame's order) and those used as predictors (not groups)."""
    columns = {c for c in data.columns if isinstance(c, str)}
    resp = variables_of(parsed.response)
    resp_cols = {v for v in resp if v in columns}
    if not resp_cols:
        check_columns(resp - set(_CONTEXT), data, "the response")
    needed = {"fixed part": _required(parsed.fixed, "the fixed part", columns)}
    predictors = set(needed["fixed part"])
    for bar in parsed.bars:
        in_term = _required(bar.expr, "random term", columns)
        predictors |= in_term
        needed[f"random term {bar.text}"] = in_term | set(bar.group)
    labels = {str(c): c for c in data.columns if not isinstance(c, str)}
    for where, names in {"the response": resp, **needed}.items():
        for name in sorted(set(names) & set(labels) - columns):
            raise DataError(
                f"column {labels[name]!r} of data (named {name!r} in {where}) has a label of type "
                f"{type(labels[name]).__name__}, not str; a formula names columns by text, as R's data frames do: "
                "give the data string labels, e.g. data.rename(columns=str)")
    for where, names in needed.items():
        check_columns(names, data, where)
    used = resp_cols.union(*needed.values())
    repeated = [] if data.columns.is_unique else sorted({str(c) for c in data.columns[data.columns.duplicated()]} & used)
    if repeated:
        raise DataError(f"column {repeated[0]!r} appears more than once in data; rename or drop the duplicates")
    return [str(c) for c in data.columns if str(c) in used], predictors


def as_spec(formula, data=None, **inputs) -> ModelSpec:
    """A ModelSpec from a spec, or from a formula, data and the inputs of :meth:`ModelSpec.from_formula`."""
    if isinstance(formula, ModelSpec):
        if data is not None:
            raise ArgumentError("pass either a ModelSpec or a formula with data, not a spec with data")
        given = [k for k, v in inputs.items() if not (v is None or (isinstance(v, str) and v == INPUT_DEFAULTS[k]))]
        if given:
            raise ArgumentError(f"{given[0]} is part of the spec: pass it to ModelSpec.from_formula, or pass the "
                                "formula and data here instead of a spec")
        return formula
    if data is None:
        raise ArgumentError("data is required with a formula: a DataFrame or a shipped dataset name")
    return ModelSpec.from_formula(formula, data, **inputs)
