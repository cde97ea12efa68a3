"""Sweeps: a grid of settings x seeds trained as one population (``spikerl-jax sweep``).

Members may differ in their seed and in the settings that keep every array's shape
(``config.algorithms``: each algorithm names its own): those enter the programs as values,
not constants, so all members share one set of compiled programs, vmapped over the member
axis. Settings
that change shapes (hidden sizes, populations, T, batch size, ...) need separate sweeps.

Each member writes its own run directory, as a single run (``ROOT/LABEL-sSEED``: records,
and ``population.json`` naming the root); the sweep root holds the population's checkpoints,
``sweep_spec.json`` (what to train, for ``--resume``) and, at the end,
``sweep.json`` / ``sweep.csv`` (per setting: mean and std over seeds of the final and best
returns, ranked) and ``learning_curves.png``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os

from spikerl_jax.config import ConfigError, TrainConfig, differing_fields, flag
from spikerl_jax.config.algorithms import sweepable
from spikerl_jax.config.base import new_run_dir
from spikerl_jax.schema import SchemaError, from_jsonable, write_json

# Every algorithm's sweepable settings (the command line's grid options) and the config
# section each lives in (None: at its top); a sweep may vary those of its ``--algo``.
SWEEPABLE = sweepable()
SPEC_FILE = "sweep_spec.json"
# What members of one population may differ in besides the sweepable settings.
PER_MEMBER = {"seed", "out"}


def with_setting(cfg: TrainConfig, name: str, value: float) -> TrainConfig:
    """``cfg`` with the sweepable setting ``name`` set to ``value``."""
    section = SWEEPABLE[name]
    if section is None:
        return dataclasses.replace(cfg, **{name: value})
    inner = dataclasses.replace(getattr(cfg, section), **{name: value})
    return dataclasses.replace(cfg, **{section: inner})


def setting_label(setting: dict[str, float]) -> str:
    """A member directory's prefix, e.g. ``actor_lr=0.0003,exploration_noise=0.2``."""
    return ",".join(f"{k}={v:g}" for k, v in setting.items()) or "base"


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """What a sweep trains.

    Attributes:
      base: the configuration every member starts from (its ``out`` is the sweep root).
      seeds: the seeds of every setting.
      grid: ``(setting, values)`` pairs; the members are their product times the seeds.
    """

    base: TrainConfig
    seeds: tuple[int, ...]
    grid: tuple[tuple[str, tuple[float, ...]], ...] = ()

    @property
    def root(self) -> str:
        return self.base.out

    def settings(self) -> list[dict[str, float]]:
        """Every combination of the grid's values (one empty setting without a grid)."""
        names = [name for name, _ in self.grid]
        return [
            dict(zip(names, values, strict=True))
            for values in itertools.product(*(v for _, v in self.grid))
        ]

    @property
    def size(self) -> int:
        """How many members the sweep trains (known before its root is chosen)."""
        return len(self.settings()) * len(self.seeds)

    def describe(self) -> str:
        """The seeds and grid as flags, e.g. ``--seeds 0 1 --gamma 0.9 0.8``."""
        values = [("seeds", self.seeds), *self.grid]
        return " ".join(f"{flag(n)} {' '.join(f'{v:g}' for v in vs)}" for n, vs in values)

    def members(self) -> list[TrainConfig]:
        """Each member's full config: settings x seeds, in that order."""
        configs = []
        for setting in self.settings():
            cfg = self.base
            for name, value in setting.items():
                cfg = with_setting(cfg, name, value)
            for seed in self.seeds:
                out = os.path.join(self.root, f"{setting_label(setting)}-s{seed}")
                configs.append(dataclasses.replace(cfg, seed=seed, out=out))
        return configs

    def with_root(self) -> SweepSpec:
        """The spec with its root: ``--out``, or a new ``runs/sweep-ENV-TIMESTAMP``."""
        if self.root is not None:
            return self
        return dataclasses.replace(
            self, base=dataclasses.replace(self.base, out=new_run_dir(f"sweep-{self.base.env}"))
        )

    def placed(self) -> SweepSpec:
        """The spec, or without a root yet one under a placeholder ``ROOT`` (to check its
        members before anything is written)."""
        if self.root is not None:
            return self
        return dataclasses.replace(self, base=dataclasses.replace(self.base, out="ROOT"))

    def validate(self) -> None:
        """Raises ``ConfigError`` for a bad grid (``validate_grid``) or a bad value of a
        member (``TrainConfig.validate``, once per member)."""
        self.validate_grid()
        for cfg in self.placed().members():
            cfg.validate()

    def validate_grid(self) -> None:
        """Raises ``ConfigError`` for an empty or duplicated seed list, an unknown or
        repeated setting, or an empty output directory (None: ``with_root`` makes one);
        the members' values are ``validate``'s."""
        if self.root is not None and not self.root.strip():
            raise ConfigError("--out must name a directory (it is empty)")
        if not self.seeds:
            raise ConfigError("--seeds needs at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"--seeds has repeated seeds: {list(self.seeds)}")
        names, algo = [name for name, _ in self.grid], self.base.algo
        for name, values in self.grid:
            if name not in sweepable(algo):
                raise ConfigError(
                    f"{flag(name)} cannot vary within one --algo {algo} sweep (it changes the "
                    f"compiled program, or {algo} has no such setting); sweepable: "
                    f"{', '.join(flag(n) for n in sweepable(algo))}"
                )
            if len(set(values)) != len(values):
                raise ConfigError(f"{flag(name)} has repeated values: {list(values)}")
        if len(set(names)) != len(names):
            raise ConfigError("a setting is given twice")


def check_population(configs: list[TrainConfig]) -> None:
    """Raises ``ConfigError`` unless the members differ only in what a population may vary:
    seeds, outputs and their algorithm's sweepable settings."""
    mutable = PER_MEMBER | set(sweepable(configs[0].algo))
    for cfg in configs[1:]:
        for name, first, value in differing_fields(configs[0], cfg, mutable):
            raise ConfigError(
                f"members of one population must share {flag(name)} ({first!r} vs {value!r}): "
                "it changes the compiled program; train them separately"
            )
    outs = [c.run_dir() for c in configs]
    if len(set(outs)) != len(outs):
        raise ConfigError("members of one population need distinct output directories")


def save_spec(spec: SweepSpec) -> None:
    """Writes ``ROOT/sweep_spec.json`` (refusing a root that already holds a sweep)."""
    write_spec(spec, SPEC_FILE, "sweep")


def load_spec(root: str) -> SweepSpec:
    """Reads ``ROOT/sweep_spec.json`` (``read_spec``)."""
    return read_spec(root, SweepSpec, SPEC_FILE, "sweep")


# The command and the name of a population's run, by what its spec file holds.
RUN_NAMES = {"sweep": "a sweep", "pbt": "a PBT run"}


def write_spec(spec, file: str, command: str) -> None:
    """Writes a population's ``spec`` (a sweep's, PBT's) as ``ROOT/FILE`` for
    ``spikerl-jax COMMAND --resume``, refusing a root that already holds one.

    Raises:
      ConfigError: the root holds a run already, or cannot be written.
    """
    path, what = os.path.join(spec.root, file), RUN_NAMES[command]
    if os.path.exists(path):
        raise ConfigError(
            f"{spec.root} already holds {what}; choose another --out, or continue it with "
            f"spikerl-jax {command} --resume {spec.root}"
        )
    try:
        os.makedirs(spec.root, exist_ok=True)
        write_json(path, spec)
    except OSError as e:
        raise ConfigError(
            f"cannot write the {command} directory --out {spec.root}: {e.strerror}"
        ) from None


def read_spec(root: str, cls, file: str, command: str):
    """Reads ``ROOT/FILE`` as ``cls`` (a population's spec, written by ``write_spec``).

    Raises:
      ConfigError: no such run there, or a spec that does not validate (one entry per
        problem).
    """
    path, what = os.path.join(root, file), RUN_NAMES[command]
    if not os.path.exists(root):
        raise ConfigError(f"{root} does not exist; --resume takes the root of {what}")
    if not os.path.isfile(path):
        raise ConfigError(f"{root} is not the root of {what} (no {file})")
    try:
        with open(path) as f:
            return from_jsonable(cls, json.load(f))
    except (OSError, json.JSONDecodeError, SchemaError) as e:
        raise ConfigError(f"{path} is not a valid {command} spec: {e}") from None
