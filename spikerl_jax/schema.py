"""Typed JSON records: frozen dataclasses to JSON-able values and back, with validation.

Run directories hold JSON written by this package (``config.json``, the loop state inside
checkpoints); reading them back goes through ``from_jsonable``, which checks every value
against the dataclass's field types and reports every problem at once (one line each), so a
hand-edited or damaged file is refused with the fields to fix instead of a traceback later.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import types
import typing
from typing import Any, Literal, Union


class SchemaError(ValueError):
    """Values that do not fit a dataclass's fields; ``problems`` has one line per field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def write_json(path: str, value: Any, indent: int | None = 2) -> None:
    """Writes ``value`` (JSON-able, or dataclasses) to ``path`` atomically: a process killed
    while writing leaves the previous file or the new one, never half of one."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(to_jsonable(value), f, indent=indent)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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


@dataclasses.dataclass
class _Reader:
    """Converts JSON-able values to typed ones, collecting every problem.

    Attributes:
      finite: floats must be finite (records on disk); False lets NaN and infinities pass,
        for a later check that names them better (``TrainConfig.validate``).
      complete: every field must be present (a missing one is a problem, not its default).
    """

    finite: bool = True
    complete: bool = False
    problems: list[str] = dataclasses.field(default_factory=list)

    def fail(self, tp, value, path: str, what: str | None = None):
        self.problems.append(f"{path}: expected {what or _describe(tp)}, got {value!r}")

    def convert(self, tp, value, path: str):
        """``value`` as type ``tp`` (None, with a problem noted, where it is not)."""
        origin = typing.get_origin(tp)
        if tp is Any:
            return value
        if origin in (Union, types.UnionType):
            return self.union(tp, value, path)
        if origin is Literal:
            return value if value in typing.get_args(tp) else self.fail(tp, value, path)
        if dataclasses.is_dataclass(tp):
            return self.build(tp, value, path)
        if origin is tuple:
            return self.tuple(tp, value, path)
        for kind, name in ((dict, "an object"), (list, "a list")):
            if origin is kind or tp is kind:
                return value if isinstance(value, kind) else self.fail(tp, value, path, name)
        return self.scalar(tp, value, path)

    def union(self, tp, value, path: str):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            trial = dataclasses.replace(self, problems=[])
            out = trial.convert(arg, value, path)
            if not trial.problems:
                return out
        return self.fail(tp, value, path)

    def tuple(self, tp, value, path: str):
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            return self.fail(tp, value, path)
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif len(args) != len(value):
            return self.fail(tp, value, path, f"{len(args)} values")
        return tuple(
            self.convert(a, v, f"{path}[{i}]")
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )

    def scalar(self, tp, value, path: str):
        if tp not in (bool, int, float, str):
            raise TypeError(f"schema: unsupported field type {tp!r} at {path}")
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if tp is float and number:
            if self.finite and not math.isfinite(value):
                return self.fail(tp, value, path, "a finite number")
            return float(value)
        ok = {
            bool: isinstance(value, bool),
            int: number and isinstance(value, int),
            str: isinstance(value, str),
        }.get(tp, False)
        return value if ok else self.fail(tp, value, path)

    def build(self, cls, data, path: str):
        if not isinstance(data, dict):
            where = path or cls.__name__
            self.problems.append(f"{where}: expected an object, got {type(data).__name__}")
            return None
        hints, fields = _hints(cls), dataclasses.fields(cls)
        for unknown in sorted(set(data) - {f.name for f in fields}):
            self.problems.append(f"{path + '.' if path else ''}{unknown}: unknown field")
        kwargs, before = {}, len(self.problems)
        for field in fields:
            where = f"{path}.{field.name}" if path else field.name
            if field.name in data:
                kwargs[field.name] = self.convert(hints[field.name], data[field.name], where)
            elif self.complete or (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                self.problems.append(f"{where}: missing")
        return None if len(self.problems) > before else cls(**kwargs)


def from_jsonable(cls, data: Any, complete: bool = False):
    """An instance of the dataclass ``cls`` from JSON-able ``data`` (missing fields take their
    defaults, unless ``complete``: then each is a problem).

    Raises:
      SchemaError: listing every field that is unknown, missing or of the wrong type.
    """
    reader = _Reader(complete=complete)
    out = reader.build(cls, data, "")
    if reader.problems:
        raise SchemaError(reader.problems)
    return out


def type_problems(value) -> list[str]:
    """The fields of the dataclass instance ``value`` whose values do not fit their types
    (non-finite floats pass: a value check names them)."""
    reader = _Reader(finite=False)
    reader.build(type(value), to_jsonable(value), "")
    return reader.problems
