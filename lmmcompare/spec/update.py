"""R's ``update``: a model like a fitted one, with some of its arguments changed.

:func:`update_formula` is R's ``update.formula`` for lme4 formulas: ``.`` on
the left stands for the old response, on the right for the old terms, and
``- term`` removes a term (``. ~ . - Days`` on ``Reaction ~ Days + (Days |
Subject)`` gives ``Reaction ~ (Days | Subject)``).  :func:`updated_inputs`
gives the arguments of :meth:`~lmmcompare.ModelSpec.from_formula` for the new
model: the old data and inputs unless changed.
"""
from __future__ import annotations

import re

from ..errors import ArgumentError, FormulaError
from .contrasts import bare_factors
from .formula import _split_top, parse_formula
from .inputs import INPUT_DEFAULTS, split_offsets

_DOT = re.compile(r"(?<![\w.`])\.(?![\w.`])")
INPUTS = tuple(INPUT_DEFAULTS)


def _signed_terms(rhs: str) -> list[tuple[str, str]]:
    """``"a + b - c"`` -> ``[("+", "a"), ("+", "b"), ("-", "c")]``: top-level terms (outside parentheses)."""
    out, depth, sign, start, quoted = [], 0, "+", 0, False
    for i, ch in enumerate(rhs + "+"):
        quoted ^= ch == "`"
        if quoted:
            continue
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and ch in "+-":
            term = rhs[start:i].strip()
            if term:
                out.append((sign, term))
            sign, start = ch, i + 1
    return out


def _key(term: str) -> str:
    return re.sub(r"\s+", "", term)


def update_formula(old: str, new: str) -> str:
    """R's ``update.formula``: ``.`` is the old side; ``- term`` removes a term, ``+ term`` adds one."""
    if "~" not in new:
        raise FormulaError(f"update formula {new!r} has no '~': write e.g. '. ~ . - Days'")
    old_lhs, old_rhs = (s.strip() for s in _split_top(old, "~"))
    parts = _split_top(new, "~")
    if len(parts) != 2:
        raise FormulaError(f"update formula {new!r} must have one '~'")
    lhs = _DOT.sub(lambda m: old_lhs, parts[0].strip()) or old_lhs
    terms: list[tuple[str, str]] = []
    for sign, term in _signed_terms(parts[1]):
        expanded = _signed_terms(old_rhs) if term == "." else [(sign, term)]
        if term == "." and sign == "-":
            raise FormulaError(f"update formula {new!r}: '- .' would remove every term; write the new terms instead")
        for s, t in expanded:
            present = [k for k, (s0, t0) in enumerate(terms) if s0 == "+" and _key(t0) == _key(t)]
            if s == "-" and present:
                del terms[present[0]]
            elif not (s == "+" and present):
                terms.append((s, t))
    rhs = " ".join(t if k == 0 and s == "+" else f"{s} {t}" for k, (s, t) in enumerate(terms)) if terms else "1"
    return f"{lhs} ~ {rhs}"


def updated_inputs(spec, formula=None, data=None, changes=None) -> tuple[dict, dict]:
    """The arguments of :meth:`~lmmcompare.ModelSpec.from_formula` for the model ``spec`` with
    ``changes``, and the changes that are not the spec's (for the engine).

    Without new ``data`` the model frame is reused (with the weights and
    offsets aligned to it); with it, inputs given as column names or query
    strings are applied again, and ones given as arrays must be given anew.
    """
    changes = dict(changes or {})
    new_formula = spec.formula if formula is None else update_formula(spec.formula, formula)
    out = {"formula": new_formula}
    if data is None:
        out["data"] = spec.frame
        out.update({k: v for k, v in spec.build_arguments.items() if k in INPUTS})
    else:
        out["data"] = data
        for name in ("weights", "offset", "subset"):
            given = spec.inputs_as_given.get(name)   # a column name or query, "array", or None
            if isinstance(given, str) and given != "array":
                out[name] = given
            elif given is not None and name not in changes:
                raise ArgumentError(f"the fit's {name} was an array for its own rows: pass {name}= for the new data "
                                    f"(or {name}=None for none)")
        out["contrasts"] = spec.inputs.get("contrasts")
        out["na_action"] = spec.inputs_as_given.get("na_action", "omit")
    explicit_contrasts = "contrasts" in changes
    out.update({k: changes.pop(k) for k in INPUTS if k in changes})
    if out.get("contrasts") and not explicit_contrasts:
        fixed = split_offsets(parse_formula(new_formula).fixed)[0]
        present = set(bare_factors(fixed))
        out["contrasts"] = {k: v for k, v in out["contrasts"].items() if k in present} or None
    return out, changes
