"""A model spec as the arguments that rebuild it, not object by object.

``ModelSpec.from_formula(**arguments)`` is deterministic and cheap (parsing and building
the design, no fitting), so a file keeps the formula, the model frame and the options
(``spec.build_arguments``), and reading rebuilds the spec from them.
Beside them it keeps what the arguments do not carry: the response (a spec made by
``with_response``, e.g. a bootstrap refit, has a ``y`` that is not the frame's), the
count of rows dropped from the user's data and the shipped dataset's name; and, to
check the rebuild, the fixed-effect names, the number of rows and the term labels.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from ..errors import FileFormatError, LmmWarning
from ..spec import ModelSpec


def spec_arguments(spec: ModelSpec) -> dict:
    """The keyword arguments of ``ModelSpec.from_formula`` that rebuild ``spec``."""
    return dict(spec.build_arguments)


def _check(spec: ModelSpec) -> dict:
    return {"fixed_names": list(spec.fixed_names), "n": spec.n, "terms": [t.label for t in spec.terms]}


def encode_spec(writer, spec: ModelSpec) -> dict:
    return {"arguments": writer.encode(spec_arguments(spec), "the model's data and options"),
            "y": writer.encode(np.asarray(spec.y), "the response"),
            "n_dropped": int(spec.n_dropped), "data_name": spec.data_name, "check": _check(spec)}


def rebuild_spec(reader, node) -> ModelSpec:
    """The spec of ``node``, rebuilt by ``ModelSpec.from_formula`` and checked against the saved one.

    Warnings the rebuild repeats (dropped aliased columns, repeated terms) were shown when the
    model was first built, and are not shown again.
    """
    arguments = reader.decode(node["arguments"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LmmWarning)
        spec = ModelSpec.from_formula(**arguments)
    y = reader.decode(node["y"])
    if not np.array_equal(spec.y, y):
        spec = spec.with_response(y)
    if spec.n_dropped != node["n_dropped"] or spec.data_name != node["data_name"]:
        spec = dataclasses.replace(spec, n_dropped=node["n_dropped"], data_name=node["data_name"])
    found = _check(spec)
    if found != node["check"]:
        differ = ", ".join(k for k in found if found[k] != node["check"].get(k))
        raise FileFormatError(
            f"{reader.path!r}: the model rebuilt from the file differs from the saved one in its {differ} "
            f"({found} vs {node['check']}); the file was written by lmmcompare "
            f"{reader.metadata.get('lmmcompare_version')}, which built this formula differently")
    return spec
