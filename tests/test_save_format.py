"""The file format of saved results: values, frames and datasets kept exactly; files that are not
ours, are newer, are damaged or smuggle a pickle refused with a typed error, running nothing.
"""
from __future__ import annotations

import io
import json
import pathlib
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest

import lmmcompare as lc
from lmmcompare.archive import FORMAT_VERSION, save_archive
from lmmcompare.archive.container import ArchiveReader
from lmmcompare.errors import ArgumentError, DataError, FileFormatError
from test_save_load import _odd_data

assert_frame = dict(check_exact=True)


def _fit(formula, data="sleepstudy"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lc.lmer(formula, data)


# ---- values the file format encodes --------------------------------------------------------------
def _encode_decode(value, tmp_path):
    path = save_archive(tmp_path / "value.lmm", "LmerFit", lambda writer: writer.encode(value))
    with zipfile.ZipFile(path) as archive:
        reader = ArchiveReader(archive, json.loads(archive.read("lmmcompare.json")), path)
        return reader.decode(reader.content)


def test_numpy_random_states_and_scalars_round_trip(tmp_path):
    gen = np.random.default_rng(7)
    gen.normal(size=3)
    seq = np.random.SeedSequence(12345, spawn_key=(1, 2))
    value = {"gen": gen, "seq": seq, (1, "a"): np.float32(1.25), "i": np.int64(-3), "f": 0.1 + 0.2,
             "mt": np.random.Generator(np.random.MT19937(4))}
    back = _encode_decode(value, tmp_path)
    assert list(back) == list(value)
    assert np.array_equal(back["gen"].normal(size=5), gen.normal(size=5))
    assert np.array_equal(back["mt"].normal(size=5), value["mt"].normal(size=5))
    assert back["seq"].entropy == seq.entropy and back["seq"].spawn_key == seq.spawn_key
    assert np.array_equal(back["seq"].generate_state(4), seq.generate_state(4))
    assert type(back[(1, "a")]) is np.float32 and back[(1, "a")] == np.float32(1.25)
    assert type(back["i"]) is np.int64 and back["i"] == -3 and back["f"] == 0.1 + 0.2


def test_frames_keep_dtypes_categories_and_index(tmp_path):
    frame = _odd_data()
    frame["text"] = pd.array(["a", None] * (len(frame) // 2), dtype="string")
    frame.attrs = {"source": "test"}
    frame.index = pd.MultiIndex.from_arrays([frame.index, np.arange(len(frame))], names=["row", "k"])
    back = _encode_decode(frame, tmp_path)
    pd.testing.assert_frame_equal(back, frame, **assert_frame)
    assert back["dose"].cat.ordered and list(back["dose"].cat.categories) == ["low", "mid", "high"]
    assert back["batch"].cat.categories.dtype == np.int64 and back.attrs == {"source": "test"}
    dated = pd.DataFrame({"x": [1.0, 2.0, 3.0]}, index=pd.date_range("2024-01-01", periods=3, freq="D"))
    pd.testing.assert_frame_equal(_encode_decode(dated, tmp_path), dated, **assert_frame)


def test_datasets_keep_names_with_slashes_dtypes_and_attributes(tmp_path):
    """netCDF-4 cannot name a variable or dimension with '/' and has no boolean attributes: kept exactly anyway."""
    import xarray as xr

    from lmmcompare.archive.netcdf import decode_dataset, encode_dataset

    ds = xr.Dataset({"I(x/2)": (("chain", "g/h"), np.arange(6.0).reshape(2, 3)),
                     "hit": (("chain",), np.array([True, False])), "depth": (("chain",), np.array([3, 4]))},
                    coords={"chain": np.arange(2), "g/h": np.array(["a", "b/c", "é"])},
                    attrs={"flag": True, "n": np.int64(3), "x": 1.5, "s": "text"})
    ds["depth"].attrs = {"unit": "steps", "cap": 10}
    path = save_archive(tmp_path / "ds.lmm", "LmerFit", lambda writer: encode_dataset(writer, ds, "ds"))
    with zipfile.ZipFile(path) as archive:
        reader = ArchiveReader(archive, json.loads(archive.read("lmmcompare.json")), path)
        back = decode_dataset(reader, reader.content)
    xr.testing.assert_identical(back, ds)
    assert {k: v.dtype for k, v in back.variables.items()} == {k: v.dtype for k, v in ds.variables.items()}
    assert back.attrs == ds.attrs and type(back.attrs["n"]) is np.int64 and back.attrs["flag"] is True
    assert back["depth"].attrs == {"unit": "steps", "cap": 10}


def test_saving_a_loaded_fit_writes_the_same_file(saved_file, tmp_path):
    """save(load(f)) holds the same members, byte for byte, as f."""
    again = lc.load(saved_file).save(tmp_path / "again.lmm")
    with zipfile.ZipFile(saved_file) as first, zipfile.ZipFile(again) as second:
        assert first.namelist() == second.namelist()
        for name in first.namelist():
            assert first.read(name) == second.read(name), name


def test_values_that_are_not_data_are_refused_at_save_naming_the_column(tmp_path):
    frame = pd.DataFrame({"ok": [1.0, 2.0], "bad": [object(), object()]})
    with pytest.raises(DataError, match="column 'bad'"):
        save_archive(tmp_path / "x.lmm", "LmerFit", lambda writer: writer.encode(frame, "the data"))
    assert not list(tmp_path.iterdir())   # nothing half-written


# ---- files that are not ours, newer, damaged, or carry a pickle -----------------------------------
@pytest.fixture(scope="module")
def saved_file(tmp_path_factory):
    fit = _fit("Reaction ~ Days + (1 | Subject)")
    return fit.save(tmp_path_factory.mktemp("file") / "fit.lmm")


def _rewrite(source, target, change):
    """Copy the archive ``source`` to ``target`` with ``change(name, data) -> data`` applied to each member."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            new.writestr(name, change(name, old.read(name)))
    return target


class _TouchesMarker:
    """Unpickling this runs pathlib.Path(path).touch(): the code a pickle can smuggle in."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.path),)


def test_a_pickle_inside_the_file_is_refused_and_never_run(saved_file, tmp_path):
    def payload(marker):
        buffer = io.BytesIO()
        np.save(buffer, np.array([_TouchesMarker(marker)], dtype=object), allow_pickle=True)
        return buffer.getvalue()

    proof = tmp_path / "proof"   # the payload does run when unpickled
    np.load(io.BytesIO(payload(proof)), allow_pickle=True)
    assert proof.exists()
    marker = tmp_path / "marker"
    crafted = _rewrite(saved_file, tmp_path / "crafted.lmm",
                       lambda name, data: payload(marker) if name.endswith(".npy") else data)
    with pytest.raises(FileFormatError, match="pickle"):
        lc.load(crafted)
    assert not marker.exists()


def test_a_file_from_a_newer_format_is_refused(saved_file, tmp_path):
    def newer(name, data):
        if name != "lmmcompare.json":
            return data
        meta = json.loads(data)
        meta["format_version"] = FORMAT_VERSION + 1
        return json.dumps(meta)

    with pytest.raises(FileFormatError, match=f"newer lmmcompare.*file format {FORMAT_VERSION + 1}.*upgrade"):
        lc.load(_rewrite(saved_file, tmp_path / "newer.lmm", newer))


def test_files_that_are_not_ours_are_refused(tmp_path):
    noise = tmp_path / "noise.lmm"
    noise.write_bytes(np.random.default_rng(0).bytes(1000))
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("readme.txt", "hello")
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("lmmcompare.json", json.dumps({"format": "other", "format_version": 1}))
    for path in (noise, plain, foreign):
        with pytest.raises(FileFormatError, match="not an lmmcompare file"):
            lc.load(path)


def test_a_damaged_file_is_a_typed_error(saved_file, tmp_path):
    with zipfile.ZipFile(saved_file) as archive:
        member = next(n for n in archive.namelist() if n.endswith(".npy"))
    damaged = tmp_path / "damaged.lmm"
    with zipfile.ZipFile(saved_file) as old, zipfile.ZipFile(damaged, "w") as new:
        for name in old.namelist():
            if name != member:
                new.writestr(name, old.read(name))
    with pytest.raises(FileFormatError, match=f"lacks its member '{member}'"):
        lc.load(damaged)


def test_bad_paths_are_typed_errors_naming_the_path(saved_file, tmp_path):
    fit = _fit("Reaction ~ Days + (1 | Subject)")
    missing = tmp_path / "no_such_dir" / "fit.lmm"
    with pytest.raises(ArgumentError, match="no_such_dir.*does not exist"):
        fit.save(missing)
    with pytest.raises(ArgumentError, match="is a directory"):
        fit.save(tmp_path)
    with pytest.raises(ArgumentError, match="no file .*nothing.lmm"):
        lc.load(tmp_path / "nothing.lmm")
    with pytest.raises(ArgumentError, match="path must be a file name"):
        fit.save(3)
