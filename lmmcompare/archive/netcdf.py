"""An xarray Dataset as a netCDF member of the archive.

The netCDF-4 format through ``h5netcdf`` (a dependency of ArviZ, so nothing is added):
unlike netCDF-3 (scipy's engine) it keeps int64, booleans and unicode coordinates as they
were.  Two things it cannot hold are kept beside it in the metadata instead:

* names with ``/`` (HDF5's path separator), e.g. the coefficient ``I(Days/7)``: such a
  variable or dimension is stored under a stand-in name and renamed back on reading;
* attributes: netCDF returns ``1.5`` as ``numpy.float64(1.5)`` and has no booleans, so the
  dataset's and each variable's attributes are written as JSON values, exactly.

Encodings (how a file a dataset came from stored it) are not kept: a read dataset has none,
as a sampled one has none.
"""
from __future__ import annotations

import io
import os
import tempfile

from ..errors import ArgumentError, DataError, FileFormatError

ENGINE = "h5netcdf"


def _check_engine(error=ArgumentError) -> None:
    import importlib.util

    if importlib.util.find_spec(ENGINE) is None:
        raise error(f"saving or loading a Bayesian fit's draws needs {ENGINE} (netCDF-4), which ArviZ "
                    f"usually installs: pip install {ENGINE}")


def encode_dataset(writer, dataset, where: str) -> dict:
    """A netCDF member holding ``dataset``'s values and coordinates, and its attributes as JSON."""
    _check_engine()
    names = [*dataset.variables, *dataset.dims]
    odd = next((n for n in names if not isinstance(n, str)), None)
    if odd is not None:
        raise DataError(f"{where} has a variable or dimension named {odd!r}, not a string, which netCDF cannot hold")
    renamed, taken = {}, set(names)
    for name in dict.fromkeys(names):
        if "/" in name:
            stand_in = next(f"lmmcompare_renamed_{i}" for i in range(len(taken) + 1)
                            if f"lmmcompare_renamed_{i}" not in taken)
            taken.add(stand_in)
            renamed[stand_in] = name
    attributes = {name: dict(v.attrs) for name, v in dataset.variables.items() if v.attrs}
    plain = dataset.copy(deep=False)
    plain.attrs, plain.encoding = {}, {}
    for variable in plain.variables.values():
        variable.attrs, variable.encoding = {}, {}
    plain = plain.rename({old: new for new, old in renamed.items()})
    with tempfile.TemporaryDirectory() as folder:   # a file: every xarray writes netCDF-4 to one
        path = os.path.join(folder, "dataset.nc")
        plain.to_netcdf(path, engine=ENGINE)
        with open(path, "rb") as file:
            data = file.read()
    return {"netcdf": writer.member("netcdf", ".nc", data), "renamed": renamed,
            "attrs": writer.encode(dict(dataset.attrs), f"the attributes of {where}"),
            "variable_attrs": writer.encode(attributes, f"the attributes of {where}'s variables")}


def decode_dataset(reader, node):
    """The Dataset :func:`encode_dataset` wrote, with its names and attributes restored."""
    import xarray as xr

    _check_engine(FileFormatError)
    with xr.open_dataset(io.BytesIO(reader.member(node["netcdf"])), engine=ENGINE) as opened:
        dataset = opened.load()
    dataset = dataset.rename(node["renamed"]) if node["renamed"] else dataset
    dataset.encoding = {}
    for variable in dataset.variables.values():
        variable.encoding = {}
    dataset.attrs = reader.decode(node["attrs"])
    for name, attrs in reader.decode(node["variable_attrs"]).items():
        dataset.variables[name].attrs = attrs
    return dataset
