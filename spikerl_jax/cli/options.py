"""The training commands' views of ``TrainConfig``: the same fields with their docstrings as
help (one paragraph each) and the common CleanRL spellings as aliases, for ``train``
(``TrainOptions``), for ``sweep``, whose sweepable settings take several values
(``GridConfig``), and for ``pbt``, whose sweepable settings take a range (``RangeConfig``);
and the conversions between a view and ``TrainConfig``."""

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
from spikerl_jax.pbt_spec import Range, parse_range
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


# ``sweep``'s option that ``pbt`` replaces with its own.
PBT_REPLACES = {"seeds": "--seed (members take SEED, SEED + 1, ...) and --members"}


def near_miss(args: list[str]) -> str | None:
    """The line refusing the first of ``NEAR_MISSES`` in ``args`` (for ``sweep``, also of
    ``SWEEP_REPLACES``; for ``pbt``, of ``PBT_REPLACES`` and a range given to a setting that
    changes shapes), or None."""
    command = args[0] if args else None
    replaced = {"sweep": SWEEP_REPLACES, "pbt": PBT_REPLACES}.get(command, {})
    replaced = {f"--{k}": v for k, v in replaced.items()}
    for arg, after in zip(args, [*args[1:], ""], strict=True):
        name, _, value = arg.partition("=")
        if name in NEAR_MISSES:
            return f"{name} is not a spikerl-jax option; use {NEAR_MISSES[name]}"
        if name in replaced:
            what = "a sweep" if command == "sweep" else "PBT"
            return f"{what} does not take {name}; use {replaced[name]}"
        value = value or after
        field = name[2:].replace("-", "_")
        if command == "pbt" and ":" in value and field in SHAPED and field not in SWEEPABLE:
            return (
                f"{name} cannot be searched by PBT: it changes the compiled program's shapes "
                "(every member shares one program); searchable: the settings whose --help "
                "says 'A range LOW:HIGH'"
            )
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


def options_view(cls, several: bool, ranges: bool = False):
    """``cls`` (a config dataclass, its sections too) as a command's options: each field
    with its help and aliases; with ``several`` every ``SWEEPABLE`` field taking several
    values, ``tuple[float, ...]`` (one setting each); with ``ranges`` a number or a range
    ``LOW:HIGH[:log]``, as text (``pbt_spec.parse_range``)."""
    hints, docs, fields = typing.get_type_hints(cls, include_extras=True), field_docs(cls), []
    for f in dataclasses.fields(cls):
        if several and f.name in SWEEP_REPLACES:
            continue
        kind, default = hints[f.name], f.default
        if dataclasses.is_dataclass(kind):
            kind = options_view(kind, several, ranges)
            fields.append((f.name, kind, dataclasses.field(default=to_view(f.default, kind))))
            continue
        arg, doc = tyro.conf.arg(), docs.get(f.name, "")
        if typing.get_origin(kind) is Annotated:  # a field's own tyro settings (its name)
            kind, arg = kind.__origin__, kind.__metadata__[0]
        if several and f.name in SWEEPABLE:
            kind, default = tuple[float, ...], (default,)
            doc += " Several values sweep it: one setting each."
        elif ranges and f.name in SWEEPABLE:
            kind, default = str, repr(default)
            doc += " A range LOW:HIGH (or LOW:HIGH:log, log-uniform) searches it."
        arg = dataclasses.replace(arg, help=doc, aliases=ALIASES.get(f.name))
        fields.append((f.name, Annotated[kind, arg], dataclasses.field(default=default)))
    # ``several`` is a class attribute, not a field: the view's conversions read it.
    namespace = {"several": several, "ranges": ranges, "__doc__": cls.__doc__}
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


def to_view(cfg, view, ranges=()):
    """A ``TrainConfig`` (or a section of it) as ``view`` (a grid's sweepable settings with
    one value each; a range view's as text, those of ``ranges`` as their ranges)."""
    searched = {r.name: f"{r.low!r}:{r.high!r}{':log' if r.log else ''}" for r in ranges}

    def leaf(name, v):
        if name not in SWEEPABLE:
            return v
        if view.several:
            return (v,)
        if view.ranges:
            return searched.get(name, repr(v))
        return v

    return convert(cfg, view, leaf)


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


def from_ranges(view) -> tuple[TrainConfig, tuple[Range, ...]]:
    """The base ``TrainConfig`` of a parsed ``RangeConfig`` (a searched setting at the low
    end of its range) and the ranges, in ``SWEEPABLE``'s order.

    Raises:
      ConfigError: a value that is neither a number nor a range, or a bad range.
    """
    found = {}

    def leaf(name, value):
        if name not in SWEEPABLE:
            return value
        parsed = parse_range(name, value)
        if isinstance(parsed, Range):
            found[name] = parsed
            return parsed.low
        return parsed

    cfg = convert(view, TrainConfig, leaf)
    return cfg, tuple(found[name] for name in SWEEPABLE if name in found)


def _fields(cls) -> set[str]:
    hints = typing.get_type_hints(cls)
    return {
        name
        for f in dataclasses.fields(cls)
        for name in (
            _fields(hints[f.name]) if dataclasses.is_dataclass(hints[f.name]) else {f.name}
        )
    }


SHAPED = _fields(TrainConfig)  # every config field (the non-sweepable keep their types)
TrainOptions = options_view(TrainConfig, several=False)
GridConfig = options_view(TrainConfig, several=True)
RangeConfig = options_view(TrainConfig, several=False, ranges=True)
