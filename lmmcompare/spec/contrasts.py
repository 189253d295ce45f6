"""Contrast codings of the fixed part's factors, as lme4's ``contrasts=`` argument and R's ``options(contrasts=)``.

A factor ``f`` with ``k`` levels enters the fixed-effects model matrix through
a ``k x c`` contrast matrix ``C`` (``c = k - 1`` for the named codings): the
columns of its main effect are ``D C`` with ``D`` the ``n x k`` indicator
matrix, and interactions multiply those columns.  The codings, with R's names
for the coefficients:

* ``"treatment"``: ``C = [e_2 ... e_k]``, first level the reference (``recipeB``);
* ``"sum"``: rows ``e_j`` for ``j < k`` and ``-1`` in the last row (``recipe1``, ``recipe2``);
* ``"helmert"``: column ``j`` is ``(-1, ..., -1, j, 0, ...)`` (``sample1`` ...);
* ``"poly"``: orthonormal polynomials in the level order (``temperature.L``, ``.Q``, ``.C``, ``^4``);
* a numeric matrix (levels x columns, full column rank), numbered ``f1``, ``f2``, ...

Codings only re-parameterise the fixed effects: fitted values, the criterion
and type III tests of whole terms are unchanged (lmerTest's type III table is
invariant to them).  They are applied by writing ``C(f, <coding>)`` for each
coded factor of the fixed part and letting formulaic encode it; the names are
then mapped back to R's.  As in lme4 they apply to the fixed part only.

The package-wide default (R's ``options(contrasts = c("contr.treatment",
"contr.poly"))``) is ``DEFAULT_CONTRASTS``, changed with
:func:`set_default_contrasts`: unordered factors are treatment coded, ordered
ones (pandas ordered categoricals) polynomial, as in R.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
from formulaic.transforms.contrasts import HelmertContrasts, PolyContrasts, SumContrasts, TreatmentContrasts

from ..errors import ArgumentError
from .checks import FrameColumns, frame_columns

CODINGS = {"treatment": TreatmentContrasts, "sum": SumContrasts, "helmert": HelmertContrasts, "poly": PolyContrasts}
DEFAULT_CONTRASTS = {"unordered": "treatment", "ordered": "poly"}
_IDENT = re.compile(r"`[^`]*`|[A-Za-z_.][A-Za-z0-9_.]*")


def set_default_contrasts(unordered: str = "treatment", ordered: str = "poly") -> dict:
    """Set the codings used where ``contrasts=`` names none (R's ``options(contrasts=)``).

    Returns the previous setting, so ``set_default_contrasts(**old)`` restores it.

    >>> old = set_default_contrasts("sum")    # doctest: +SKIP
    """
    for name, value in (("unordered", unordered), ("ordered", ordered)):
        if value not in CODINGS:
            raise ArgumentError(f"set_default_contrasts({name}={value!r}): use one of {', '.join(CODINGS)}")
    old = dict(DEFAULT_CONTRASTS)
    DEFAULT_CONTRASTS.update(unordered=unordered, ordered=ordered)
    return old


def _is_factor(col: pd.Series) -> bool:
    return isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object or pd.api.types.is_string_dtype(col)


def _levels(col: pd.Series) -> list:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return list(col.cat.categories)
    return sorted(pd.unique(col.dropna()), key=str)


def bare_factors(expr: str) -> list[str]:
    """Variables that appear in ``expr`` as whole factors of terms (not inside a function call)."""
    return [name for name, _, _ in _bare_tokens(expr)]


def _bare_tokens(expr: str):
    """``(name, start, end)`` of identifiers outside function calls (``log(x)``, ``C(f, ...)``)."""
    out, i, calls = [], 0, []
    while i < len(expr):
        ch = expr[i]
        m = _IDENT.match(expr, i) if (ch == "`" or ch.isalpha() or ch in "_.") else None
        if m:
            j = m.end()
            k = j
            while k < len(expr) and expr[k].isspace():
                k += 1
            if k < len(expr) and expr[k] == "(" and not m.group(0).startswith("`"):
                calls.append(True)   # a call: nothing inside it is a bare factor
                i = k + 1
                continue
            if not any(calls):
                token = m.group(0)
                out.append((token[1:-1] if token.startswith("`") else token, m.start(), j))
            i = j
            continue
        if ch == "(":
            calls.append(False)
        elif ch == ")" and calls:
            calls.pop()
        i += 1
    return out


def _matrix(value, name: str, levels: list) -> np.ndarray:
    C = np.asarray(value, dtype=float)
    k = len(levels)
    if C.ndim != 2 or C.shape[0] != k or not 1 <= C.shape[1] <= k - 1:
        raise ArgumentError(
            f"contrasts[{name!r}] is a matrix of shape {C.shape}; factor {name!r} has {k} levels, so give "
            f"{k} rows (one per level, in the order {', '.join(map(str, levels[:6]))}"
            f"{', ...' if k > 6 else ''}) and 1 to {k - 1} columns")
    if not np.all(np.isfinite(C)) or np.linalg.matrix_rank(np.column_stack([np.ones(k), C])) < C.shape[1] + 1:
        raise ArgumentError(f"contrasts[{name!r}]: the columns of the matrix and a column of ones must be "
                            "finite and linearly independent (each column a contrast of the levels)")
    return C


def resolve_contrasts(contrasts, fixed_expr: str, frame: pd.DataFrame | FrameColumns) -> dict:
    """The coding of each factor of the fixed part: ``{name: "treatment" | "sum" | ... | ndarray}``.

    ``contrasts`` is the user's dict (or None); factors it does not name get
    ``DEFAULT_CONTRASTS`` by whether they are ordered.  Raises
    :class:`~lmmcompare.errors.ArgumentError` for an unknown coding, a matrix of the wrong shape,
    or a name that is not a factor of the fixed part.
    """
    given = {} if contrasts is None else contrasts
    if not isinstance(given, dict):
        raise ArgumentError(f"contrasts must be a dict from factor name to a coding such as {{'recipe': 'sum'}}, "
                            f"got {type(contrasts).__name__}")
    lookup = frame_columns(frame)
    frame = lookup.frame
    factors = [v for v in dict.fromkeys(bare_factors(fixed_expr)) if v in frame.columns and _is_factor(lookup[v])]
    out = {}
    for name, value in given.items():
        if name not in factors:
            where = ("a numeric column, not a factor" if name in frame.columns and name in bare_factors(fixed_expr)
                     else "not a factor of the fixed part")
            raise ArgumentError(f"contrasts names {name!r}, which is {where}; contrasts apply to the factors of "
                                f"the fixed part ({', '.join(factors) or 'none here'}); for a numeric column "
                                f"coded as numbers use data[{name!r}].astype('category')")
        if isinstance(value, str):
            coding = value.removeprefix("contr.")
            if coding not in CODINGS:
                raise ArgumentError(f"contrasts[{name!r}] = {value!r} is not a coding; use one of "
                                    f"{', '.join(CODINGS)} or a numeric matrix (levels x columns)")
            out[name] = coding
        else:
            out[name] = _matrix(value, name, _levels(lookup[name]))
    for name in factors:
        if name not in out:
            col = lookup[name]
            ordered = isinstance(col.dtype, pd.CategoricalDtype) and col.cat.ordered
            out[name] = DEFAULT_CONTRASTS["ordered" if ordered else "unordered"]
    return out


def non_treatment(codings: dict) -> dict:
    """The codings the design must apply (treatment is what it builds without any)."""
    return {k: v for k, v in codings.items() if not (isinstance(v, str) and v == "treatment")}


def coded_expression(expr: str, codings: dict) -> tuple[str, dict, dict]:
    """``expr`` with each coded factor ``f`` written ``C(f, _lc_contrast_i)``.

    Returns the new expression, the formulaic context holding the contrast
    objects, and the map from each ``C(...)`` text back to the factor's name.
    """
    context, back, names = {}, {}, {}
    for i, (name, coding) in enumerate(codings.items()):
        key = f"_lc_contrast_{i}"
        context[key] = CODINGS[coding]() if isinstance(coding, str) else coding
        quoted = name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else f"`{name}`"
        names[name] = f"C({quoted}, {key})"
        back[names[name]] = back[f"C({name}, {key})"] = name   # lme4_name drops the backquotes of syntactic names
    pieces, last = [], 0
    for name, start, end in _bare_tokens(expr):
        if name in names:
            pieces.extend([expr[last:start], names[name]])
            last = end
    pieces.append(expr[last:])
    return "".join(pieces), context, back


def r_coded_name(name: str, back: dict) -> str:
    """R's name of a coded column or term: ``C(recipe, _lc_contrast_0)1`` -> ``recipe1``."""
    for text, factor in back.items():
        name = name.replace(text, factor)
    return name
