"""The training commands' views of ``TrainConfig``: the same fields with their docstrings as
help (one paragraph each) and the common CleanRL spellings as aliases, for ``train``
(``TrainOptions``) and for ``sweep``, whose sweepable settings take several values
(``GridConfig``); and the conversions between a view and ``TrainConfig``."""

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

# Other libraries' flags that mean exactly what a field means (CleanRL's TD3 and SB3's zoo).
ALIASES = {
    "env": ("--env-id",),
    "total_steps": ("--total-timesteps", "--n-timesteps"),
    "replay_size": ("--buffer-size",),
    "policy_delay": ("--policy-frequency",),
}

# Other libraries' flags that mean something close to one of ours, but not exactly: a command
# line that uses one is refused with what to write instead.
NEAR_MISSES = {
    "--learning-starts": "--start-steps (random actions) and --update-after (first update)",
    "--tau": "--polyak, which is 1 - tau",
    "--learning-rate": "--actor-lr and --critic-lr",
    "--policy-noise": "--target-noise, in action units (CleanRL's policy_noise x action scale)",
    "--noise-clip": "--target-noise-clip, in action units (CleanRL's noise_clip x action scale)",
    "--train-freq": "--update-every (env steps between update rounds, over all --num-envs)",
    "--gradient-steps": "--updates-per-round",
}


# ``train``'s options that a sweep replaces with its own (a sweep's view omits them).
SWEEP_REPLACES = {"seed": "--seeds (the seeds of every setting, e.g. --seeds 0 1 2)"}


def near_miss(args: list[str]) -> str | None:
    """The line refusing the first of ``NEAR_MISSES`` in ``args`` (for ``sweep``, also of
    ``SWEEP_REPLACES``), or None."""
    replaced = {f"--{k}": v for k, v in SWEEP_REPLACES.items()} if args[:1] == ["sweep"] else {}
    for arg in args:
        name = arg.split("=")[0]
        if name in NEAR_MISSES:
            return f"{name} is not a spikerl-jax option; use {NEAR_MISSES[name]}"
        if name in replaced:
            return f"a sweep does not take {name}; use {replaced[name]}"
    return None


def field_docs(cls) -> dict[str, str]:
    """The docstrings of a dataclass's fields (the string under each field), each joined
    into one paragraph: tyro would keep the line breaks of indented continuation lines."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body, docs = tree.body[0].body, {}
    for node, after in itertools.pairwise(body):
        doc = after.value if isinstance(after, ast.Expr) else None
        if isinstance(node, ast.AnnAssign) and isinstance(doc, ast.Constant):
            docs[node.target.id] = " ".join(str(doc.value).split())
    return docs


def options_view(cls, several: bool):
    """``cls`` (a config dataclass, its sections too) as a command's options: each field
    with its help and aliases, and with ``several`` every ``SWEEPABLE`` field taking several
    values, ``tuple[float, ...]`` (one setting each)."""
    hints, docs, fields = typing.get_type_hints(cls, include_extras=True), field_docs(cls), []
    for f in dataclasses.fields(cls):
        if several and f.name in SWEEP_REPLACES:
            continue
        kind, default = hints[f.name], f.default
        if dataclasses.is_dataclass(kind):
            kind = options_view(kind, several)
            fields.append((f.name, kind, dataclasses.field(default=to_view(f.default, kind))))
            continue
        arg, doc = tyro.conf.arg(), docs.get(f.name, "")
        if typing.get_origin(kind) is Annotated:  # a field's own tyro settings (its name)
            kind, arg = kind.__origin__, kind.__metadata__[0]
        if several and f.name in SWEEPABLE:
            kind, default = tuple[float, ...], (default,)
            doc += " Several values sweep it: one setting each."
        arg = dataclasses.replace(arg, help=doc, aliases=ALIASES.get(f.name))
        fields.append((f.name, Annotated[kind, arg], dataclasses.field(default=default)))
    # ``several`` is a class attribute, not a field: the view's conversions read it.
    namespace = {"several": several, "__doc__": cls.__doc__}
    return dataclasses.make_dataclass(cls.__name__, fields, frozen=True, namespace=namespace)


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
            if hasattr(value, f.name)  # a sweep's view omits ``SWEEP_REPLACES``: defaults
        }
    )


def to_view(cfg, view):
    """A ``TrainConfig`` (or a section of it) as ``view`` (a grid's sweepable settings with
    one value each)."""
    return convert(cfg, view, lambda name, v: (v,) if view.several and name in SWEEPABLE else v)


def from_options(options) -> TrainConfig:
    """The ``TrainConfig`` of a parsed ``TrainOptions``."""
    return convert(options, TrainConfig, lambda name, value: value)


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


TrainOptions = options_view(TrainConfig, several=False)
GridConfig = options_view(TrainConfig, several=True)
