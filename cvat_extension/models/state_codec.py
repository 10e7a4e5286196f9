"""A typed, versioned byte format for tracker state: JSON structure + raw numpy arrays.

Why not pickle: tracker states travel through Redis, shared by function replicas, and
unpickling on a value anyone with write access to that Redis can plant runs their code
in the function. This format can only rebuild data:

- JSON scalars, and explicitly tagged containers (list, tuple, set, dict with str/int keys,
  deque with its ``maxlen``), non-finite floats and numpy scalars;
- numpy arrays of bool/int/uint/float dtypes as raw little-endian bytes after the header
  (shape and dtype in the header, sizes checked against the payload), plus small object
  arrays whose items are themselves encodable;
- instances of the classes in the ``allowed`` registry the caller passes (tracker state
  classes of boxmot, say): created with ``object.__new__`` and given their attributes, never
  calling any constructor, ``__setstate__`` or other code named by the data; enum members of
  allowed enums. A name outside the registry is an error, not an import;
- shared references (one Kalman filter held by every track) are kept shared.

Layout: ``b"CVTS" + version byte + uint32 header length + header JSON + array bytes``.
Authenticity is not this module's job: :mod:`~cvat_extension.adapters.nuclio.signed_store`
signs what is stored.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import json
import math
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from cvat_extension.errors import InputError

__all__ = ["StateFormatError", "class_name", "decode", "encode"]

MAGIC = b"CVTS"
VERSION = 1
_HEADER = struct.Struct("<4sBI")
_ARRAY_KINDS = "biuf"  # bool, signed, unsigned, float: the only raw dtypes accepted


class StateFormatError(InputError):
    """Bytes that are not a state of this format (or use a class outside the registry)."""


def class_name(cls: type) -> str:
    """The registry key of ``cls``: ``module.QualName``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _attrs_of(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "__dict__"):
        return dict(vars(obj))
    if dataclasses.is_dataclass(obj):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    slots = getattr(type(obj), "__slots__", ())
    return {s: getattr(obj, s) for s in slots if hasattr(obj, s)}


class _Encoder:
    def __init__(self, allowed: Mapping[str, type], special: Mapping[type, Any]) -> None:
        self.allowed = allowed
        self.special = special
        self.blobs: list[np.ndarray] = []
        self.memo: dict[int, int] = {}
        self.keep: list[Any] = []  # keeps memoised objects alive so ids stay unique

    def __call__(self, value: Any, path: str) -> Any:  # noqa: C901 - one branch per type
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int) and not isinstance(value, enum.Enum):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"$f": repr(value)}
        if isinstance(value, np.generic):
            if value.dtype.kind not in _ARRAY_KINDS:
                raise TypeError(f"{path}: numpy scalar of dtype {value.dtype} is not encodable")
            item = value.item()
            return {"$s": value.dtype.str, "v": item if math.isfinite(float(item)) else repr(float(item))}
        if isinstance(value, np.ndarray):
            if value.dtype.kind in _ARRAY_KINDS:
                self.blobs.append(np.ascontiguousarray(value))
                return {"$a": len(self.blobs) - 1}
            if value.dtype.kind == "O":
                return {"$oa": list(value.shape), "items": [self(v, f"{path}[]") for v in value.ravel()]}
            raise TypeError(f"{path}: array of dtype {value.dtype} is not encodable")
        if isinstance(value, enum.Enum):
            name = class_name(type(value))
            if name not in self.allowed:
                raise TypeError(f"{path}: enum {name} is not in the registry")
            return {"$e": name, "v": self(value.value, path)}
        if isinstance(value, list):
            return {"$l": [self(v, f"{path}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, tuple):
            return {"$t": [self(v, f"{path}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, (set, frozenset)):
            return {"$set": [self(v, f"{path}{{}}") for v in value]}
        if isinstance(value, collections.deque):
            return {"$q": [self(v, f"{path}[{i}]") for i, v in enumerate(value)], "maxlen": value.maxlen}
        if isinstance(value, dict):
            items = []
            for k, v in value.items():
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise TypeError(f"{path}: dict key {type(k).__name__} is not encodable")
                items.append([k, self(v, f"{path}[{k!r}]")])
            return {"$d": items}
        for kind, (tag, to_json, _) in self.special.items():
            if isinstance(value, kind):
                return {tag: to_json(value)}
        name = class_name(type(value))
        if name not in self.allowed:
            raise TypeError(f"{path}: {name} is not in the registry of state classes")
        if id(value) in self.memo:
            return {"$r": self.memo[id(value)]}
        ref = len(self.memo)
        self.memo[id(value)] = ref
        self.keep.append(value)
        attrs = {k: self(v, f"{path}.{k}") for k, v in _attrs_of(value).items()}
        return {"$o": name, "id": ref, "a": attrs}


def encode(root: Any, *, allowed: Mapping[str, type], special: Mapping[type, Any] | None = None) -> bytes:
    """Bytes of ``root`` (see the module docstring for what is encodable).

    Args:
        root: the value.
        allowed: registry name → class of the objects and enums that may be rebuilt.
        special: ``type → (tag, to_json, from_json)`` for leaf types with their own form
            (e.g. ``cv2.KeyPoint``).

    Raises:
        TypeError: a value outside the format, naming where it is in ``root``.
    """
    enc = _Encoder(allowed, special or {})
    tree = enc(root, "state")
    blobs = []
    offset = 0
    for arr in enc.blobs:
        blobs.append([arr.dtype.newbyteorder("<").str, list(arr.shape), offset, arr.nbytes])
        offset += arr.nbytes
    header = json.dumps({"root": tree, "blobs": blobs}, separators=(",", ":")).encode("utf-8")
    parts = [_HEADER.pack(MAGIC, VERSION, len(header)), header]
    parts.extend(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes() for arr in enc.blobs)
    return b"".join(parts)


class _Decoder:
    def __init__(self, allowed: Mapping[str, type], special: Mapping[str, Any], arrays: list[np.ndarray]) -> None:
        self.allowed = allowed
        self.special = special
        self.arrays = arrays
        self.objects: dict[int, Any] = {}

    def __call__(self, node: Any) -> Any:  # noqa: C901 - one branch per tag
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if not isinstance(node, dict) or len(node) == 0:
            raise StateFormatError("state: untagged container")
        if "$l" in node:
            return [self(v) for v in _list(node["$l"])]
        if "$t" in node:
            return tuple(self(v) for v in _list(node["$t"]))
        if "$set" in node:
            return {self(v) for v in _list(node["$set"])}
        if "$q" in node:
            maxlen = node.get("maxlen")
            if maxlen is not None and (not isinstance(maxlen, int) or maxlen < 0):
                raise StateFormatError("state: bad deque maxlen")
            return collections.deque((self(v) for v in _list(node["$q"])), maxlen=maxlen)
        if "$d" in node:
            out = {}
            for pair in _list(node["$d"]):
                if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], (str, int)):
                    raise StateFormatError("state: bad dict item")
                out[pair[0]] = self(pair[1])
            return out
        if "$f" in node:
            if node["$f"] not in ("nan", "inf", "-inf"):
                raise StateFormatError("state: bad float")
            return float(node["$f"])
        if "$s" in node:
            dtype = _dtype(node["$s"])
            value = node.get("v")
            if isinstance(value, str):
                value = float(value) if value in ("nan", "inf", "-inf") else None
            if not isinstance(value, (bool, int, float)):
                raise StateFormatError("state: bad numpy scalar")
            return dtype.type(value)
        if "$a" in node:
            index = node["$a"]
            if not isinstance(index, int) or not 0 <= index < len(self.arrays):
                raise StateFormatError("state: array reference out of range")
            return self.arrays[index].copy()
        if "$oa" in node:
            shape = node["$oa"]
            items = [self(v) for v in _list(node.get("items"))]
            if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape) \
                    or math.prod(shape) != len(items):
                raise StateFormatError("state: bad object array")
            arr = np.empty(len(items), dtype=object)
            arr[:] = items
            return arr.reshape(shape)
        if "$e" in node:
            cls = self._class(node["$e"])
            if not issubclass(cls, enum.Enum):
                raise StateFormatError(f"state: {node['$e']} is not an enum")
            try:
                return cls(self(node.get("v")))
            except ValueError as exc:
                raise StateFormatError(f"state: bad {node['$e']} value") from exc
        if "$r" in node:
            if node["$r"] not in self.objects:
                raise StateFormatError("state: reference to an unknown object")
            return self.objects[node["$r"]]
        if "$o" in node:
            cls = self._class(node["$o"])
            ref, attrs = node.get("id"), node.get("a")
            if not isinstance(ref, int) or ref in self.objects or not isinstance(attrs, dict):
                raise StateFormatError("state: bad object")
            obj = object.__new__(cls)
            self.objects[ref] = obj
            slots = {s for c in cls.__mro__ for s in getattr(c, "__slots__", ())}
            for key, value in attrs.items():
                decoded = self(value)
                if hasattr(obj, "__dict__"):
                    vars(obj)[key] = decoded  # straight into the dict: no property or __setattr__ runs
                elif key in slots:
                    object.__setattr__(obj, key, decoded)  # a slot's own descriptor, nothing else
                else:
                    raise StateFormatError(f"state: {node['$o']} has no attribute slot {key[:40]!r}")
            return obj
        for tag, from_json in self.special.items():
            if tag in node:
                return from_json(node[tag])
        raise StateFormatError(f"state: unknown tag {sorted(node)[:1]}")

    def _class(self, name: Any) -> type:
        cls = self.allowed.get(name) if isinstance(name, str) else None
        if cls is None:
            raise StateFormatError(f"state: class {str(name)[:80]!r} is not a known state class")
        return cls


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise StateFormatError("state: expected a list")
    return value


def _dtype(text: Any) -> np.dtype[Any]:
    try:
        dtype = np.dtype(text) if isinstance(text, str) and len(text) <= 8 else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in _ARRAY_KINDS:
        raise StateFormatError(f"state: dtype {str(text)[:20]!r} is not allowed")
    return dtype


def decode(data: bytes, *, allowed: Mapping[str, type], special: Mapping[type, Any] | None = None) -> Any:
    """Rebuild what :func:`encode` wrote, using only the classes in ``allowed``.

    Raises:
        StateFormatError: not this format, a version we do not read, sizes that do not add
            up, or a class outside the registry.
    """
    if len(data) < _HEADER.size:
        raise StateFormatError("state: too short")
    magic, version, header_len = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise StateFormatError("state: not a tracker state")
    if version != VERSION:
        raise StateFormatError(f"state: format version {version} is not supported (expected {VERSION})")
    end = _HEADER.size + header_len
    if end > len(data):
        raise StateFormatError("state: truncated header")
    try:
        header = json.loads(data[_HEADER.size:end].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise StateFormatError("state: header is not JSON") from exc
    if not isinstance(header, dict) or not isinstance(header.get("blobs"), list):
        raise StateFormatError("state: bad header")
    payload = memoryview(data)[end:]
    arrays = []
    for blob in header["blobs"]:
        if not isinstance(blob, list) or len(blob) != 4:
            raise StateFormatError("state: bad array entry")
        dtype_text, shape, offset, nbytes = blob
        dtype = _dtype(dtype_text)
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape) \
                or not isinstance(offset, int) or not isinstance(nbytes, int) or offset < 0 \
                or math.prod(shape) * dtype.itemsize != nbytes or offset + nbytes > len(payload):
            raise StateFormatError("state: array sizes do not match the payload")
        arrays.append(np.frombuffer(payload[offset:offset + nbytes], dtype=dtype).reshape(shape))
    specials = {tag: from_json for _, (tag, _, from_json) in (special or {}).items()}
    try:
        return _Decoder(allowed, specials, arrays)(header.get("root"))
    except RecursionError as exc:
        raise StateFormatError("state: nested too deeply") from exc
