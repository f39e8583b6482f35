"""Typed, nested configs from plain dicts (Hydra's, or a checkpoint's config.json) and back: every unknown key and
every field that fails its check is named with its full path (`policy.sampler.eta`)."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def _dataclass_of(annotation: Any) -> type | None:
    """The dataclass an annotation names (directly or as `X | None`), else None."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        found = [a for a in typing.get_args(annotation) if dataclasses.is_dataclass(a)]
        return found[0] if len(found) == 1 else None
    return None


def config_from_dict(cls: type[T], values: dict[str, Any] | T, where: str) -> T:
    """`cls(**values)` with nested dataclass fields built from their dicts; a ValueError names `where.<key>` for an
    unknown key or a nested failure. A value that already is a `cls` is returned as it is."""
    if isinstance(values, cls):
        return values
    if not isinstance(values, dict):
        raise ValueError(f"{where}={values!r}: expected a mapping of {cls.__name__}'s fields")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected keys among {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        nested = _dataclass_of(hints[name])
        if nested is not None and isinstance(value, dict):
            value = nested_from_dict(nested, value, f"{where}.{name}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ValueError(f"{where}: {err}") from None


def nested_from_dict(cls: type, values: dict[str, Any], where: str) -> Any:
    """A nested part: classes with their own `from_dict(values, where)` (a registry picking the subclass) use it."""
    if hasattr(cls, "from_dict"):
        return cls.from_dict(values, where)
    return config_from_dict(cls, values, where)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as JSON-able nested dicts (tuples become lists); a nested config with its own `to_dict`
    (a registry's, which adds its `type`) writes itself."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and value is not config and hasattr(value, "to_dict"):
            return value.to_dict()
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(config)
