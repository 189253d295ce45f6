"""The file of a saved result: one zip archive of data, never a pickle.

Members of the archive:

* ``lmmcompare.json``: the metadata, ``{"format": "lmmcompare", "format_version": 1,
  "kind": "LmerFit" | "BayesFit" | "Comparison", "lmmcompare_version": ..., "specs": [...],
  "content": ...}``;
* ``arrays/<k>.npy``: numpy arrays in NPY format, read with ``np.load(allow_pickle=False)``,
  which refuses an array of Python objects instead of unpickling it;
* ``netcdf/<k>.nc``: xarray datasets (the groups of an ``InferenceData``, :mod:`.netcdf`).

Values in the metadata are a tree of JSON: ``None``, booleans, numbers (a float is written
by its ``repr``, so it reads back bit for bit), strings and lists as themselves, and every
other value as a one-key object naming its type: ``{"$tuple": [...]}``, ``{"$dict": [[key,
value], ...]}`` (any keys, in order), ``{"$array": member}``, ``{"$scalar": [dtype, value]}``
(a numpy scalar), ``{"$frame" | "$series" | "$index": ...}`` (:mod:`.frames`),
``{"$spec": i}`` (the ``i``-th model of ``specs``, :mod:`.specs`), ``{"$generator": ...}``
and ``{"$seed_sequence": ...}`` (a numpy random state, as its numbers).  Reading builds
values from these tags only: a file cannot name a class or a function to call.
"""
from __future__ import annotations

import io
import json
import os
import secrets
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from .._version import __version__
from ..errors import ArgumentError, DataError, FileFormatError
from ..spec import ModelSpec
from . import frames, specs

FORMAT = "lmmcompare"
FORMAT_VERSION = 1   # raise it when a file of this version could not be read by the code that wrote it
METADATA = "lmmcompare.json"

# the bit generators a saved numpy Generator may name (looked up here, never by the file's text)
_BIT_GENERATORS = {cls.__name__: cls for cls in (np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937,
                                                 np.random.Philox, np.random.SFC64)}


class ArchiveWriter:
    """Collects the members of an archive while a result is encoded into JSON."""

    def __init__(self):
        self.members: dict[str, bytes] = {}
        self.specs: list = []
        self._spec_index: dict[int, int] = {}
        self._kept: list = []   # the specs encoded, alive, so that their ids stay theirs

    def member(self, folder: str, suffix: str, data: bytes) -> str:
        """Store ``data`` as a new member of ``folder``; returns its name."""
        name = f"{folder}/{len(self.members)}{suffix}"
        self.members[name] = data
        return name

    def array(self, values: np.ndarray, where: str) -> str:
        """Store a numpy array (not of Python objects) as an NPY member; returns its name."""
        values = np.asarray(values)
        if values.dtype.hasobject:
            raise DataError(f"{where} holds Python objects, which lmmcompare does not save (a file holds data "
                            "only); convert them to numbers or strings")
        buffer = io.BytesIO()
        np.save(buffer, values, allow_pickle=False)
        return self.member("arrays", ".npy", buffer.getvalue())

    def spec(self, spec: ModelSpec) -> int:
        """The index of ``spec`` in ``specs``, each spec stored once however often it is referred to."""
        if id(spec) not in self._spec_index:
            self._kept.append(spec)
            self.specs.append(specs.encode_spec(self, spec))
            self._spec_index[id(spec)] = len(self.specs) - 1
        return self._spec_index[id(spec)]

    def encode(self, value, where: str = "a value"):
        """The JSON tree of ``value`` (module docstring); ``where`` names it in errors."""
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, np.generic):
            if not isinstance(value, (np.bool_, np.integer, np.floating, np.str_)):
                raise DataError(f"{where} is a numpy {value.dtype} scalar, which lmmcompare does not save")
            return {"$scalar": [value.dtype.str, value.item()]}
        if isinstance(value, (int, float)):
            return value
        if isinstance(value, list):
            return [self.encode(v, where) for v in value]
        if isinstance(value, tuple):
            return {"$tuple": [self.encode(v, where) for v in value]}
        if isinstance(value, dict):
            return {"$dict": [[self.encode(k, where), self.encode(v, f"{where}[{k!r}]")] for k, v in value.items()]}
        if isinstance(value, np.ndarray):
            return {"$array": self.array(value, where)}
        if isinstance(value, pd.DataFrame):
            return {"$frame": frames.encode_frame(self, value, where)}
        if isinstance(value, pd.Series):
            return {"$series": frames.encode_series(self, value, where)}
        if isinstance(value, pd.Index):
            return {"$index": frames.encode_index(self, value, where)}
        if isinstance(value, ModelSpec):
            return {"$spec": self.spec(value)}
        if isinstance(value, np.random.Generator):
            bits = value.bit_generator
            return {"$generator": [type(bits).__name__, self.encode(bits.state, where)]}
        if isinstance(value, np.random.SeedSequence):
            return {"$seed_sequence": self.encode(dict(entropy=value.entropy, spawn_key=value.spawn_key,
                                                       pool_size=value.pool_size,
                                                       n_children_spawned=value.n_children_spawned), where)}
        raise DataError(f"{where} is a {type(value).__name__}, which lmmcompare does not save (a file holds data only)")


class ArchiveReader:
    """Reads the members of an opened archive and decodes the metadata's values."""

    def __init__(self, archive: zipfile.ZipFile, metadata: dict, path: str):
        self.archive, self.metadata, self.path = archive, metadata, path
        self._names = set(archive.namelist())
        self._specs: dict[int, ModelSpec] = {}

    @property
    def kind(self) -> str:
        return self.metadata.get("kind")

    @property
    def content(self):
        return self.metadata["content"]

    def member(self, name: str) -> bytes:
        if not isinstance(name, str) or name not in self._names:
            raise FileFormatError(f"{self.path!r} is damaged: it lacks its member {name!r}")
        return self.archive.read(name)

    def array(self, name: str) -> np.ndarray:
        """The NPY member ``name``; an array of Python objects (a pickle) is refused, never loaded."""
        try:
            values = np.load(io.BytesIO(self.member(name)), allow_pickle=False)
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise FileFormatError(
                    f"{self.path!r} holds Python objects (a pickle) in {name!r}, not data: lmmcompare files hold "
                    "data only, and unpickling a file can run any code, so it is not loaded") from None
            raise FileFormatError(f"{self.path!r} is damaged: {name!r} is not an NPY array ({exc})") from None
        if not isinstance(values, np.ndarray):
            raise FileFormatError(f"{self.path!r} is damaged: {name!r} is not one NPY array")
        return values

    def spec(self, index: int) -> ModelSpec:
        """The ``index``-th model of the file, rebuilt once (:func:`.specs.rebuild_spec`)."""
        if index not in self._specs:
            self._specs[index] = specs.rebuild_spec(self, self.metadata["specs"][index])
        return self._specs[index]

    def decode(self, node):
        """The value of a JSON tree written by :meth:`ArchiveWriter.encode`."""
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict) or len(node) != 1:
            raise FileFormatError(f"{self.path!r} is damaged: unexpected value {str(node)[:80]}")
        (tag, body), = node.items()
        if tag == "$scalar":
            dtype, value = body
            return np.dtype(dtype).type(value)
        if tag == "$tuple":
            return tuple(self.decode(v) for v in body)
        if tag == "$dict":
            return {self.decode(k): self.decode(v) for k, v in body}
        if tag == "$array":
            return self.array(body)
        if tag in ("$frame", "$series", "$index"):
            decode = {"$frame": frames.decode_frame, "$series": frames.decode_series,
                      "$index": frames.decode_index}[tag]
            return decode(self, body)
        if tag == "$spec":
            return self.spec(body)
        if tag == "$generator":
            name, state = body
            if name not in _BIT_GENERATORS:
                raise FileFormatError(f"{self.path!r} names an unknown random bit generator {name!r}")
            bits = _BIT_GENERATORS[name]()
            bits.state = self.decode(state)
            return np.random.Generator(bits)
        if tag == "$seed_sequence":
            return np.random.SeedSequence(**self.decode(body))
        raise FileFormatError(f"{self.path!r} is damaged or from a newer lmmcompare: unknown value tag {tag!r}")


def _target(path) -> Path:
    """``path`` as a file that can be written: its folder exists and it is not a folder itself."""
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentError(f"path must be a file name (str or os.PathLike), got {type(path).__name__}")
    target = Path(os.fspath(path))
    if target.is_dir():
        raise ArgumentError(f"path {str(target)!r} is a directory; give a file name, e.g. {str(target / 'fit.lmm')!r}")
    folder = target.parent
    if not folder.is_dir():
        raise ArgumentError(f"cannot save to {str(target)!r}: its directory {str(folder)!r} does not exist; "
                            "create it first (os.makedirs) or choose another path")
    return target


def save_archive(path, kind: str, content) -> str:
    """Write one archive of ``kind`` whose content is ``content(writer)``; returns the path written.

    The file is written beside its target and renamed onto it, so a failure leaves no partial file.
    """
    target = _target(path)
    writer = ArchiveWriter()
    body = content(writer)
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
                "lmmcompare_version": __version__, "specs": writer.specs, "content": body}
    text = json.dumps(metadata, ensure_ascii=False, indent=1).encode("utf-8")
    temporary = target.parent / f".{target.name}.{secrets.token_hex(6)}.part"   # opened as open() does: umask applies
    try:
        try:
            with open(temporary, "xb") as file, zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(METADATA, text)
                for name, data in writer.members.items():
                    archive.writestr(name, data)
            os.replace(temporary, target)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
    except OSError as exc:
        raise ArgumentError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    return str(target)


def _not_ours(path: str, why: str) -> FileFormatError:
    return FileFormatError(f"{path!r} is not an lmmcompare file ({why}); lmmcompare.load reads files written "
                           "by fit.save(path)")


@contextmanager
def open_archive(path):
    """An :class:`ArchiveReader` of the file at ``path``, checked to be ours and of a format this code reads.

    Any failure while reading it (other than a :class:`FileFormatError`) is reported as
    a damaged file, with the cause chained.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentError(f"path must be a file name (str or os.PathLike), got {type(path).__name__}")
    shown = os.fspath(path)
    if not os.path.isfile(shown):
        raise ArgumentError(f"no file {shown!r}" + (" (it is a directory)" if os.path.isdir(shown) else ""))
    try:
        archive = zipfile.ZipFile(shown)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _not_ours(shown, f"not a zip archive: {exc}") from None
    with archive:
        if METADATA not in archive.namelist():
            raise _not_ours(shown, f"a zip archive without {METADATA}")
        try:
            metadata = json.loads(archive.read(METADATA).decode("utf-8"))
        except (ValueError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
            raise _not_ours(shown, f"its {METADATA} is not JSON: {exc}") from None
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise _not_ours(shown, f"its {METADATA} does not describe an lmmcompare result")
        version = metadata.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise FileFormatError(f"{shown!r} is damaged: its format_version is {version!r}")
        if version > FORMAT_VERSION:
            raise FileFormatError(
                f"{shown!r} was written by a newer lmmcompare ({metadata.get('lmmcompare_version', 'unknown')}, "
                f"file format {version}); this lmmcompare {__version__} reads file format {FORMAT_VERSION} and "
                "older: upgrade lmmcompare (pip install --upgrade lmmcompare) to load it")
        try:
            yield ArchiveReader(archive, metadata, shown)
        except FileFormatError:
            raise
        except Exception as exc:
            raise FileFormatError(f"{shown!r} is damaged: {type(exc).__name__}: {exc}") from exc
