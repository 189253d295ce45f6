"""Formula text that formulaic cannot explain: R idioms not supported, comments, its own messages.

Each function raises or returns a :class:`~lmmcompare.errors.FormulaError` that names
the term as the user wrote it and says what to write instead; formulaic's messages
are passed on without terminal colour codes and in the user's spelling
(``contr.sum``, not ``contr_sum``; ``^``, not ``**``).
"""
from __future__ import annotations

import ast
import difflib
import re

from ..errors import FormulaError

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_MARKED = re.compile("\u29db(.*?)\u29da", re.S)   # formulaic's ⧛ ⧚ around the offending token
_DOT_TERM = re.compile(r"(?<![\w.])\.(?![\w.])")
_CALL = re.compile(r"(?<![\w.])(as\.factor|factor|ordered|offset|weights)\s*\(")


def strip_comments(formula):
    """The formula without ``# comments`` (outside backquotes), as R's parser drops them."""
    if not isinstance(formula, str) or "#" not in formula:
        return formula
    lines, quoted = [], False
    for line in formula.splitlines():
        kept = []
        for ch in line:
            if ch == "`":
                quoted = not quoted
            elif ch == "#" and not quoted:
                break
            kept.append(ch)
        lines.append("".join(kept).rstrip())
    return "\n".join(line for line in lines if line.strip()).strip()


def _unquoted(expr: str) -> str:
    """``expr`` with backquoted names blanked (their text is a column name, not syntax)."""
    return re.sub(r"`[^`]*`", lambda m: "_" * len(m.group(0)), expr)


def _call_argument(text: str, start: int) -> str:
    """The text inside the parentheses opened at ``text[start - 1]``."""
    depth = 1
    for j in range(start, len(text)):
        depth += (text[j] == "(") - (text[j] == ")")
        if depth == 0:
            return text[start:j].strip()
    return text[start:].strip()


def check_formula_terms(expr: str, where: str, columns) -> None:
    """Refuse, with what to write instead, the R idioms this package does not take.

    ``.`` (all other columns), ``factor(x)`` / ``as.factor(x)`` / ``ordered(x)``,
    ``offset(x)`` and ``weights(w)``; formulaic would report them as unknown
    columns or with its own internals.
    """
    text = _unquoted(expr)
    if _DOT_TERM.search(text):
        names = sorted(map(str, columns))
        listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise FormulaError(f"'.' (all other columns) in {where} {expr!r} is not supported: list the columns "
                           f"explicitly, e.g. 'y ~ a + b + (1 | g)' (columns: {listed})")
    for match in _CALL.finditer(text):
        call, arg = match.group(1), _call_argument(expr, match.end())
        if call in ("factor", "as.factor", "ordered"):
            raise FormulaError(
                f"{call}({arg}) in {where} {expr!r} is not supported: make the column a factor in the data, "
                f"data[{arg!r}] = data[{arg!r}].astype('category'), or write C({arg}) in the formula")
        if call == "offset":
            raise FormulaError(
                f"offset({arg}) in {where} {expr!r}: an offset is a term of its own in the fixed part, "
                f"'y ~ x + offset({arg}) + (1 | g)', or the offset= argument")
        raise FormulaError(
            f"weights({arg}) in {where} {expr!r}: prior weights are the weights= argument (as lme4's), "
            f"not a formula term: lmer(formula, data, weights={arg!r})")


def plain_text(message: str) -> str:
    """A third-party message on one line: no terminal colour codes, formulaic's marked token quoted."""
    lines = []
    for line in _ANSI.sub("", message).splitlines():
        marked = _MARKED.search(line)
        if marked:  # formulaic repeats the formula with the token marked: say which token, where
            line = f"(at {marked.group(1).strip()!r} in {_MARKED.sub(lambda m: m.group(1), line).strip()!r})"
        if line.strip():
            lines.append(line.strip())
    return " ".join(lines).replace("insuffient", "insufficient")


def _user_spelling(name: str, expr: str) -> str:
    """The name as the user wrote it: formulaic reports ``contr.sum`` as ``contr_sum``."""
    for m in re.finditer(r"`[^`]+`|[A-Za-z_.][A-Za-z0-9_.]*", expr):
        word = m.group(0).strip("`")
        if word == name or re.sub(r"\W", "_", word) == name:
            return word
    return name


def formula_error(prefix: str, expr: str, exc: Exception, columns=()) -> FormulaError:
    """The :class:`FormulaError` for formulaic's ``exc`` on ``expr``, in the user's spelling."""
    text = plain_text(str(exc))
    if "^" in expr and "**" not in expr:  # R's ^ was handed to formulaic as **
        text = text.replace("**", "^")
    missing = re.search(r"name '([^']+)' is not defined", text)
    if missing:
        name = _user_spelling(missing.group(1), expr)
        close = difflib.get_close_matches(name, [str(c) for c in columns], n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        return FormulaError(f"{prefix} {expr!r}: {name!r} is neither a column of the data nor a known function"
                            f"{hint}")
    return FormulaError(f"{prefix} {expr!r}: {text}")


def check_functions(variables, columns, where: str, expr: str, known) -> None:
    """A name formulaic calls as a function must be one it knows (numpy's, I, C, poly, ...)."""
    import builtins

    for v in sorted(variables, key=str):
        roles = {getattr(r, "value", r) for r in getattr(v, "roles", ())}
        if roles == {"callable"} and str(v) not in columns and str(v) not in known and not hasattr(builtins, v):
            raise FormulaError(
                f"unknown function {str(v)!r} in {where} {expr!r}: use numpy's (np.{v} if it exists), "
                f"{', '.join(sorted(set(known) - {'np'}))}, I(), C(), poly(), scale(), center(); or compute the "
                "column in the "
                "data first")


def transform_variables(formula, exclude) -> set[str]:
    """Names read in the Python factors of a formulaic ``Formula``, arguments of its transforms included.

    formulaic 1.2's ``required_variables`` leaves out the arguments of its
    stateful transforms (``poly(x, 2)``, ``scale(x)``, ``center(x)``): it asks
    the transform with the data absent, which fails, and reports nothing, so
    ``x`` was missing from the model frame.  Function names, formulaic's own
    names (``C``, ``contr``) and ``exclude`` (the evaluation context) are left out.
    """
    from formulaic.transforms import TRANSFORMS
    from formulaic.utils.code import sanitize_variable_names
    from formulaic.utils.layered_mapping import LayeredMapping

    out = set()
    for term in formula:
        for factor in term.factors:
            if factor.eval_method != factor.EvalMethod.PYTHON:
                continue
            aliases: dict = {}
            try:
                tree = ast.parse(sanitize_variable_names(factor.expr, LayeredMapping(TRANSFORMS), aliases),
                                 mode="eval")
            except SyntaxError:
                continue
            called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Name) and id(node) not in called:
                    name = aliases.get(node.id, node.id)
                    if name not in TRANSFORMS and name not in exclude:
                        out.add(name)
    return out
