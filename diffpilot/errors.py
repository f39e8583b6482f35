"""The error types every layer raises; stdlib only, so any folder may import them."""

from __future__ import annotations

import dataclasses
import types
import typing


class ConfigError(ValueError):
    """A config value that cannot work, named with the value and what was expected."""


class CheckpointError(ValueError):
    """A checkpoint directory is missing a file or holds something other than what was asked for."""


def whole_number(name: str, value: object, minimum: int = 1) -> int:
    """`value` as an int of at least `minimum`, else a ConfigError naming `name` (2.5, 'abc', -1 and true fail)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"{name}={value!r}: expected {what}")
    return value


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _conform(value: object, expected: object) -> tuple[bool, object, str]:
    """(does `value` have the annotated type `expected`, the value as that type, how to say the type)."""
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool), value, "an integer"
    if expected is float:
        return _number(value), float(value) if _number(value) else value, "a number"
    if expected is bool:
        return isinstance(value, bool), value, "true or false"
    if expected is str:
        return isinstance(value, str), value, "a string"
    if origin is tuple and args and all(a is float for a in args if a is not Ellipsis):
        n = None if Ellipsis in args else len(args)
        seq = isinstance(value, list | tuple) and (n is None or len(value) == n) and all(map(_number, value))
        return seq, tuple(float(v) for v in value) if seq else value, f"a list of {n or 'any number of'} numbers"
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value is None:
            return True, None, ""
        inner = [a for a in args if a is not type(None)]
        ok, converted, what = _conform(value, inner[0]) if len(inner) == 1 else (True, value, "")
        return ok, converted, f"{what} or null"
    return True, value, ""  # other annotations are checked where they are used


def check_field_types(config: object, prefix: str) -> None:
    """Check (and convert int -> float where a float is expected) every field of a dataclass `config` against its
    annotation; a mismatch raises ConfigError naming `<prefix>.<field>`, the value and the expected type."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        ok, converted, what = _conform(value, hints.get(f.name))
        if not ok:
            raise ConfigError(f"{prefix}.{f.name}={value!r}: expected {what}")
        object.__setattr__(config, f.name, converted)
