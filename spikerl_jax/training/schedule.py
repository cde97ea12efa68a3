"""The schedule of a run, as pure functions of its config and counters: which steps act at
random, which rounds update, and where the loop stops next (evaluation, checkpoint, end).

Both backends follow it: the Gymnasium backend round by round in Python, the MJX backend
inside one compiled program per stretch of rounds (with the same rules, traced).
"""

from __future__ import annotations

import dataclasses
import itertools

from spikerl_jax.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class Counters:
    """What the host counts between rounds (every member steps together).

    Attributes:
      step: env steps taken per member (a Python int: unbounded on the host).
      updates: gradient updates per member.
      buffered: transitions in each member's replay buffer (capped at its capacity).
    """

    step: int = 0
    updates: int = 0
    buffered: int = 0


def acts_at_random(cfg: TrainConfig, step):
    """Whether the vector step at ``step`` takes uniform random actions (an int or a traced
    int: the MJX program asks the same question per step)."""
    return step < cfg.start_steps


def updates_after(cfg: TrainConfig, counters: Counters) -> bool:
    """Whether the round starting at ``counters`` runs its updates after ingesting (its last
    step has reached ``update_after`` and so has the buffer)."""
    buffered = min(counters.buffered + cfg.update_every, cfg.replay_size)
    return min(counters.step + cfg.update_every, buffered) >= cfg.update_after


def after_round(cfg: TrainConfig, counters: Counters) -> Counters:
    """The counters after the round starting at ``counters``."""
    update = updates_after(cfg, counters)
    return Counters(
        step=counters.step + cfg.update_every,
        updates=counters.updates + (cfg.updates_per_round if update else 0),
        buffered=min(counters.buffered + cfg.update_every, cfg.replay_size),
    )


def plan_rounds(cfg: TrainConfig, counters: Counters, target: int) -> list[tuple[bool, int]]:
    """``(update, rounds)`` for the runs of rounds that update (or do not) from ``counters``
    up to step ``target`` (a round boundary): the MJX backend compiles one call per run."""
    plan = []
    while counters.step < target:
        plan.append(updates_after(cfg, counters))
        counters = after_round(cfg, counters)
    return [(update, len(list(run))) for update, run in itertools.groupby(plan)]


def next_multiple(step: int, interval: int) -> int:
    """The first multiple of ``interval`` after ``step``."""
    return (step // interval + 1) * interval


@dataclasses.dataclass(frozen=True)
class Stops:
    """The next evaluation, checkpoint and log steps (anchored to the step, so that a
    resumed run may change the intervals)."""

    next_eval: int
    next_checkpoint: int
    next_log: int

    @classmethod
    def at(cls, cfg: TrainConfig, step: int) -> Stops:
        every = (cfg.eval_every, cfg.checkpoint_interval, cfg.log_every)
        return cls(*(next_multiple(step, n) for n in every))

    def target(self, cfg: TrainConfig) -> int:
        """The round boundary at or after the next evaluation, checkpoint, log or the end."""
        due = min(self.next_eval, self.next_checkpoint, self.next_log, cfg.total_steps)
        return -(-due // cfg.update_every) * cfg.update_every

    def due(self, cfg: TrainConfig, what: str, step: int) -> bool:
        """Whether ``what`` (``eval``, ``checkpoint``, ``log``) is due at ``step`` (all are
        at the end)."""
        return step >= getattr(self, f"next_{what}") or step >= cfg.total_steps

    def after(self, cfg: TrainConfig, what: str, step: int) -> Stops:
        """The stops once ``what`` happened at ``step``."""
        return dataclasses.replace(
            self, **{f"next_{what}": getattr(Stops.at(cfg, step), f"next_{what}")}
        )
