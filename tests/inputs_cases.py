"""The model-input cases of tests/data/inputs_reference.json (lme4 1.1-31, lmerTest), rebuilt in Python.

Every weight and offset of the R script is a function of the data's columns;
:func:`case_arguments` rebuilds it and gives the keyword arguments of
:func:`lmmcompare.lmer` for a case.
"""
import json
import pathlib

import numpy as np

import lmmcompare as lc

INPUTS = json.loads((pathlib.Path(__file__).parent / "data" / "inputs_reference.json").read_text())
FITS = INPUTS["fits"]
SUM3 = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])   # R's contr.sum(3)


def input_values(data_name: str, column: str) -> np.ndarray:
    """The weight or offset column ``column`` of the R script, from the data set's columns."""
    d = lc.load_dataset(data_name)
    batch = d["Batch"].cat.codes.to_numpy() + 1 if "Batch" in d else None   # R's as.integer(Batch)
    rules = {
        ("Dyestuff", "w"): lambda: 1.0 + batch % 2,
        ("Dyestuff2", "w"): lambda: 1.0 + batch % 2,
        ("sleepstudy", "w"): lambda: 1.0 + d["Days"].to_numpy() % 3,
        ("sleepstudy", "w4"): lambda: np.full(len(d), 4.0),
        ("sleepstudy", "w0"): lambda: (d["Days"].to_numpy() % 3).astype(float),
        ("sleepstudy", "off"): lambda: 2.0 * d["Days"].to_numpy(),
        ("sleepstudy", "half"): lambda: d["Days"].to_numpy().astype(float),
        ("Orthodont", "logage"): lambda: np.log(d["age"].to_numpy()),
    }
    return rules[(data_name, column)]()


def case_arguments(case_id: str) -> dict:
    """``formula``, ``data`` and the input keywords of a case, for ``lc.lmer`` (and ``lc.bayes``)."""
    case = FITS[case_id]
    data = lc.load_dataset(case["data"])
    out = {"formula": case["formula"], "data": data, "reml": bool(case["reml"])}
    if case["weights"]:
        out["weights"] = input_values(case["data"], case["weights"]["column"])
    if case["offset"]:
        out["offset"] = input_values(case["data"], case["offset"]["column"])
    if case["subset"]:
        out["subset"] = out["weights"] > 0
        out["weights"] = out["weights"][out["subset"]]
    if case["contrasts"]:
        (name, text), = case["contrasts"].items()
        out["contrasts"] = {name: SUM3 if "matrix" in text else text}
    return out
