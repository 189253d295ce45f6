"""The classic mixed-model data sets, shipped with the package.

Factor columns are returned as pandas categoricals with R's level order
(from ``schema.json``), so treatment contrasts and level labels match lme4.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import pandas as pd

from ..errors import DatasetNotFoundError

_DESCRIPTIONS = {
    "sleepstudy": "Reaction times (ms) of 18 subjects over 10 days of sleep deprivation (lme4).",
    "Dyestuff": "Yield of dyestuff from 6 batches of an intermediate, 5 preparations each (lme4).",
    "Dyestuff2": "Simulated Dyestuff-like data whose REML fit is singular (lme4).",
    "Penicillin": "Penicillin potency: 6 samples on 24 plates, fully crossed (lme4).",
    "Pastes": "Strength of paste: 3 casks nested in each of 10 batches (lme4).",
    "cake": "Breakage angle of chocolate cakes: 3 recipes x 6 temperatures x 15 replicates (lme4).",
    "Orthodont": "Orthodontic distance growth of 27 children, ages 8 to 14 (nlme).",
    "InstEval": "73,421 lecture ratings: 2,972 students x 1,128 lecturers (lme4).",
    "RepeatedMeasures": ("Simulated: 60 subjects x 6 occasions x 2 replicates, correlated occasion effects, "
                         "residual sd by group (tests/data/structures_reference.R)."),
}


def _data_dir():
    return resources.files(__package__) / "data"


@lru_cache(maxsize=1)
def _schema() -> dict:
    return json.loads((_data_dir() / "schema.json").read_text())


def list_datasets() -> list[str]:
    """Names of the shipped data sets, in a stable order.

    Returns
    -------
    list of str
    """
    return list(_DESCRIPTIONS)


def describe_dataset(name: str) -> str:
    """One-line description of a shipped data set."""
    _check_name(name)
    return _DESCRIPTIONS[name]


def _check_name(name):
    if not isinstance(name, str) or name not in _DESCRIPTIONS:
        raise DatasetNotFoundError(
            f"unknown dataset {name!r}; available datasets: {', '.join(list_datasets())}"
        )


def load_dataset(name: str) -> pd.DataFrame:
    """Load a shipped data set as a DataFrame.

    Parameters
    ----------
    name : str
        One of :func:`list_datasets`, e.g. ``"sleepstudy"``.

    Returns
    -------
    pandas.DataFrame
        A fresh copy each call; factor columns are categoricals with lme4's
        level order, numeric columns are float or int.

    Raises
    ------
    DatasetNotFoundError
        If ``name`` is not a shipped data set (the message lists them).
    """
    _check_name(name)
    return _load_cached(name).copy()


@lru_cache(maxsize=None)
def _load_cached(name: str) -> pd.DataFrame:
    columns = _schema()[name]["columns"]
    factor_cols = {c for c, info in columns.items() if info["type"] == "factor"}
    fname = f"{name}.csv.gz" if name == "InstEval" else f"{name}.csv"
    with resources.as_file(_data_dir() / fname) as path:
        frame = pd.read_csv(path, dtype={c: str for c in factor_cols})
    for col in factor_cols:
        frame[col] = pd.Categorical(frame[col], categories=columns[col]["levels"])
    return frame
