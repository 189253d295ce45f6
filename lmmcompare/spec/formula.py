"""Parse lme4's formula syntax into a fixed part and random-effects terms.

The parser is purely textual: it splits ``y ~ fixed + (expr | g) + ...`` into
the response expression, the fixed-effects expression (handed to formulaic)
and the bars ``(expr | g)`` / ``(expr || g)``.  Grouping expressions are
expanded as lme4's ``findbars`` does: ``a/b`` gives the groupings ``a`` and
``b:a``; ``a:b`` is one grouping factor (the interaction).
"""
from __future__ import annotations

import functools

import re
import warnings
from dataclasses import dataclass

from ..errors import DuplicateTermWarning, FormulaError
from .structures import KINDS, Structure

_IDENT = re.compile(r"`[^`]+`|[A-Za-z_.][A-Za-z0-9_.]*")


@dataclass(frozen=True)
class Bar:
    """One ``(expr | group)`` term as written.

    Attributes
    ----------
    expr : str
        Left of the bar: the model formula of the term's columns.
    group : tuple of str
        Column names whose interaction is the grouping factor.
    double : bool
        Written with ``||`` (uncorrelated terms).
    text : str
        The term as the user wrote it (for messages).
    structure : Structure
        The covariance structure: ``us`` for ``(x | g)``, else as written,
        ``cs(x | g, hom=True)`` (:mod:`lmmcompare.spec.structures`).
    """

    expr: str
    group: tuple[str, ...]
    double: bool
    text: str
    structure: Structure = Structure()


@dataclass(frozen=True)
class ParsedFormula:
    """The pieces of an lme4 formula."""

    response: str
    fixed: str
    bars: tuple[Bar, ...]


def _strip_ticks(name: str) -> str:
    return name[1:-1] if name.startswith("`") and name.endswith("`") else name


def _check_parens(text: str, formula: str) -> None:
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            raise FormulaError(f"unbalanced parentheses in formula {formula!r}: a ')' has no matching '('")
    if depth:
        raise FormulaError(f"unbalanced parentheses in formula {formula!r}: {depth} '(' not closed")


def _split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` where it is outside parentheses and backquotes."""
    parts, depth, start, i, quoted = [], 0, 0, 0, False
    while i < len(text):
        ch = text[i]
        if ch == "`":
            quoted = not quoted
        elif not quoted:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif depth == 0 and text.startswith(sep, i):
                parts.append(text[start:i])
                i += len(sep)
                start = i
                continue
        i += 1
    parts.append(text[start:])
    return parts


def _outer_group(piece: str) -> str | None:
    """Inner text if ``piece`` is exactly one parenthesised group, else None."""
    piece = piece.strip()
    if not (piece.startswith("(") and piece.endswith(")")):
        return None
    depth = 0
    for i, ch in enumerate(piece):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(piece) - 1:
            return None
    return piece[1:-1]


def _has_top_bar(text: str) -> bool:
    return len(_split_top(text, "|")) > 1


def _contains_bar_group(text: str) -> bool:
    """Whether a parenthesised group somewhere in ``text`` holds a top-level bar."""
    for match in re.finditer(r"\(", text):
        depth, start = 0, match.start()
        for j in range(start, len(text)):
            depth += text[j] == "("
            depth -= text[j] == ")"
            if depth == 0:
                if _has_top_bar(text[start + 1 : j]):
                    return True
                break
    return False


def _parse_group(text: str, term: str) -> list[tuple[str, ...]]:
    """Expand a grouping expression: ``a/b`` -> [(a,), (b, a)] as lme4 names them."""
    text = text.strip()
    if not text:
        raise FormulaError(f"random-effects term {term!r} has no grouping factor after '|'")
    nested = [p.strip() for p in _split_top(text, "/")]
    groups: list[tuple[str, ...]] = []
    outer: tuple[str, ...] = ()
    for part in nested:
        raw = [f.strip() for f in _split_top(part, ":")]
        for f in raw:
            if not _IDENT.fullmatch(f):
                raise FormulaError(
                    f"grouping factor {f!r} in random-effects term {term!r} must be a column name "
                    "(or an interaction a:b, or nesting a/b, of column names; backquote odd names)"
                )
        factors = tuple(_strip_ticks(f) for f in raw)
        # lme4 names the inner factor first: batch/cask -> cask:batch
        outer = factors + outer if outer else factors
        groups.append(outer)
    return groups


def parse_formula(formula: str) -> ParsedFormula:
    """Split an lme4 formula into response, fixed part and bars (``_parse``, cached: a refit or a
    benchmark parses the same string again, and the result is immutable).

    Parameters
    ----------
    formula : str
        e.g. ``"Reaction ~ Days + (Days | Subject)"``.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    FormulaError
        Malformed formula: no ``~``, empty response, unbalanced parentheses,
        ``|`` outside parentheses, a random term not added with ``+``.
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string such as 'y ~ x + (1 | g)', got {type(formula).__name__}")
    return _parse(formula)


@functools.lru_cache(maxsize=256)
def _parse(formula: str) -> ParsedFormula:
    """:func:`parse_formula` of a string (errors are raised, never cached)."""
    _check_parens(formula, formula)
    sides = _split_top(formula, "~")
    if len(sides) != 2:
        raise FormulaError(
            f"formula {formula!r} must have exactly one '~' separating the response from the predictors"
        )
    response, rhs = sides[0].strip(), sides[1].strip()
    if not response:
        raise FormulaError(f"formula {formula!r} has no response on the left of '~'")
    if not rhs:
        raise FormulaError(f"formula {formula!r} has nothing on the right of '~'")
    fixed_pieces, bars = [], []
    for piece in _split_top(rhs, "+"):
        piece = piece.strip()
        if not piece:
            raise FormulaError(f"formula {formula!r} has an empty term (two '+' in a row or a trailing '+')")
        inner = _outer_group(piece)
        structured = _structured_group(piece)
        if structured is not None:
            bars.extend(_parse_bar(structured[0], piece, structured[1]))
        elif inner is not None and _has_top_bar(inner):
            bars.extend(_parse_bar(inner, piece))
        elif _contains_bar_group(piece):
            raise FormulaError(
                f"random-effects term in {piece!r} must be added to the formula with '+', "
                "as in 'y ~ x + (1 | g)'"
            )
        elif "|" in piece:
            raise FormulaError(
                f"'|' outside parentheses in {piece!r}: write random-effects terms as '(expr | group)'"
            )
        else:
            fixed_pieces.append(piece)
    if fixed_pieces:  # R's reading of %in% and of the order of a product's variables
        fixed_pieces = [p.strip() for p in _split_top(r_term_order(" + ".join(fixed_pieces)), "+")]
    fixed_pieces = _unique_pieces(fixed_pieces)
    fixed = " + ".join(fixed_pieces) if fixed_pieces else "1"
    for where, expr in [("the fixed part", fixed), *((f"random term {b.text}", b.expr) for b in bars)]:
        if "`1`" in _atoms(expr):
            raise FormulaError(
                f"the column named 1 (written `1`) in {where} cannot be used: formulaic, which builds the model "
                "matrix, reads it as the intercept; rename the column, e.g. data.rename(columns={'1': 'x1'})")
    return ParsedFormula(response=response, fixed=fixed, bars=tuple(bars))


def _unique_pieces(pieces: list[str]) -> list[str]:
    """Drop repeated fixed-effect terms (``x + x``), with a warning naming them."""
    seen, out, repeated = set(), [], []
    for piece in pieces:
        key = re.sub(r"\s+", "", piece)
        if key in seen:
            repeated.append(piece)
            continue
        seen.add(key)
        out.append(piece)
    if repeated:
        warnings.warn(f"fixed-effect term(s) {', '.join(map(repr, repeated))} written more than once; "
                      "each is used once", DuplicateTermWarning, stacklevel=4)
    return out


_STRUCTURED = re.compile(r"(%s)\s*\(" % "|".join(KINDS))
_TRUE, _FALSE = ("True", "TRUE", "T", "true", "1"), ("False", "FALSE", "F", "false", "0")


def _structured_group(piece: str) -> tuple[str, Structure] | None:
    """``(inner, structure)`` when ``piece`` is ``kind(expr | g[, hom=...])`` with a bar inside, else None."""
    match = _STRUCTURED.match(piece)
    if match is None:
        return None
    body = _outer_group(piece[match.end() - 1 :])
    if body is None or not _has_top_bar(body):
        return None
    kind, parts = match.group(1), [p.strip() for p in _split_top(body, ",")]
    hom = False
    for option in parts[1:]:
        name, _, value = (x.strip() for x in option.partition("="))
        if name != "hom" or value not in _TRUE + _FALSE:
            raise FormulaError(f"random-effects term {piece!r}: the only option of {kind}() is hom=True or "
                               f"hom=False, got {option!r}")
        hom = value in _TRUE
    if hom and kind not in ("diag", "cs"):
        raise FormulaError(f"random-effects term {piece!r}: hom= applies to diag() and cs() only "
                           f"({'ar1 always has one variance' if kind == 'ar1' else 'us has no common variance'})")
    if len(_split_top(parts[0], "||")) > 1:
        raise FormulaError(f"random-effects term {piece!r}: write {kind}(x | g) with one '|'; "
                           "the structure says how the columns are correlated, which '||' would also say")
    return parts[0], Structure(kind, hom)


def _parse_bar(inner: str, piece: str, structure: Structure = Structure()) -> list[Bar]:
    double = len(_split_top(inner, "||")) > 1
    parts = _split_top(inner, "||") if double else _split_top(inner, "|")
    if len(parts) != 2:
        raise FormulaError(f"random-effects term {piece!r} must have exactly one '|' (or '||')")
    expr = parts[0].strip()
    if not expr:
        raise FormulaError(f"random-effects term {piece!r} has nothing left of '|': use '(1 | g)' for an intercept")
    expr = r_term_order(expr)
    return [Bar(expr=expr, group=g, double=double, text=piece, structure=structure)
            for g in _parse_group(parts[1], piece)]


_ATOM = re.compile(r"`[^`]+`|[A-Za-z_.][A-Za-z0-9_.]*")


def _close(text: str, start: int) -> int:
    """Index of the ``)`` matching the ``(`` at ``start`` (backquoted text skipped)."""
    depth, quoted = 0, False
    for i in range(start, len(text)):
        quoted ^= text[i] == "`"
        if not quoted:
            depth += (text[i] == "(") - (text[i] == ")")
            if depth == 0:
                return i
    return len(text) - 1


def _atoms(expr: str) -> list[str]:
    """R's variables of a formula in order of appearance: names and whole calls (``log(x)``), no spaces."""
    out, i = [], 0
    while i < len(expr):
        m = _ATOM.match(expr, i)
        if not m:
            i += 1
            continue
        j = _close(expr, m.end()) + 1 if expr.startswith("(", m.end()) else m.end()
        out.append(re.sub(r"\s+", "", expr[m.start():j]))
        i = j
    return out


def _in_as_colon(expr: str) -> str:
    """R's ``a %in% b``: the terms of ``a``, each with all the variables of ``b``.

    ``x %in% f`` is ``x:f``, ``(x + z) %in% f`` is ``x:f + z:f`` and
    ``x %in% (f + h)`` is ``x:f:h`` (formulaic would read ``%in%`` as nesting,
    ``f + f:x``).  ``%in%`` binds looser than ``:`` and tighter than ``*`` and
    ``/``, so writing ``:`` in its place keeps the grouping; a parenthesised
    right operand becomes the product of its variables.
    """
    out, i, quoted = [], 0, False
    while i < len(expr):
        if expr[i] == "`":
            quoted = not quoted
        if quoted or not expr.startswith("%in%", i):
            out.append(expr[i])
            i += 1
            continue
        out = ["".join(out).rstrip(), ":"]
        i += 4
        while i < len(expr) and expr[i].isspace():
            i += 1
        if expr.startswith("(", i):
            end = _close(expr, i)
            out.append(":".join(_atoms(_in_as_colon(expr[i + 1:end]))))
            i = end + 1
    return "".join(out)


def r_term_order(expr: str) -> str:
    """``%in%`` as ``:`` (:func:`_in_as_colon`), and each product term's variables in R's order.

    R names the columns of ``a:b`` by its variables in the order they first
    appear in the formula (``f + x:f`` gives ``fa:x``, the first variable varying
    fastest); formulaic keeps the order written.  A ``+``-term that is a product
    of single variables is rewritten in R's order; anything else is left alone.
    """
    expr = _in_as_colon(expr)
    order = {a: k for k, a in reversed(list(enumerate(_atoms(expr))))}
    pieces = []
    for piece in _split_top(expr, "+"):
        factors = [f.strip() for f in _split_top(piece, ":")]
        if len(factors) > 1 and all(_atoms(f) == [re.sub(r"\s+", "", f)] for f in factors):
            factors.sort(key=lambda f: order[re.sub(r"\s+", "", f)])
            piece = ":".join(factors)
        pieces.append(piece.strip())
    return " + ".join(pieces)


def variables_of(expr: str) -> set[str]:
    """Names an expression refers to (identifiers and backquoted names)."""
    return {_strip_ticks(m.group(0)) for m in _IDENT.finditer(expr)}
