"""A population's state: on the device (``RunState``) and on the host (``LoopState``).

Every array leaf of ``RunState`` and of a backend's host state has a leading member axis
``M`` (``M = 1`` for a single run): ``members.member`` slices one member out of either, and
a population is saved as one checkpoint per step (``checkpoint``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from spikerl_jax.pbt_spec import PBTRecord
from spikerl_jax.rl.normalizer import Normalizer
from spikerl_jax.rl.replay import ReplayBuffer
from spikerl_jax.training.schedule import Counters


@flax.struct.dataclass
class LearnerState:
    """A member's learner (under a population: every leaf with a leading ``(M,)``)."""

    agent: Any  # the algorithm's state (``rl.algorithm.Algorithm``): networks, optimizers
    buffer: ReplayBuffer
    normalizer: Normalizer
    key: jax.Array  # for update rounds: batch sampling, smoothing noise, encoder spikes


@flax.struct.dataclass
class PolicyState:
    """What acting needs: the actor's parameters and the observation statistics."""

    actor_params: dict
    normalizer: Normalizer


@flax.struct.dataclass
class RunState:
    """The device state of a population.

    Attributes:
      learner: every member's learner.
      best: every member's policy at its best evaluation so far (saved with the rest).
      env: the MJX backend's training envs (leading ``(M, num_envs)``); None with Gymnasium.
    """

    learner: LearnerState
    best: PolicyState
    env: Any = None

    @property
    def policy(self) -> PolicyState:
        """The members' current policies."""
        return PolicyState(self.learner.agent.actor_params, self.learner.normalizer)


def keep_best(state: RunState, improved: jax.Array) -> RunState:
    """``state`` with each member's best policy replaced by its current one where
    ``improved`` ``(M,)``."""
    return state.replace(best=_where_improved(improved, state.best, state.policy))


@jax.jit  # over the policies only: the rest of the state (the replay buffer) is not copied
def _where_improved(improved, best, policy):
    return jax.tree.map(
        lambda b, p: jnp.where(improved.reshape(-1, *[1] * (b.ndim - 1)), p, b), best, policy
    )


def committed(state: RunState) -> RunState:
    """``state`` committed to its devices, as a restored checkpoint's is: a fresh and a
    resumed run then lower to the same programs, which the compile cache serves."""
    return jax.device_put(state, jax.tree.map(lambda x: x.sharding, state))


@dataclasses.dataclass(frozen=True)
class MemberRecord:
    """A member's evaluations so far."""

    best_return: float | None = None
    best_step: int | None = None
    last_return: float | None = None
    spikes: dict | None = None  # spike statistics of the latest evaluation (PopSAN only)

    def after(self, mean: float, step: int, spikes: dict | None) -> MemberRecord:
        """The record after an evaluation of return ``mean`` at ``step``."""
        new = self.best_return is None or mean > self.best_return
        best = (mean, step) if new else (self.best_return, self.best_step)
        return MemberRecord(*best, last_return=mean, spikes=spikes)


@dataclasses.dataclass(frozen=True)
class LoopState:
    """The host's records between rounds (saved as JSON in every checkpoint).

    Attributes:
      counters: steps, updates and buffer fill (the same for every member).
      members: per-member evaluation records.
      energy: per-phase energy totals of the processes that ran before this one.
      wall_s: wall seconds of training (updates, env steps, evaluation, checkpoints) of all
        processes so far.
      segments: ``[start_step, end_step, wall_s]`` of each process that ran this run.
      logged: per member, the training episodes ended by the last train.csv row, their
        returns and lengths summed (``(M, 3)``; empty in checkpoints that predate it), so a
        resumed run's next row counts from that row, as the uninterrupted run's does.
      pbt: population-based training's settings, score windows and lineage (None: not a
        PBT run).
    """

    counters: Counters = dataclasses.field(default_factory=Counters)
    members: tuple[MemberRecord, ...] = ()
    energy: dict = dataclasses.field(default_factory=dict)
    wall_s: float = 0.0
    segments: tuple[tuple[int, int, float], ...] = ()
    logged: tuple[tuple[float, ...], ...] = ()
    pbt: PBTRecord | None = None

    @property
    def step(self) -> int:
        return self.counters.step
