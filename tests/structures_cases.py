"""The structured-covariance reference fits of tests/data/structures_reference.json, and their data."""
from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import lmmcompare as lc

DATA = Path(__file__).parent / "data"
REFERENCE = json.loads((DATA / "structures_reference.json").read_text())
FITS = REFERENCE["fits"]


@lru_cache(maxsize=None)
def dataset(name: str):
    """A reference fit's data: a shipped data set (RepeatedMeasures is simulated by the R script)."""
    return lc.load_dataset(name)


@lru_cache(maxsize=None)
def our_fit(key: str):
    case = FITS[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lc.errors.SingularFitWarning)
        return lc.lmer(case["formula"], dataset(case["data"]), reml=case["reml"], sigma_by=case["sigma_by"])


def best_peer(case) -> dict:
    """The peer with the lowest criterion (ours must match it or beat it)."""
    return min(case["peers"].values(), key=lambda peer: peer["criterion"])


def residual_sds(peer) -> dict:
    """Residual sd by level (sigma_by) or {'sigma': sigma}."""
    return peer.get("sigma_by_level") or {"sigma": peer["sigma"]}
