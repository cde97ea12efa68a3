"""The ``sweep`` command's view of ``TrainConfig``: the same fields, with every sweepable
setting taking several values (``GridConfig``), and the conversions between the two."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import textwrap
import typing
from typing import Annotated

import tyro

from spikerl_jax.config import TrainConfig
from spikerl_jax.sweep_spec import SWEEPABLE


def field_docs(cls) -> dict[str, str]:
    """The docstrings of a dataclass's fields (the string under each field, as tyro reads
    them), for the classes ``grid_config`` derives."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body, docs = tree.body[0].body, {}
    for node, after in itertools.pairwise(body):
        doc = after.value if isinstance(after, ast.Expr) else None
        if isinstance(node, ast.AnnAssign) and isinstance(doc, ast.Constant):
            docs[node.target.id] = " ".join(str(doc.value).split())
    return docs


def grid_config(cls):
    """``cls`` (a config dataclass) with every ``SWEEPABLE`` field taking several values,
    ``tuple[float, ...]`` (one setting each), and the others as they are."""
    hints, docs, fields = typing.get_type_hints(cls, include_extras=True), field_docs(cls), []
    for f in dataclasses.fields(cls):
        kind, default = hints[f.name], f.default
        if dataclasses.is_dataclass(kind):
            kind = grid_config(kind)
            default = convert(f.default, kind, _as_grid)
        elif f.name in SWEEPABLE:
            kind, default = tuple[float, ...], (default,)
        doc = docs.get(f.name, "")
        if f.name in SWEEPABLE:
            doc += " Several values sweep it: one setting each."
        if not dataclasses.is_dataclass(kind) and typing.get_origin(kind) is not Annotated:
            kind = Annotated[kind, tyro.conf.arg(help=doc)]
        fields.append((f.name, kind, dataclasses.field(default=default)))
    made = dataclasses.make_dataclass(cls.__name__, fields, frozen=True)
    made.__doc__ = cls.__doc__
    return made


def _as_grid(name: str, value):
    return (value,) if name in SWEEPABLE else value


def convert(value, cls, leaf):
    """The dataclass ``value`` rebuilt as ``cls`` (the same fields, nested sections too),
    each leaf field through ``leaf(name, value)``."""
    hints = typing.get_type_hints(cls)
    return cls(
        **{
            f.name: convert(getattr(value, f.name), hints[f.name], leaf)
            if dataclasses.is_dataclass(getattr(value, f.name))
            else leaf(f.name, getattr(value, f.name))
            for f in dataclasses.fields(cls)
        }
    )


GridConfig = grid_config(TrainConfig)


def to_grid(cfg, grid_cls=None):
    """A ``TrainConfig`` (or a section of it) as its grid class (every sweepable setting
    with one value)."""
    return convert(cfg, grid_cls or GridConfig, _as_grid)


def from_grid(grid) -> tuple[TrainConfig, tuple[tuple[str, tuple[float, ...]], ...]]:
    """The base ``TrainConfig`` of a parsed ``GridConfig`` (each sweepable setting at its
    first value) and the grid: the settings given several values, in ``SWEEPABLE``'s order."""
    several = {}

    def leaf(name, value):
        if name not in SWEEPABLE:
            return value
        if len(value) > 1:
            several[name] = tuple(value)
        return value[0] if value else None

    cfg = convert(grid, TrainConfig, leaf)
    return cfg, tuple((name, several[name]) for name in SWEEPABLE if name in several)
