"""Checks of keyword arguments, shared by every public entry point.

Each check raises :class:`~lmmcompare.errors.ArgumentError` naming the
argument, what it must be and what was passed, before any work is done.
"""
from __future__ import annotations

import difflib
import numbers

import numpy as np

from .errors import ArgumentError


def shown(value) -> str:
    """``repr(value)`` with numpy scalars as plain Python values (``1.0``, not ``np.float64(1.0)``)."""
    if isinstance(value, np.generic):
        return repr(value.item())
    return repr(value)


def check_bool(name: str, value) -> bool:
    """``value`` must be True or False (numpy bools too; not 0/1 or strings)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentError(f"{name} must be True or False, got {shown(value)}")
    return bool(value)


def check_int(name: str, value, minimum: int | None = None) -> int:
    """``value`` must be an integer (not a bool or float) and at least ``minimum``."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or (
            minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ArgumentError(f"{name} must be an integer{bound}, got {shown(value)}")
    return int(value)


def check_n_jobs(name: str, value) -> int:
    """A joblib worker count: a non-zero integer (-1 for all cores)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value == 0:
        raise ArgumentError(f"{name} must be a non-zero integer (-1 for all cores), got {shown(value)}")
    return int(value)


def check_number(name: str, value, low: float | None = None, high: float | None = None,
                 open_low: bool = True, open_high: bool = True) -> float:
    """``value`` must be a finite real number (not a bool or string) inside the given bounds."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and np.isfinite(value)
    if ok and low is not None:
        ok = value > low if open_low else value >= low
    if ok and high is not None:
        ok = value < high if open_high else value <= high
    if not ok:
        lo = "" if low is None else f"{'>' if open_low else '>='} {low}"
        hi = "" if high is None else f"{'<' if open_high else '<='} {high}"
        bounds = " and ".join(b for b in (lo, hi) if b)
        raise ArgumentError(f"{name} must be a finite number{' ' + bounds if bounds else ''}, got {shown(value)}")
    return float(value)


def check_level(name: str, value) -> float:
    """A confidence or credible level strictly between 0 and 1."""
    return check_number(name, value, 0.0, 1.0)


def check_seed(name: str, value):
    """``None``, a non-negative integer, or a numpy ``Generator`` / ``SeedSequence``."""
    if value is None or isinstance(value, (np.random.Generator, np.random.SeedSequence)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value >= 0:
        return int(value)
    raise ArgumentError(
        f"{name} must be None, a non-negative integer or a numpy.random.Generator, got {shown(value)}")


def check_choice(name: str, value, choices) -> str:
    """``value`` must be one of the strings in ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ArgumentError(f"{name} must be one of {', '.join(map(str, choices))}, got {shown(value)}")
    return value


def did_you_mean(key: str, names) -> str:
    """``"; did you mean 'reml'?"`` for a misspelt keyword: a case-insensitive match first, else close spellings."""
    names = list(names)
    same = [n for n in names if n.lower() == str(key).lower()]
    close = same or difflib.get_close_matches(str(key), names, n=2, cutoff=0.7) \
        or difflib.get_close_matches(str(key).lower(), names, n=2, cutoff=0.7)
    return f"; did you mean {' or '.join(map(repr, close))}?" if close else ""


def check_options(where: str, options: dict, allowed: dict, also=()) -> None:
    """Check ``**options`` against ``allowed = {name: checker(name, value)}``; unknown names are errors.

    ``also`` are the function's own keyword arguments, offered as suggestions
    (``REML=False`` passed to lmer: "did you mean 'reml'?").
    """
    for key, value in options.items():
        if key not in allowed:
            hint = did_you_mean(key, list(also) + sorted(allowed))
            own = f"{', '.join(also)} and " if also else ""
            raise ArgumentError(f"unknown keyword argument {key!r} for {where}{hint} (accepted: {own}"
                                f"{', '.join(sorted(allowed))})")
        allowed[key](key, value)
