"""Population-based training (``spikerl-jax pbt``): what it searches, and its decisions.

A PBT population is a sweep's population (one compiled program for every member, vmapped
over the member axis) whose members start from settings drawn from ranges and, every
``every`` steps, after an evaluation, are ranked by their score: the bottom ``quantile``
copy a random member of the top ``quantile`` (its networks, optimizers and normalizer; its
replay buffer with ``copy_buffer``) and explore from its settings, as Ray Tune's
``PopulationBasedTraining``: each setting resampled from its range with probability
``resample``, otherwise multiplied by 0.8 or 1.2 (and kept inside its range). The copy is a
gather over the member axis on the devices (``training.exploit``); the decisions are made
here, on the host, from the scores and a generator seeded by the run's seed and the step,
so a resumed run takes the same ones. With ``quantile 0`` nobody copies: a random search
over the same draws.

Each member writes its own run directory (``ROOT/mI-sSEED``), as a sweep's members do; the
root holds the checkpoints, ``pbt_spec.json`` (for ``--resume``), ``lineage.csv`` (every
copy: step, who copied whom, the settings before and after) and, at the end, ``pbt.json``
(members ranked, the best member's schedule of settings) and ``pbt.png``.

This module imports no JAX: the command line checks a spec before anything starts.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from spikerl_jax.config import ConfigError, TrainConfig, flag
from spikerl_jax.config.algorithms import init_only, sweepable
from spikerl_jax.config.base import new_run_dir
from spikerl_jax.sweep_spec import check_population, read_spec, with_setting, write_spec

SPEC_FILE = "pbt_spec.json"
PERTURB = (0.8, 1.2)  # Ray Tune's multiplicative perturbation of a continuous setting


@dataclasses.dataclass(frozen=True)
class Range:
    """A searched setting: ``low`` to ``high``, uniform or (``log``) log-uniform."""

    name: str
    low: float
    high: float
    log: bool = False

    def describe(self) -> str:
        """As the command line writes it, e.g. ``--actor-lr 1e-05:0.001:log``."""
        return f"{flag(self.name)} {self.low:g}:{self.high:g}{':log' if self.log else ''}"

    def draw(self, rng: np.random.Generator) -> float:
        """A value from the range's prior."""
        if self.log:
            return self.clip(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return self.clip(rng.uniform(self.low, self.high))

    def clip(self, value: float) -> float:
        """``value`` to four significant digits (readable records), inside the range."""
        return min(max(float(f"{value:.4g}"), self.low), self.high)


def parse_range(name: str, text: str) -> Range | float:
    """A setting's command-line value: ``LOW:HIGH`` or ``LOW:HIGH:log`` (a ``Range``) or one
    number (the setting fixed for every member).

    Raises:
      ConfigError: anything else, an empty or inverted range, a log range reaching 0.
    """
    parts = text.split(":")
    try:
        numbers = [float(p) for p in parts[:2]]
    except ValueError:
        numbers = None
    if len(parts) == 1 and numbers:
        return numbers[0]
    log = parts[2:] == ["log"]
    if numbers is None or len(parts) not in (2, 3) or (len(parts) == 3 and not log):
        raise ConfigError(
            f"{flag(name)} takes a number or a range LOW:HIGH[:log] (e.g. 1e-5:1e-3:log), "
            f"got {text!r}"
        )
    low, high = numbers
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ConfigError(
            f"{flag(name)} {text}: a range needs finite LOW < HIGH (it is empty or inverted)"
        )
    if log and low <= 0:
        raise ConfigError(f"{flag(name)} {text}: a log range needs LOW > 0 (it reaches 0)")
    return Range(name, low, high, log)


@dataclasses.dataclass(frozen=True)
class Exploit:
    """One member's copy at an exploit step (a row of ``lineage.csv``).

    Attributes:
      step: the env step of the exploit (after that step's evaluation).
      member: the member that copied.
      source: the member it copied.
      score: the copier's score; ``source_score``: the source's.
      before: the copier's settings before (in ``PBTSpec.ranges``' order); ``after``: its
        explored settings.
    """

    step: int
    member: int
    source: int
    score: float
    source_score: float
    before: tuple[float, ...]
    after: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class PBTRecord:
    """PBT's part of the loop's state (checkpointed with it).

    Attributes:
      settings: each member's current values of the searched settings.
      window: each member's evaluation returns since the last exploit step.
      lineage: every copy so far.
    """

    settings: tuple[tuple[float, ...], ...]
    window: tuple[tuple[float, ...], ...]
    lineage: tuple[Exploit, ...] = ()

    def evaluated(self, returns: list[float]) -> PBTRecord:
        """The record after an evaluation of each member's return ``returns``."""
        window = tuple((*w, float(r)) for w, r in zip(self.window, returns, strict=True))
        return dataclasses.replace(self, window=window)

    def scores(self) -> np.ndarray:
        """Each member's score: the mean return of its evaluations since the last exploit."""
        return np.array([np.mean(w) for w in self.window], np.float64)


@dataclasses.dataclass(frozen=True)
class PBTSpec:
    """What a PBT run trains.

    Attributes:
      base: the configuration every member starts from (its ``out`` is the root, its
        ``seed`` the first member's seed and that of the PBT decisions).
      members: how many members.
      every: env steps between exploit steps (a multiple of ``--eval-every``).
      ranges: the searched settings.
      quantile: the fraction of members that copy (and of those copied from); 0: none.
      resample: the probability that an explored setting is redrawn from its range.
      copy_buffer: a copier also takes its source's replay buffer.
    """

    base: TrainConfig
    members: int = 8
    every: int = 20_000
    ranges: tuple[Range, ...] = ()
    quantile: float = 0.25
    resample: float = 0.25
    copy_buffer: bool = False

    @property
    def root(self) -> str:
        return self.base.out

    @property
    def size(self) -> int:
        return self.members

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.ranges)

    def initial_settings(self) -> tuple[tuple[float, ...], ...]:
        """Each member's first values, drawn from the ranges (seeded by the run's seed)."""
        rng = np.random.default_rng([self.base.seed, 0])
        return tuple(tuple(r.draw(rng) for r in self.ranges) for _ in range(self.members))

    def initial_record(self) -> PBTRecord:
        settings = self.initial_settings()
        return PBTRecord(settings=settings, window=((),) * self.members)

    def label(self, member: int) -> str:
        return f"m{member}-s{self.base.seed + member}"

    def configs(self, settings: tuple[tuple[float, ...], ...] | None = None) -> list[TrainConfig]:
        """Each member's full config with ``settings`` (default: the initial ones)."""
        configs = []
        for m, values in enumerate(settings or self.initial_settings()):
            cfg = self.base
            for name, value in zip(self.names, values, strict=True):
                cfg = with_setting(cfg, name, value)
            out = os.path.join(self.root, self.label(m))
            configs.append(dataclasses.replace(cfg, seed=self.base.seed + m, out=out))
        return configs

    def with_root(self) -> PBTSpec:
        """The spec with its root: ``--out``, or a new ``runs/pbt-ENV-TIMESTAMP``."""
        if self.root is not None:
            return self
        root = new_run_dir(f"pbt-{self.base.env}")
        return dataclasses.replace(self, base=dataclasses.replace(self.base, out=root))

    def placed(self) -> PBTSpec:
        """The spec, or without a root yet one under a placeholder ``ROOT``."""
        if self.root is not None:
            return self
        return dataclasses.replace(self, base=dataclasses.replace(self.base, out="ROOT"))

    def due(self, step: int) -> bool:
        """Whether ``step`` (an evaluation's) is an exploit step: every ``every`` steps, the
        last one too (after the final evaluation; a run resumed with a larger
        ``--total-steps`` then goes on as the longer run would have)."""
        return step > 0 and step % self.every == 0

    def validate(self) -> None:
        """Raises ``ConfigError`` for a bad spec (one line each), before anything is
        written: every member's config is checked at both ends of every range."""
        cfg = self.base
        if self.root is not None and not self.root.strip():
            raise ConfigError("--out must name a directory (it is empty)")
        if self.members < 2:
            raise ConfigError(
                f"--members must be at least 2 (PBT ranks members), got {self.members}"
            )
        if self.every <= 0 or self.every % cfg.eval_every:
            raise ConfigError(
                f"--every must be a positive multiple of --eval-every {cfg.eval_every} (members "
                f"are ranked by their evaluations), got {self.every}"
            )
        if self.every >= cfg.total_steps:
            raise ConfigError(
                f"--every {self.every} is not below --total-steps {cfg.total_steps}: no member "
                "would ever copy another; lower --every"
            )
        if not 0 <= self.quantile <= 0.5:
            raise ConfigError(
                f"--quantile must be in [0, 0.5] (the fraction that copies; 0: a random "
                f"search), got {self.quantile}"
            )
        if not 0 <= self.resample <= 1:
            raise ConfigError(f"--resample must be a probability in [0, 1], got {self.resample}")
        if not self.ranges:
            raise ConfigError(
                "PBT needs at least one range to search, e.g. --actor-lr 1e-5:1e-3:log "
                f"(searchable: {', '.join(flag(n) for n in searchable(cfg))})"
            )
        for r in self.ranges:
            if r.name not in searchable(cfg):
                raise ConfigError(
                    f"{flag(r.name)} cannot be searched by PBT with --algo {cfg.algo}: "
                    f"{_why_not(cfg, r.name)}; searchable: "
                    f"{', '.join(flag(n) for n in searchable(cfg))}"
                )
        for end in ("low", "high"):  # each setting's own checks, at both ends of its range
            c = cfg
            for r in self.ranges:
                c = with_setting(c, r.name, getattr(r, end))
            c.validate()
        cfg.validate()
        check_population(self.placed().configs())

    def exploit(self, step: int, record: PBTRecord) -> tuple[np.ndarray, PBTRecord]:
        """The exploit step at ``step``: ``(sources (M,), record)``, where member ``m``
        copies member ``sources[m]`` (itself: kept) and the record holds the explored
        settings, the copies in its lineage and an empty window."""
        scores = record.scores()
        rng = np.random.default_rng([self.base.seed, step])
        count = min(math.ceil(self.members * self.quantile), self.members // 2)
        order = np.argsort(-scores, kind="stable")  # best first; ties: the lower index
        top, bottom = order[:count], order[self.members - count :] if count else []
        sources, settings, copies = np.arange(self.members), list(record.settings), []
        for m in sorted(int(b) for b in bottom):
            source = int(top[rng.integers(count)])
            after = self.explore(record.settings[source], rng)
            sources[m], settings[m] = source, after
            copies.append(
                Exploit(
                    step,
                    m,
                    source,
                    float(scores[m]),
                    float(scores[source]),
                    record.settings[m],
                    after,
                )
            )
        return sources, PBTRecord(
            settings=tuple(settings),
            window=((),) * self.members,
            lineage=(*record.lineage, *copies),
        )

    def explore(self, values: tuple[float, ...], rng: np.random.Generator) -> tuple[float, ...]:
        """``values`` explored: each resampled with probability ``resample``, otherwise
        multiplied by 0.8 or 1.2, inside its range."""
        out = []
        for r, value in zip(self.ranges, values, strict=True):
            if rng.random() < self.resample:
                out.append(r.draw(rng))
            else:
                out.append(r.clip(value * PERTURB[rng.integers(2)]))
        return tuple(out)

    def schedule(self, member: int, lineage: tuple[Exploit, ...]) -> list[dict]:
        """The settings the networks of ``member`` trained with, as ``{start, end, owner,
        SETTING: value}`` segments from step 0 to the end (following its copies back)."""
        initial, owner, end, segments = self.initial_settings(), member, None, []
        for copy in sorted(lineage, key=lambda c: c.step, reverse=True):
            if copy.member == owner and (end is None or copy.step < end):
                segments.append((copy.step, end, owner, copy.after))
                owner, end = copy.source, copy.step
        segments.append((0, end, owner, initial[owner]))
        last = self.base.total_steps
        return [
            {
                "start": s,
                "end": last if e is None else e,
                "member": o,
                **dict(zip(self.names, v, strict=True)),
            }
            for s, e, o, v in reversed(segments)
        ]


def searchable(cfg: TrainConfig) -> tuple[str, ...]:
    """The settings PBT may search for ``cfg``'s algorithm: its sweepable ones that act at
    every update (not those that only set a starting point)."""
    return tuple(n for n in sweepable(cfg.algo) if n not in init_only(cfg))


def _why_not(cfg: TrainConfig, name: str) -> str:
    if name in init_only(cfg):
        return "it only sets where training starts, which a copy would overwrite"
    if name in sweepable():
        return f"--algo {cfg.algo} has no such setting"
    return "it changes the compiled program's shapes"


def save_spec(spec: PBTSpec) -> None:
    """Writes ``ROOT/pbt_spec.json`` (refusing a root that already holds a PBT run)."""
    write_spec(spec, SPEC_FILE, "pbt")


def is_pbt_root(path: str) -> bool:
    return os.path.isfile(os.path.join(path, SPEC_FILE))


def load_spec(root: str) -> PBTSpec:
    """Reads ``ROOT/pbt_spec.json`` (``sweep_spec.read_spec``)."""
    return read_spec(root, PBTSpec, SPEC_FILE, "pbt")
