import json
from importlib import resources

import pandas as pd
import pytest

import lmmcompare as lc

EXPECTED_ROWS = {"sleepstudy": 180, "Dyestuff": 30, "Dyestuff2": 30, "Penicillin": 144, "Pastes": 60,
                 "cake": 270, "Orthodont": 108, "InstEval": 73421,
                 "RepeatedMeasures": 720}


def test_list_datasets_names_every_shipped_set():
    assert lc.list_datasets() == list(EXPECTED_ROWS)


@pytest.mark.parametrize("name", list(EXPECTED_ROWS))
def test_factor_columns_have_r_level_order(name):
    schema = json.loads((resources.files("lmmcompare.datasets") / "data" / "schema.json").read_text())[name]
    frame = lc.load_dataset(name)
    assert len(frame) == EXPECTED_ROWS[name] == schema["nrow"]
    for col, info in schema["columns"].items():
        if info["type"] == "factor":
            assert isinstance(frame[col].dtype, pd.CategoricalDtype)
            assert list(frame[col].cat.categories) == info["levels"]
            assert frame[col].notna().all()
        else:
            assert pd.api.types.is_numeric_dtype(frame[col])


def test_load_returns_an_independent_copy():
    a = lc.load_dataset("sleepstudy")
    a.loc[0, "Reaction"] = -1.0
    assert lc.load_dataset("sleepstudy").loc[0, "Reaction"] == pytest.approx(249.56)


def test_unknown_dataset_lists_the_available_ones():
    with pytest.raises(lc.DatasetNotFoundError) as err:
        lc.load_dataset("sleepstudi")
    assert isinstance(err.value, ValueError)
    assert "unknown dataset 'sleepstudi'" in str(err.value)
    assert "sleepstudy" in str(err.value) and "InstEval" in str(err.value)


def test_insteval_is_compressed_in_the_package():
    files = {p.name for p in (resources.files("lmmcompare.datasets") / "data").iterdir()}
    assert "InstEval.csv.gz" in files and "InstEval.csv" not in files
