import json
import pathlib
import warnings

import pytest

DATA = pathlib.Path(__file__).parent / "data"


def load_reference():
    """lme4 1.1-31 / lmerTest / pbkrtest results, copied from shared/reference (see tests/data/README.md)."""
    return json.loads((DATA / "lme4_reference.json").read_text())


REFERENCE = load_reference()
CASE_IDS = [c["id"] for c in REFERENCE]


@pytest.fixture(params=REFERENCE, ids=CASE_IDS)
def case(request):
    return request.param


@pytest.fixture(scope="session")
def fitted_cases():
    """Our fit of every reference case, computed once per session."""
    import lmmcompare as lc

    out = {}
    for c in REFERENCE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[c["id"]] = lc.lmer(c["formula"], c["data"], reml=c["reml"])
    return out
