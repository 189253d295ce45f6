"""pandas objects as data: every column's values, its dtype, the index and the column labels.

A column (or an index) is written by its dtype:

* a numpy dtype other than ``object`` (floats, integers, booleans, datetimes): one NPY member;
* ``object``: a JSON list of its values, each ``None``, a bool, an int, a float or a str
  (JSON keeps these types apart, so they read back as they were);
* pandas' ``StringDtype`` (pandas 3's ``str``): the strings, the storage and the missing-value marker;
* ``CategoricalDtype``: the codes (NPY), the categories (an index, written by these same rules)
  and the ``ordered`` flag, so levels keep their order and their own dtype.

An index is a ``RangeIndex`` (start, stop, step), a ``MultiIndex`` (one column per level) or
any other index by its values, with its name and, for dates, its frequency.  Anything else
is a :class:`~lmmcompare.errors.DataError` naming the column at save time, never written
in a form that would read back differently.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError

_OBJECT_VALUES = (type(None), bool, int, float, str, np.generic)


def encode_values(writer, values, where: str) -> dict:
    """The values of a Series or an Index, by their dtype (module docstring)."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return {"categorical": {"codes": writer.array(np.asarray(values.array.codes), where),
                                "categories": encode_index(writer, dtype.categories, f"the categories of {where}"),
                                "ordered": bool(dtype.ordered)}}
    if isinstance(dtype, pd.StringDtype):
        na = "NA" if dtype.na_value is pd.NA else "nan"
        return {"string": {"storage": dtype.storage, "na_value": na,
                           "values": [None if pd.isna(v) else str(v) for v in values]}}
    if isinstance(dtype, np.dtype) and dtype != object:
        return {"numpy": writer.array(np.asarray(values), where)}
    if dtype == object:
        odd = next((v for v in values if not isinstance(v, _OBJECT_VALUES)), None)
        if odd is not None:
            raise DataError(f"{where} holds values of type {type(odd).__name__}, which lmmcompare does not save "
                            "(a file holds data only); convert them, e.g. with .astype(str), and refit")
        return {"object": [writer.encode(v, where) for v in values]}
    raise DataError(f"{where} has dtype {dtype}, which lmmcompare does not save; convert it to numbers, strings "
                    "or a pandas Categorical and refit")


def decode_values(reader, node):
    """A numpy array or pandas ExtensionArray with the values and dtype :func:`encode_values` wrote."""
    (kind, body), = node.items()
    if kind == "numpy":
        return reader.array(body)
    if kind == "object":
        out = np.empty(len(body), dtype=object)
        for i, v in enumerate(body):
            out[i] = reader.decode(v)
        return out
    if kind == "string":
        na_value = {} if body["na_value"] == "NA" else {"na_value": np.nan}   # pandas < 2.3 knows only NA
        try:
            return pd.array(body["values"], dtype=pd.StringDtype(body["storage"], **na_value))
        except ImportError:   # pyarrow storage where pyarrow is missing: the same strings, stored by Python
            return pd.array(body["values"], dtype=pd.StringDtype("python", **na_value))
    if kind == "categorical":
        categories = decode_index(reader, body["categories"])
        dtype = pd.CategoricalDtype(categories, ordered=bool(body["ordered"]))
        return pd.Categorical.from_codes(reader.array(body["codes"]), dtype=dtype)
    raise ValueError(f"unknown kind of column values {kind!r}")


def encode_index(writer, index: pd.Index, where: str) -> dict:
    """A pandas Index: a range, the levels of a MultiIndex, or its values (module docstring)."""
    name = writer.encode(index.name, where)
    if isinstance(index, pd.RangeIndex):
        return {"range": [index.start, index.stop, index.step], "name": name}
    if isinstance(index, pd.MultiIndex):
        return {"levels": [encode_values(writer, index.get_level_values(i), f"level {i} of {where}")
                           for i in range(index.nlevels)], "names": writer.encode(list(index.names), where)}
    out = {"values": encode_values(writer, index, where), "name": name}
    if getattr(index, "freq", None) is not None:
        out["freq"] = index.freqstr
    return out


def decode_index(reader, node) -> pd.Index:
    if "range" in node:
        start, stop, step = node["range"]
        return pd.RangeIndex(start, stop, step, name=reader.decode(node["name"]))
    if "levels" in node:
        return pd.MultiIndex.from_arrays([_index(decode_values(reader, level)) for level in node["levels"]],
                                         names=reader.decode(node["names"]))
    index = _index(decode_values(reader, node["values"]), reader.decode(node["name"]))
    if "freq" in node:
        index = pd.DatetimeIndex(index, freq=node["freq"]) if isinstance(index, pd.DatetimeIndex) \
            else pd.TimedeltaIndex(index, freq=node["freq"])
    return index


def _index(values, name=None) -> pd.Index:
    return pd.Index(values, dtype=values.dtype, name=name, copy=False)   # the dtype given: pandas 3 infers str


def encode_series(writer, series: pd.Series, where: str) -> dict:
    return {"values": encode_values(writer, series, where), "index": encode_index(writer, series.index, where),
            "name": writer.encode(series.name, where), "attrs": writer.encode(dict(series.attrs), where)}


def decode_series(reader, node) -> pd.Series:
    values = decode_values(reader, node["values"])
    series = pd.Series(values, index=decode_index(reader, node["index"]), name=reader.decode(node["name"]),
                       dtype=values.dtype, copy=False)
    series.attrs = reader.decode(node["attrs"])
    return series


def encode_frame(writer, frame: pd.DataFrame, where: str) -> dict:
    """Column labels, index, each column's values and ``attrs`` of a DataFrame."""
    return {"columns": encode_index(writer, frame.columns, f"the column labels of {where}"),
            "index": encode_index(writer, frame.index, f"the index of {where}"),
            "data": [encode_values(writer, frame.iloc[:, j], f"column {frame.columns[j]!r} of {where}")
                     for j in range(frame.shape[1])],
            "attrs": writer.encode(dict(frame.attrs), where)}


def decode_frame(reader, node) -> pd.DataFrame:
    index = decode_index(reader, node["index"])
    columns = [decode_values(reader, c) for c in node["data"]]
    frame = pd.DataFrame({j: pd.Series(v, index=index, dtype=v.dtype, copy=False) for j, v in enumerate(columns)},
                         index=index)
    frame.columns = decode_index(reader, node["columns"])
    frame.attrs = reader.decode(node["attrs"])
    return frame
