"""Typed JSON records: frozen dataclasses to JSON-able values and back, with validation.

Run directories hold JSON written by this package (``config.json``, the loop state inside
checkpoints); reading them back goes through ``from_jsonable``, which checks every value
against the dataclass's field types and reports every problem at once (one line each), so a
hand-edited or damaged file is refused with the fields to fix instead of a traceback later.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Any, Literal, Union


class SchemaError(ValueError):
    """Values that do not fit a dataclass's fields; ``problems`` has one line per field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def to_jsonable(value: Any) -> Any:
    """Dataclasses to dicts and tuples to lists, recursively (the inverse of
    ``from_jsonable``)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


@functools.cache
def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is tuple:
        args = typing.get_args(tp)
        inner = _describe(args[0]) if args else "value"
        return f"a list of {inner}s"
    if dataclasses.is_dataclass(tp):
        return "an object"
    return getattr(tp, "__name__", str(tp))


def _convert(tp, value, path: str, problems: list[str]):
    """``value`` as type ``tp``; appends to ``problems`` (and returns None) where it is not."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            trial: list[str] = []
            out = _convert(arg, value, path, trial)
            if not trial:
                return out
        problems.append(f"{path}: expected {_describe(tp)}, got {value!r}")
        return None
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        problems.append(f"{path}: expected {_describe(tp)}, got {value!r}")
        return None
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path, problems)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            problems.append(f"{path}: expected {_describe(tp)}, got {value!r}")
            return None
        if len(args) == 2 and args[1] is Ellipsis:
            items = [_convert(args[0], v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
        elif len(args) != len(value):
            problems.append(f"{path}: expected {len(args)} values, got {len(value)}")
            return None
        else:
            items = [
                _convert(a, v, f"{path}[{i}]", problems)
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            ]
        return tuple(items)
    if origin is dict or tp is dict:
        if isinstance(value, dict):
            return value
        problems.append(f"{path}: expected an object, got {value!r}")
        return None
    if origin is list or tp is list:
        if isinstance(value, list):
            return value
        problems.append(f"{path}: expected a list, got {value!r}")
        return None
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if math.isfinite(value):
                return float(value)
            problems.append(f"{path}: expected a finite number, got {value!r}")
            return None
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"schema: unsupported field type {tp!r} at {path}")
    problems.append(f"{path}: expected {_describe(tp)}, got {value!r}")
    return None


def _build(cls, data, path: str, problems: list[str]):
    if not isinstance(data, dict):
        problems.append(f"{path or cls.__name__}: expected an object, got {type(data).__name__}")
        return None
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for unknown in sorted(set(data) - names):
        problems.append(f"{path + '.' if path else ''}{unknown}: unknown field")
    kwargs = {}
    before = len(problems)
    for field in dataclasses.fields(cls):
        where = f"{path}.{field.name}" if path else field.name
        if field.name not in data:
            has_default = (
                field.default is not dataclasses.MISSING
                or field.default_factory is not dataclasses.MISSING
            )
            if not has_default:
                problems.append(f"{where}: missing")
            continue
        kwargs[field.name] = _convert(hints[field.name], data[field.name], where, problems)
    if len(problems) > before:
        return None
    return cls(**kwargs)


def from_jsonable(cls, data: Any):
    """An instance of the dataclass ``cls`` from JSON-able ``data`` (missing fields take their
    defaults).

    Raises:
      SchemaError: listing every field that is unknown, missing or of the wrong type.
    """
    problems: list[str] = []
    out = _build(cls, data, "", problems)
    if problems:
        raise SchemaError(problems)
    return out
