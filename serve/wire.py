"""msgpack frames with numpy arrays, as openpi's websocket policy protocol encodes them: an array travels as a map
{b"__ndarray__": True, b"data": raw bytes, b"dtype": numpy dtype string, b"shape": [...]}, a numpy scalar as
{b"__npgeneric__": True, b"data": value, b"dtype": ...}. Decoding accepts numeric dtypes only (no object arrays)
and checks that the bytes match the shape, so a malformed frame is a WireError, never a crash."""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats


class WireError(ValueError):
    """A frame that is not a msgpack message of the expected form."""


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in NUMERIC_KINDS:
            raise TypeError(f"array dtype {obj.dtype}: expected a numeric dtype")
        array = np.ascontiguousarray(obj)
        return {b"__ndarray__": True, b"data": array.tobytes(), b"dtype": array.dtype.str, b"shape": list(array.shape)}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _dtype(value: Any) -> np.dtype:
    try:
        dtype = np.dtype(value.decode() if isinstance(value, bytes) else str(value))
    except (TypeError, ValueError, UnicodeDecodeError) as err:
        raise WireError(f"array dtype {value!r}: not a numpy dtype ({err})") from None
    if dtype.kind not in NUMERIC_KINDS:
        raise WireError(f"array dtype {dtype}: expected a numeric dtype")
    return dtype


def _decode(obj: dict) -> Any:
    if b"__ndarray__" in obj:
        dtype, data, shape = _dtype(obj.get(b"dtype")), obj.get(b"data"), obj.get(b"shape")
        if not isinstance(shape, list | tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise WireError(f"array shape {shape!r}: expected a list of integers ≥ 0")
        if not isinstance(data, bytes) or len(data) != math.prod(shape) * dtype.itemsize:
            size = len(data) if isinstance(data, bytes) else type(data).__name__
            raise WireError(f"array data of {size} bytes: expected {math.prod(shape) * dtype.itemsize} for {shape}")
        return np.frombuffer(data, dtype).reshape(shape)
    if b"__npgeneric__" in obj:
        return _dtype(obj.get(b"dtype")).type(obj.get(b"data"))
    return obj


def pack(message: Any) -> bytes:
    """A msgpack frame: dicts, lists, numbers, strings and numpy arrays / scalars."""
    return msgpack.packb(message, default=_encode)


def unpack(frame: Any) -> Any:
    """The message a binary frame holds; WireError for text frames and anything that does not decode."""
    if not isinstance(frame, bytes | bytearray):
        raise WireError(f"a {type(frame).__name__} frame: expected a binary msgpack frame")
    try:
        return msgpack.unpackb(frame, object_hook=_decode, strict_map_key=False)
    except WireError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as err:
        raise WireError(f"not a msgpack message ({type(err).__name__}: {err})") from None
