"""A run's state, in two typed halves.

- ``RunState`` (a ``flax.struct`` pytree, on the device): every member's learner (parameters,
  optimizer states, targets, hyperparameters, normalizer, replay buffer, update key) and, with
  the MJX backend, the training environments' state. Every leaf has a leading member axis
  ``M`` (``M = 1`` for a single run), which a population vmaps over.
- ``LoopState`` (a frozen dataclass, on the host): counters, per-member evaluation records,
  energy and time totals; ``HostEnvsState`` holds the Gymnasium backend's environments (MuJoCo
  data, time limits, RNGs). Both are JSON-able and validated when read back
  (``spikerl_jax.schema``).

Checkpoints hold both halves, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax

from spikerl_jax.envs.gymnasium_backend import GymEnvState
from spikerl_jax.rl.normalizer import Normalizer
from spikerl_jax.rl.replay import ReplayBuffer
from spikerl_jax.rl.td3 import TD3State


@flax.struct.dataclass
class LearnerState:
    """One member's learner (under a population: every leaf with a leading ``(M,)``)."""

    td3: TD3State
    buffer: ReplayBuffer
    normalizer: Normalizer
    key: jax.Array  # for update rounds: batch sampling, smoothing noise, encoder spikes


@flax.struct.dataclass
class RunState:
    """The device state of a run: the learners and, with MJX, the training envs
    (``spikerl_jax.envs.State`` with leading ``(M, num_envs)``; None with Gymnasium)."""

    learner: LearnerState
    env: Any = None


def committed(state: RunState) -> RunState:
    """``state`` committed to the devices its arrays are on, as a restored checkpoint's are:
    a fresh and a resumed run then lower to the same programs (compiled arguments carry
    the shardings of committed arrays), and the persistent compile cache serves a resume."""
    return jax.device_put(state, jax.tree.map(lambda x: x.sharding, state))


@dataclasses.dataclass(frozen=True)
class MemberRecord:
    """A member's evaluations so far."""

    best_return: float | None = None
    last_return: float | None = None
    spikes: dict | None = None  # spike statistics of the latest evaluation (PopSAN only)


@dataclasses.dataclass(frozen=True)
class LoopState:
    """The host's counters and records between rounds (every member steps together).

    Attributes:
      step: env steps taken per member (Python int: unbounded on the host).
      updates: gradient updates per member.
      buffered: transitions in each member's replay buffer (capped at its capacity).
      members: per-member evaluation records.
      energy: per-phase energy totals of the processes that ran before this one.
      wall_s: wall seconds of training (updates, env steps, evaluation, checkpoints) of all
        processes so far.
      segments: ``[start_step, end_step, wall_s]`` of each process that ran this run.
    """

    step: int = 0
    updates: int = 0
    buffered: int = 0
    members: tuple[MemberRecord, ...] = ()
    energy: dict = dataclasses.field(default_factory=dict)
    wall_s: float = 0.0
    segments: tuple[tuple[int, int, float], ...] = ()


@dataclasses.dataclass(frozen=True)
class CollectorState:
    """The host collector between rounds (its stage is empty then).

    Attributes:
      obs: each env's current observation, ``[member][env][dim]``.
      episode_return: each env's running episode return, ``[member][env]``.
      finished_returns: returns of the training episodes ended since the last evaluation,
        per member.
      envs: every env's simulator state, member-major.
    """

    obs: tuple[tuple[tuple[float, ...], ...], ...]
    episode_return: tuple[tuple[float, ...], ...]
    finished_returns: tuple[tuple[float, ...], ...]
    envs: tuple[GymEnvState, ...]


@dataclasses.dataclass(frozen=True)
class HostEnvsState:
    """One process's Gymnasium environments: training envs, the random-action generators of
    the first phase and the evaluation envs' RNGs (per member)."""

    collector: CollectorState
    action_rngs: tuple[dict, ...]
    eval_rngs: tuple[tuple[dict, ...], ...]


@dataclasses.dataclass(frozen=True)
class DeviceEnvsState:
    """The MJX backend's host-side state (its envs are in ``RunState``): per member, the
    sum and count of the training episodes ended since the last evaluation."""

    train_returns: tuple[tuple[float, int], ...]


@dataclasses.dataclass(frozen=True)
class HostCheckpoint:
    """The host half of a checkpoint: the loop and the backend's host-side state (the
    Gymnasium backend: one ``HostEnvsState`` per process)."""

    loop: LoopState
    backend: tuple[HostEnvsState, ...] | DeviceEnvsState


def member_loop(loop: LoopState, member: int) -> LoopState:
    """``loop`` as member ``member``'s own run sees it (its record only)."""
    return dataclasses.replace(loop, members=(loop.members[member],))


def merge_loops(loops: list[LoopState]) -> LoopState:
    """The population's loop from its members' (their counters and totals agree)."""
    first = loops[0]
    for loop in loops[1:]:
        if (loop.step, loop.updates) != (first.step, first.updates):
            raise ValueError(
                f"members were checkpointed at different points (steps {first.step} and "
                f"{loop.step})"
            )
    return dataclasses.replace(first, members=tuple(m for loop in loops for m in loop.members))


def member_envs(envs: HostEnvsState, member: int) -> HostEnvsState:
    """One member's share of a process's Gymnasium envs."""
    c = envs.collector
    n = len(c.envs) // len(c.obs)
    return HostEnvsState(
        collector=CollectorState(
            obs=(c.obs[member],),
            episode_return=(c.episode_return[member],),
            finished_returns=(c.finished_returns[member],),
            envs=c.envs[member * n : (member + 1) * n],
        ),
        action_rngs=(envs.action_rngs[member],),
        eval_rngs=(envs.eval_rngs[member],),
    )


def stack_envs(parts: list[HostEnvsState]) -> HostEnvsState:
    """The inverse of ``member_envs``: members' envs in member order."""
    return HostEnvsState(
        collector=CollectorState(
            obs=tuple(o for p in parts for o in p.collector.obs),
            episode_return=tuple(r for p in parts for r in p.collector.episode_return),
            finished_returns=tuple(r for p in parts for r in p.collector.finished_returns),
            envs=tuple(e for p in parts for e in p.collector.envs),
        ),
        action_rngs=tuple(r for p in parts for r in p.action_rngs),
        eval_rngs=tuple(r for p in parts for r in p.eval_rngs),
    )


def member_backend(backend, member: int):
    """One member's share of a backend's host-side state (``HostCheckpoint.backend``)."""
    if isinstance(backend, DeviceEnvsState):
        return DeviceEnvsState(train_returns=(backend.train_returns[member],))
    return tuple(member_envs(envs, member) for envs in backend)


def stack_backends(parts: list):
    """The inverse of ``member_backend``."""
    if isinstance(parts[0], DeviceEnvsState):
        return DeviceEnvsState(train_returns=tuple(r for p in parts for r in p.train_returns))
    return tuple(stack_envs([p[i] for p in parts]) for i in range(len(parts[0])))
